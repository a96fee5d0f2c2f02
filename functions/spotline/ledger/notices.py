"""Send-once: the one protocol behind every message spotline sends (and every relaunch it queues).

A *notice* is an item ``NOTICE#<what>`` under a run or a batch. :meth:`NoticeBox.send_once`
claims it with a conditional put, then sends, and releases the claim if the send fails, so that
the retry sends it; a duplicate or concurrent delivery finds the claim and sends nothing.
Whatever must happen exactly once with the message — its metrics, the event that goes with it —
belongs inside ``send``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from spotline.domain.timefmt import iso_utc
from spotline.ledger.keys import batch_pk, ignored_pk, notice_sk, run_pk
from spotline.ledger.table import ConditionFailed, LedgerTable


class NoticeBox:
    """The notices of one run or one batch."""

    def __init__(self, table: LedgerTable, owner: str) -> None:
        self.table, self.owner = table, owner

    def send_once(self, what: str, send: Callable[[], object], *, now: float) -> bool:
        """Run ``send`` unless notice ``what`` was already claimed; True if this call sent it."""
        try:
            self.table.put_new({"pk": self.owner, "sk": notice_sk(what), "sent_at": iso_utc(now)})
        except ConditionFailed:
            return False
        try:
            send()
        except BaseException:
            self.table.delete(self.owner, notice_sk(what))
            raise
        return True

    def claimed(self, what: str) -> bool:
        """Whether notice ``what`` was claimed (sent, or being sent right now)."""
        return self.table.get(self.owner, notice_sk(what)) is not None


class Notices:
    def __init__(self, table: LedgerTable) -> None:
        self.table = table

    def of_run(self, run_id: str) -> NoticeBox:
        return NoticeBox(self.table, run_pk(run_id))

    def of_batch(self, batch: str) -> NoticeBox:
        return NoticeBox(self.table, batch_pk(batch))

    def of_ignored_object(self, bucket: str, key: str, version: str) -> NoticeBox:
        """The notices of one uploaded object spotline ignored (one alert per upload, not per delivery)."""
        digest = hashlib.sha256("\x00".join((bucket, key, version)).encode()).hexdigest()[:32]
        return NoticeBox(self.table, ignored_pk(digest))
