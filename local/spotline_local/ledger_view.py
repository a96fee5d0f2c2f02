"""``spotline status``: runs and their attempts from the ledger, as plain-text tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spotline.ledger import LedgerTable, RunLedger
from spotline.ledger.models import promoted_model
from spotline.policy import RunPolicy
from spotline.prices import price_table
from spotline.savings import RunSavings, run_savings


@dataclass(frozen=True)
class RunView:
    run: dict[str, Any]
    attempts: list[dict[str, Any]]
    savings: RunSavings

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])

    @property
    def instance_types(self) -> str:
        seen = dict.fromkeys(
            f"{a.get('instance_type', '?')}{'' if a.get('spot', True) else ' (on-demand)'}"
            for a in self.attempts
        )
        return ", ".join(seen) or "-"

    @property
    def outcome(self) -> str:
        return str(
            self.run.get("outcome") or (self.attempts[-1].get("outcome") if self.attempts else "") or "-"
        )


def ledger(table: str, dynamodb: Any) -> RunLedger:
    return RunLedger(LedgerTable(table, dynamodb))


def run_view(runs: RunLedger, run: Mapping[str, Any]) -> RunView:
    attempts = runs.attempts(str(run["run_id"]))
    policy = RunPolicy.from_item(run["policy"]) if run.get("policy") else None
    savings = run_savings(attempts, price_table(), policy.instance_count if policy else 1)
    return RunView(dict(run), attempts, savings)


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
            v.run.get("kind", "training"),
            v.run.get("status"),
            len(v.attempts),
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
        f"run        {view.run_id}  ({run.get('kind', 'training')})",
        f"status     {run.get('status')}" + (f" - {run['reason']}" if run.get("reason") else ""),
        f"source     s3://{run.get('source_bucket')}/{run.get('source_key')}",
        f"created    {run.get('created_at')}   finished {run.get('finished_at', '-')}",
        f"savings    {savings_text(view.savings)} - estimate, "
        f"{view.savings.billable_s} billable s of {view.savings.training_s} s",
        "",
        table(
            ("ATTEMPT", "JOB", "INSTANCE", "SPOT", "STATUS", "OUTCOME", "TRAIN S", "BILLABLE S"),
            [
                (
                    a.get("attempt"),
                    a.get("job_name"),
                    a.get("instance_type"),
                    "yes" if a.get("spot") else "no",
                    a.get("secondary_status") or a.get("status"),
                    a.get("outcome"),
                    a.get("training_s"),
                    a.get("billable_s"),
                )
                for a in view.attempts
            ],
        ),
    ]
    if dynamodb_table is not None:
        model = promoted_model(dynamodb_table)
        if model and model.get("run_id") == view.run_id:
            lines += ["", f"promoted   yes - the default model for inference ({model.get('model_artifact')})"]
    return "\n".join(lines)
