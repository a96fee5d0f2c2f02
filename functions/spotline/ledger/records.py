"""What the ledger stores, as typed records: runs, attempts, batches, closes, images, promotions.

Each record is a frozen dataclass with ``from_item`` (a DynamoDB item, type-checked field by
field: a malformed item raises :class:`RecordError` naming the field) and ``to_item`` (checked
for what DynamoDB can store, see :func:`spotline.ledger.table.check_storable`). Flows read
attributes, never item keys; the item keys are written here and in the record's ledger module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spotline.domain.classify import Outcome
from spotline.domain.model_choice import ModelChoice
from spotline.domain.plain import plain_fields
from spotline.domain.policy import RunPolicy
from spotline.domain.progress import work_lost
from spotline.domain.states import AttemptStatus, RunKind, RunStatus, TrialStatus
from spotline.ledger.table import check_storable


class RecordError(ValueError):
    """A ledger item that does not have the shape its record needs."""


_NO_DEFAULT: Any = object()


def _is_text(v: Any) -> bool:
    return isinstance(v, str)


def _is_whole(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and v == int(v)


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float)


def _is_flag(v: Any) -> bool:
    return isinstance(v, bool)


def _is_mapping(v: Any) -> bool:
    return isinstance(v, Mapping)


def _is_texts(v: Any) -> bool:
    return isinstance(v, list | tuple | set | frozenset) and all(isinstance(x, str) for x in v)


class _Fields:
    """Typed reads of one item's attributes; every failure names the item and the attribute."""

    def __init__(self, item: Mapping[str, Any], what: str) -> None:
        self.item, self.what = item, what

    def _read(self, key: str, default: Any, check: Callable[[Any], bool], expected: str) -> Any:
        value = self.item.get(key) if default is _NO_DEFAULT else self.item.get(key, default)
        if value is None and default is None:
            return None
        if not check(value):
            raise RecordError(f"{self.what}: {key} is {self.item.get(key)!r}, expected {expected}")
        return value

    def text(self, key: str, default: str | None = _NO_DEFAULT) -> str:
        return str(self._read(key, default, _is_text, "text"))

    def opt_text(self, key: str) -> str | None:
        value: str | None = self._read(key, None, _is_text, "text")
        return value

    def whole(self, key: str, default: int | None = _NO_DEFAULT) -> int:
        return int(self._read(key, default, _is_whole, "a whole number"))

    def opt_whole(self, key: str) -> int | None:
        value = self._read(key, None, _is_whole, "a whole number")
        return None if value is None else int(value)

    def number(self, key: str, default: float | None = _NO_DEFAULT) -> float:
        return float(self._read(key, default, _is_number, "a number"))

    def opt_number(self, key: str) -> float | None:
        value = self._read(key, None, _is_number, "a number")
        return None if value is None else float(value)

    def flag(self, key: str, default: bool | None = _NO_DEFAULT) -> bool:
        return bool(self._read(key, default, _is_flag, "true or false"))

    def mapping(self, key: str) -> Mapping[str, Any] | None:
        value: Mapping[str, Any] | None = self._read(key, None, _is_mapping, "a mapping")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._read(key, (), _is_texts, "a list of text") or ()
        return tuple(sorted(value) if isinstance(value, set | frozenset) else value)


def _checked(item: dict[str, Any], what: str) -> dict[str, Any]:
    """``item`` without None values, refused (by attribute name) if DynamoDB could not store it."""
    clean = {k: v for k, v in item.items() if v is not None}
    check_storable(clean, what)
    return clean


# -- runs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSource:
    """The S3 object (or batch part) a run came from."""

    bucket: str
    key: str
    version: str


@dataclass(frozen=True)
class NextAttempt:
    """The attempt a RETRYING run waits to launch: where, and not before when."""

    attempt: int
    instance_type: str
    spot: bool
    not_before: int
    reason: str = ""


@dataclass(frozen=True)
class InferencePart:
    """One part of a batch's close, run as one inference job."""

    batch: str
    generation: int
    part: int
    parts: int
    image_count: int
    manifest_key: str
    model: ModelChoice


