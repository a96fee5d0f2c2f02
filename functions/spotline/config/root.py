"""The whole run config: every section, and the one entry point that reads a file into it.

The launch function, the ``spotline validate`` command and the container all call
:func:`parse_run_config`, so anything the container would reject is rejected before launch.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from spotline import metric_names
from spotline.config.images import image_allowed
from spotline.config.job import IMAGE_CHANNELS, RESERVED_CHANNELS, JobSection, PromoteSection
from spotline.config.loader import MAX_CONFIG_BYTES, dump_yaml_value, load_yaml_document, load_yaml_value
from spotline.config.model import (
    AugmentSection,
    CheckpointSection,
    DataLoaderSection,
    EvalSection,
    InferenceSection,
    InputSection,
    ModelSection,
    SolverSection,
)
from spotline.config.schema import ConfigError, Issue, Scalar, build, key_type, setting, setting_keys
from spotline.config.tuning import TuningSection, tuning_issues

# What SageMaker takes: 100 hyperparameters (names up to 256 characters, values up to 2,500) and 100
# environment variables (names like shell variables, up to 512 characters, values up to 512), of
# which spotline sets two itself.
MAX_HYPERPARAMETERS = 100
MAX_HYPERPARAMETER_NAME = 256
MAX_HYPERPARAMETER_VALUE = 2500
ENVIRONMENT_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]{0,511}")
MAX_ENVIRONMENT_VALUE = 512
RESERVED_ENVIRONMENT = ("SPOTLINE_RUN_ID", "SPOTLINE_ATTEMPT")
MAX_ENVIRONMENT = 100 - len(RESERVED_ENVIRONMENT)
# The sections that configure spotline's own image; an image of your own takes hyperparameters.
# A tuning section's ranges are keys of these sections, so it is spotline's image's too.
IMAGE_SECTIONS = (
    "mode",
    "model",
    "input",
    "dataloader",
    "solver",
    "augment",
    "checkpoint",
    "eval",
    "inference",
    "tuning",
)
# The metrics of spotline's image a promotion gate may read (higher is better, between 0 and 1).
GATE_METRICS = (metric_names.VAL_MAP50, metric_names.VAL_MAP)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A validated, frozen run config."""

    job: JobSection = setting(required=True, help="where and how the SageMaker job runs")
    promote: PromoteSection | None = setting(
        None, help="gate that makes a succeeded run the default model for inference"
    )
    mode: Literal["train", "inference"] = setting(
        "train", help="train a model, or run inference with one (hyperparameter mode=inference)"
    )
    model: ModelSection = setting(default_factory=ModelSection, help="the detector")
    input: InputSection = setting(default_factory=InputSection, help="input images")
    dataloader: DataLoaderSection = setting(default_factory=DataLoaderSection, help="data loading")
    solver: SolverSection = setting(default_factory=SolverSection, help="optimisation and precision")
    augment: AugmentSection = setting(default_factory=AugmentSection, help="training augmentation")
    checkpoint: CheckpointSection = setting(default_factory=CheckpointSection, help="Spot-safe checkpoints")
    eval: EvalSection = setting(default_factory=EvalSection, help="COCO evaluation on the val channel")
    inference: InferenceSection = setting(default_factory=InferenceSection, help="inference mode")
    hyperparameters: Mapping[str, Scalar] = setting(
        default_factory=dict,
        max_items=MAX_HYPERPARAMETERS,
        help="job.image only: SageMaker hyperparameters handed to your image (as text: 0.02 -> '0.02')",
    )
    environment: Mapping[str, Scalar] = setting(
        default_factory=dict,
        max_items=MAX_ENVIRONMENT,
        help="environment variables of the job's container (as text: 8 -> '8')",
    )
    tuning: TuningSection | None = setting(
        None, help="tune hyperparameters: a tuning job whose trials run on Spot, the best one kept"
    )

    def checks(self, path: str) -> list[Issue]:
        """What one section alone cannot see: the image decides which keys, channels and metrics apply."""
        return [
            *self._hyperparameter_issues(),
            *self._environment_issues(),
            *self._gate_issues(),
            *self._channel_issues(),
        ]

    def _channel_issues(self) -> list[Issue]:
        """Channels spotline's image reads, a gate it can measure (an image of your own reads its own)."""
        if self.job.image is not None:
            return []
        issues: list[Issue] = []
        channels = self.job.channels
        if self.mode == "train":
            for name in channels:
                if name not in IMAGE_CHANNELS and name not in RESERVED_CHANNELS:
                    close = difflib.get_close_matches(name, IMAGE_CHANNELS, n=1, cutoff=0.5)
                    hint = f"did you mean '{close[0]}'? " if close else ""
                    issues.append(
                        Issue(
                            f"job.channels.{name}",
                            name,
                            f"spotline's image does not read this channel; {hint}"
                            f"(it reads {', '.join(IMAGE_CHANNELS)})",
                        )
                    )
        if self.promote is not None and self.promote.metric.startswith("val/") and "val" not in channels:
            issues.append(
                Issue(
                    "promote.metric",
                    self.promote.metric,
                    "the run cannot report it: validation metrics need a 'val' channel in job.channels "
                    "(add one, or drop the promote section)",
                )
            )
        return issues

    def _hyperparameter_issues(self) -> list[Issue]:
        if self.hyperparameters and self.job.image is None:
            return [
                Issue(
                    "hyperparameters",
                    dict(self.hyperparameters),
                    "spotline's image is configured by this file's own sections (solver.base_lr: ...): "
                    "hyperparameters are for a job.image of your own",
                )
            ]
        issues = []
        for name, value in self.hyperparameters.items():
            if not 0 < len(name) <= MAX_HYPERPARAMETER_NAME:
                issues.append(Issue(f"hyperparameters.{name}", name, "a name of 1 to 256 characters"))
            elif len(as_text(value)) > MAX_HYPERPARAMETER_VALUE:
                issues.append(
                    Issue(f"hyperparameters.{name}", value, f"at most {MAX_HYPERPARAMETER_VALUE} characters")
                )
        return issues

    def _environment_issues(self) -> list[Issue]:
        issues = []
        for name, value in self.environment.items():
            path = f"environment.{name}"
            if not ENVIRONMENT_NAME.fullmatch(name):
                issues.append(
                    Issue(path, name, "a variable name: letters, digits and _, not starting with a digit")
                )
            elif name in RESERVED_ENVIRONMENT:
                issues.append(Issue(path, name, "spotline sets this variable itself"))
            elif len(as_text(value)) > MAX_ENVIRONMENT_VALUE:
                issues.append(Issue(path, value, f"at most {MAX_ENVIRONMENT_VALUE} characters"))
        return issues

    def _gate_issues(self) -> list[Issue]:
        gate = self.promote
        if gate is None:
            return []
        known = run_metric_names(self)
        if self.job.image is None:
            if gate.metric not in GATE_METRICS:
                return [Issue("promote.metric", gate.metric, f"expected one of {', '.join(GATE_METRICS)}")]
            if not 0.0 <= gate.min <= 1.0:
                return [Issue("promote.min", gate.min, f"{gate.metric} lies between 0 and 1")]
        elif gate.metric not in known:
            names = ", ".join(known) or "none: add job.metrics"
            return [
                Issue("promote.metric", gate.metric, f"a metric of job.metrics the run reports ({names})")
            ]
        return []


