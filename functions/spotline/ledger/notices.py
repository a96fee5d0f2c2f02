"""Send-once: the one protocol behind every message spotline sends (and every relaunch it queues).

A *notice* is an item ``pk = <owner>``, ``sk = NOTICE#<what>`` (owner: a run's or a batch's
partition key). :meth:`Notices.send_once` claims it with a conditional put, then sends, and
releases the claim if the send fails, so that the retry sends it; a duplicate or concurrent
delivery finds the claim and sends nothing. Whatever must happen exactly once with the message
— its metrics, the event that goes with it — belongs inside ``send``.
"""

from __future__ import annotations

from collections.abc import Callable

from spotline.domain.timefmt import iso_utc
from spotline.ledger.table import ConditionFailed, LedgerTable

NOTICE_PREFIX = "NOTICE#"


class Notices:
    def __init__(self, table: LedgerTable) -> None:
        self.table = table

    def send_once(self, owner: str, what: str, send: Callable[[], object], *, now: float) -> bool:
        """Run ``send`` unless notice ``what`` of ``owner`` was already claimed; True if this call sent it."""
        try:
            self.table.put_new({"pk": owner, "sk": NOTICE_PREFIX + what, "sent_at": iso_utc(now)})
        except ConditionFailed:
            return False
        try:
            send()
        except BaseException:
            self.table.delete(owner, NOTICE_PREFIX + what)
            raise
        return True

    def claimed(self, owner: str, what: str) -> bool:
        """Whether notice ``what`` of ``owner`` was claimed (sent, or being sent right now)."""
        return self.table.get(owner, NOTICE_PREFIX + what) is not None
