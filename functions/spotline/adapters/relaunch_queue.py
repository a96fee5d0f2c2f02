"""The relaunch delay queue (SQS): one message per planned attempt, delayed until it is due.

SQS delays a message by at most 900 seconds; a longer wait is re-enqueued by the relaunch
function with what remains, so waits of hours cost a few messages, never a sleeping Lambda.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from spotline.adapters import aws

MAX_SQS_DELAY_S = 900


class RelaunchMessageError(ValueError):
    """A queue message that is not ``{run_id, attempt, not_before}``; retrying cannot fix it."""


@dataclass(frozen=True)
class RelaunchRequest:
    run_id: str
    attempt: int
    not_before: float

    @classmethod
    def from_body(cls, body: str) -> RelaunchRequest:
        try:
            data = json.loads(body)
            return cls(str(data["run_id"]), int(data["attempt"]), float(data["not_before"]))
        except (ValueError, KeyError, TypeError) as e:
            raise RelaunchMessageError(f"unreadable relaunch message: {e}") from e

    def to_body(self) -> str:
        return json.dumps({"run_id": self.run_id, "attempt": self.attempt, "not_before": self.not_before})


class RelaunchQueue:
    sqs = aws.ServiceClient("sqs")

    def __init__(self, url: str | None, sqs: Any | None = None) -> None:
        self.url = url
        self.sqs = sqs

    def send(self, run_id: str, attempt: int, *, not_before: float, now: float) -> int:
        """Enqueue the relaunch; returns the delay used (the rest of a longer wait is re-enqueued)."""
        if not self.url:
            raise RuntimeError(
                "SPOTLINE_RELAUNCH_QUEUE_URL is not set: this function cannot schedule relaunches"
            )
        delay = max(0, min(MAX_SQS_DELAY_S, math.ceil(not_before - now)))
        self.sqs.send_message(
            QueueUrl=self.url,
            MessageBody=RelaunchRequest(run_id, attempt, not_before).to_body(),
            DelaySeconds=delay,
        )
        return delay
