"""A config dropped in the bucket becomes exactly one Managed Spot training job (moto, real boto3)."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator

from spotline.domain.naming import run_id_for_object
from spotline.domain.states import RunKind, RunStatus
from spotline.ledger.records import RunSource
from spotline.ledger.runs import RunLedger
from spotline.ledger.table import LedgerTable
from spotline.metric_names import metric_definitions
from spotline.training.launch import LaunchInProgress
from tests.support.aws_account import BUCKET, IMAGE_URI, KMS_KEY_ARN, ROLE_ARN, TABLE, Account
from tests.support.events import load_event
from tests.support.launch import (
    GOOD_CONFIG,
    deliver_twice_at_once,
    job_names,
    launch,
    make_launcher,
    put_config,
)


def _ledger(account: Account) -> RunLedger:
    return RunLedger(LedgerTable(TABLE, account.dynamodb))


def test_sample_event_creates_one_job_with_every_setting(account: Account) -> None:
    event = put_config(account, "configs/rail-detector.yaml", GOOD_CONFIG)

    outcome = launch(account, event)

    assert outcome.action == "launched"
    assert job_names(account) == [outcome.job_name]
    run_id = outcome.run_id
    assert run_id is not None and run_id.startswith("rail-detector-")
    job = account.sagemaker.describe_training_job(TrainingJobName=outcome.job_name)
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 21600}
    assert job["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/runs/{run_id}/checkpoints/"
    assert job["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{BUCKET}/runs/{run_id}/output/",
        "KmsKeyId": KMS_KEY_ARN,
    }
    # ml.g4dn has local NVMe storage, encrypted by the instance: SageMaker refuses VolumeKmsKeyId for it.
    assert "VolumeKmsKeyId" not in job["ResourceConfig"]
    assert job["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    assert job["ResourceConfig"]["InstanceCount"] == 2
    assert job["ResourceConfig"]["VolumeSizeInGB"] == 100
    assert job["EnableInterContainerTrafficEncryption"] is True
    assert job["EnableNetworkIsolation"] is True
    assert job["RoleArn"] == ROLE_ARN
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE_URI
    channels = {c["ChannelName"]: c for c in job["InputDataConfig"]}
    assert set(channels) == {"config", "train", "val"}
    assert (
        channels["config"]["DataSource"]["S3DataSource"]["S3Uri"]
        == f"s3://{BUCKET}/runs/{run_id}/config.yaml"
    )
    assert channels["train"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/datasets/rail/train/"
    assert channels["train"]["InputMode"] == "FastFile"
    tags = {
        t["Key"]: t["Value"] for t in account.sagemaker.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
    }
    assert tags["spotline:run-id"] == run_id
    assert tags["spotline:attempt"] == "1"
    assert tags["spotline:source-key"] == "configs/rail-detector.yaml"

    # The snapshot the job reads is the file that was dropped, under runs/ (never configs/).
    snapshot = account.s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/config.yaml")
    assert snapshot["Body"].read().decode() == GOOD_CONFIG
    assert (snapshot.get("ServerSideEncryption"), snapshot.get("SSEKMSKeyId")) == ("aws:kms", KMS_KEY_ARN)

    run = _ledger(account).get_run(run_id)
    assert run is not None
    assert run.status == RunStatus.RUNNING
    assert run.attempt == 1
    assert run.policy.ladder == ("ml.g4dn.xlarge", "ml.g5.xlarge", "ml.p3.2xlarge")
    assert run.policy.promote_min == 0.6
    # What moto does not keep, the ledger does: the request exactly as sent.
    request = run.first_request
    assert request["RetryStrategy"] == {"MaximumRetryAttempts": 2}
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions()
    attempt = _ledger(account).get_attempt(run_id, 1)
    assert attempt is not None and attempt.status == "IN_PROGRESS" and attempt.spot is True


def test_request_passes_botocore_validation_against_the_sagemaker_model(account: Account) -> None:
    outcome = launch(account, put_config(account, "configs/rail-detector.yaml", GOOD_CONFIG))
    assert outcome.run_id is not None
    run = _ledger(account).get_run(outcome.run_id)
    assert run is not None
    model = botocore.session.get_session().get_service_model("sagemaker")
    report = ParamValidator().validate(
        run.first_request, model.operation_model("CreateTrainingJob").input_shape
    )
    assert not report.has_errors(), report.generate_report()


def test_spot_off_sends_no_max_wait(account: Account) -> None:
    config = "job:\n  spot: false\n  max_runtime: 90m\n  channels: {train: datasets/rail/train/}\n"
    outcome = launch(account, put_config(account, "configs/on-demand.yml", config))
    job = account.sagemaker.describe_training_job(TrainingJobName=outcome.job_name)
    assert job["EnableManagedSpotTraining"] is False
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 5400}
    assert job["EnableInterContainerTrafficEncryption"] is False


def test_same_event_three_times_is_one_job(account: Account) -> None:
    event = put_config(account, "configs/rail-detector.yaml", GOOD_CONFIG)
    outcomes = [launch(account, event) for _ in range(3)]
    assert [o.action for o in outcomes] == ["launched", "duplicate", "duplicate"]
    assert len(job_names(account)) == 1
    assert account.inbox.messages() == []


def test_same_event_twice_concurrently_is_one_job(account: Account) -> None:
    event = put_config(account, "configs/rail-detector.yaml", GOOD_CONFIG)
    results = deliver_twice_at_once(account, event)

    assert results in (["duplicate", "launched"], ["launched", "retry-later"])
    assert len(job_names(account)) == 1
    # The retry of the one told to come back later finds the run launched.
    assert launch(account, event).action == "duplicate"
    assert len(job_names(account)) == 1


def test_a_new_version_of_the_same_key_is_a_new_run(account: Account) -> None:
    first = launch(account, put_config(account, "configs/rail-detector.yaml", GOOD_CONFIG))
    second = launch(account, put_config(account, "configs/rail-detector.yaml", GOOD_CONFIG + "# v2\n"))
    assert first.run_id != second.run_id
    assert len(job_names(account)) == 2


def test_key_with_spaces_and_non_ascii_characters(account: Account) -> None:
    key = "configs/Voie 2 – défauts rails.yml"
    event = put_config(account, key, GOOD_CONFIG)
    assert " " not in event["detail"]["object"]["key"]  # S3 sends it URL-encoded

    outcome = launch(account, event)

    assert outcome.action == "launched"
    assert outcome.run_id is not None and outcome.run_id.startswith("voie-2-defauts-rails-")
    run = _ledger(account).get_run(outcome.run_id)
    assert run is not None and run.source.key == key


def test_sample_unicode_event_file_decodes_to_the_real_key() -> None:
    from spotline.domain.events import parse_object_created

    obj = parse_object_created(load_event("s3_config_created_unicode_key"))
    assert obj.key == "configs/Voie 2 – défauts rails.yml"
    assert obj.version_id is None
    assert obj.version_or_etag == "d41d8cd98f00b204e9800998ecf8427e"


def test_a_launch_interrupted_after_its_lease_expired_is_taken_over(account: Account) -> None:
    event = put_config(account, "configs/rail-detector.yaml", GOOD_CONFIG)
    obj = event["detail"]["object"]
    run_id = run_id_for_object(BUCKET, obj["key"], obj["version-id"])
    # An earlier invocation created the run ten minutes ago and died before creating the job.
    launcher = make_launcher(account)
    stale = launcher.clock() - 600
    _ledger(account).create_run(
        run_id,
        kind=RunKind.TRAINING,
        source=RunSource(BUCKET, obj["key"], obj["version-id"]),
        now=stale,
        lease_seconds=300,
    )

    outcome = launch(account, event)

    assert outcome.action == "launched"
    assert len(job_names(account)) == 1


def test_a_duplicate_while_the_launch_lease_is_held_asks_to_be_retried(account: Account) -> None:
    event = put_config(account, "configs/rail-detector.yaml", GOOD_CONFIG)
    obj = event["detail"]["object"]
    run_id = run_id_for_object(BUCKET, obj["key"], obj["version-id"])
    launcher = make_launcher(account)
    _ledger(account).create_run(
        run_id,
        kind=RunKind.TRAINING,
        source=RunSource(BUCKET, obj["key"], obj["version-id"]),
        now=launcher.clock(),
        lease_seconds=300,
    )
    with pytest.raises(LaunchInProgress):
        launch(account, event)
    assert job_names(account) == []


def test_objects_outside_configs_are_ignored(account: Account) -> None:
    for key in ("configs/notes.txt", "datasets/rail/train/config.yaml", "configs/../configs/x.yaml"):
        event = put_config(account, key, GOOD_CONFIG)
        assert launch(account, event).action == "ignored"
    assert job_names(account) == []


def _alert_for(account: Account, run_id: str) -> list[dict[str, Any]]:
    return [m for m in account.inbox.messages() if m["MessageAttributes"]["run_id"]["Value"] == run_id]


BIG = "job:\n  channels: {train: datasets/rail/train/}\n" + "# padding\n" * 30_000
ALIAS_BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
)
BAD_CONFIGS: list[tuple[str, bytes | str, str]] = [
    ("yaml-syntax", "job:\n  channels: {train: datasets/x/\n", "expected valid YAML"),
    ("unknown-key", "job:\n  max_wiat: 5h\n  channels: {train: datasets/x/}\n", "did you mean 'max_wait'"),
    ("wrong-type", "job:\n  instance_count: two\n  channels: {train: datasets/x/}\n", "job.instance_count"),
    ("negative-duration", "job:\n  max_runtime: -5m\n  channels: {train: datasets/x/}\n", "job.max_runtime"),
    (
        "unparseable-duration",
        "job:\n  max_runtime: ten hours\n  channels: {train: datasets/x/}\n",
        "positive duration",
    ),
    (
        "wait-below-runtime",
        "job:\n  max_runtime: 10h\n  max_wait: 2h\n  channels: {train: datasets/x/}\n",
        "must be at least max_runtime (10h)",
    ),
    ("missing-train-channel", "job:\n  channels: {val: datasets/x/}\n", "needs a 'train' channel"),
    ("over-size-cap", BIG, "at most 262144 bytes"),
    ("alias-bomb", ALIAS_BOMB, "aliases"),
    ("python-tag", "job: !!python/object/apply:os.system ['echo pwned']\n", "python/object"),
    (
        "foreign-bucket",
        "job:\n  channels: {train: s3://someone-elses-bucket/rail/}\n",
        "someone-elses-bucket",
    ),
    ("empty-file", "", "empty"),
    ("not-a-mapping", "- job\n- channels\n", "top level must be a mapping"),
    ("path-trick", "job:\n  channels: {train: datasets/../configs/}\n", "'..'"),
    ("not-utf8", b"job:\n  channels: {train: datasets/\xff\xfe/}\n", "UTF-8"),
    ("reserved-channel", "job:\n  channels: {train: datasets/x/, config: datasets/y/}\n", "reserved"),
]


@pytest.mark.parametrize(("name", "body", "expected"), BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_a_bad_config_starts_nothing_and_says_why(
    account: Account, name: str, body: bytes | str, expected: str
) -> None:
    key = f"configs/bad-{name}.yaml"
    event = put_config(account, key, body)

    outcome = launch(account, event)

    assert outcome.action == "rejected"
    assert job_names(account) == []
    run_id = outcome.run_id
    assert run_id is not None
    report = json.loads(
        account.s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/rejection.json")["Body"].read()
    )
    assert report["status"] == "REJECTED"
    assert any(expected in e["message"] for e in report["errors"]), report["errors"]
    run = _ledger(account).get_run(run_id)
    assert run is not None and run.status == RunStatus.REJECTED
    alerts = _alert_for(account, run_id)
    assert len(alerts) == 1
    assert key in alerts[0]["Subject"] or key[:80] in alerts[0]["Subject"]
    assert expected in alerts[0]["Message"]
    assert alerts[0]["MessageAttributes"]["status"]["Value"] == "REJECTED"
    # Nothing was written under configs/ but the user's own file.
    keys = [
        o["Key"] for o in account.s3.list_objects_v2(Bucket=BUCKET, Prefix="configs/").get("Contents", [])
    ]
    assert keys == [key]


def test_every_error_of_a_file_is_reported_together(account: Account) -> None:
    body = (
        "job:\n  max_wiat: 5h\n  instance_count: 0\n  input_mode: Pipe\n"
        "  channels: {train: datasets/x/}\nsolvr: {}\n"
    )
    outcome = launch(account, put_config(account, "configs/many-errors.yaml", body))
    assert outcome.run_id is not None
    report = json.loads(
        account.s3.get_object(Bucket=BUCKET, Key=f"runs/{outcome.run_id}/rejection.json")["Body"].read()
    )
    keys = {e["key"] for e in report["errors"]}
    assert {"job.max_wiat", "job.instance_count", "job.input_mode", "solvr"} <= keys


def test_a_rejected_config_delivered_again_alerts_once(account: Account) -> None:
    event = put_config(account, "configs/bad.yaml", "job: {}\n")
    first = launch(account, event)
    second = launch(account, event)
    assert (first.action, second.action) == ("rejected", "duplicate")
    assert first.run_id is not None
    assert len(_alert_for(account, first.run_id)) == 1


def test_throttled_create_is_retried_with_backoff(account: Account) -> None:
    import boto3
    from botocore.awsrequest import AWSResponse
    from botocore.config import Config

    sagemaker = boto3.client(
        "sagemaker",
        region_name=account.sagemaker.meta.region_name,
        config=Config(retries={"mode": "adaptive", "max_attempts": 4}),
    )
    throttles = {"left": 2}

    def throttle(**_: Any) -> AWSResponse | None:
        if throttles["left"] == 0:
            return None
        throttles["left"] -= 1
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        return AWSResponse(
            "https://api.sagemaker", 400, {"x-amzn-ErrorType": "ThrottlingException"}, _Raw(body)
        )

    sagemaker.meta.events.register("before-send.sagemaker.CreateTrainingJob", throttle)
    outcome = launch(account, put_config(account, "configs/rail-detector.yaml", GOOD_CONFIG), sagemaker)
    assert outcome.action == "launched"
    assert throttles["left"] == 0
    assert len(job_names(account)) == 1


def test_a_persistent_failure_is_raised_and_the_retry_can_launch(account: Account) -> None:
    import boto3
    from botocore.awsrequest import AWSResponse
    from botocore.config import Config
    from botocore.exceptions import ClientError

    sagemaker = boto3.client(
        "sagemaker",
        region_name=account.sagemaker.meta.region_name,
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    failing = {"on": True}

    def unavailable(**_: Any) -> AWSResponse | None:
        if not failing["on"]:
            return None
        body = json.dumps({"__type": "ServiceUnavailable", "message": "try later"}).encode()
        return AWSResponse("https://api.sagemaker", 503, {}, _Raw(body))

    sagemaker.meta.events.register("before-send.sagemaker.CreateTrainingJob", unavailable)
    event = put_config(account, "configs/rail-detector.yaml", GOOD_CONFIG)
    with pytest.raises(ClientError):
        launch(account, event, sagemaker)
    obj = event["detail"]["object"]
    run = _ledger(account).get_run(run_id_for_object(BUCKET, obj["key"], obj["version-id"]))
    assert run is not None
    assert (run.status, run.lease_until) == ("PENDING", 0)  # the lease is released for the retry

    failing["on"] = False  # the event's retry comes back once SageMaker answers again
    assert launch(account, event, sagemaker).action == "launched"
    assert len(job_names(account)) == 1


class _Raw:
    """The raw body botocore reads from an HTTP response."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body

    def read(self, *_: Any) -> bytes:
        return self._body


