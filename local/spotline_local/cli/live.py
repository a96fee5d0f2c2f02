"""``spotline status --watch``: every active run with a progress bar, refreshed until the runs settle.

Per run: iteration / max_iter (from the run's metrics file, synced from its checkpoints while the
job runs), the attempt, its instance and market, the time since the run started, the time left at
the current attempt's pace, and the spend so far (settled attempts as billed, the running one at
its on-demand price: an upper bound, marked ``≤``). Exits 0 once every run it saw active has
settled (at once when none is active); ``spotline status RUN --watch`` follows that run only.
The terminal view is ``rich``'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spotline.domain.prices import price_table
from spotline.domain.savings import run_savings
from spotline.domain.states import AttemptStatus, RunStatus
from spotline.ledger.records import Attempt, Run
from spotline.ledger.runs import RunLedger
from spotline.reports.metrics import RunCurves
from spotline.reports.page import duration, savings_sentence, usd

ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.RETRYING)
RUNNING_ATTEMPT = (AttemptStatus.LAUNCHING, AttemptStatus.IN_PROGRESS)
RECENT = 50


@dataclass(frozen=True)
class RunProgress:
    run: Run
    attempt: Attempt | None
    step: int | None
    max_iter: int | None
    elapsed_s: float | None
    eta_s: float | None
    spend_usd: float
    spend_is_bound: bool  # a running attempt is counted at its on-demand price


def _epoch(text: str | None) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def progress_of(
    run: Run, attempts: Sequence[Attempt], curves: RunCurves, prices: Mapping[str, float], now: float
) -> RunProgress:
    """Where ``run`` stands, from its ledger records and its metrics file."""
    count = run.policy.instance_count if run.policy else 1
    current = attempts[-1] if attempts else None
    spend = run_savings(attempts, prices, count).estimated_cost_usd
    bound = False
    if current is not None and current.status in RUNNING_ATTEMPT:
        launched = _epoch(current.launched_at)
        price = prices.get(current.instance_type)
        if launched is not None and price is not None:
            spend += max(0.0, now - launched) * count * price / 3600
            bound = True
    step, max_iter = curves.last_step, curves.max_iter
    eta = None
    rate = curves.rate(current.attempt) if current is not None else None
    if rate and step is not None and max_iter is not None and max_iter > step:
        eta = (max_iter - step) / rate
    started = _epoch(run.created_at)
    return RunProgress(
        run=run,
        attempt=current,
        step=step,
        max_iter=max_iter,
        elapsed_s=now - started if started is not None else None,
        eta_s=eta,
        spend_usd=spend,
        spend_is_bound=bound,
    )


def progress_table(progress: Sequence[RunProgress], settled: Sequence[tuple[Run, str]]) -> Any:
    """The view: three lines per active run (fits an 80-column terminal), then the runs that settled."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [
        Text(f"spotline - {len(progress)} active run{'s' if len(progress) != 1 else ''}", style="bold")
    ]
    for p in progress:
        a = p.attempt
        where = (
            f"attempt {a.attempt}, {a.instance_type}, {'Spot' if a.spot else 'on-demand'}"
            if a
            else "no attempt yet"
        )
        parts.append(Text.assemble((p.run.label, "bold"), f"  {p.run.status.value}  {where}"))
        bar = Table.grid(padding=(0, 1))
        if p.step is not None and p.max_iter:
            bar.add_row(
                ProgressBar(total=p.max_iter, completed=min(p.step, p.max_iter), width=32),
                Text(f"iteration {p.step}/{p.max_iter}"),
            )
        else:
            bar.add_row(Text("waiting for its first metrics"))
        parts.append(bar)
        left = f"about {duration(p.eta_s)}" if p.eta_s is not None else "unknown"
        spend = ("≤ " if p.spend_is_bound else "") + usd(p.spend_usd)
        parts.append(Text(f"  elapsed {duration(p.elapsed_s)} · left {left} · spend {spend}", style="dim"))
    parts += [Text(f"settled: {run.label} {run.status.value} - {money}") for run, money in settled]
    return Group(*parts)


def active_runs(runs: RunLedger, only: str | None = None) -> list[Run]:
    """The active runs among the recent ones (or run ``only``, when it is active)."""
    found = [runs.get_run(only)] if only else runs.recent_runs(RECENT)
    return [r for r in found if r is not None and r.status in ACTIVE]


def watch(
    runs: RunLedger,
    curves_of: Callable[[Run], RunCurves],
    *,
    console: Any,
    only: str | None = None,
    period_s: float = 1.0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Refresh the view every ``period_s`` until every run seen active has settled; returns 0."""
    from rich.live import Live

    prices = price_table()
    seen: dict[str, Run] = {}
    settled: dict[str, tuple[Run, str]] = {}

    def frame() -> tuple[Any, bool]:
        active = {r.run_id: r for r in active_runs(runs, only)}
        for run_id in list(seen):
            if run_id not in active and run_id not in settled:
                run = runs.get_run(run_id) or seen[run_id]
                attempts = runs.attempts(run_id)
                count = run.policy.instance_count if run.policy else 1
                settled[run_id] = (run, savings_sentence(run_savings(attempts, prices, count).to_dict()))
        seen.update(active)
        now = clock()
        progress = [
            progress_of(r, runs.attempts(r.run_id), curves_of(r), prices, now) for r in active.values()
        ]
        return progress_table(progress, list(settled.values())), not active

    view, done = frame()
    with Live(view, console=console, refresh_per_second=4, auto_refresh=False) as live:
        while not done:
            sleep(period_s)
            view, done = frame()
            live.update(view, refresh=True)
    return 0
