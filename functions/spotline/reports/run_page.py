"""``runs/<run-id>/report.html``: one training run on one page.

Status and why; the curves (loss, learning rate, validation mAP) over iterations, one colour per
attempt, with the interruptions and resumes marked; the attempts (instance, Spot or on-demand,
start, end, outcome, iterations, billable and training seconds); cost and Spot savings with the
prices used (an estimate, and said to be emulated on the local stack); the model and its lineage;
the config as run; for a tuning run, every trial (what the tuner chose, the objective, its cost),
the objective over trials and the best trial. The input is the run's ``report.json`` document, so
the page and the JSON never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spotline.domain.timefmt import iso_utc
from spotline.metric_names import TRAIN_LOSS, TRAIN_LR, VAL_MAP50
from spotline.reports.chart import StepMark, legend, line_chart
from spotline.reports.metrics import Curve, RunCurves
from spotline.reports.page import (
    colour,
    document,
    duration,
    esc,
    finite,
    savings_sentence,
    section,
    table,
    usd,
)

CHARTS = ((TRAIN_LOSS, "training loss"), (TRAIN_LR, "learning rate"), (VAL_MAP50, "validation mAP@0.5"))
SCALES = {VAL_MAP50: (0.0, 1.0)}
ACTIVE = ("PENDING", "RUNNING", "RETRYING")


@dataclass(frozen=True)
class RunPage:
    """What the page shows; ``report`` is the run's report document (``report.json``)."""

    report: Mapping[str, Any]
    curves: RunCurves
    generated_at: str
    config_text: str | None = None
    config_note: str = ""
    spot_market_emulated: bool = False
    links: Mapping[str, str] = field(default_factory=dict)  # label -> S3 URI or console URL


def _why(report: Mapping[str, Any]) -> str:
    status = str(report.get("status") or "")
    attempts = len(report.get("attempts") or ())
    reason, cap = str(report.get("reason") or ""), report.get("cap")
    if status == "SUCCEEDED":
        return f"Finished after {attempts} attempt{'s' if attempts != 1 else ''}."
    if status in ACTIVE:
        return f"Still going: attempt {attempts or 1} so far." + (f" Last stop: {reason}" if reason else "")
    text = f"Stopped: {reason}" if reason else "Stopped."
    return text + (f" (cap reached: {cap})" if cap else "")


def _cards(page: RunPage) -> str:
    report, curves = page.report, page.curves
    metrics = report.get("final_metrics") or {}
    savings = report.get("savings") or {}
    reached, of = curves.last_step, curves.max_iter
    cards = [
        ("status", f'<span class="badge {esc(report.get("status"))}">{esc(report.get("status"))}</span>'),
        ("attempts", esc(len(report.get("attempts") or ()))),
        ("iterations", f"{esc(reached if reached is not None else 'unknown')} / {esc(of or 'unknown')}"),
        _headline_metric(report, metrics),
        ("estimated cost", esc(usd(savings.get("estimated_cost_usd")))),
        (
            "Spot saved",
            f'<span data-field="savings_usd" data-value="{esc(savings.get("savings_usd"))}">'
            f"{esc(usd(savings.get('savings_usd')))}</span>"
            f' <span class="note">({esc(_num(savings.get("savings_pct"), ".0f"))} %)</span>',
        ),
    ]
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><span class="note">{esc(k)}</span><b>{v}</b></div>' for k, v in cards)
        + "</div>"
    )


def _headline_metric(report: Mapping[str, Any], metrics: Mapping[str, Any]) -> tuple[str, str]:
    """Validation mAP@0.5 for spotline's image; for an image of your own, the metric its gate reads
    (else its first final metric)."""
    if VAL_MAP50 in metrics or not metrics:
        return "validation mAP@0.5", esc(_num(metrics.get(VAL_MAP50)))
    gate = ((report.get("results") or {}).get("promotion") or {}).get("metric")
    name = gate if isinstance(gate, str) and gate in metrics else next(iter(metrics))
    return str(name), esc(_num(metrics.get(name)))