def test_the_handler_runs_on_the_sample_event(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from tests.support.events import s3_object_created

    data = GOOD_CONFIG.encode()
    put = account.s3.put_object(Bucket=BUCKET, Key="configs/rail-detector.yaml", Body=data)
    sample = load_event("s3_config_created")
    event = s3_object_created(
        BUCKET,
        sample["detail"]["object"]["key"],
        etag=put["ETag"].strip('"'),
        size=len(data),
        version_id=put["VersionId"],
    )
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Spotline")
    module = importlib.import_module("handlers.launch")
    module = importlib.reload(module)

    result = module.handler(event, _Context())

    assert result["action"] == "launched"
    assert job_names(account) == [result["job_name"]]


class _Context:
    function_name = "LaunchFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-3:123456789012:function:LaunchFunction"
    aws_request_id = "5f1e4f5a-0000-4000-8000-000000000001"


def test_reference_config_launches(account: Account) -> None:
    from pathlib import Path

    import spotline.config

    reference = Path(spotline.config.__file__).parent / "reference.yaml"
    text = reference.read_text(encoding="utf-8")
    assert yaml.safe_load(text)["job"]["channels"]
    outcome = launch(account, put_config(account, "configs/reference.yaml", text))
    assert outcome.action == "launched", outcome.reason


def test_an_alert_that_fails_to_send_is_sent_by_the_retry(account: Account) -> None:
    import boto3
    from botocore.exceptions import ClientError

    event = put_config(account, "configs/bad.yaml", "job: {}\n")
    broken = boto3.client("sns", region_name=account.sns.meta.region_name)
    launcher = make_launcher(account)
    launcher.notifier._sns = broken
    broken.meta.events.register("before-call.sns.Publish", _refuse_publish)
    from spotline.domain.events import parse_object_created

    with pytest.raises(ClientError):
        launcher.launch_from_object(parse_object_created(event))
    assert account.inbox.messages() == []

    outcome = launch(account, event)  # the event's retry

    assert outcome.action == "rejected"
    assert outcome.run_id is not None
    assert len(_alert_for(account, outcome.run_id)) == 1
    run = _ledger(account).get_run(outcome.run_id)
    assert run is not None and run.status == RunStatus.REJECTED


def _refuse_publish(**_: Any) -> tuple[Any, dict[str, Any]]:
    from botocore.awsrequest import AWSResponse

    error = {"Error": {"Code": "InternalError", "Message": "SNS is having a bad day"}, "ResponseMetadata": {}}
    return AWSResponse("https://sns", 500, {}, _Raw(b"")), error


def test_volume_key_only_where_sagemaker_accepts_it(account: Account) -> None:
    from spotline.domain.requests import Rung, request_for_attempt

    config = "job:\n  instance_type: ml.p3.2xlarge\n  fallback_instance_types: [ml.g5.xlarge]\n"
    config += "  channels: {train: datasets/rail/train/}\n"
    outcome = launch(account, put_config(account, "configs/p3.yaml", config))
    job = account.sagemaker.describe_training_job(TrainingJobName=outcome.job_name)
    assert job["ResourceConfig"]["VolumeKmsKeyId"] == KMS_KEY_ARN  # EBS-only type: our key

    assert outcome.run_id is not None
    run = _ledger(account).get_run(outcome.run_id)
    assert run is not None
    on_g5 = request_for_attempt(
        run.first_request,
        job_prefix="spotline",
        run_id=outcome.run_id,
        attempt=2,
        rung=Rung("ml.g5.xlarge", True),
        max_wait=None,
    )
    assert "VolumeKmsKeyId" not in on_g5["ResourceConfig"]
    back_on_p3 = request_for_attempt(
        on_g5,
        job_prefix="spotline",
        run_id=outcome.run_id,
        attempt=3,
        rung=Rung("ml.p3.2xlarge", True),
        max_wait=None,
    )
    assert back_on_p3["ResourceConfig"]["VolumeKmsKeyId"] == KMS_KEY_ARN
