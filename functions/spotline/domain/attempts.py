"""What the rules of the ladder, of cost and of progress need to know about one attempt of a run.

The ledger's :class:`spotline.ledger.records.Attempt` has these fields; the domain reads them
through this protocol so that it never depends on the ledger.
"""

from __future__ import annotations

from typing import Protocol


class AttemptFacts(Protocol):
    @property
    def attempt(self) -> int: ...

    @property
    def instance_type(self) -> str: ...

    @property
    def spot(self) -> bool: ...

    @property
    def outcome(self) -> str | None:
        """The :class:`spotline.domain.classify.Outcome` of an ended attempt; None while it runs."""

    @property
    def training_s(self) -> int: ...

    @property
    def billable_s(self) -> int: ...

    @property
    def start_iteration(self) -> int | None:
        """The checkpoint iteration the attempt started from (None: not known)."""

    @property
    def end_iteration(self) -> int | None:
        """The checkpoint iteration it left in S3 (None: not known, e.g. no pointer)."""
