"""The recovery story end to end on moto: launch, interruptions, capacity errors, relaunches, publish."""

from __future__ import annotations

import json

import pytest

from spotline.domain import layout
from spotline.ledger.models import Models
from tests.support.aws_account import BUCKET
from tests.support.recovery import Recovery, inbox_by_status, rail_config

CAPACITY = (
    "CapacityError: Unable to provision requested ML compute capacity. "
    "Please retry using a different ML instance type."
)
USER_ERROR = (
    "AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage \"KeyError: 'annotations'\"\n"
    'Command "/usr/local/bin/python -m spotline_container train", exit code: 1'
)


def job(run_id: str, attempt: int) -> str:
    return f"spotline-{run_id}-a{attempt:02d}"


def test_interrupted_then_capacity_then_next_type_completes(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config())

    # attempt 1: Spot capacity did not come back within max_wait -> same type once more
    recovery.checkpoint(run_id, 600)  # its last checkpoint reached S3; it had got to iteration 640
    first = recovery.end(
        job(run_id, 1),
        "Stopped",
        "MaxWaitTimeExceeded",
        training_s=1800,
        billable_s=540,
        metrics={"train/iteration": 640},
        times=3,
    )
    assert [o.action for o in first] == ["retrying", "duplicate", "duplicate"]
    assert recovery.run_relaunches(times=3)[0].action == "launched"

    # attempt 2: CapacityError on the first type -> next rung
    second = recovery.end(job(run_id, 2), "Failed", "Failed", CAPACITY, times=3)
    assert [o.action for o in second] == ["retrying", "duplicate", "duplicate"]
    assert [o.action for o in recovery.run_relaunches(times=3)] == ["launched", "duplicate", "duplicate"]

    # attempt 3 on the next type completes
    metrics = {"val/mAP50": 0.71, "val/mAP": 0.42, "train/iteration": 1000}
    recovery.checkpoint(run_id, 1000)
    third = recovery.end(
        job(run_id, 3), "Completed", training_s=2400, billable_s=720, metrics=metrics, times=3
    )
    assert [o.action for o in third] == ["succeeded", "duplicate", "duplicate"]

    # an old attempt's event arriving late changes nothing
    late = recovery.end(job(run_id, 1), "Stopped", "MaxWaitTimeExceeded", training_s=1800, billable_s=540)
    assert late[0].action == "stale"
    assert recovery.queued_relaunches() == []

    # three jobs: expected names and types, one checkpoint URI, Spot throughout
    assert recovery.job_names() == [job(run_id, 1), job(run_id, 2), job(run_id, 3)]
    jobs = [recovery.job(job(run_id, a)) for a in (1, 2, 3)]
    assert [j["ResourceConfig"]["InstanceType"] for j in jobs] == [
        "ml.g4dn.xlarge",
        "ml.g4dn.xlarge",
        "ml.g5.xlarge",
    ]
    assert {j["CheckpointConfig"]["S3Uri"] for j in jobs} == {layout.checkpoint_uri(BUCKET, run_id)}
    assert all(j["EnableManagedSpotTraining"] for j in jobs)
    assert all(j["StoppingCondition"]["MaxWaitTimeInSeconds"] >= 3600 for j in jobs)

    # one "succeeded" message, two "retrying" ones, each filterable by attributes
    inbox = inbox_by_status(recovery.account.inbox.messages())
    assert sorted((k, len(v)) for k, v in inbox.items()) == [("RETRYING", 2), ("SUCCEEDED", 1)]
    done = inbox["SUCCEEDED"][0]
    assert done["MessageAttributes"]["run_id"]["Value"] == run_id
    assert done["MessageAttributes"]["kind"]["Value"] == "run"
    assert len(done["Subject"]) <= 100 and "rail.yaml succeeded" in done["Subject"]
    body = json.loads(done["Message"])
    assert body["final_metrics"] == metrics
    retry_bodies = sorted(
        (json.loads(m["Message"]) for m in inbox["RETRYING"]), key=lambda b: b["next_attempt"]
    )
    assert [(b["next_attempt"], b["next_instance_type"]) for b in retry_bodies] == [
        (2, "ml.g4dn.xlarge"),
        (3, "ml.g5.xlarge"),
    ]
    assert retry_bodies[1]["reason"] == CAPACITY

    # custom events on the bus, one per message
    detail_types = sorted(e["detail-type"] for e in recovery.spotline_events())
    assert detail_types == ["Run Retrying", "Run Retrying", "Run Succeeded"]

    # the report: attempts and savings add up
    report = recovery.report(run_id)
    assert report["status"] == "SUCCEEDED"
    assert report["model_artifact"] == jobs[2]["ModelArtifacts"]["S3ModelArtifacts"]
    assert [(a["attempt"], a["instance_type"], a["outcome"]) for a in report["attempts"]] == [
        (1, "ml.g4dn.xlarge", "SPOT_UNAVAILABLE"),
        (2, "ml.g4dn.xlarge", "SPOT_UNAVAILABLE"),
        (3, "ml.g5.xlarge", "COMPLETED"),
    ]
    # how far each got: attempt 1 lost the 40 iterations after its last checkpoint; attempt 2 never ran
    progress = [
        (a["start_iteration"], a["end_iteration"], a["reached_iteration"], a["work_lost_iterations"])
        for a in report["attempts"]
    ]
    assert progress == [(0, 600, 640, 40), (600, 600, None, None), (600, 1000, 1000, 0)]
    savings = report["savings"]
    assert savings["estimate"] is True
    assert savings["training_s"] == 1800 + 0 + 2400
    assert savings["billable_s"] == 540 + 0 + 720
    expected_cost = 540 * 0.736 / 3600 + 720 * 1.408 / 3600
    expected_on_demand = 1800 * 0.736 / 3600 + 2400 * 1.408 / 3600
    assert savings["estimated_cost_usd"] == pytest.approx(expected_cost, abs=1e-3)
    assert savings["on_demand_usd"] == pytest.approx(expected_on_demand, abs=1e-3)
    assert savings["savings_usd"] == pytest.approx(expected_on_demand - expected_cost, abs=1e-3)
    assert sum(a["estimated_cost_usd"] for a in savings["attempts"]) == pytest.approx(expected_cost, abs=1e-3)

    # the gate passed: the model is promoted, with its lineage
    model = Models(recovery.ledger.table).promoted()
    assert model is not None
    assert model.run_id == run_id
    assert model.config_key == "configs/rail.yaml"
    assert model.model_artifact == report["model_artifact"]
    assert model.metrics["val/mAP50"] == pytest.approx(0.71)

    # savings went out as EMF metrics in the Spotline namespace
    emf = recovery.metrics.serialize_metric_set()
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Spotline"
    assert emf["SpotSavingsUSD"] == [pytest.approx(expected_on_demand - expected_cost, abs=1e-3)]
    assert emf["Relaunches"] == [1.0, 1.0]
    assert emf["RunsSucceeded"] == [1.0]