def _num(value: Any, spec: str = ".3f") -> str:
    number = finite(value)
    return "unknown" if number is None else format(number, spec)


def _marks(curves: RunCurves) -> list[StepMark]:
    marks = [StepMark(m.step, "interrupted", m.attempt) for m in curves.interruptions]
    marks += [StepMark(m.step, "resumed", m.attempt) for m in curves.starts if m.step > 0]
    return marks


def _curves_section(page: RunPage) -> str:
    curves = page.curves
    if not curves.curves:
        return section(
            "Training curves",
            '<p class="note">No metrics recorded yet (the metrics file under the run\'s checkpoints '
            "is missing or empty).</p>",
            anchor="curves",
        )
    marks = _marks(curves)
    figures = "".join(
        f"<figure><figcaption>{esc(title)}</figcaption>"
        f"{line_chart(title, curves.of(name), marks, x_max=curves.max_iter, y_within=SCALES.get(name))}"
        "</figure>"
        for name, title in CHARTS
    )
    notes = []
    if curves.truncated:
        notes.append("The metrics file is larger than the page reads: only its newest points are drawn.")
    if curves.thinned_from:
        drawn = sum(len(c.points) for c in curves.curves)
        notes.append(f"{drawn:,} of {curves.thinned_from:,} points drawn (thinned evenly per curve).")
    if curves.skipped_lines:
        notes.append(f"{curves.skipped_lines:,} unreadable lines skipped.")
    interrupted = ", ".join(f"attempt {m.attempt} at iteration {m.step}" for m in curves.interruptions)
    resumed = ", ".join(f"attempt {m.attempt} at iteration {m.step}" for m in curves.starts if m.step > 0)
    summary = []
    if interrupted:
        summary.append(f"Interrupted: {esc(interrupted)}.")
    if resumed:
        summary.append(f"Resumed from a checkpoint: {esc(resumed)}.")
    body = (
        f'<div class="charts">{figures}</div>{legend(curves.attempts)}'
        + (f"<p>{' '.join(summary)}</p>" if summary else "")
        + "".join(f'<p class="note">{esc(n)}</p>' for n in notes)
    )
    return section("Training curves", body, anchor="curves")


def _iterations(attempt: Mapping[str, Any], curves: RunCurves) -> tuple[str, str]:
    """``(first-last iteration, work lost)`` of an attempt: the ledger's figures, else the file's."""
    number = int(attempt.get("attempt") or 0)
    start, end = attempt.get("start_iteration"), attempt.get("end_iteration")
    if start is None:
        start = curves.resumed_at(number)
    if end is None:
        stop = next((m.step for m in curves.interruptions if m.attempt == number), None)
        end = stop if stop is not None else (curves.last.get(number) or (None,))[0]
    span = f"{start if start is not None else 'unknown'} – {end if end is not None else 'unknown'}"
    lost = attempt.get("work_lost_iterations")
    if lost is None:
        stop = next((m.step for m in curves.interruptions if m.attempt == number), None)
        resumed = curves.resumed_at(number + 1)
        lost = stop - resumed if stop is not None and resumed is not None and stop >= resumed else None
        if stop is None and attempt.get("status") == "COMPLETED":
            lost = 0  # it ran to its end: nothing to redo
    return span, ("unknown" if lost is None else f"{lost} iterations")


