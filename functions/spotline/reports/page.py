"""What both pages share: the document shell and its CSS, escaping, and how numbers are worded.

Every value that reaches the page goes through :func:`esc` (text and attributes alike). The CSS
fits a 390 px phone (wide tables become one card per row) and prints cleanly (no backgrounds,
sections kept whole). The page allows no requests: its Content-Security-Policy forbids every
source but inline styles and ``data:`` images.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

# Okabe-Ito: told apart by people with colour-blindness, and in greyscale print by their markers.
ATTEMPT_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;margin:0;
background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:12px}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:12px 14px;margin:12px 0}
h1{font-size:1.35em;margin:.2em 0;overflow-wrap:anywhere}
h2{font-size:1.1em;margin:.1em 0 .6em}
p{margin:.4em 0}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.86em}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f3f4f6;padding:10px;border-radius:6px;
max-height:60em;overflow-y:auto}
.wrap{overflow-wrap:anywhere;word-break:break-word}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-weight:600;font-size:.85em;
color:#fff;background:#57606a}
.badge.SUCCEEDED{background:#1a7f37}.badge.FAILED{background:#cf222e}.badge.CANCELLED{background:#6e7781}
.badge.RUNNING,.badge.RETRYING,.badge.PENDING{background:#9a6700}
.note{color:#57606a;font-size:.9em}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:6px 10px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px}
.card{border:1px solid #dde1e6;border-radius:6px;padding:6px 10px}
.card b{display:block;font-size:1.15em;overflow-wrap:anywhere}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,420px),1fr));gap:10px}
figure{margin:0;min-width:0}
figcaption{font-weight:600;font-size:.95em}
svg{width:100%;height:auto;display:block}
.legend span{display:inline-block;margin-right:12px;font-size:.85em}
.legend i{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:4px}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #e5e7eb;vertical-align:top;
overflow-wrap:anywhere}
th{background:#f3f4f6}
table.plain td:first-child{white-space:nowrap;overflow-wrap:normal;color:#57606a;width:1%}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.gallery{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:10px}
.gallery img{width:100%;height:auto;border:1px solid #dde1e6;border-radius:4px;background:#eee}
a{color:#0969da}
@media (max-width:640px){
 main{padding:6px}
 section{padding:10px}
 table.stack thead{display:none}
 table.stack tr{display:block;border:1px solid #dde1e6;border-radius:6px;margin:0 0 8px;padding:4px 0}
 table.stack td{display:flex;gap:8px;border:0;padding:2px 8px;text-align:left}
 table.stack td::before{content:attr(data-label);font-weight:600;min-width:7.5em;flex:none}
 table.stack td.num{text-align:left}
}
@media print{
 body{background:#fff;font-size:11pt}
 main{max-width:none;padding:0}
 section{border:0;border-top:1px solid #999;border-radius:0;break-inside:avoid;margin:8px 0}
 .badge{color:#000;border:1px solid #000;background:none!important}
 pre{max-height:none;background:none;border:1px solid #ccc}
 a{color:#000}
}
"""


def esc(value: Any) -> str:
    """Text for the page, escaped for element content and attribute values alike."""
    return escape("" if value is None else str(value), quote=True)


def colour(attempt: int) -> str:
    return ATTEMPT_COLOURS[(max(attempt, 1) - 1) % len(ATTEMPT_COLOURS)]


def usd(amount: Any) -> str:
    """``$12.34``, or four decimals under a dollar (a short demo run costs cents)."""
    number = finite(amount)
    if number is None:
        return "unknown"
    return f"${number:,.2f}" if abs(number) >= 1 else f"${number:.4f}"


def finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def savings_sentence(savings: Mapping[str, Any]) -> str:
    """``cost $X, on-demand would have cost $Y, saved $Z (70 %)`` — the wording of pages and the CLI."""
    if not finite(savings.get("training_s")):
        return "no compute billed yet"
    pct = finite(savings.get("savings_pct"))
    share = f" ({pct:.0f} %)" if pct is not None else ""
    return (
        f"cost {usd(savings.get('estimated_cost_usd'))}, on-demand would have cost "
        f"{usd(savings.get('on_demand_usd'))}, saved {usd(savings.get('savings_usd'))}{share}"
    )


def duration(seconds: Any) -> str:
    """``1 h 02 min``, ``3 min 05 s``, ``42 s``."""
    number = finite(seconds)
    if number is None or number < 0:
        return "unknown"
    s = round(number)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Sequence[int] = (), css: str = "stack"
) -> str:
    """A table of already-escaped cells; on a phone each row becomes a card labelled by its headers."""
    head = "".join(f"<th{' class=num' if i in numeric else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = "".join(
            f'<td data-label="{esc(headers[i])}"{" class=num" if i in numeric else ""}>{cell}</td>'
            for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    return f'<table class="{css}">{thead}<tbody>{"".join(body)}</tbody></table>'


def section(title: str, body: str, *, anchor: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def document(title: str, body: str) -> str:
    """The whole page: one file, inline CSS, a policy that refuses every request."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
