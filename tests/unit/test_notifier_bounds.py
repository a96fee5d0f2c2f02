"""Whatever a message body holds, what spotline publishes fits, keeps the report's key and counts what
it leaves out."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from spotline.adapters.notifier import MAX_ITEMS_SHOWN, MAX_MESSAGE_BYTES, _subject, fit_body

REPORT = "s3://spotline-drop-123456789012/runs/hostile-0123456789ab/rejection.json"

leaves = st.one_of(
    st.text(max_size=3_000),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.sampled_from(["x" * 200_000, "é" * 30_000]),
)
bodies = st.dictionaries(
    st.text(min_size=1, max_size=40),
    st.recursive(
        leaves,
        lambda c: st.one_of(st.lists(c, max_size=200), st.dictionaries(st.text(max_size=20), c, max_size=30)),
        max_leaves=120,
    ),
    max_size=12,
)


@given(bodies, st.integers(min_value=4_000, max_value=MAX_MESSAGE_BYTES))
def test_every_body_fits_and_keeps_the_report(body: dict[str, Any], budget: int) -> None:
    fitted = fit_body({**body, "report": REPORT}, budget)
    text = json.dumps(fitted, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    assert len(text.encode()) <= budget
    assert fitted["report"] == REPORT


def test_a_long_list_keeps_its_first_items_and_counts_the_rest() -> None:
    issues = [{"key": f"solver.steps[{i}]", "message": "must be at least 1"} for i in range(5_000)]
    fitted = fit_body({"errors": issues, "errors_not_shown": 0, "report": REPORT}, MAX_MESSAGE_BYTES)
    assert fitted["errors"] == issues[:MAX_ITEMS_SHOWN]
    assert fitted["errors_not_shown"] == 5_000 - MAX_ITEMS_SHOWN


def test_subjects_are_short_printable_ascii() -> None:
    subject = _subject("spotline: configs/" + "défauts/" * 40 + "\nrail.yaml rejected")
    assert len(subject) <= 100 and subject.isascii() and subject.isprintable()
