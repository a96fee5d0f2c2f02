"""Fixtures of the integration tests: spotline's recovery flows wired to the emulated account."""

from __future__ import annotations

import pytest

from tests.support.aws_account import Account
from tests.support.recovery import Recovery, build_recovery


@pytest.fixture
def recovery(account: Account, monkeypatch: pytest.MonkeyPatch) -> Recovery:
    return build_recovery(account, monkeypatch)