def _when(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def _timeline(attempts: Sequence[Mapping[str, Any]]) -> str:
    """A bar per attempt on one time axis (attempts with both a start and an end)."""
    spans = [(a, _when(a.get("launched_at")), _when(a.get("ended_at"))) for a in attempts]
    known = [(a, s, e) for a, s, e in spans if s and e and e >= s]
    if not known:
        return ""
    t0 = min(s for _, s, _ in known)
    t1 = max(e for _, _, e in known)
    total = max((t1 - t0).total_seconds(), 1.0)
    width, row, left = 760, 24, 90
    height = row * len(known) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="attempts over time"><title>attempts over time</title>'
    ]
    for i, (a, s, e) in enumerate(known):
        x = left + (s - t0).total_seconds() / total * (width - left - 10)
        w = max((e - s).total_seconds() / total * (width - left - 10), 2)
        y = 4 + i * row
        number = int(a.get("attempt") or 0)
        parts.append(
            f'<text x="4" y="{y + 14}" font-size="12">attempt {number}</text>'
            f'<rect data-attempt="{number}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 6}" '
            f'rx="3" fill="{colour(number)}"/>'
        )
    start = iso_utc(t0.timestamp())  # ISO 8601 with Z, as every time spotline shows
    parts.append(
        f'<text x="{left}" y="{height - 4}" font-size="11" fill="#57606a">{esc(start)}</text>'
        f'<text x="{width - 10}" y="{height - 4}" font-size="11" text-anchor="end" fill="#57606a">'
        f"+{esc(duration(total))}</text></svg>"
    )
    return "".join(parts)


def _attempts_section(page: RunPage) -> str:
    attempts = list(page.report.get("attempts") or ())
    if not attempts:
        return section("Attempts", '<p class="note">No attempt started yet.</p>', anchor="attempts")
    costs = {int(c.get("attempt") or 0): c for c in (page.report.get("savings") or {}).get("attempts") or ()}
    rows = []
    for a in attempts:
        number = int(a.get("attempt") or 0)
        span, lost = _iterations(a, page.curves)
        cost = costs.get(number, {})
        outcome = a.get("outcome") or a.get("secondary_status") or a.get("status")
        rows.append(
            [
                f'<span style="color:{colour(number)}">&#9632;</span> {esc(number)}',
                f'<span class="mono">{esc(a.get("job_name"))}</span>',
                esc(a.get("instance_type")),
                "Spot" if a.get("spot") else "on-demand",
                esc(a.get("launched_at") or "unknown"),
                esc(a.get("ended_at") or ("running" if a.get("status") == "RUNNING" else "unknown")),
                esc(outcome)
                + (
                    f'<br><span class="note">{esc(a.get("failure_reason"))}</span>'
                    if a.get("failure_reason")
                    else ""
                ),
                esc(span),
                esc(lost),
                f"{esc(a.get('billable_s'))} / {esc(a.get('training_s'))}",
                esc(usd(cost.get("estimated_cost_usd"))),
            ]
        )
    headers = (
        "attempt",
        "job",
        "instance",
        "market",
        "started",
        "ended",
        "outcome",
        "iterations",
        "work lost",
        "billable / training s",
        "cost (est.)",
    )
    body = table(headers, rows, numeric=(9, 10)) + _timeline(attempts)
    body += (
        '<p class="note">Training seconds: time on instances. Billable seconds: what SageMaker bills '
        "(for Managed Spot, already reduced by the Spot discount).</p>"
    )
    return section("Attempts", body, anchor="attempts")


