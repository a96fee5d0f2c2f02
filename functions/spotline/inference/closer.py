"""Closing a batch: from its recorded images to a few well-sized inference jobs.

A batch's open generation closes when it has been quiet for the settle window, when the user
drops ``_READY``, or when it holds the per-job maximum of images (then it is split into
⌈n / max⌉ even parts). The close is one conditional write, so it happens exactly once however
many invocations try; the images of the sealed generation are collected once no intake
invocation is still writing to it, and each part is launched by :mod:`spotline.inference.launch`.
Images arriving after a close start the batch's next generation. No model to run with → the
batch stays open and one alert says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import KW_ONLY, dataclass, field

from spotline.adapters.notifier import Notifier
from spotline.domain.model_choice import ModelChoice
from spotline.domain.settings import Settings
from spotline.domain.timefmt import iso_utc
from spotline.inference.launch import InferenceLauncher, PartLaunch, inference_run_id, split_evenly
from spotline.inference.model_resolver import ModelResolver, ModelUnavailable
from spotline.ledger.batches import BatchLedger
from spotline.ledger.notices import Notices
from spotline.ledger.records import Batch, BatchClose, ClosePart

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CloseOutcome:
    """What considering a batch did: launched, waiting (for writers or a model), empty, or open."""

    action: str
    batch: str
    generation: int
    reason: str = ""
    runs: tuple[PartLaunch, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        runs = ", ".join(f"{r.job_name} {r.action}" for r in self.runs)
        return (
            f"{self.batch} g{self.generation} {self.action}"
            + (f" ({self.reason})" if self.reason else "")
            + (f": {runs}" if runs else "")
        )


class BatchCloseError(RuntimeError):
    """Some batches could not be closed or launched this time (they are retried on the next sweep)."""

    def __init__(self, failures: Iterable[str], outcomes: Sequence[CloseOutcome]) -> None:
        self.failures = list(failures)
        self.outcomes = list(outcomes)
        super().__init__("; ".join(self.failures))


@dataclass
class BatchCloser:
    """Closes due batches and launches their parts; safe to run from many invocations at once."""

    settings: Settings
    _: KW_ONLY
    batches: BatchLedger
    notices: Notices
    inference_launcher: InferenceLauncher
    model_resolver: ModelResolver
    notifier: Notifier
    clock: Callable[[], float] = time.time

    def close_due_batches(self) -> list[CloseOutcome]:
        """The scheduled sweep: every open batch is considered; one batch's failure spares the others."""
        outcomes: list[CloseOutcome] = []
        failures: list[str] = []
        for name in self.batches.open_batches():
            try:
                batch = self.batches.get_batch(name)
                if batch is not None:
                    outcomes.extend(self.consider(batch))
            except Exception as e:
                logger.exception("closing batch %s failed", name)
                failures.append(f"{name}: {e}")
        if failures:
            raise BatchCloseError(failures, outcomes)
        return outcomes

    def due(self, batch: Batch, now: float) -> str | None:
        """Why the open generation should close now (``ready``, ``full``, ``quiet``), or None."""
        if batch.image_count <= 0:
            return None
        if batch.ready:
            return "ready"
        if batch.image_count >= self.settings.batch_max_images:
            return "full"
        last_seen = now if batch.last_seen is None else batch.last_seen
        if now - last_seen >= self.settings.batch_settle_seconds:
            return "quiet"
        return None

    def consider(self, batch: Batch) -> list[CloseOutcome]:
        """Finish pending closes of the batch, then close its open generation if it is due."""
        name = batch.batch
        outcomes = [self._finish_close(name, g, batch) for g in batch.pending_closes]
        now = self.clock()
        generation = batch.generation
        reason = self.due(batch, now)
        if reason is None:
            return outcomes
        model = self._model(name, generation)
        if model is None:
            return [*outcomes, CloseOutcome("waiting", name, generation, "no model to run with")]
        if self.batches.seal(name, generation, reason=reason, now=now) is None:
            return [*outcomes, CloseOutcome("open", name, generation, "closed by another invocation")]
        logger.info("batch %s generation %d closed (%s)", name, generation, reason)
        fresh = self.batches.get_batch(name) or batch
        return [*outcomes, self._finish_close(name, generation, fresh, model=model, reason=reason)]

    def _model(self, batch: str, generation: int) -> ModelChoice | None:
        """The model to run with, or None after alerting (once) why the batch waits."""
        try:
            model = self.model_resolver.resolve(batch)
        except ModelUnavailable as e:
            self._alert_once(
                batch, f"job-file-{e.version}", f"spotline: batch {batch} waits: bad _job.yaml", str(e)
            )
            return None
        if model is None:
            self._alert_once(
                batch,
                f"no-model-g{generation}",
                f"spotline: batch {batch} waits for a promoted model",
                "No model is promoted yet and the folder has no _job.yaml naming one. The batch stays open "
                "and closes as soon as a model is promoted (or a _job.yaml names one).",
            )
        return model

    def _alert_once(self, batch: str, what: str, subject: str, reason: str) -> None:
        now = self.clock()

        def send() -> None:
            self.notifier.publish(
                subject,
                {"batch": batch, "status": "WAITING", "reason": reason, "at": iso_utc(now)},
                {"kind": "batch", "status": "WAITING", "batch": batch},
            )
            logger.warning("batch %s waits: %s", batch, reason)

        self.notices.of_batch(batch).send_once(what, send, now=now)

    def _finish_close(
        self,
        batch: str,
        generation: int,
        state: Batch,
        *,
        model: ModelChoice | None = None,
        reason: str = "",
    ) -> CloseOutcome:
        now = self.clock()
        close = self.batches.get_close(batch, generation)
        if close is None:
            writers = state.live_writers(generation, now)
            if writers:
                return CloseOutcome(
                    "waiting", batch, generation, f"{len(writers)} intake writer(s) still at work"
                )
            if model is None:
                model = self._model(batch, generation)
                if model is None:
                    return CloseOutcome("waiting", batch, generation, "no model to run with")
            close = self._collect(batch, generation, model, reason or state.last_close_reason or "")
            if close is None:
                self.batches.close_done(batch, generation)
                return CloseOutcome("empty", batch, generation, "no new images in the closed generation")
        runs = tuple(
            self.inference_launcher.launch_part(part, batch=batch, generation=generation, model=close.model)
            for part in close.parts
        )
        if all(r.action != "busy" for r in runs):
            if close.status != "LAUNCHED":
                self.batches.mark_close_launched(batch, generation, now=now)
            self.batches.close_done(batch, generation)
            return CloseOutcome("launched", batch, generation, close.reason, runs)
        return CloseOutcome("waiting", batch, generation, "a part is being launched elsewhere", runs)

    def _collect(self, batch: str, generation: int, model: ModelChoice, reason: str) -> BatchClose | None:
        """Split the sealed generation into parts, write their manifests, record the close."""
        keys = self.batches.image_keys(batch, generation)
        if not keys:
            return None
        chunks = split_evenly(keys, self.settings.batch_max_images)
        parts = []
        for number, chunk in enumerate(chunks, start=1):
            run_id = inference_run_id(self.settings.bucket, batch, generation, number)
            manifest = self.inference_launcher.write_manifest(run_id, batch, chunk)
            parts.append(ClosePart(run_id, number, len(chunks), len(chunk), manifest))
        return self.batches.put_close(
            BatchClose(
                batch=batch,
                generation=generation,
                parts=tuple(parts),
                image_count=len(keys),
                model=model,
                reason=reason,
                status="LAUNCHING",
                closed_at=iso_utc(self.clock()),
            )
        )
