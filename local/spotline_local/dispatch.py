"""The functions, in-process, invoked as their rules, queues and schedules would invoke them.

* EventBridge rule -> function (asynchronous invoke): the rule's local target queue is polled; a
  failed invocation is retried ``MaximumRetryAttempts`` times with backoff, then the event goes to the
  dead-letter queue.
* SQS event source: batches of up to ``BatchSize`` gathered for up to ``MaximumBatchingWindowInSeconds``,
  in Lambda's SQS record shape; with ``ReportBatchItemFailures`` only the reported records stay on the
  queue, an exception leaves the whole batch (visibility timeout, then the queue's redrive policy).
* Schedule: the function every period (shortened for tests and the demo).

A handler module is imported on its first invocation after the stack starts: that is its cold start,
when it reads its environment.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from spotline_local.provision import AsyncTrigger, FunctionSpec, Provisioned, QueueTrigger, ScheduleTrigger
from spotline_local.template import ACCOUNT_ID, REGION

log = logging.getLogger(__name__)


class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{spec.name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = "local"
        self._deadline = time.time() + spec.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


class RoutedStdout(io.TextIOBase):
    """sys.stdout that sends what functions print (their logs) to a file, and the rest to the terminal."""

    def __init__(self, terminal: TextIO, functions_log: TextIO) -> None:
        self.terminal = terminal
        self.functions_log = functions_log
        self.local = threading.local()

    def _target(self) -> TextIO:
        return self.functions_log if getattr(self.local, "in_function", False) else self.terminal

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self.terminal.flush()
        self.functions_log.flush()


@dataclass
class Invocations:
    """What the dispatcher did, for progress lines and tests."""

    count: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    events: int = 0  # invocations for an event or a queue batch (schedules excluded): progress


class Dispatcher:
    def __init__(
        self,
        provisioned: Provisioned,
        clients: Any,
        *,
        functions_log: Path,
        schedule_period_s: float | None = None,
        retry_delay_s: float = 1.0,
    ) -> None:
        self.p = provisioned
        self.sqs = clients("sqs")
        self.schedule_period_s = schedule_period_s
        self.retry_delay_s = retry_delay_s
        self.stats = Invocations()
        self._stop = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._threads: list[threading.Thread] = []
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._import_lock = threading.Lock()
        functions_log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = functions_log.open("a", buffering=1)
        self._stdout: RoutedStdout | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        _forget_handler_modules()
        functions_dir = str(functions_root())
        if functions_dir not in sys.path:
            sys.path.insert(0, functions_dir)
        self._stdout = RoutedStdout(sys.stdout, self._log_file)
        sys.stdout = self._stdout
        for trigger in self.p.triggers:
            target: Callable[[], None]
            if isinstance(trigger, AsyncTrigger):
                target = self._loop(self._poll_async, trigger)
            elif isinstance(trigger, QueueTrigger):
                target = self._loop(self._poll_queue, trigger)
            else:
                target = self._schedule_loop(trigger)
            thread = threading.Thread(target=target, name=f"dispatch-{trigger.function}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._stdout is not None and sys.stdout is self._stdout:
            sys.stdout = self._stdout.terminal
        self._log_file.close()

    def pause(self) -> None:
        """Hold every trigger (events stay queued), as if the functions were throttled to zero."""
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    def _loop(self, poll: Callable[[Any], None], trigger: Any) -> Callable[[], None]:
        def run() -> None:
            while not self._stop.is_set():
                if not self._resumed.wait(0.5):
                    continue
                try:
                    poll(trigger)
                except Exception:
                    if self._stop.is_set():
                        return
                    log.exception("dispatcher for %s", trigger.function)
                    self._stop.wait(1.0)

        return run

    # -- invoking ------------------------------------------------------------------------------------

    def handler(self, logical_id: str) -> Callable[..., Any]:
        with self._import_lock:
            if logical_id not in self._handlers:
                spec = self.p.functions[logical_id]
                module_path, _, attribute = spec.handler.replace("/", ".").rpartition(".")
                module = importlib.import_module(module_path)
                self._handlers[logical_id] = getattr(module, attribute)
            return self._handlers[logical_id]

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Call the function as Lambda would; its prints and logs go to the functions log."""
        spec = self.p.functions[logical_id]
        self.stats.count[logical_id] = self.stats.count.get(logical_id, 0) + 1
        assert self._stdout is not None
        self._stdout.local.in_function = True
        try:
            handler = self.handler(logical_id)
            return handler(event, LambdaContext(spec))
        except Exception:
            self.stats.errors[logical_id] = self.stats.errors.get(logical_id, 0) + 1
            self._log_file.write(f"[{spec.name}] invocation failed:\n{traceback.format_exc()}")
            raise
        finally:
            self._stdout.local.in_function = False

    def _poll_async(self, trigger: AsyncTrigger) -> None:
        response = self.sqs.receive_message(
            QueueUrl=trigger.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in response.get("Messages", []):
            event = json.loads(message["Body"])
            self.stats.events += 1
            for attempt in range(trigger.max_retries + 1):
                try:
                    self.invoke(trigger.function, event)
                    break
                except Exception as e:
                    if attempt == trigger.max_retries:
                        self._dead_letter(trigger, message["Body"], e)
                    else:
                        self._stop.wait(self.retry_delay_s * 2**attempt)
            self.sqs.delete_message(QueueUrl=trigger.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _dead_letter(self, trigger: AsyncTrigger, body: str, error: Exception) -> None:
        self.stats.dead_lettered += 1
        log.warning(
            "%s failed %d times on an event; dead-lettered: %s",
            trigger.function,
            trigger.max_retries + 1,
            error,
        )
        if trigger.dead_letter_url:
            self.sqs.send_message(
                QueueUrl=trigger.dead_letter_url,
                MessageBody=body,
                MessageAttributes={
                    "ErrorCode": {"DataType": "String", "StringValue": type(error).__name__},
                    "ErrorMessage": {"DataType": "String", "StringValue": str(error)[:1000] or "error"},
                },
            )

    def _poll_queue(self, trigger: QueueTrigger) -> None:
        messages: list[dict[str, Any]] = []
        deadline: float | None = None
        while len(messages) < trigger.batch_size and not self._stop.is_set():
            wait = 1 if deadline is None else max(0.0, min(1.0, deadline - time.time()))
            response = self.sqs.receive_message(
                QueueUrl=trigger.queue_url,
                MaxNumberOfMessages=min(10, trigger.batch_size - len(messages)),
                WaitTimeSeconds=round(wait),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            got = response.get("Messages", [])
            messages.extend(got)
            if messages and deadline is None:
                deadline = time.time() + trigger.window_s
            if deadline is None:
                return  # nothing arrived; poll again
            if time.time() >= deadline or (not got and trigger.window_s == 0):
                break
        if not messages:
            return
        records = [_sqs_record(m, trigger.queue_arn) for m in messages]
        self.stats.events += 1
        try:
            result = self.invoke(trigger.function, {"Records": records})
        except Exception:
            return  # the whole batch becomes visible again after the visibility timeout
        failed = _failed_ids(result, records) if trigger.report_failures else set()
        for message in messages:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=trigger.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _schedule_loop(self, trigger: ScheduleTrigger) -> Callable[[], None]:
        period = self.schedule_period_s or trigger.period_s

        def run() -> None:
            while not self._stop.wait(period):
                if not self._resumed.is_set():
                    continue
                event = trigger.payload or {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": ACCOUNT_ID,
                    "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "region": REGION,
                    "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{trigger.rule}"],
                    "detail": {},
                }
                try:
                    self.invoke(trigger.function, event)
                except Exception:
                    log.warning("scheduled %s failed (see the functions log)", trigger.function)

        return run


def functions_root() -> Path:
    """functions/ of this checkout (the Lambda code root: ``spotline`` and ``handlers``)."""
    import spotline

    return Path(spotline.__file__).resolve().parents[1]


def _forget_handler_modules() -> None:
    """Drop imported handler modules so the next invocation is a cold start with this stack's settings."""
    for name in [m for m in sys.modules if m == "handlers" or m.startswith("handlers.")]:
        del sys.modules[name]


def _sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            k: attributes[k]
            for k in (
                "ApproximateReceiveCount",
                "SentTimestamp",
                "SenderId",
                "ApproximateFirstReceiveTimestamp",
            )
            if k in attributes
        },
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def _failed_ids(result: Any, records: list[dict[str, Any]]) -> set[str]:
    """The batchItemFailures of a response; a malformed report fails the whole batch, as Lambda does."""
    ids = {r["messageId"] for r in records}
    if not isinstance(result, dict) or not result.get("batchItemFailures"):
        return set()
    failed = set()
    for item in result["batchItemFailures"]:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in ids:
            return ids
        failed.add(identifier)
    return failed
