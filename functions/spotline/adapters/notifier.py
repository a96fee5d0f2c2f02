"""Messages to people and to machines: SNS alerts (filterable) and ``spotline`` EventBridge events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spotline.adapters import aws

EVENT_SOURCE = "spotline"
MAX_SUBJECT = 100


def _subject(text: str) -> str:
    """SNS subjects: at most 100 printable ASCII characters, no line breaks."""
    clean = "".join(c if 32 <= ord(c) < 127 else "?" for c in text.replace("\n", " "))
    return clean if len(clean) <= MAX_SUBJECT else clean[: MAX_SUBJECT - 3] + "..."


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
        """One SNS message: a readable subject, a JSON body, string attributes for subscription filters."""
        response = self.sns.publish(
            TopicArn=self.topic_arn,
            Subject=_subject(subject),
            Message=json.dumps(body, indent=2, sort_keys=True, default=str),
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
        return str(response["MessageId"])

    def emit(self, detail_type: str, detail: Mapping[str, Any], resources: list[str] | None = None) -> None:
        """One custom event (source ``spotline``) for downstream automation; failures are raised."""
        response = self.events.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, default=str),
                    "EventBusName": self.event_bus,
                    "Resources": resources or [],
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise RuntimeError(
                f"PutEvents refused {detail_type}: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
            )
