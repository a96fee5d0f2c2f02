"""CreateHyperParameterTuningJob requests: a config's tuning job, and the follow-up of its lost trials.

The ``TrainingJobDefinition`` is made from the very CreateTrainingJob request a training run of the
same config would get (:func:`spotline.domain.requests.training_request`): Managed Spot with its
MaxWait, the checkpoint location, the metric definitions, encryption, network isolation, the
retry strategy and the environment — so a trial is exactly a spotline training job, except that
the tuner names it and sets the tuned keys as hyperparameters.

Trials all get the definition's ``CheckpointConfig.S3Uri`` as it is (SageMaker documents no
per-trial location), so the definition's environment asks the container to keep each trial's
checkpoints under a folder named after the trial's own job (:data:`TRIAL_CHECKPOINTS_ENV`): a
trial that Managed Spot restarts keeps its job name and resumes its own checkpoints, and no trial
resumes another's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from spotline.config import RunConfig
from spotline.config.loader import dump_yaml_value
from spotline.config.tuning import TRIAL_CHECKPOINTS_ENV, RangeSection, objective_reports
from spotline.domain.naming import tuning_job_name
from spotline.domain.requests import TAG_KIND, TRAINING_REQUEST_FIELDS, training_request
from spotline.domain.settings import Settings
from spotline.domain.states import RunKind

STRATEGIES = {"bayesian": "Bayesian", "random": "Random", "grid": "Grid", "hyperband": "Hyperband"}
GOALS = {"maximize": "Maximize", "minimize": "Minimize"}
SCALES = {"auto": "Auto", "linear": "Linear", "log": "Logarithmic", "reverse_log": "ReverseLogarithmic"}
WARM_START_TYPES = {
    "transfer_learning": "TransferLearning",
    "identical_data_and_algorithm": "IdenticalDataAndAlgorithm",
}
IDENTICAL = "IdenticalDataAndAlgorithm"
FOLLOW_UP = 2  # the run's second tuning job: its lost trials, warm-started from the first
# What a CreateTrainingJob request and a HyperParameterTrainingJobDefinition share, field for field
# (the definition names hyperparameters StaticHyperParameters; its Environment is set below).
DEFINITION_FIELDS = tuple(f for f in TRAINING_REQUEST_FIELDS if f not in ("HyperParameters", "Environment"))


def tuning_request(
    *,
    settings: Settings,
    run_id: str,
    config: RunConfig,
    config_key: str,
    source_key: str,
    parents: Sequence[str] = (),
) -> dict[str, Any]:
    """The run's CreateHyperParameterTuningJob request; ``parents``: warm-start tuning job names."""
    tuning = config.tuning
    if tuning is None:
        raise ValueError("a tuning request needs a config with a tuning section")
    training = training_request(
        settings=settings, run_id=run_id, config=config, config_key=config_key, source_key=source_key
    )
    definition = {k: copy.deepcopy(training[k]) for k in DEFINITION_FIELDS if k in training}
    definition["StaticHyperParameters"] = dict(training.get("HyperParameters") or {})
    definition["Environment"] = {**training.get("Environment", {}), TRIAL_CHECKPOINTS_ENV: "1"}
    job_config: dict[str, Any] = {
        "Strategy": STRATEGIES[tuning.strategy],
        "HyperParameterTuningJobObjective": {
            "Type": GOALS[tuning.objective.goal],
            "MetricName": tuning.objective.metric,
        },
        "ResourceLimits": {
            "MaxNumberOfTrainingJobs": tuning.trials,
            "MaxParallelTrainingJobs": tuning.parallel_trials,
        },
        "ParameterRanges": parameter_ranges(tuning.ranges),
        "TrainingJobEarlyStoppingType": "Auto" if tuning.early_stopping == "auto" else "Off",
    }
    if tuning.max_runtime is not None:
        job_config["ResourceLimits"]["MaxRuntimeInSeconds"] = int(tuning.max_runtime)
    if tuning.seed is not None:
        job_config["RandomSeed"] = tuning.seed
    if tuning.strategy == "hyperband":
        resource = objective_reports(config.solver, config.eval, tuning.objective.metric)
        job_config["StrategyConfig"] = {"HyperbandStrategyConfig": {"MaxResource": resource}}
    request: dict[str, Any] = {
        "HyperParameterTuningJobName": tuning_job_name(settings.job_prefix, run_id),
        "HyperParameterTuningJobConfig": job_config,
        "TrainingJobDefinition": definition,
        "Tags": [
            {"Key": t["Key"], "Value": RunKind.TUNING.value if t["Key"] == TAG_KIND else t["Value"]}
            for t in training["Tags"]
        ],
    }
    if parents and tuning.warm_start is not None:
        request["WarmStartConfig"] = warm_start(parents, WARM_START_TYPES[tuning.warm_start.type])
    return request


def parameter_ranges(ranges: Mapping[str, RangeSection]) -> dict[str, list[dict[str, Any]]]:
    """``ParameterRanges``: values as the text the container reads back equal (SageMaker's are text)."""
    out: dict[str, list[dict[str, Any]]] = {
        "IntegerParameterRanges": [],
        "ContinuousParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for name, spec in ranges.items():
        if spec.values is not None:
            out["CategoricalParameterRanges"].append(
                {"Name": name, "Values": [dump_yaml_value(v) for v in spec.values]}
            )
            continue
        low, high = spec.candidates()
        kind = "IntegerParameterRanges" if spec.kind == "integer" else "ContinuousParameterRanges"
        out[kind].append(
            {"Name": name, "MinValue": repr(low), "MaxValue": repr(high), "ScalingType": SCALES[spec.scale]}
        )
    return {k: v for k, v in out.items() if v}


def warm_start(parents: Sequence[str], warm_start_type: str) -> dict[str, Any]:
    return {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": name} for name in parents],
        "WarmStartType": warm_start_type,
    }


def follow_up_request(
    first: Mapping[str, Any], *, job_prefix: str, run_id: str, lost_trials: int
) -> dict[str, Any]:
    """The run's second tuning job: ``lost_trials`` trials more, warm-started from the first.

    Identical data and algorithm (it is the same definition), so the tuner reuses every trial of
    the first job; the first job's own parents are not carried (warm start is not recursive).
    """
    request = copy.deepcopy(dict(first))
    request["HyperParameterTuningJobName"] = tuning_job_name(job_prefix, run_id, FOLLOW_UP)
    limits = request["HyperParameterTuningJobConfig"]["ResourceLimits"]
    limits["MaxNumberOfTrainingJobs"] = lost_trials
    limits["MaxParallelTrainingJobs"] = min(int(limits["MaxParallelTrainingJobs"]), lost_trials)
    request["WarmStartConfig"] = warm_start([str(first["HyperParameterTuningJobName"])], IDENTICAL)
    return request