@dataclass(frozen=True)
class Run:
    """A run: its origin, where it stands, how it recovers, and how it ended."""

    run_id: str
    kind: RunKind
    status: RunStatus
    source: RunSource
    created_at: str
    updated_at: str
    attempt: int = 0
    lease_until: int = 0
    config_key: str | None = None
    policy: RunPolicy | None = None
    first_request: Mapping[str, Any] | None = None
    next: NextAttempt | None = None
    create_quota_hits: int = 0
    outcome: str | None = None
    reason: str = ""
    cap: str | None = None
    finished_at: str | None = None
    errors: tuple[str, ...] = ()
    report_key: str | None = None
    inference: InferencePart | None = None
    promotion: str | None = None  # a succeeded training run's gate, in words
    cancel_reason: str | None = None  # set when a person cancelled the run (its config deleted)
    # A tuning run: its tuning jobs (the first, then its follow-up) and why spotline stopped one.
    tuning_jobs: tuple[str, ...] = ()
    stop_reason: str | None = None

    @property
    def label(self) -> str:
        """The file name people recognise the run by (its config, or its batch folder)."""
        return (self.source.key or self.run_id).rstrip("/").rsplit("/", 1)[-1]

    @property
    def checkpoint_uri(self) -> str | None:
        request = self.first_request or {}
        job = request.get("TrainingJobDefinition") or request  # a tuning run's trials, or the job
        uri = (job.get("CheckpointConfig") or {}).get("S3Uri")
        return str(uri) if uri else None

    @property
    def launch_recorded(self) -> bool:
        """Whether what the first job was created with (policy and request) is in the ledger."""
        return self.policy is not None and self.first_request is not None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Run:
        f = _Fields(item, f"run {item.get('run_id')!r}")
        policy = f.mapping("policy")
        next_attempt = f.opt_whole("next_attempt")
        inference = None
        if item.get("batch") is not None:
            model = f.mapping("model")
            if model is None:
                raise RecordError(f"run {item.get('run_id')!r}: an inference part without its model")
            inference = InferencePart(
                batch=f.text("batch"),
                generation=f.whole("generation", 1),
                part=f.whole("part", 1),
                parts=f.whole("parts", 1),
                image_count=f.whole("image_count", 0),
                manifest_key=f.text("manifest_key"),
                model=ModelChoice.from_item(model),
            )
        return cls(
            run_id=f.text("run_id"),
            kind=RunKind(f.text("kind", RunKind.TRAINING.value)),
            status=RunStatus(f.text("status")),
            source=RunSource(f.text("source_bucket"), f.text("source_key"), f.text("source_version")),
            created_at=f.text("created_at"),
            updated_at=f.text("updated_at", item.get("created_at")),
            attempt=f.whole("attempt", 0),
            lease_until=f.whole("lease_until", 0),
            config_key=f.opt_text("config_key"),
            policy=RunPolicy.from_item(policy) if policy is not None else None,
            first_request=f.mapping("first_request"),
            next=NextAttempt(
                attempt=next_attempt,
                instance_type=f.text("next_instance_type"),
                spot=f.flag("next_spot"),
                not_before=f.whole("not_before", 0),
                reason=f.text("retry_reason", item.get("last_reason") or ""),
            )
            if next_attempt is not None
            else None,
            create_quota_hits=f.whole("create_quota_hits", 0),
            outcome=f.opt_text("outcome"),
            reason=f.text("reason", ""),
            cap=f.opt_text("cap"),
            finished_at=f.opt_text("finished_at"),
            errors=f.texts("errors"),
            report_key=f.opt_text("report_key"),
            inference=inference,
            promotion=f.opt_text("promotion"),
            cancel_reason=f.opt_text("cancel_reason"),
            tuning_jobs=f.texts("tuning_jobs"),
            stop_reason=f.opt_text("stop_reason"),
        )

    def to_item(self) -> dict[str, Any]:
        """The run's own attributes (the ledger adds its keys and index attributes)."""
        item: dict[str, Any] = {
            "run_id": self.run_id,
            "kind": self.kind.value,
            "status": self.status.value,
            "source_bucket": self.source.bucket,
            "source_key": self.source.key,
            "source_version": self.source.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "attempt": self.attempt,
            "lease_until": self.lease_until,
            "config_key": self.config_key,
            "policy": self.policy.to_item() if self.policy else None,
            "first_request": dict(self.first_request) if self.first_request is not None else None,
            **(next_attempt_attrs(self.next) if self.next else {}),
            "create_quota_hits": self.create_quota_hits or None,
            "outcome": self.outcome,
            "reason": self.reason or None,
            "cap": self.cap,
            "finished_at": self.finished_at,
            "errors": list(self.errors) or None,
            "report_key": self.report_key,
            "promotion": self.promotion,
            **(inference_attrs(self.inference) if self.inference else {}),
            "cancel_reason": self.cancel_reason,
            "tuning_jobs": list(self.tuning_jobs) or None,
            "stop_reason": self.stop_reason,
        }
        return _checked(item, f"run {self.run_id}")


