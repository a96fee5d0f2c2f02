"""The ledger adapter against moto: conditional writes and None meaning 'remove'."""

from __future__ import annotations

import pytest

from spotline.ledger.table import ConditionFailed, LedgerTable
from tests.support.aws_account import TABLE, Account


def test_setting_none_removes_the_attribute(account: Account) -> None:
    table = LedgerTable(TABLE, account.dynamodb)
    table.put_new({"pk": "X#1", "sk": "A", "keep": 1, "drop": "x"})
    item = table.update("X#1", "A", {"drop": None, "keep": 2, "new": 0.5})
    assert item == {"pk": "X#1", "sk": "A", "keep": 2, "new": 0.5}


def test_put_new_refuses_an_existing_key_and_update_honours_its_condition(account: Account) -> None:
    table = LedgerTable(TABLE, account.dynamodb)
    table.put_new({"pk": "X#2", "sk": "A", "state": "one"})
    with pytest.raises(ConditionFailed):
        table.put_new({"pk": "X#2", "sk": "A", "state": "two"})
    with pytest.raises(ConditionFailed):
        table.update(
            "X#2",
            "A",
            {"state": "three"},
            condition="#st = :two",
            condition_values={"#st": "state", ":two": "two"},
        )
    assert table.get("X#2", "A") == {"pk": "X#2", "sk": "A", "state": "one"}
