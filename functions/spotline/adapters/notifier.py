"""Messages to people and to machines: SNS alerts (filterable) and ``spotline`` EventBridge events.

Every message is bounded here, in one place, whatever built it: SNS refuses a message over
262,144 bytes (body, subject and every message attribute's name, type and value counted) and
PutEvents an entry over 262,144 bytes, and a refused alert is an alert nobody reads. A body keeps
the first :data:`MAX_ITEMS_SHOWN` items of each list (and says how many more there are, under
``<key>_not_shown``) and cuts long texts, fewer and shorter until it fits
:data:`MAX_MESSAGE_BYTES`; the keys that point at the full report (:data:`FULL_REPORT_KEYS`) are
always kept whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spotline.adapters import aws

EVENT_SOURCE = "spotline"
MAX_SUBJECT = 100
SNS_MAX_MESSAGE_BYTES = 262_144  # SNS Publish: body + subject + attributes (names, types, values)
EVENTS_MAX_ENTRY_BYTES = 262_144  # PutEvents: one entry, source, detail-type, detail and resources
# What spotline sends at most: a quarter of either limit, so that an alert is always readable.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_ITEMS_SHOWN = 100  # the first issues, attempts, images... of a list; the rest is counted
MAX_TEXT_CHARS = 2_000
# Where the whole story is (a rejection's or a run's report, a batch's summary): never cut.
FULL_REPORT_KEYS = frozenset({"report", "report_page", "report_console", "summary", "predictions"})
NOT_SHOWN = "_not_shown"


def _subject(text: str) -> str:
    """SNS subjects: at most 100 printable ASCII characters, no line breaks."""
    clean = "".join(c if 32 <= ord(c) < 127 else "?" for c in text.replace("\n", " "))
    return clean if len(clean) <= MAX_SUBJECT else clean[: MAX_SUBJECT - 3] + "..."


def _json(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, sort_keys=True, default=str, ensure_ascii=False)


def _cut_text(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _bounded(value: Any, items: int, text: int) -> Any:
    """``value`` with every list cut to ``items`` entries and every text to ``text`` characters."""
    if isinstance(value, str):
        return _cut_text(value, text)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        cut: dict[str, int] = {}
        for key, child in value.items():
            name = _cut_text(str(key), text)
            if name in FULL_REPORT_KEYS:
                out[name] = child
                continue
            shown = child
            if isinstance(child, list | tuple) and len(child) > items:
                cut[f"{name}{NOT_SHOWN}"] = len(child) - items
                shown = list(child)[:items]
            out[name] = _bounded(shown, items, text)
        for name, count in cut.items():  # added to a count the body already carries
            earlier = out.get(name)
            out[name] = count + (earlier if isinstance(earlier, int) and not isinstance(earlier, bool) else 0)
        return out
    if isinstance(value, list | tuple):
        shown = [_bounded(v, items, text) for v in list(value)[:items]]
        if len(value) > items:
            shown.append(f"... {len(value) - items} more")
        return shown
    return value


def fit_body(body: Mapping[str, Any], budget: int) -> dict[str, Any]:
    """``body`` with at most :data:`MAX_ITEMS_SHOWN` items per list and :data:`MAX_TEXT_CHARS` per
    text, cut further until its JSON fits ``budget`` bytes (see the module)."""
    items, text = MAX_ITEMS_SHOWN, MAX_TEXT_CHARS
    while True:
        fitted: dict[str, Any] = _bounded(body, items, text)
        if len(_json(fitted, indent=2).encode()) <= budget:
            return fitted
        if items == 1 and text <= 80:
            break
        items, text = max(1, items // 2), max(80, text // 2)
    # Still too big (a huge mapping of scalars): the scalars that fit, and where the rest is.
    kept: dict[str, Any] = {k: v for k, v in body.items() if k in FULL_REPORT_KEYS}
    kept["truncated"] = "this message was too large: the full report has every detail"
    for key, value in body.items():
        if key in kept or isinstance(value, Mapping | list | tuple):
            continue
        candidate = {**kept, _cut_text(str(key), 80): _bounded(value, 1, 80)}
        if len(_json(candidate, indent=2).encode()) <= budget:
            kept = candidate
    return kept


def _attributes_bytes(attributes: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(b"String") + len(str(v).encode()) for k, v in attributes.items())


class Notifier:
    """Publishes to the alert topic and the event bus; clients are built on first use."""

    sns = aws.ServiceClient("sns")
    events = aws.ServiceClient("events")

    def __init__(
        self, topic_arn: str, event_bus: str = "default", *, sns: Any = None, events: Any = None
    ) -> None:
        self.topic_arn = topic_arn
        self.event_bus = event_bus
        self.sns = sns
        self.events = events

    def publish(self, subject: str, body: Mapping[str, Any], attributes: Mapping[str, str]) -> str:
        """One SNS message: a readable subject, a JSON body, string attributes for subscription filters.

        Subject, body and attributes together stay under :data:`MAX_MESSAGE_BYTES`.
        """
        subject = _subject(subject)
        budget = MAX_MESSAGE_BYTES - len(subject.encode()) - _attributes_bytes(attributes)
        response = self.sns.publish(
            TopicArn=self.topic_arn,
            Subject=subject,
            Message=_json(fit_body(body, budget), indent=2),
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
        return str(response["MessageId"])

    def emit(self, detail_type: str, detail: Mapping[str, Any], resources: list[str] | None = None) -> None:
        """One custom event (source ``spotline``) for downstream automation; failures are raised."""
        resources = resources or []
        overhead = len(EVENT_SOURCE) + len(detail_type.encode()) + sum(len(r.encode()) for r in resources)
        response = self.events.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": detail_type,
                    "Detail": _json(fit_body(detail, MAX_MESSAGE_BYTES - overhead)),
                    "EventBusName": self.event_bus,
                    "Resources": resources,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise RuntimeError(
                f"PutEvents refused {detail_type}: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
            )