_NEXT_ATTEMPT_ATTRS = {"attempt": "next_attempt", "instance_type": "next_instance_type", "spot": "next_spot"}


def next_attempt_attrs(next_attempt: NextAttempt) -> dict[str, Any]:
    """The waiting attempt as the run item keeps it (``next_attempt``, ..., ``retry_reason``)."""
    names = {**_NEXT_ATTEMPT_ATTRS, "reason": "retry_reason"}
    return {names.get(k, k): v for k, v in plain_fields(next_attempt).items()}


def inference_attrs(part: InferencePart) -> dict[str, Any]:
    return plain_fields(part)


# -- attempts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptEnd:
    """What DescribeTrainingJob says about an attempt that ended, as spotline classified it, and
    how far it got: the checkpoint iteration it started from and left in S3, the iteration it had
    reached (None where unknown: an image that writes no checkpoint pointer or iteration metric)."""

    status: AttemptStatus
    outcome: Outcome
    job_status: str
    secondary_status: str | None
    failure_reason: str | None
    training_s: int
    billable_s: int
    ended_at: str | None
    start_iteration: int | None = None
    end_iteration: int | None = None
    reached_iteration: int | None = None

    def to_attrs(self) -> dict[str, Any]:
        return _checked(plain_fields(self), "attempt end")


@dataclass(frozen=True)
class Attempt:
    """One training job of a run (attempt N is job ``<prefix>-<run id>-aNN``)."""

    run_id: str
    attempt: int
    job_name: str
    instance_type: str
    spot: bool
    status: AttemptStatus
    outcome: str | None = None
    job_status: str | None = None
    secondary_status: str | None = None
    failure_reason: str | None = None
    training_s: int = 0
    billable_s: int = 0
    launched_at: str | None = None
    ended_at: str | None = None
    start_iteration: int | None = None
    end_iteration: int | None = None
    reached_iteration: int | None = None

    @property
    def work_lost_iterations(self) -> int | None:
        """Iterations the attempt did that no checkpoint in S3 holds (None when not known)."""
        return work_lost(self.reached_iteration, self.end_iteration)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Attempt:
        f = _Fields(item, f"attempt {item.get('run_id')!r}#{item.get('attempt')!r}")
        return cls(
            run_id=f.text("run_id"),
            attempt=f.whole("attempt"),
            job_name=f.text("job_name"),
            instance_type=f.text("instance_type"),
            spot=f.flag("spot"),
            status=AttemptStatus(f.text("status")),
            outcome=f.opt_text("outcome"),
            job_status=f.opt_text("job_status"),
            secondary_status=f.opt_text("secondary_status"),
            failure_reason=f.opt_text("failure_reason"),
            training_s=f.whole("training_s", 0),
            billable_s=f.whole("billable_s", 0),
            launched_at=f.opt_text("launched_at"),
            ended_at=f.opt_text("ended_at"),
            start_iteration=f.opt_whole("start_iteration"),
            end_iteration=f.opt_whole("end_iteration"),
            reached_iteration=f.opt_whole("reached_iteration"),
        )

    def to_item(self) -> dict[str, Any]:
        return _checked(plain_fields(self), f"attempt {self.run_id}#{self.attempt}")

    def view(self) -> dict[str, Any]:
        """The attempt as reports and alerts show it (every field, None where unknown)."""
        return {
            **plain_fields(self, without=("run_id", "job_status")),
            "work_lost_iterations": self.work_lost_iterations,
        }