def _trials_section(page: RunPage) -> str:
    """A tuning run's trials: one row each, the objective over trials, the best trial."""
    report = page.report
    trials = list(report.get("trials") or ())
    tuning = (report.get("results") or {}).get("tuning") or {}
    objective = tuning.get("objective") or {}
    metric = str(objective.get("metric") or "objective")
    if not trials:
        return section("Trials", '<p class="note">No trial has ended yet.</p>', anchor="trials")
    costs = {int(c.get("attempt") or 0): c for c in (report.get("savings") or {}).get("attempts") or ()}
    keys = sorted({str(k) for t in trials for k in (t.get("hyperparameters") or {})})
    rows = []
    for t in trials:
        chosen = t.get("hyperparameters") or {}
        rows.append(
            [
                esc(t.get("number")),
                f'<span class="mono">{esc(t.get("job_name"))}</span>',
                esc(t.get("status")),
                esc(_num(t.get("objective"), ".4g")),
                *(esc(chosen.get(k, "-")) for k in keys),
                f"{esc(t.get('billable_s'))} / {esc(t.get('training_s'))}",
                esc(usd(costs.get(int(t.get("number") or 0), {}).get("estimated_cost_usd"))),
            ]
        )
    headers = ("trial", "job", "status", metric, *keys, "billable / training s", "cost (est.)")
    points = tuple(
        (int(t.get("number") or 0), float(v)) for t in trials if (v := finite(t.get("objective"))) is not None
    )
    title = f"{metric} over trials"
    chart = line_chart(title, [Curve(metric, 1, points)]) if points else ""
    best = tuning.get("best_trial") or {}
    lead = (
        f'<p data-field="best_trial">Best trial: <span class="mono">{esc(best.get("job_name"))}</span>, '
        f"{esc(metric)} {esc(_num(best.get('objective'), '.4g'))} "
        f"({esc(', '.join(f'{k}={v}' for k, v in sorted((best.get('hyperparameters') or {}).items())))}).</p>"
        if best
        else '<p class="note">No trial reported the objective with a model.</p>'
    )
    if tuning.get("shortfall"):
        lead += f'<p class="warn">{esc(tuning["shortfall"])}</p>'
    n = len(trials)
    body = (
        lead
        + (f"<figure><figcaption>{esc(title)} (x: trial)</figcaption>{chart}</figure>" if chart else "")
        + table(headers, rows, numeric=(3, len(headers) - 2, len(headers) - 1))
        + f'<p class="note">{n} trial(s); the cost and savings below add all of them up.</p>'
    )
    return section("Trials", body, anchor="trials")


def _cost_section(page: RunPage) -> str:
    savings = page.report.get("savings") or {}
    prices = {}
    for c in savings.get("attempts") or ():
        prices[str(c.get("instance_type"))] = c.get("usd_per_hour")
    rows = [
        [esc(t), esc(f"${p:.3f} per hour" if finite(p) is not None else "no price known")]
        for t, p in sorted(prices.items())
    ]
    unpriced = savings.get("unpriced_types") or ()
    body = (
        f'<p><b data-field="savings_sentence">{esc(savings_sentence(savings))}</b> '
        '<span class="badge">estimate</span></p>'
        f"<p>{esc(duration(savings.get('billable_s')))} billable of "
        f"{esc(duration(savings.get('training_s')))} on instances, over every attempt.</p>"
        '<p class="note">Estimated cost = billable seconds × on-demand price; on-demand equivalent = '
        "training seconds × on-demand price (the same compute, uninterrupted). Prices: "
        f"{esc(savings.get('price_source') or 'unknown')}.</p>"
        + table(("instance type", "on-demand price used"), rows, css="plain")
    )
    if unpriced:
        names = esc(", ".join(map(str, unpriced)))
        body += f'<p class="warn">No price known for {names}: left out of the totals.</p>'
    lost = page.report.get("work_lost")
    if lost:
        attempts = ", ".join(str(a) for a in lost.get("attempts") or ()) or "none"
        body += (
            '<p class="warn" data-field="work_lost">The image does not resume from checkpoints: every '
            f"relaunch started from zero. Training lost: {esc(duration(lost.get('training_s')))} "
            f"(about {esc(usd(lost.get('estimated_cost_usd')))}; attempts {esc(attempts)}).</p>"
        )
    if page.spot_market_emulated:
        body += (
            '<p class="warn" data-field="emulated">Local stack: the Spot market is emulated. '
            "Interruptions are injected by the local SageMaker and billable seconds come from a fixed "
            "Spot discount, so these figures show the arithmetic, not an AWS bill.</p>"
        )
    return section("Cost and Spot savings", body, anchor="cost")