def test_user_code_failure_is_not_relaunched_and_the_alert_carries_the_reason(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config())
    outcome = recovery.end(
        job(run_id, 1), "Failed", "Failed", USER_ERROR, training_s=300, billable_s=90, times=3
    )
    assert [o.action for o in outcome] == ["failed", "duplicate", "duplicate"]
    assert recovery.queued_relaunches() == []
    assert recovery.job_names() == [job(run_id, 1)]
    [alert] = recovery.account.inbox.messages()
    assert alert["MessageAttributes"]["status"]["Value"] == "FAILED"
    body = json.loads(alert["Message"])
    assert body["reason"] == USER_ERROR
    assert body["outcome"] == "USER_ERROR"
    assert "AlgorithmError" in alert["Subject"]
    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.status == "FAILED"
    assert recovery.report(run_id)["reason"] == USER_ERROR


def test_attempt_cap_stops_the_ladder_and_says_so(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config(max_attempts=2))
    assert recovery.end(job(run_id, 1), "Failed", "Failed", CAPACITY)[0].action == "retrying"
    recovery.run_relaunches()
    assert recovery.end(job(run_id, 2), "Failed", "Failed", CAPACITY)[0].action == "failed"
    assert recovery.queued_relaunches() == []
    messages = inbox_by_status(recovery.account.inbox.messages())
    [alert] = messages["FAILED"]
    body = json.loads(alert["Message"])
    assert body["cap"] == "attempt cap"
    assert "attempt cap reached" in body["reason"] and "max_attempts=2" in body["reason"]
    assert "attempt cap" in alert["Subject"]
    assert recovery.job_names() == [job(run_id, 1), job(run_id, 2)]