# -- trials of a tuning run -----------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One training job a tuning run's tuner ran: how it ended, its objective and what it cost.

    The tuner names it ``<tuning job>-<NNN>-<8 hex>``; ``number`` is that ``NNN`` (0 for a name
    without one), for display only: a trial is found through its ``TuningJobArn``, not its name.
    """

    run_id: str
    job_name: str
    tuning_job: str
    number: int
    instance_type: str
    spot: bool
    status: TrialStatus
    outcome: str | None = None
    job_status: str | None = None
    secondary_status: str | None = None
    failure_reason: str | None = None
    objective: float | None = None
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    model_artifact: str | None = None
    training_s: int = 0
    billable_s: int = 0
    created_at: str | None = None
    ended_at: str | None = None

    @property
    def attempt(self) -> int:
        """Its number, where the cost rules read an attempt's (``AttemptFacts.attempt``)."""
        return self.number

    @property
    def start_iteration(self) -> int | None:
        """Not known for a trial: spotline does not follow a trial's checkpoints (the tuner runs it)."""
        return None

    @property
    def end_iteration(self) -> int | None:
        return None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Trial:
        f = _Fields(item, f"trial {item.get('run_id')!r}#{item.get('job_name')!r}")
        hyperparameters = f.mapping("hyperparameters") or {}
        metrics = f.mapping("metrics") or {}
        return cls(
            run_id=f.text("run_id"),
            job_name=f.text("job_name"),
            tuning_job=f.text("tuning_job"),
            number=f.whole("number", 0),
            instance_type=f.text("instance_type", ""),
            spot=f.flag("spot", False),
            status=TrialStatus(f.text("status")),
            outcome=f.opt_text("outcome"),
            job_status=f.opt_text("job_status"),
            secondary_status=f.opt_text("secondary_status"),
            failure_reason=f.opt_text("failure_reason"),
            objective=f.opt_number("objective"),
            hyperparameters={str(k): str(v) for k, v in hyperparameters.items()},
            metrics={str(k): float(v) for k, v in metrics.items() if _is_number(v)},
            model_artifact=f.opt_text("model_artifact"),
            training_s=f.whole("training_s", 0),
            billable_s=f.whole("billable_s", 0),
            created_at=f.opt_text("created_at"),
            ended_at=f.opt_text("ended_at"),
        )

    def to_item(self) -> dict[str, Any]:
        return _checked(plain_fields(self), f"trial {self.run_id}#{self.job_name}")

    def view(self) -> dict[str, Any]:
        """The trial as reports and alerts show it (every field, None where unknown)."""
        return plain_fields(self, without=("run_id", "job_status"))


# -- batches --------------------------------------------------------------------------------------

WRITER_PREFIX = "writer#"


@dataclass(frozen=True)
class Writer:
    """An intake invocation registered as writing images into one generation of a batch."""

    generation: int
    expires: float


@dataclass(frozen=True)
class Batch:
    """An image folder under ``inference/``: its open generation and what waits to be closed."""

    batch: str
    generation: int = 1
    image_count: int = 0
    ready: bool = False
    first_seen: float | None = None
    last_seen: float | None = None
    pending_closes: tuple[int, ...] = ()
    last_close_reason: str | None = None
    writers: Mapping[str, Writer] = field(default_factory=dict)

    def live_writers(self, generation: int, now: float) -> list[str]:
        """Writer ids still registered (lease not expired) for ``generation``."""
        return sorted(w for w, v in self.writers.items() if v.generation == generation and v.expires > now)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Batch:
        f = _Fields(item, f"batch {item.get('batch')!r}")
        writers = {}
        for name, value in item.items():
            if name.startswith(WRITER_PREFIX) and isinstance(value, Mapping):
                w = _Fields(value, f"batch {item.get('batch')!r} {name}")
                writers[name[len(WRITER_PREFIX) :]] = Writer(w.whole("generation", 0), w.number("expires", 0))
        pending = item.get("pending_closes") or ()
        if not all(isinstance(g, int) for g in pending):
            raise RecordError(f"batch {item.get('batch')!r}: pending_closes is {pending!r}")
        return cls(
            batch=f.text("batch"),
            generation=f.whole("generation", 1),
            image_count=f.whole("image_count", 0),
            ready=f.flag("ready", False),
            first_seen=f.opt_number("first_seen"),
            last_seen=f.opt_number("last_seen"),
            pending_closes=tuple(sorted(int(g) for g in pending)),
            last_close_reason=f.opt_text("last_close_reason"),
            writers=writers,
        )


@dataclass(frozen=True)
class ImageRecord:
    """One image object of a batch, as the intake records it."""

    key: str
    relative_key: str
    etag: str
    size: int


@dataclass(frozen=True)
class SkippedFile:
    """An object of a batch folder that is not one of its images, and why (listed in summary.json)."""

    relative_key: str
    reason: str

    def to_item(self) -> dict[str, Any]:
        return {"relative_key": self.relative_key, "reason": self.reason}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> SkippedFile:
        f = _Fields(item, f"skipped file {item.get('relative_key')!r}")
        return cls(f.text("relative_key"), f.text("reason", ""))

    def view(self) -> dict[str, str]:
        return {"key": self.relative_key, "reason": self.reason}


