"""The instance types a config may name are the ones SageMaker trains on: its API model's own list."""

from __future__ import annotations

import botocore
import botocore.session
import pytest

from spotline.config import ConfigError, parse_run_config
from spotline.config.instance_types import TRAINING_INSTANCE_TYPES, suggest_instance_type


def test_the_copy_equals_the_sagemaker_model_of_the_installed_botocore() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    enum = set(model.shape_for("TrainingInstanceType").enum)
    assert enum == TRAINING_INSTANCE_TYPES, (
        f"botocore {botocore.__version__} changed TrainingInstanceType: rewrite "
        "functions/spotline/config/instance_types.py with "
        f"added {sorted(enum - TRAINING_INSTANCE_TYPES)}, removed {sorted(TRAINING_INSTANCE_TYPES - enum)}"
    )


@pytest.mark.parametrize(
    ("wanted", "suggested"),
    [("ml.t2.nano", "ml.t3.large"), ("ml.g4dn.xl", "ml.g4dn.xlarge"), ("ml.p3.2xl", "ml.p3.2xlarge")],
)
def test_a_type_sagemaker_does_not_train_on_is_refused_with_a_did_you_mean(
    wanted: str, suggested: str
) -> None:
    assert suggest_instance_type(wanted) == suggested
    with pytest.raises(ConfigError) as e:
        parse_run_config(f"job:\n  instance_type: {wanted}\n  channels: {{train: datasets/x/}}\n")
    [issue] = e.value.issues
    assert issue.path == "job.instance_type"
    assert str(issue) == (
        f"job.instance_type: got '{wanted}' — not an instance type SageMaker trains on; "
        f"did you mean '{suggested}'?"
    )


def test_every_rung_of_the_ladder_is_checked() -> None:
    with pytest.raises(ConfigError) as e:
        parse_run_config(
            "job:\n  fallback_instance_types: [ml.g5.xlarge, ml.g9.xlarge]\n"
            "  channels: {train: datasets/x/}\n"
        )
    assert [i.path for i in e.value.issues] == ["job.fallback_instance_types[1]"]
