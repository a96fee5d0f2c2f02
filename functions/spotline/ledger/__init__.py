"""The ledger: spotline's memory of runs, attempts, batches and models, in one DynamoDB table."""

from __future__ import annotations

from spotline.ledger.runs import AttemptExists, RunLedger, RunSource, TransitionRefused
from spotline.ledger.table import ConditionFailed, LedgerTable

__all__ = ["AttemptExists", "ConditionFailed", "LedgerTable", "RunLedger", "RunSource", "TransitionRefused"]