def _model_section(page: RunPage) -> str:
    report = page.report
    source = report.get("source") or {}
    promotion = (report.get("results") or {}).get("promotion") or {}
    metrics = report.get("final_metrics") or {}
    rows = [
        ["model artifact", f'<span class="mono wrap">{esc(report.get("model_artifact") or "none")}</span>'],
        [
            "trained from",
            f'<span class="mono wrap">s3://{esc(source.get("bucket"))}/{esc(source.get("key"))}</span>'
            f'<br><span class="note">version {esc(source.get("version") or "unknown")}</span>',
        ],
        [
            "config as run",
            f'<span class="mono wrap">{esc(report.get("config_snapshot") or "unknown")}</span>',
        ],
        ["created", esc(report.get("created_at") or "unknown")],
        ["finished", esc(report.get("finished_at") or "not yet")],
    ]
    if promotion:
        gate = promotion.get("gate")
        verdict = (
            "promoted: the default model for inference"
            if promotion.get("promoted")
            else f"not promoted ({gate})"
        )
        if gate == "none":
            verdict = "no promotion gate in the config"
        detail = ""
        if promotion.get("metric"):
            value, minimum = _num(promotion.get("value")), _num(promotion.get("min"))
            detail = f" — {promotion.get('metric')} = {value}, needs ≥ {minimum}"
        rows.append(["promotion", esc(verdict + detail)])
    body = table(("", ""), rows, css="plain")
    if metrics:
        body += "<h3>Final metrics</h3>" + table(
            ("metric", "value"),
            [[esc(k), esc(_num(v, ".4g"))] for k, v in sorted(metrics.items())],
            numeric=(1,),
            css="plain",
        )
    return section("Model and lineage", body, anchor="model")


def _config_section(page: RunPage) -> str:
    if page.config_text is None:
        body = f'<p class="note">{esc(page.config_note or "The config snapshot could not be read.")}</p>'
    else:
        body = f"<pre>{esc(page.config_text)}</pre>" + (
            f'<p class="note">{esc(page.config_note)}</p>' if page.config_note else ""
        )
    return section("Config as run", body, anchor="config")


def _links_section(page: RunPage) -> str:
    if not page.links:
        return ""
    rows = []
    for label, target in page.links.items():
        cell = (
            f'<a href="{esc(target)}" rel="noopener noreferrer">{esc(target)}</a>'
            if target.startswith("https://")
            else f'<span class="mono wrap">{esc(target)}</span>'
        )
        rows.append([esc(label), cell])
    body = table(("", ""), rows, css="plain") + (
        '<p class="note">Console links need your own AWS sign-in; nothing here is a shareable link.</p>'
    )
    return section("Where this lives", body, anchor="links")


def render_run_page(page: RunPage) -> str:
    """The page as one HTML string."""
    report = page.report
    source = report.get("source") or {}
    label = str(source.get("key") or report.get("run_id") or "run").rstrip("/").rsplit("/", 1)[-1]
    live = str(report.get("status")) in ACTIVE
    status = esc(report.get("status"))
    header = (
        f"<h1>{esc(label)}</h1>"
        f'<p><span class="badge {status}" data-field="status">{status}</span> '
        f'<span class="mono wrap">{esc(report.get("run_id"))}</span></p>'
        f"<p>{esc(_why(report))}</p>"
        + (
            f'<p class="note">Snapshot of a run still going, taken {esc(page.generated_at)}.</p>'
            if live
            else ""
        )
    )
    body = (
        f"<section>{header}{_cards(page)}</section>"
        + (_trials_section(page) if "trials" in report else _curves_section(page) + _attempts_section(page))
        + _cost_section(page)
        + _model_section(page)
        + _config_section(page)
        + _links_section(page)
        + f'<p class="note">Generated {esc(page.generated_at)} by spotline. Costs are estimates.</p>'
    )
    return document(f"{label} — spotline run {report.get('status')}", body)
