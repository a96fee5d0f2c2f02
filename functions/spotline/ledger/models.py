"""The promoted model: the one record inference reads to find the model it uses by default.

One item, ``pk = MODEL``, ``sk = PROMOTED``, written conditionally: a run promotes only if no
model is promoted yet or the promoted one comes from an older run (ordered by the run's
creation time, then run id). A late-finishing old run can therefore never replace a newer one.
A run of an image of your own promotes under ``sk = PROMOTED#<image>``, by the same rule: its
model is no model spotline's inference could run.
"""

from __future__ import annotations

from spotline.ledger.keys import MODEL_PK, promoted_sk
from spotline.ledger.records import Promotion
from spotline.ledger.table import ConditionFailed, LedgerTable


def promotion_order(run_created_at: str, run_id: str) -> str:
    """Sortable key of a run's age (ISO-8601 UTC text sorts by time)."""
    return f"{run_created_at}#{run_id}"


class Models:
    def __init__(self, table: LedgerTable) -> None:
        self.table = table

    def promote(self, promotion: Promotion, *, order: str) -> bool:
        """Make ``promotion`` the promoted model of its image unless a newer run's model is already."""
        try:
            self.table.update(
                MODEL_PK,
                promoted_sk(promotion.image),
                {**promotion.to_attrs(), "order": order},
                condition="attribute_not_exists(pk) OR #order <= :order",
                condition_values={"#order": "order", ":order": order},
            )
        except ConditionFailed:
            return False
        return True

    def promoted(self, image: str | None = None) -> Promotion | None:
        """The promoted model of spotline's image (or of ``image``), or None before the first promotion."""
        item = self.table.get(MODEL_PK, promoted_sk(image))
        return Promotion.from_item(item) if item else None