def test_budget_cap_stops_the_ladder_and_says_so(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config(extra="budget_usd: 1.0"))
    recovery.checkpoint(run_id, 2400)
    # 2 h billable on ml.g4dn.xlarge at $0.736/h = $1.47 > $1.00
    outcome = recovery.end(job(run_id, 1), "Stopped", "MaxWaitTimeExceeded", training_s=7200, billable_s=7200)
    assert outcome[0].action == "failed"
    [alert] = recovery.account.inbox.messages()
    body = json.loads(alert["Message"])
    assert body["cap"] == "budget cap"
    assert "budget_usd=$1.00" in body["reason"]
    assert recovery.queued_relaunches() == []


def test_stopped_by_a_person_is_cancelled_without_relaunch(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config())
    assert recovery.end(job(run_id, 1), "Stopped", "Stopped", times=2)[0].action == "cancelled"
    assert recovery.queued_relaunches() == []
    [message] = recovery.account.inbox.messages()
    assert message["MessageAttributes"]["status"]["Value"] == "CANCELLED"
    assert [e["detail-type"] for e in recovery.spotline_events()] == ["Run Cancelled"]


def test_max_runtime_relaunches_only_when_the_config_continues(recovery: Recovery) -> None:
    stops = recovery.drop_config(rail_config(), key="configs/stops.yaml")
    goes_on = recovery.drop_config(
        rail_config(extra="continue_after_max_runtime: true"), key="configs/goes-on.yaml"
    )
    assert recovery.end(job(stops, 1), "Stopped", "MaxRuntimeExceeded")[0].action == "failed"
    outcome = recovery.end(job(goes_on, 1), "Stopped", "MaxRuntimeExceeded")[0]
    assert (outcome.action, outcome.next_attempt) == ("retrying", 2)
    [launched] = recovery.run_relaunches()
    assert recovery.job(launched.job_name or "")["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"


def test_internal_error_relaunches_on_the_same_type(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config())
    reason = "InternalServerError: We encountered an internal error. Please try again."
    assert recovery.end(job(run_id, 1), "Failed", "Failed", reason)[0].action == "retrying"
    [launched] = recovery.run_relaunches()
    assert recovery.job(job(run_id, 2))["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    assert launched.action == "launched"


def test_quota_waits_longer_and_does_not_use_the_attempt_budget(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config(max_attempts=1, backoff="1h"))
    reason = (
        "ResourceLimitExceeded: The account-level service limit 'ml.g4dn.xlarge for spot training job usage' "
        "is 0 Instances, with current utilization of 0 Instances and a request delta of 1 Instances. "
        "Please contact AWS support to request an increase for this limit."
    )
    outcome = recovery.end(job(run_id, 1), "Failed", "Failed", reason)[0]
    assert outcome.action == "retrying"  # max_attempts=1, yet a quota failure is retried
    assert outcome.delay_s is not None and outcome.delay_s >= 1800  # half of max(1 h, 15 min) at least
    # the 900 s SQS limit: the message comes back early and is re-enqueued with the rest of the wait
    [(body, delay)] = recovery.queued_relaunches()
    assert delay == 900
    from spotline.runs.relaunch import RelaunchRequest

    early = recovery.relauncher.relaunch(RelaunchRequest.from_body(json.dumps(body)))
    assert early.action == "deferred"
    [(again, delay_again)] = recovery.queued_relaunches()
    assert again == body and 0 < delay_again <= 900
    recovery.clock.now = float(body["not_before"])
    assert recovery.relauncher.relaunch(RelaunchRequest.from_body(json.dumps(again))).action == "launched"


def test_on_demand_is_the_last_rung_and_has_no_max_wait(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config(extra="on_demand_fallback: true"))
    for attempt in (1, 2):
        assert recovery.end(job(run_id, attempt), "Failed", "Failed", CAPACITY)[0].action == "retrying"
        recovery.run_relaunches()
    last = recovery.job(job(run_id, 3))
    assert last["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    assert last["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in last["StoppingCondition"]
    assert last["CheckpointConfig"]["S3Uri"] == layout.checkpoint_uri(BUCKET, run_id)


def test_an_older_run_never_replaces_a_newer_promotion(recovery: Recovery) -> None:
    older = recovery.drop_config(rail_config(), key="configs/older.yaml")
    recovery.clock.now += 3600
    newer = recovery.drop_config(rail_config(), key="configs/newer.yaml")
    recovery.end(job(newer, 1), "Completed", training_s=100, billable_s=30, metrics={"val/mAP50": 0.65})
    recovery.end(job(older, 1), "Completed", training_s=100, billable_s=30, metrics={"val/mAP50": 0.9})
    model = Models(recovery.ledger.table).promoted()
    assert model is not None and model.run_id == newer
    assert recovery.report(older)["results"]["promotion"] == {
        "gate": "passed",
        "promoted": False,
        "metric": "val/mAP50",
        "value": 0.9,
        "min": 0.6,
        "summary": "passed (val/mAP50 0.9 >= 0.6); a newer run's model stays",
    }


def test_a_failed_gate_promotes_nothing(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config())
    recovery.end(job(run_id, 1), "Completed", training_s=100, billable_s=30, metrics={"val/mAP50": 0.3})
    assert Models(recovery.ledger.table).promoted() is None
    assert recovery.report(run_id)["results"]["promotion"]["gate"] == "failed"


def test_other_teams_jobs_and_unknown_runs_are_ignored(recovery: Recovery) -> None:
    from tests.support.recovery import state_change_event

    assert recovery.deliver(state_change_event("team-b-xgboost-2024", "Failed"))[0].action == "ignored"
    assert (
        recovery.deliver(state_change_event("spotline-nope-0123456789ab-a01", "Failed"))[0].action
        == "ignored"
    )
    assert recovery.account.inbox.messages() == []


def test_a_quota_on_the_first_create_defers_the_run_instead_of_dropping_it(recovery: Recovery) -> None:
    from botocore.awsrequest import AWSResponse

    from spotline.domain.events import parse_object_created
    from spotline.runs.relaunch import RelaunchRequest
    from tests.support.events import s3_object_created

    quota = {"left": 1}

    def refuse_once(**_: object) -> tuple[AWSResponse, dict[str, object]] | None:
        if not quota["left"]:
            return None
        quota["left"] -= 1
        message = (
            "The account-level service limit 'ml.g4dn.xlarge for spot training job usage' is 0 Instances"
        )
        error = {"Error": {"Code": "ResourceLimitExceeded", "Message": message}, "ResponseMetadata": {}}
        return AWSResponse("https://api.sagemaker", 400, {}, None), error  # type: ignore[arg-type]

    recovery.account.sagemaker.meta.events.register("before-call.sagemaker.CreateTrainingJob", refuse_once)
    text = rail_config()
    put = recovery.account.s3.put_object(Bucket=BUCKET, Key="configs/rail.yaml", Body=text.encode())
    event = s3_object_created(
        BUCKET, "configs/rail.yaml", etag=put["ETag"].strip('"'), size=len(text), version_id=put["VersionId"]
    )

    outcome = recovery.launcher.launch_from_object(parse_object_created(event))

    assert outcome.action == "deferred"
    assert outcome.run_id is not None
    assert recovery.job_names() == []
    run = recovery.ledger.get_run(outcome.run_id)
    assert run is not None and run.status == "RETRYING"
    [(body, delay)] = recovery.queued_relaunches()
    assert body["attempt"] == 1 and 450 <= delay <= 900  # 15 minutes for a quota, half of it jitter
    # The event's redelivery neither launches nor queues anything more.
    assert recovery.launcher.launch_from_object(parse_object_created(event)).action == "duplicate"
    assert recovery.queued_relaunches() == []
    assert recovery.job_names() == []

    recovery.clock.now = float(body["not_before"])
    relaunched = recovery.relauncher.relaunch(RelaunchRequest.from_body(json.dumps(body)))

    assert relaunched.action == "launched"
    assert recovery.job_names() == [job(outcome.run_id, 1)]
    run = recovery.ledger.get_run(outcome.run_id)
    assert run is not None and (run.status, run.attempt) == ("RUNNING", 1)
