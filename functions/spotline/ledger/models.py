"""The promoted model: the one record inference reads to find the model it uses by default.

One item, ``pk = MODEL``, ``sk = PROMOTED``, written conditionally: a run promotes only if no
model is promoted yet or the promoted one comes from an older run (ordered by the run's
creation time, then run id). A late-finishing old run can therefore never replace a newer one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spotline.ledger.table import ConditionFailed, LedgerTable

MODEL_PK = "MODEL"
PROMOTED_SK = "PROMOTED"


def promotion_order(run_created_at: str, run_id: str) -> str:
    """Sortable key of a run's age (ISO-8601 UTC text sorts by time)."""
    return f"{run_created_at}#{run_id}"


def record_promotion(table: LedgerTable, record: Mapping[str, Any], *, order: str) -> bool:
    """Make ``record`` the promoted model unless a newer run's model is already promoted."""
    try:
        table.update(
            MODEL_PK,
            PROMOTED_SK,
            {**record, "order": order},
            condition="attribute_not_exists(pk) OR #order <= :order",
            condition_values={"#order": "order", ":order": order},
        )
    except ConditionFailed:
        return False
    return True


def promoted_model(table: LedgerTable) -> dict[str, Any] | None:
    """The promoted model's record (run_id, config_key, config_version, metrics, model_artifact, ...)."""
    item = table.get(MODEL_PK, PROMOTED_SK)
    if item is None:
        return None
    return {k: v for k, v in item.items() if k not in ("pk", "sk")}
