"""Starting a tuning run's tuning job: the warm-start parents checked, the job tied to its run, created once.

Every step may be repeated by a retried or duplicated invocation, as a training run's launch:

1. :meth:`TuningStarter.parents` finds the warm-start parents' tuning jobs in the ledger and
   refuses what SageMaker would (a parent that is not a settled tuning run, another objective,
   other hyperparameters, more than five parent tuning jobs) — before anything is paid for;
2. :meth:`TuningStarter.start` links the tuning job's name to the run, records what it is created
   with while the run is PENDING, creates it (a name already taken means an earlier invocation
   created it) and moves the run PENDING -> RUNNING with one conditional write.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

from spotline.adapters.training_jobs import JobAlreadyExists
from spotline.adapters.tuning_jobs import TuningJobs
from spotline.config import Issue, RunConfig
from spotline.config.tuning import MAX_WARM_START_PARENTS
from spotline.domain.policy import RunPolicy
from spotline.domain.states import TERMINAL_RUN_STATES, RunKind, RunStatus
from spotline.domain.tuning_requests import parameter_ranges
from spotline.ledger.runs import RunLedger, TransitionRefused
from spotline.ledger.table import UnstorableValue
from spotline.ledger.trials import TrialLedger
from spotline.runs.first_attempt import LaunchNotRecordable

logger = logging.getLogger(__name__)


def range_kinds(ranges: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, str]:
    """``{key: Integer|Continuous|Categorical}`` of a request's ``ParameterRanges``."""
    return {r["Name"]: kind.removesuffix("ParameterRanges") for kind, items in ranges.items() for r in items}


@dataclass
class TuningStarter:
    """What creating a tuning run's tuning job needs."""

    ledger: RunLedger
    _: KW_ONLY
    trials: TrialLedger
    tuning: TuningJobs
    clock: Callable[[], float] = time.time

    def parents(self, config: RunConfig) -> tuple[list[str], list[Issue]]:
        """The warm-start parents' tuning job names, or why they cannot be parents.

        The rules are SageMaker's ("Warm Start Tuning Restrictions"): parents in a terminal
        state, the same objective metric, the same number of hyperparameters and the same type
        for each, at most five parent tuning jobs.
        """
        tuning = config.tuning
        if tuning is None or tuning.warm_start is None:
            return [], []
        names: list[str] = []
        issues: list[Issue] = []
        ours = range_kinds(parameter_ranges(tuning.ranges))
        for i, run_id in enumerate(tuning.warm_start.parents):
            path = f"tuning.warm_start.from[{i}]"
            parent = self.ledger.get_run(run_id)
            if parent is None or parent.kind != RunKind.TUNING or not parent.tuning_jobs:
                issues.append(Issue(path, run_id, "not a tuning run spotline knows"))
                continue
            if parent.status not in TERMINAL_RUN_STATES:
                issues.append(Issue(path, run_id, f"a parent must have ended (it is {parent.status})"))
            metric = parent.policy.objective_metric if parent.policy else None
            if metric != tuning.objective.metric:
                issues.append(
                    Issue(path, run_id, f"its objective was {metric}: a parent needs the same objective")
                )
            definition = (parent.first_request or {}).get("HyperParameterTuningJobConfig") or {}
            theirs = range_kinds(definition.get("ParameterRanges") or {})
            if len(theirs) != len(ours):
                issues.append(
                    Issue(
                        path,
                        run_id,
                        f"it tuned {len(theirs)} keys, this run {len(ours)}: the number must match",
                    )
                )
            changed = sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])
            if changed:
                issues.append(
                    Issue(path, run_id, f"a key may not change its kind of range: {', '.join(changed)}")
                )
            names.extend(parent.tuning_jobs)
        if len(names) > MAX_WARM_START_PARENTS:
            issues.append(
                Issue(
                    "tuning.warm_start.from",
                    list(tuning.warm_start.parents),
                    f"these runs have {len(names)} tuning jobs; "
                    f"a warm start takes at most {MAX_WARM_START_PARENTS}",
                )
            )
        return names, issues

    def start(self, run_id: str, request: Mapping[str, Any], *, policy: RunPolicy, config_key: str) -> str:
        """Create the run's tuning job and mark the run RUNNING; returns the tuning job's name.

        :class:`spotline.adapters.training_jobs.JobRequestRejected` is left to the caller;
        :class:`LaunchNotRecordable` means nothing was created.
        """
        name = str(request["HyperParameterTuningJobName"])
        self.trials.link_tuning_job(name, run_id)  # first: whatever reports on the job finds its run
        try:
            self.ledger.record_launch(
                run_id,
                policy=policy,
                first_request=request,
                config_key=config_key,
                now=self.clock(),
                tuning_job=name,
            )
        except UnstorableValue as e:
            raise LaunchNotRecordable(str(e)) from e
        except TransitionRefused:
            logger.info("run %s already moved on: its tuning job is created", run_id)
            return name
        try:
            self.tuning.create(request)
        except JobAlreadyExists:
            logger.info("tuning job %s already exists: created by an earlier invocation", name)
        with contextlib.suppress(TransitionRefused):  # an earlier invocation got this far
            self.ledger.mark_running(run_id, attempt=1, now=self.clock(), expected=RunStatus.PENDING)
        return name
