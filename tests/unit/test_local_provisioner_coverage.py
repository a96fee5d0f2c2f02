"""The local stack provisions from template.yaml: every resource type there is either run locally or
skipped on purpose, with a reason; a type added without either fails provisioning at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotline_local.provision import NOT_RUN_LOCALLY, PROVISIONED_TYPES, Provisioner
from spotline_local.template import Resolver, TemplateError, load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def test_every_resource_type_of_the_template_is_run_or_skipped_with_a_reason() -> None:
    types = {r["Type"] for r in load_template(TEMPLATE)["Resources"].values()}
    assert types <= PROVISIONED_TYPES | set(NOT_RUN_LOCALLY)
    assert all(len(reason) > 20 for reason in NOT_RUN_LOCALLY.values())
    assert not PROVISIONED_TYPES & set(NOT_RUN_LOCALLY)


def test_an_unknown_resource_type_fails_provisioning() -> None:
    template = {"Resources": {"Scheduler": {"Type": "AWS::Scheduler::Schedule", "Properties": {}}}}
    resolver = Resolver(template, "local", "http://localhost:5000/123456789012/")

    def no_clients(service: str) -> None:
        raise AssertionError(f"nothing is created before the check ({service})")

    with pytest.raises(TemplateError, match="AWS::Scheduler::Schedule"):
        Provisioner(resolver, no_clients).provision()