def run_metric_names(config: RunConfig) -> tuple[str, ...]:
    """The metric names this config's run can produce: what a promotion gate or a tuning objective may
    name. spotline's image reports :data:`spotline.metric_names.ALL`; an image of your own, the names
    of its ``job.metrics``."""
    if config.job.image is None:
        return metric_names.ALL
    return tuple(config.job.metrics)


def as_text(value: object) -> str:
    """A hyperparameter or environment value as SageMaker takes it: text as it is, others written as
    YAML reads them back (``0.02``, ``true``, ``1.0e-05``)."""
    return value if isinstance(value, str) else dump_yaml_value(value)


@dataclass(frozen=True, kw_only=True)
class ValidationContext:
    """What the deployment allows, beyond the file itself (where data may come from)."""

    drop_bucket: str | None = None
    extra_data_buckets: frozenset[str] = field(default_factory=frozenset)
    data_prefixes: tuple[str, ...] = ("datasets/",)
    # The instance types the deployment has a price for; None: budgets are not checked here.
    priced_instance_types: frozenset[str] | None = None
    # A file dropped under configs/: it must train (inference runs from inference/<batch>/).
    dropped_config: bool = False
    # The stack's own image and the ECR repository ARN patterns a config's job.image may name;
    # None: images are not checked here (the container, or a check without a deployment).
    stack_image: str | None = None
    allowed_images: tuple[str, ...] | None = None


