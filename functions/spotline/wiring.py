"""The one place the flows are built from :class:`~spotline.domain.settings.Settings`.

Handlers build a :class:`Wiring` once per cold start (clients then come from
:mod:`spotline.adapters.aws`, built on first use, their endpoints from ``AWS_ENDPOINT_URL*``);
tests and the local stack pass their own clients (``clients("s3")`` → a client) and clock.

Every flow is a dataclass whose fields name its collaborators; :meth:`Wiring.build` fills each
field with the wiring's attribute of the same name. So every flow of one wiring shares the same
ledger, notices, bucket, notifier and clock — what one flow records the next one sees — and a
collaborator is declared once, here, not once per flow.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, overload

from spotline.adapters.drop_bucket import DropBucket
from spotline.adapters.notifier import Notifier
from spotline.adapters.relaunch_queue import RelaunchQueue
from spotline.adapters.training_jobs import TrainingJobs
from spotline.adapters.tuning_jobs import TuningJobs
from spotline.domain.prices import price_table
from spotline.domain.settings import Settings
from spotline.domain.states import RunKind
from spotline.inference.closer import BatchCloser
from spotline.inference.intake import ImageIntake
from spotline.inference.launch import InferenceLauncher
from spotline.inference.model_resolver import ModelResolver
from spotline.inference.results import BatchResults, InferenceCompleted, InferenceFailed
from spotline.ledger.batches import BatchLedger
from spotline.ledger.models import Models
from spotline.ledger.notices import Notices
from spotline.ledger.runs import RunLedger
from spotline.ledger.table import LedgerTable
from spotline.ledger.trials import TrialLedger
from spotline.runs.cancel import RunCanceller
from spotline.runs.catch_up import RunCatchUp
from spotline.runs.job_state import JobStateFlow
from spotline.runs.pending_watch import PendingWatch
from spotline.runs.publish import CompletedPublisher, FailedPublisher, MetricsSink, RunPublisher
from spotline.runs.relaunch import Relauncher
from spotline.runs.report_page import RunPages
from spotline.training.config_deleted import ConfigDeletion
from spotline.training.launch import TrainingLauncher
from spotline.training.promotion import TrainingCompleted
from spotline.tuning.ended import TuningEnded
from spotline.tuning.launch import TuningStarter
from spotline.tuning.trials import TrialRecorder

Clients = Callable[[str], Any]
T = TypeVar("T")


class _Once(Generic[T]):
    """An attribute of the wiring, made on first read and then kept (one per wiring)."""

    def __init__(self, make: Callable[[Wiring], T]) -> None:
        self.make = make
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, wiring: None, owner: type) -> _Once[T]: ...
    @overload
    def __get__(self, wiring: Wiring, owner: type) -> T: ...
    def __get__(self, wiring: Wiring | None, owner: type) -> _Once[T] | T:
        if wiring is None:
            return self
        value = vars(wiring)[self.name] = self.make(wiring)
        return value


def _flow(flow: type[T]) -> _Once[T]:
    """A flow, its fields filled by :meth:`Wiring.build`."""
    return _Once(lambda wiring: wiring.build(flow))


class Wiring:
    """Builds each collaborator and flow on first use, once."""

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

    def build(self, flow: type[T]) -> T:
        """``flow`` (a dataclass) with every field set to this wiring's attribute of that name."""
        fields = dataclasses.fields(flow)  # type: ignore[arg-type]
        return flow(**{f.name: getattr(self, f.name) for f in fields if f.init})

    def client(self, service: str) -> Any:
        """The injected client, or None: the adapter then builds the shared one on first use."""
        return self.clients(service) if self.clients is not None else None

    # -- collaborators ------------------------------------------------------------------------------

    table = _Once(lambda w: LedgerTable(w.settings.table, w.client("dynamodb")))
    ledger = _Once(lambda w: RunLedger(w.table))
    trials = _Once(lambda w: TrialLedger(w.table))
    batches = _Once(lambda w: BatchLedger(w.table))
    models = _Once(lambda w: Models(w.table))
    notices = _Once(lambda w: Notices(w.table))
    bucket = _Once(lambda w: DropBucket(w.settings, w.client("s3")))
    jobs = _Once(lambda w: TrainingJobs(w.client("sagemaker")))
    tuning = _Once(lambda w: TuningJobs(w.client("sagemaker")))
    notifier = _Once(
        lambda w: Notifier(
            w.settings.topic_arn, w.settings.event_bus, sns=w.client("sns"), events=w.client("events")
        )
    )
    relaunch_queue = _Once(lambda w: RelaunchQueue(w.settings.relaunch_queue_url, w.client("sqs")))
    prices = _Once(lambda w: price_table(w.settings.prices_json))
    run_pages = _flow(RunPages)

    # -- flows --------------------------------------------------------------------------------------
    training_launcher = _flow(TrainingLauncher)
    config_deletion = _flow(ConfigDeletion)
    publisher = _flow(RunPublisher)
    job_state = _flow(JobStateFlow)
    catch_up = _flow(RunCatchUp)
    pending_watch = _flow(PendingWatch)
    relauncher = _flow(Relauncher)
    canceller = _flow(RunCanceller)
    image_intake = _flow(ImageIntake)
    batch_closer = _flow(BatchCloser)
    inference_launcher = _flow(InferenceLauncher)
    model_resolver = _flow(ModelResolver)
    batch_results = _flow(BatchResults)
    inference_completed = _flow(InferenceCompleted)
    tuning_starter = _flow(TuningStarter)
    trial_events = _flow(TrialRecorder)
    tuning_state = _flow(TuningEnded)
    inference_failed = _flow(InferenceFailed)

    # What a completed job publishes, by the kind of its run.
    completed: _Once[Mapping[RunKind, CompletedPublisher]] = _Once(
        lambda w: {
            RunKind.TRAINING: w.build(TrainingCompleted),
            RunKind.INFERENCE: w.inference_completed,
            RunKind.TUNING: w.build(TrainingCompleted),  # the best trial's model, through the same gate
        }
    )
    # What a run that settles FAILED or CANCELLED does, by its kind (training runs: nothing more).
    failed: _Once[Mapping[RunKind, FailedPublisher]] = _Once(
        lambda w: {RunKind.INFERENCE: w.inference_failed}
    )