@dataclass(frozen=True)
class SkippedFiles:
    """A batch folder's skipped files: how many in all, and the first ones (a bounded list)."""

    count: int
    listed: tuple[SkippedFile, ...]

    def view(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "files": [f.view() for f in self.listed],
            "not_listed": max(0, self.count - len(self.listed)),
        }


@dataclass(frozen=True)
class ClosePart:
    """One part of a close: its run, its place among the parts, its manifest."""

    run_id: str
    part: int
    parts: int
    images: int
    manifest_key: str

    def to_item(self) -> dict[str, Any]:
        return plain_fields(self)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ClosePart:
        f = _Fields(item, f"close part {item.get('run_id')!r}")
        return cls(
            f.text("run_id"), f.whole("part"), f.whole("parts"), f.whole("images"), f.text("manifest_key")
        )


@dataclass(frozen=True)
class BatchClose:
    """A sealed generation of a batch: its parts, its model, how far its launch and results got.

    ``done_parts`` are the runs that completed, ``failed_parts`` those that settled FAILED or
    CANCELLED; the close is settled once every part is in one of them (a run in both completed).
    """

    batch: str
    generation: int
    parts: tuple[ClosePart, ...]
    image_count: int
    model: ModelChoice
    reason: str
    status: str
    closed_at: str
    launched_at: str | None = None
    done_parts: frozenset[str] = frozenset()
    failed_parts: frozenset[str] = frozenset()

    @property
    def part_runs(self) -> tuple[str, ...]:
        return tuple(p.run_id for p in self.parts)

    @property
    def settled(self) -> bool:
        """Every part completed or failed for good."""
        return bool(self.parts) and set(self.part_runs) <= self.done_parts | self.failed_parts

    def to_attrs(self) -> dict[str, Any]:
        """What the close item is written with (``done_parts``/``failed_parts`` grow by their own updates)."""
        attrs = plain_fields(self, without=("done_parts", "failed_parts"))
        return _checked(attrs, f"close {self.batch}#{self.generation}")

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> BatchClose:
        f = _Fields(item, f"close {item.get('batch')!r}#{item.get('generation')!r}")
        model = f.mapping("model")
        if model is None:
            raise RecordError(f"close {item.get('batch')!r}: no model")
        return cls(
            batch=f.text("batch"),
            generation=f.whole("generation"),
            parts=tuple(ClosePart.from_item(p) for p in item.get("parts") or ()),
            image_count=f.whole("image_count", 0),
            model=ModelChoice.from_item(model),
            reason=f.text("reason", ""),
            status=f.text("status", ""),
            closed_at=f.text("closed_at", ""),
            launched_at=f.opt_text("launched_at"),
            done_parts=frozenset(f.texts("done_parts")),
            failed_parts=frozenset(f.texts("failed_parts")),
        )


# -- the promoted model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Promotion:
    """The model inference runs with by default, and where it came from."""

    run_id: str
    model_artifact: str
    config_key: str | None = None
    config_version: str | None = None
    config_snapshot: str | None = None
    job_name: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    gate: Mapping[str, Any] = field(default_factory=dict)
    run_created_at: str | None = None
    promoted_at: str | None = None
    image: str | None = None  # an image of your own (job.image); None: spotline's, which inference runs
    # A tuning run's best trial: the tuning job that ran it and the hyperparameters it was given.
    tuning_job: str | None = None
    hyperparameters: Mapping[str, str] = field(default_factory=dict)

    def lineage(self) -> dict[str, Any]:
        """Where the model came from, as summaries and reports show it."""
        return {k: v for k, v in self.to_attrs().items() if v not in (None, {}, "")}

    def to_attrs(self) -> dict[str, Any]:
        return _checked(plain_fields(self), f"promotion of {self.run_id}")

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Promotion:
        f = _Fields(item, "the promoted model")
        return cls(
            run_id=f.text("run_id"),
            model_artifact=f.text("model_artifact"),
            config_key=f.opt_text("config_key"),
            config_version=f.opt_text("config_version"),
            config_snapshot=f.opt_text("config_snapshot"),
            job_name=f.opt_text("job_name"),
            metrics={str(k): float(v) for k, v in (f.mapping("metrics") or {}).items()},
            gate=dict(f.mapping("gate") or {}),
            run_created_at=f.opt_text("run_created_at"),
            promoted_at=f.opt_text("promoted_at"),
            image=f.opt_text("image"),
            tuning_job=f.opt_text("tuning_job"),
            hyperparameters={str(k): str(v) for k, v in (f.mapping("hyperparameters") or {}).items()},
        )