def parse_run_config(
    data: bytes | str,
    context: ValidationContext | None = None,
    overrides: Mapping[str, str] | None = None,
    *,
    max_bytes: int = MAX_CONFIG_BYTES,
) -> RunConfig:
    """Read, merge ``overrides`` (dotted keys, YAML-typed string values) and validate a config."""
    document = load_yaml_document(data, max_bytes=max_bytes)
    if not isinstance(document, dict):
        raise ConfigError(
            [Issue("", document, "the top level must be a mapping of sections (job, model, solver, ...)")]
        )
    if overrides:
        document = apply_overrides(document, overrides)
    context = context or ValidationContext()
    # A section that does not apply is reported as such, not checked as if it did; an image the
    # stack does not allow is reported with every other problem of the file.
    image_problems = [*inapplicable_sections(document), *allowed_image_issues(document, context)]
    if image_problems:
        document = {k: v for k, v in document.items() if k not in IMAGE_SECTIONS}
    try:
        config = build(RunConfig, document)
    except ConfigError as e:
        raise ConfigError([*image_problems, *e.issues]) from None
    issues = [
        *image_problems,
        *channel_issues(config, context),
        *budget_issues(config, context),
        *mode_issues(config, context),
        *tuning_issues(
            config,
            key_type=lambda dotted: key_type(RunConfig, dotted),
            setting_keys=_SETTING_KEYS,
            trial_issues=lambda key, text: _trial_issues(document, key, text),
        ),
    ]
    if issues:
        raise ConfigError(issues)
    return config


_SETTING_KEYS = setting_keys(RunConfig)


def _trial_issues(document: dict[str, Any], key: str, text: str) -> list[str]:
    """What the schema (the container's) says of ``document`` with ``key`` overridden to ``text``."""
    try:
        build(RunConfig, apply_overrides(document, {key: text}))
    except ConfigError as e:
        return [str(i) for i in e.issues]
    return []


def budget_issues(config: RunConfig, context: ValidationContext) -> list[Issue]:
    """``budget_usd`` is enforced from prices: every rung of the ladder needs one, or the cap is refused.

    An attempt on a type without a price would count as $0 and the budget would never stop the run.
    """
    priced, job = context.priced_instance_types, config.job
    if job.budget_usd is None or priced is None:
        return []
    rungs = [("job.instance_type", job.instance_type)]
    rungs += [(f"job.fallback_instance_types[{i}]", t) for i, t in enumerate(job.fallback_instance_types)]
    return [
        Issue(
            path,
            instance_type,
            f"budget_usd is set but no price is known for {instance_type}, so the budget could not be "
            "enforced on this rung: add its on-demand USD per hour to the PriceTable parameter, "
            "or remove budget_usd",
        )
        for path, instance_type in rungs
        if instance_type not in priced
    ]


def _own_image(document: Mapping[str, Any]) -> str | None:
    """The ``job.image`` a document names, if it names one as text."""
    job = document.get("job")
    image = job.get("image") if isinstance(job, Mapping) else None
    return image if isinstance(image, str) else None


