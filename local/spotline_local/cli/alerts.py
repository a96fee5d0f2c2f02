"""``spotline alerts --follow``: spotline's alerts as they are published, until Ctrl-C.

SNS keeps no history, so this subscribes a queue of its own to the alert topic (it creates the
queue, allows only that topic to send to it, and removes both the subscription and the queue when it
stops, however it stops), then prints each message's subject and the key lines of its body.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from spotline_local.cli.console import aws_call, out, stop_requests
from spotline_local.cli.targets import CliError, Target, resolve_target

SHOWN_FIELDS = ("status", "reason", "money", "report", "summary", "problems", "ignored")


def cmd_alerts(args: argparse.Namespace) -> int:
    if not args.follow:
        raise CliError(
            "alerts are not stored anywhere to list", "`spotline alerts --follow` prints them as they come"
        )
    target = resolve_target(args.stack, args.workdir)
    if not target.topic_arn:
        raise CliError(f"the {target.label} names no alert topic", "is it a spotline stack?")
    sqs, sns = target.client("sqs"), target.client("sns")
    queue_url = aws_call(lambda: _make_queue(sqs, target))
    subscription = None
    try:
        arn = aws_call(
            lambda: sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        )
        subscription = aws_call(
            lambda: sns.subscribe(
                TopicArn=target.topic_arn, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True
            )["SubscriptionArn"]
        )
        out(f"following the alerts of the {target.label} ({target.topic_arn}); Ctrl-C stops")
        with stop_requests() as stop:
            shown = 0
            while "signum" not in stop and (args.max is None or shown < args.max):
                response = aws_call(
                    lambda: sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                )
                for message in response.get("Messages", []):
                    _show(json.loads(message["Body"]))
                    shown += 1
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    finally:
        if subscription and subscription != "pending confirmation":
            sns.unsubscribe(SubscriptionArn=subscription)
        sqs.delete_queue(QueueUrl=queue_url)
    return 0


def _make_queue(sqs: Any, target: Target) -> str:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": "*",
                "Condition": {"ArnEquals": {"aws:SourceArn": target.topic_arn}},
            }
        ],
    }
    name = f"spotline-alerts-follow-{os.getpid()}-{os.urandom(3).hex()}"
    response = sqs.create_queue(
        QueueName=name,
        Attributes={
            "Policy": json.dumps(policy),
            "SqsManagedSseEnabled": "true",
            "MessageRetentionPeriod": "3600",
        },
    )
    return str(response["QueueUrl"])


def _show(envelope: dict[str, Any]) -> None:
    out(f"[{envelope.get('Timestamp', '')}] {envelope.get('Subject') or '(no subject)'}")
    try:
        body = json.loads(envelope.get("Message") or "{}")
    except ValueError:
        body = {"message": envelope.get("Message")}
    if isinstance(body, dict):
        for key in SHOWN_FIELDS:
            if body.get(key) not in (None, "", [], {}):
                out(f"    {key}: {body[key] if isinstance(body[key], str) else json.dumps(body[key])}")


def register(sub: Any, with_target: Callable[[argparse.ArgumentParser], None]) -> None:
    alerts = sub.add_parser("alerts", help="print spotline's alerts as they are published (--follow)")
    alerts.add_argument("--follow", action="store_true", help="subscribe and print until Ctrl-C")
    alerts.add_argument("--max", type=int, help="stop after this many alerts")
    with_target(alerts)
    alerts.set_defaults(func=cmd_alerts)
