"""What the rules of the ladder and of cost need to know about one attempt of a run.

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
