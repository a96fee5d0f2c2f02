"""The promoted model: the one record inference reads to find the model it uses by default.

One item, ``pk = MODEL``, ``sk = PROMOTED``, written conditionally: a run promotes only if no
model is promoted yet or the promoted one comes from an older run (ordered by the run's
creation time, then run id). A late-finishing old run can therefore never replace a newer one.
"""

from __future__ import annotations

from spotline.ledger.keys import MODEL_PK, PROMOTED_SK
from spotline.ledger.records import Promotion
from spotline.ledger.table import ConditionFailed, LedgerTable


def promotion_order(run_created_at: str, run_id: str) -> str:
    """Sortable key of a run's age (ISO-8601 UTC text sorts by time)."""
    return f"{run_created_at}#{run_id}"


class Models:
    def __init__(self, table: LedgerTable) -> None:
        self.table = table

    def promote(self, promotion: Promotion, *, order: str) -> bool:
        """Make ``promotion`` the promoted model unless a newer run's model is already promoted."""
        try:
            self.table.update(
                MODEL_PK,
                PROMOTED_SK,
                {**promotion.to_attrs(), "order": order},
                condition="attribute_not_exists(pk) OR #order <= :order",
                condition_values={"#order": "order", ":order": order},
            )
        except ConditionFailed:
            return False
        return True

    def promoted(self) -> Promotion | None:
        """The promoted model, or None before the first promotion."""
        item = self.table.get(MODEL_PK, PROMOTED_SK)
        return Promotion.from_item(item) if item else None
