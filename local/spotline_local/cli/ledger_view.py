"""``spotline status``: runs and their attempts (a tuning run: its trials) from the ledger, as plain-text
tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spotline.domain.prices import price_table
from spotline.domain.savings import RunSavings, run_savings
from spotline.domain.states import RunKind, RunStatus
from spotline.ledger.models import Models
from spotline.ledger.records import Attempt, Run, Trial
from spotline.ledger.runs import RunLedger
from spotline.ledger.table import LedgerTable
from spotline.ledger.trials import TrialLedger
from spotline.tuning.summary import best_trial
from spotline_local.cli.console import aws_call
from spotline_local.cli.targets import CliError

MAX_ERRORS_SHOWN = 20


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
        """How it ended, with what a person must know first: a failed gate, the first rejection."""
        run = self.run
        if run.status == RunStatus.REJECTED and run.errors:
            count = len(run.errors)
            first = run.errors[0] if len(run.errors[0]) <= 70 else run.errors[0][:67] + "..."
            return f"{count} problem{'s' if count != 1 else ''}: {first}"
        outcome = run.outcome or (self.attempts[-1].outcome if self.attempts else None) or "-"
        if run.promotion and run.promotion.startswith("not promoted"):
            return f"{outcome}, not promoted"
        return outcome

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


def no_such_run(run_id: str) -> CliError:
    return CliError(f"no run {run_id!r} in the ledger", "`spotline status` lists the runs")


def known_run(runs: RunLedger, run_id: str) -> Run:
    """The ledger's record of ``run_id``; a :class:`CliError` naming it when there is none."""
    run = aws_call(lambda: runs.get_run(run_id))
    if run is None:
        raise no_such_run(run_id)
    return run


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
    """The cost sentence of a run (an estimate), or "-" before any billable time."""
    from spotline.reports.page import savings_sentence

    return savings_sentence(s.to_dict()) if s.training_s else "-"


def money_columns(s: RunSavings) -> tuple[str, str]:
    """The runs table's COST and SAVED VS ON-DEMAND cells: ``$0.0077``, ``$0.0179 (70 %)``."""
    from spotline.reports.page import usd

    if not s.training_s:
        return "-", "-"
    return usd(s.estimated_cost_usd), f"{usd(s.savings_usd)} ({s.savings_pct:.0f} %)"


def runs_table(views: Sequence[RunView]) -> str:
    rows = [
        (
            v.run_id,
            v.run.kind.value,
            v.run.status.value,
            v.jobs,
            v.instance_types,
            v.outcome,
            *money_columns(v.savings),
        )
        for v in views
    ]
    headers = ("RUN", "KIND", "STATUS", "ATTEMPTS", "INSTANCES", "OUTCOME", "COST", "SAVED VS ON-DEMAND")
    return table(headers, rows)


def run_detail(view: RunView, dynamodb_table: LedgerTable | None = None) -> str:
    run = view.run
    lines = [
        f"run        {view.run_id}  ({run.kind.value})",
        f"status     {run.status.value}" + (f" - {run.reason}" if run.reason else ""),
        f"source     s3://{run.source.bucket}/{run.source.key}",
        f"created    {run.created_at}   finished {run.finished_at or '-'}",
        f"money      {savings_text(view.savings)} - an estimate, "
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
    if run.errors:
        shown = run.errors[:MAX_ERRORS_SHOWN]
        more = len(run.errors) - len(shown)
        lines += ["", f"errors     {len(run.errors)} - nothing was started:"]
        lines += [f"  - {e}" for e in shown] + ([f"  ... and {more} more"] if more else [])
    if run.promotion and not run.promotion.startswith("promoted"):
        lines += ["", f"promotion  {run.promotion}: inference keeps the model it had"]
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