def inapplicable_sections(document: Mapping[str, Any]) -> list[Issue]:
    """With a ``job.image`` of your own, the sections of spotline's image (model, ...) do not apply."""
    if _own_image(document) is None:
        return []
    return [
        Issue(section, document[section], INAPPLICABLE.get(section, INAPPLICABLE[""]))
        for section in IMAGE_SECTIONS
        if section in document
    ]


INAPPLICABLE = {
    "": "configures spotline's own image; job.image runs your code: give it hyperparameters instead",
    "tuning": "tunes the keys of spotline's own image; tuning an image of your own is not supported yet",
}


def allowed_image_issues(document: Mapping[str, Any], context: ValidationContext) -> list[Issue]:
    """A ``job.image`` of your own must be one the deployment allows (its role pulls no other)."""
    image, allowed = _own_image(document), context.allowed_images
    if image is None or allowed is None or image == context.stack_image or image_allowed(image, allowed):
        return []
    listed = ", ".join(allowed) or "none: the stack runs only its own image (AllowedImages parameter)"
    return [Issue("job.image", image, f"an image the stack allows (allowed repositories: {listed})")]


def mode_issues(config: RunConfig, context: ValidationContext) -> list[Issue]:
    """A config dropped under configs/ starts a training job; inference has its own folder."""
    if not context.dropped_config or config.mode == "train":
        return []
    return [
        Issue(
            "mode",
            config.mode,
            "a config under configs/ trains a model: run inference by dropping images under "
            "inference/<batch>/ (with a _job.yaml naming the model, or the promoted one)",
        )
    ]


def apply_overrides(document: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``document`` with ``a.b.c=value`` overrides set (SageMaker hyperparameters)."""
    issues: list[Issue] = []
    merged: dict[str, Any] = _deep_copy(document)
    for dotted, text in overrides.items():
        keys = dotted.split(".")
        if not all(keys):
            issues.append(Issue(dotted, text, "expected a dotted key such as solver.base_lr"))
            continue
        try:
            value = load_yaml_value(text) if isinstance(text, str) else text
        except ConfigError as e:
            issues.extend(Issue(dotted, i.value, i.expected) for i in e.issues)
            continue
        node: Any = merged
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                issues.append(Issue(dotted, text, f"'{key}' is not a section"))
                break
            node = child
        else:
            node[keys[-1]] = value
    if issues:
        raise ConfigError(issues)
    return merged


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def resolve_channel_uri(uri: str, drop_bucket: str | None) -> tuple[str, str]:
    """``(bucket, prefix)`` of a channel: ``s3://b/p`` or a prefix of the drop bucket."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[5:].partition("/")
        return bucket, prefix
    return drop_bucket or "", uri


def channel_issues(config: RunConfig, context: ValidationContext) -> list[Issue]:
    """Data channels must point at readable data: the drop bucket's data prefixes or an allowed bucket."""
    issues = []
    for name, uri in config.job.channels.items():
        path = f"job.channels.{name}"
        bucket, prefix = resolve_channel_uri(uri, context.drop_bucket)
        if uri.startswith("s3://") and not bucket:
            issues.append(Issue(path, uri, "expected s3://bucket/prefix"))
            continue
        if ".." in prefix.split("/") or prefix.startswith("/") or "//" in prefix:
            issues.append(Issue(path, uri, "a prefix without '..', '//' or a leading '/'"))
            continue
        in_drop_bucket = not uri.startswith("s3://") or bucket == context.drop_bucket
        if in_drop_bucket:
            if not prefix.startswith(context.data_prefixes):
                allowed = " or ".join(context.data_prefixes)
                issues.append(Issue(path, uri, f"data in the drop bucket lives under {allowed}"))
        elif bucket not in context.extra_data_buckets and context.drop_bucket is not None:
            allowed = ", ".join(sorted(context.extra_data_buckets)) or "none"
            issues.append(
                Issue(
                    path,
                    uri,
                    f"bucket '{bucket}' is not allowed for data (allowed besides the drop bucket: {allowed})",
                )
            )
    return issues
