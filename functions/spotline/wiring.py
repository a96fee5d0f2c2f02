"""The one place the flows are built from :class:`~spotline.domain.settings.Settings`.

Handlers build a :class:`Wiring` once per cold start (clients then come from
:mod:`spotline.adapters.aws`, built on first use, their endpoints from ``AWS_ENDPOINT_URL*``);
tests and the local stack pass their own clients (``clients("s3")`` → a client) and clock. Every
flow of one wiring shares the same ledger, notices, bucket, notifier and clocks, so what one
flow records the next one sees.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

from spotline.adapters.drop_bucket import DropBucket
from spotline.adapters.notifier import Notifier
from spotline.adapters.relaunch_queue import RelaunchQueue
from spotline.adapters.training_jobs import TrainingJobs
from spotline.domain.prices import price_table
from spotline.domain.settings import Settings
from spotline.domain.states import RunKind
from spotline.inference.closer import BatchCloser
from spotline.inference.intake import ImageIntake
from spotline.inference.launch import InferenceLauncher
from spotline.inference.model_resolver import ModelResolver
from spotline.inference.results import InferenceCompleted
from spotline.ledger.batches import BatchLedger
from spotline.ledger.models import Models
from spotline.ledger.notices import Notices
from spotline.ledger.runs import RunLedger
from spotline.ledger.table import LedgerTable
from spotline.runs.job_state import JobStateFlow
from spotline.runs.publish import MetricsSink, RunPublisher
from spotline.runs.relaunch import Relauncher
from spotline.training.launch import TrainingLauncher
from spotline.training.promotion import TrainingCompleted

Clients = Callable[[str], Any]


class Wiring:
    """Builds each flow on first use; collaborators are shared between the flows it builds."""

    def __init__(
        self,
        settings: Settings,
        *,
        clients: Clients | None = None,
        clock: Callable[[], float] = time.time,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.clock = clock
        self.metrics = metrics

    def _client(self, service: str) -> Any:
        """The injected client, or None: the adapter then builds the shared one on first use."""
        return self.clients(service) if self.clients is not None else None

    # -- collaborators ------------------------------------------------------------------------------

    @cached_property
    def table(self) -> LedgerTable:
        return LedgerTable(self.settings.table, self._client("dynamodb"))

    @cached_property
    def ledger(self) -> RunLedger:
        return RunLedger(self.table)

    @cached_property
    def batches(self) -> BatchLedger:
        return BatchLedger(self.table)

    @cached_property
    def models(self) -> Models:
        return Models(self.table)

    @cached_property
    def notices(self) -> Notices:
        return Notices(self.table)

    @cached_property
    def bucket(self) -> DropBucket:
        return DropBucket(self.settings, self._client("s3"))

    @cached_property
    def jobs(self) -> TrainingJobs:
        return TrainingJobs(self._client("sagemaker"))

    @cached_property
    def notifier(self) -> Notifier:
        return Notifier(
            self.settings.topic_arn,
            self.settings.event_bus,
            sns=self._client("sns"),
            events=self._client("events"),
        )

    @cached_property
    def relaunch_queue(self) -> RelaunchQueue:
        return RelaunchQueue(self.settings.relaunch_queue_url, self._client("sqs"))

    @cached_property
    def prices(self) -> dict[str, float]:
        return price_table(self.settings.prices_json)

    # -- flows --------------------------------------------------------------------------------------

    @cached_property
    def training_launcher(self) -> TrainingLauncher:
        return TrainingLauncher(
            self.settings,
            ledger=self.ledger,
            notices=self.notices,
            jobs=self.jobs,
            notifier=self.notifier,
            bucket=self.bucket,
            relaunch_queue=self.relaunch_queue,
            clock=self.clock,
        )

    @cached_property
    def inference_completed(self) -> InferenceCompleted:
        return InferenceCompleted(
            self.settings,
            batches=self.batches,
            notices=self.notices,
            notifier=self.notifier,
            bucket=self.bucket,
            clock=self.clock,
        )

    @cached_property
    def publisher(self) -> RunPublisher:
        return RunPublisher(
            self.settings,
            ledger=self.ledger,
            notices=self.notices,
            notifier=self.notifier,
            bucket=self.bucket,
            prices=self.prices,
            completed={
                RunKind.TRAINING: TrainingCompleted(self.models),
                RunKind.INFERENCE: self.inference_completed,
            },
            metrics=self.metrics,
            clock=self.clock,
        )

    @cached_property
    def job_state(self) -> JobStateFlow:
        return JobStateFlow(
            self.settings,
            ledger=self.ledger,
            notices=self.notices,
            jobs=self.jobs,
            publisher=self.publisher,
            queue=self.relaunch_queue,
            prices=self.prices,
            clock=self.clock,
        )

    @cached_property
    def relauncher(self) -> Relauncher:
        return Relauncher(
            self.settings,
            ledger=self.ledger,
            jobs=self.jobs,
            queue=self.relaunch_queue,
            finish_failed=self.publisher.fail_waiting_run,
            clock=self.clock,
        )

    @cached_property
    def inference_launcher(self) -> InferenceLauncher:
        return InferenceLauncher(
            self.settings,
            ledger=self.ledger,
            notices=self.notices,
            jobs=self.jobs,
            notifier=self.notifier,
            bucket=self.bucket,
            clock=self.clock,
        )

    @cached_property
    def model_resolver(self) -> ModelResolver:
        return ModelResolver(self.settings, ledger=self.ledger, models=self.models, bucket=self.bucket)

    @cached_property
    def batch_closer(self) -> BatchCloser:
        return BatchCloser(
            self.settings,
            batches=self.batches,
            notices=self.notices,
            launcher=self.inference_launcher,
            models=self.model_resolver,
            notifier=self.notifier,
            clock=self.clock,
        )

    @cached_property
    def image_intake(self) -> ImageIntake:
        return ImageIntake(self.settings, batches=self.batches, closer=self.batch_closer, clock=self.clock)
