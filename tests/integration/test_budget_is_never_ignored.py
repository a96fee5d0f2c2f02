"""A budget is never silently ignored: a config whose ``budget_usd`` cannot be enforced on some rung of
its ladder (an instance type without a price would count as $0) is refused, naming the rung.

spotline refuses rather than guesses: SageMaker trains on about 200 instance types (botocore's
``TrainingInstanceType``), the built-in table prices the common ones, and the ``PriceTable``
parameter adds any other.
"""

from __future__ import annotations

import json
import re

import botocore.session
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotline.config import ConfigError, ValidationContext, parse_run_config
from spotline.config.job import INSTANCE_TYPE
from spotline.domain.prices import price_table
from tests.support.aws_account import Account
from tests.support.launch import job_names, launch, put_config, wiring

_SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
SAGEMAKER_TRAINING_TYPES = sorted(
    t for t in _SAGEMAKER.shape_for("TrainingInstanceType").enum if re.fullmatch(INSTANCE_TYPE, t)
)


def _config(ladder: list[str], budget: str | None) -> str:
    first, *rest = ladder
    lines = ["job:", f"  instance_type: {first}", f"  fallback_instance_types: {json.dumps(rest)}"]
    if budget is not None:
        lines.append(f"  budget_usd: {budget}")
    lines += ["  channels: {train: datasets/rail/train/}", ""]
    return "\n".join(lines)


def test_the_price_table_does_not_cover_every_type_sagemaker_trains_on() -> None:
    """Why refusing is the rule: most training types have no built-in price."""
    unpriced = set(SAGEMAKER_TRAINING_TYPES) - set(price_table())
    assert len(SAGEMAKER_TRAINING_TYPES) > 100 and "ml.p4d.24xlarge" in unpriced


def test_a_budget_on_an_unpriced_rung_is_refused_with_the_rung_named(account: Account) -> None:
    text = _config(["ml.g4dn.xlarge", "ml.g5.xlarge", "ml.p4d.24xlarge"], "2")
    outcome = launch(account, put_config(account, "configs/big.yaml", text))
    assert outcome.action == "rejected"
    assert "job.fallback_instance_types[1]" in outcome.reason and "ml.p4d.24xlarge" in outcome.reason
    assert job_names(account) == []
    [alert] = account.inbox.messages()
    body = json.loads(alert["Message"])
    assert [e["key"] for e in body["errors"]] == ["job.fallback_instance_types[1]"]


def test_the_deployments_price_table_makes_the_rung_enforceable(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _config(["ml.g4dn.xlarge", "ml.p4d.24xlarge"], "2")
    monkeypatch.setenv("SPOTLINE_PRICES", json.dumps({"ml.p4d.24xlarge": 37.69}))
    from spotline.domain.settings import Settings

    w = wiring(account, settings=Settings.from_env())
    from spotline.domain.events import parse_object_created

    outcome = w.training_launcher.launch_from_object(
        parse_object_created(put_config(account, "configs/big.yaml", text))
    )
    assert outcome.action == "launched", outcome
    assert len(job_names(account)) == 1


def test_without_a_budget_any_type_may_be_tried(account: Account) -> None:
    outcome = launch(account, put_config(account, "configs/x.yaml", _config(["ml.p4d.24xlarge"], None)))
    assert outcome.action == "launched", outcome


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(SAGEMAKER_TRAINING_TYPES), min_size=1, max_size=4, unique=True),
    st.one_of(st.none(), st.sampled_from(["0.5", "40", "1000000"])),
)
def test_no_rung_of_any_accepted_config_with_a_budget_is_unpriced(
    ladder: list[str], budget: str | None
) -> None:
    prices = price_table()
    context = ValidationContext(priced_instance_types=frozenset(prices), dropped_config=True)
    unpriced = [t for t in ladder if t not in prices]
    if budget is not None and unpriced:
        with pytest.raises(ConfigError) as caught:
            parse_run_config(_config(ladder, budget), context)
        assert {i.value for i in caught.value.issues} == set(unpriced)  # every unpriced rung, named
        return
    config = parse_run_config(_config(ladder, budget), context)
    if config.job.budget_usd is not None:
        assert all(t in prices for t in config.job.instance_ladder)
