"""What each handler module builds at its cold start: settings, logger, metrics, and the wiring.

Every function reads its own environment when its module is first imported (Lambda's cold start;
the local stack imports each handler module on its first invocation), so a missing variable fails
the cold start with its name. The flows are built on the first invocation, not at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from spotline.domain.events import EventShapeError
from spotline.domain.settings import Settings
from spotline.runs.publish import METRICS_NAMESPACE
from spotline.wiring import Wiring

Handler = TypeVar("Handler", bound=Callable[..., Any])
Parsed = TypeVar("Parsed")
Answer = dict[str, Any]
LambdaHandler = Callable[[dict[str, Any], Any], Answer]


@dataclass
class FunctionRuntime:
    settings: Settings
    logger: Logger
    metrics: Metrics

    @classmethod
    def at_cold_start(cls) -> FunctionRuntime:
        return cls(Settings.from_env(), Logger(), Metrics(namespace=METRICS_NAMESPACE))

    @cached_property
    def wiring(self) -> Wiring:
        return Wiring(self.settings, metrics=self.metrics)

    def entry(self, handler: Handler) -> Handler:
        """The Lambda entry point: request context in every log line, metrics flushed as EMF."""
        with_metrics = self.metrics.log_metrics(handler)
        return cast(Handler, self.logger.inject_lambda_context(clear_state=True)(with_metrics))

    def event_entry(
        self, parse: Callable[[Any], Parsed], *, unusable_metric: str | None = None
    ) -> Callable[[Callable[[Parsed], Answer]], LambdaHandler]:
        """An entry point for one event parsed by ``parse``; an event it cannot read is answered
        ``ignored`` (logged and counted), never retried: it would fail the same way."""

        def decorate(
            act: Callable[[Parsed], dict[str, Any]],
        ) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
            def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
                try:
                    parsed = parse(event)
                except EventShapeError as e:
                    return self.unusable(e, unusable_metric)
                return act(parsed)

            return self.entry(handler)

        return decorate

    def count(self, name: str, value: float = 1) -> None:
        self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def unusable(self, error: Exception, metric: str | None = None) -> dict[str, Any]:
        """An event spotline cannot read: logged, counted, answered ``ignored`` (never retried)."""
        self.logger.error("unusable event, not retried", extra={"error": str(error)})
        if metric:
            self.count(metric)
        return {"action": "ignored", "reason": str(error)}
