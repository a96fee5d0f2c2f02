"""What a tuning run's trials add up to: the best trial, the trials lost to Spot, the report's summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from spotline.domain.states import TrialStatus
from spotline.ledger.records import Run, Trial

# Trials whose objective counts: completed, or stopped early by the tuner (SageMaker's BestTrainingJob
# is "the training job that completed with the best current objective"; an early-stopped trial
# reported one and kept its model).
RANKED = (TrialStatus.COMPLETED, TrialStatus.STOPPED)


def best_trial(trials: Sequence[Trial], goal: str | None) -> Trial | None:
    """The trial with the best objective and a model (the earliest of equals), or None."""
    ranked = [t for t in trials if t.status in RANKED and t.objective is not None and t.model_artifact]
    if not ranked:
        return None
    sign = -1.0 if goal == "minimize" else 1.0
    best = max(range(len(ranked)), key=lambda i: (sign * float(ranked[i].objective or 0.0), -i))
    return ranked[best]


def lost_to_spot(trials: Sequence[Trial], tuning_job: str | None = None) -> list[Trial]:
    return [t for t in trials if t.status == TrialStatus.LOST_TO_SPOT and tuning_job in (None, t.tuning_job)]


def shortfall(run: Run, trials: Sequence[Trial]) -> str:
    """What the trials lost to Spot capacity became, in a sentence ('' when none was lost)."""
    jobs = run.tuning_jobs
    lost_first = lost_to_spot(trials, jobs[0]) if jobs else []
    if len(jobs) > 1:
        lost_follow_up = lost_to_spot(trials, jobs[1])
        text = f"{len(lost_first)} trial(s) lost to Spot capacity ran again in the follow-up {jobs[1]}"
        if lost_follow_up:
            text += f"; {len(lost_follow_up)} of those were lost again and not replaced"
        return text
    if not lost_first:
        return ""
    if run.cancel_reason or run.stop_reason:
        return f"{len(lost_first)} trial(s) were lost to Spot capacity (no follow-up: the run was stopped)"
    return (
        f"{len(lost_first)} of {len(trials)} trial(s) were lost to Spot capacity and not replaced: the tuner "
        "counts them against max_trials (set tuning.follow_up_lost_trials: true to run them again in a "
        "warm-started follow-up tuning job)"
    )


def tuning_summary(
    run: Run, trials: Sequence[Trial], best: Trial | None, describe: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``tuning`` results of a settled tuning run's report and alert (bounded: no per-trial list)."""
    policy = run.policy
    counts = Counter(t.status.value for t in trials)
    return {
        "tuning_jobs": list(run.tuning_jobs),
        "objective": {
            "metric": policy.objective_metric if policy else None,
            "goal": policy.objective_goal if policy else None,
        },
        "status": describe.get("HyperParameterTuningJobStatus"),
        "trials": {"total": len(trials), **{s.value.lower(): counts.get(s.value, 0) for s in TrialStatus}},
        "best_trial": best_view(best),
        "lost_to_spot": len(lost_to_spot(trials)),
        "shortfall": shortfall(run, trials),
        "failure_reason": describe.get("FailureReason"),
    }


def best_view(best: Trial | None) -> dict[str, Any] | None:
    if best is None:
        return None
    return {
        "job_name": best.job_name,
        "tuning_job": best.tuning_job,
        "objective": best.objective,
        "hyperparameters": dict(best.hyperparameters),
        "model_artifact": best.model_artifact,
    }
