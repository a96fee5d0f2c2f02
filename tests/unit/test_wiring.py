"""The wiring builds every flow, and every flow of one wiring shares its collaborators."""

from __future__ import annotations

import dataclasses

from spotline.domain.settings import Settings
from spotline.wiring import Wiring

SETTINGS = Settings(
    bucket="drop",
    table="ledger",
    topic_arn="arn:aws:sns:eu-west-3:123456789012:alerts",
    image_uri="123456789012.dkr.ecr.eu-west-3.amazonaws.com/spotline:1",
    execution_role_arn="arn:aws:iam::123456789012:role/sagemaker",
    job_prefix="spotline",
)


def test_every_flow_is_built_from_the_wiring_own_collaborators() -> None:
    wiring = Wiring(SETTINGS, clients=lambda service: f"<{service} client>", clock=lambda: 0.0)
    flows = {
        name: getattr(wiring, name)
        for name in vars(Wiring)
        if not name.startswith("_") and dataclasses.is_dataclass(getattr(wiring, name))
    }
    assert set(flows) >= {
        "training_launcher",
        "job_state",
        "relauncher",
        "publisher",
        "image_intake",
        "batch_closer",
        "inference_launcher",
        "model_resolver",
        "inference_completed",
    }
    for name, flow in flows.items():
        for field in dataclasses.fields(flow):
            assert getattr(flow, field.name) is getattr(wiring, field.name), f"{name}.{field.name}"
    assert wiring.table.client == "<dynamodb client>"
    assert wiring.jobs.client == "<sagemaker client>"
    assert wiring.bucket.s3 == "<s3 client>"
