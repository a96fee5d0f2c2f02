"""``spotline status``: runs and their attempts (a tuning run: its trials) from the ledger, as plain-text
tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spotline.domain.prices import price_table
from spotline.domain.savings import RunSavings, run_savings
from spotline.domain.states import RunKind
from spotline.ledger.models import Models
from spotline.ledger.records import Attempt, Run, Trial
from spotline.ledger.runs import RunLedger
from spotline.ledger.table import LedgerTable
from spotline.ledger.trials import TrialLedger
from spotline.tuning.summary import best_trial


@dataclass(frozen=True)
class RunView:
    run: Run
    attempts: list[Attempt]
    savings: RunSavings
    trials: list[Trial] = field(default_factory=list)  # a tuning run's (it has no attempts)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def instance_types(self) -> str:
        jobs: list[Attempt | Trial] = [*self.attempts, *self.trials]
        seen = dict.fromkeys(f"{a.instance_type}{'' if a.spot else ' (on-demand)'}" for a in jobs)
        return ", ".join(seen) or "-"

    @property
    def outcome(self) -> str:
        return self.run.outcome or (self.attempts[-1].outcome if self.attempts else None) or "-"

    @property
    def jobs(self) -> str:
        """The ATTEMPTS column: attempts, or a tuning run's trials."""
        if self.run.kind == RunKind.TUNING:
            return f"{len(self.trials)} trials"
        return str(len(self.attempts))

    @property
    def best(self) -> Trial | None:
        return best_trial(self.trials, self.run.policy.objective_goal if self.run.policy else None)


def ledger(table: str, dynamodb: Any) -> RunLedger:
    return RunLedger(LedgerTable(table, dynamodb))


def run_view(runs: RunLedger, run: Run) -> RunView:
    attempts = runs.attempts(run.run_id)
    trials = TrialLedger(runs.table).trials(run.run_id) if run.kind == RunKind.TUNING else []
    count = run.policy.instance_count if run.policy else 1
    savings = run_savings([*attempts, *trials], price_table(), count)
    return RunView(run, attempts, savings, trials)


def recent(runs: RunLedger, limit: int = 20) -> list[RunView]:
    return [run_view(runs, r) for r in runs.recent_runs(limit)]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell."""
    cells = [[str(c) for c in headers], *[[("-" if c is None else str(c)) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def savings_text(s: RunSavings) -> str:
    if not s.training_s:
        return "-"

    def usd(x: float) -> str:
        return f"${x:.2f}" if x >= 1 else f"${x:.4f}"

    return f"{s.savings_pct:.0f}% ({usd(s.savings_usd)} of {usd(s.on_demand_usd)})"


def runs_table(views: Sequence[RunView]) -> str:
    rows = [
        (
            v.run_id,
            v.run.kind.value,
            v.run.status.value,
            v.jobs,
            v.instance_types,
            v.outcome,
            savings_text(v.savings),
        )
        for v in views
    ]
    return table(("RUN", "KIND", "STATUS", "ATTEMPTS", "INSTANCES", "OUTCOME", "SPOT SAVINGS"), rows)


def run_detail(view: RunView, dynamodb_table: LedgerTable | None = None) -> str:
    run = view.run
    lines = [
        f"run        {view.run_id}  ({run.kind.value})",
        f"status     {run.status.value}" + (f" - {run.reason}" if run.reason else ""),
        f"source     s3://{run.source.bucket}/{run.source.key}",
        f"created    {run.created_at}   finished {run.finished_at or '-'}",
        f"savings    {savings_text(view.savings)} - estimate, "
        f"{view.savings.billable_s} billable s of {view.savings.training_s} s",
        "",
        trials_detail(view)
        if run.kind == RunKind.TUNING
        else table(
            ("ATTEMPT", "JOB", "INSTANCE", "SPOT", "STATUS", "OUTCOME", "TRAIN S", "BILLABLE S"),
            [
                (
                    a.attempt,
                    a.job_name,
                    a.instance_type,
                    "yes" if a.spot else "no",
                    a.secondary_status or a.status.value,
                    a.outcome,
                    a.training_s,
                    a.billable_s,
                )
                for a in view.attempts
            ],
        ),
    ]
    if dynamodb_table is not None:
        model = Models(dynamodb_table).promoted()
        if model and model.run_id == view.run_id:
            lines += ["", f"promoted   yes - the default model for inference ({model.model_artifact})"]
    return "\n".join(lines)


def trials_detail(view: RunView) -> str:
    """A tuning run's trials (what the tuner chose, the objective, what each was billed) and its best."""
    policy = view.run.policy
    metric = (policy.objective_metric if policy else None) or "objective"
    goal = (policy.objective_goal if policy else None) or "maximize"
    keys = sorted({k for t in view.trials for k in t.hyperparameters})
    rows = [
        (
            t.number,
            t.job_name,
            t.status.value,
            "-" if t.objective is None else f"{t.objective:.4g}",
            *(t.hyperparameters.get(k) for k in keys),
            t.training_s,
            t.billable_s,
        )
        for t in view.trials
    ]
    headers = ("TRIAL", "JOB", "STATUS", metric.upper(), *keys, "TRAIN S", "BILLABLE S")
    lines = [
        f"tuning     {', '.join(view.run.tuning_jobs) or '-'} - {goal} {metric}",
        "",
        table(headers, rows) if rows else "no trial has ended yet",
    ]
    best = view.best
    if best is not None:
        chosen = ", ".join(f"{k}={v}" for k, v in sorted(best.hyperparameters.items()))
        lines += ["", f"best       {best.job_name}: {metric} {best.objective:.4g} ({chosen})"]
    return "\n".join(lines)
