"""``spotline cancel RUN`` on a waiting run: settled at once, its queued relaunch does nothing. (A
running run's job is stopped: tests/e2e/test_cli_commands.py, against the local SageMaker, which
answers StopTrainingJob as SageMaker does; moto does not.)"""

from __future__ import annotations

from spotline.domain.states import RunStatus
from tests.support.recovery import INTERRUPTED, Recovery, inbox_by_status, job, rail_config


def test_cancelling_a_waiting_run_settles_it_and_its_relaunch_starts_nothing(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config())
    recovery.end(job(run_id, 1), *INTERRUPTED, training_s=100, billable_s=30)
    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.status == RunStatus.RETRYING
    recovery.account.inbox.messages()

    outcome = recovery.canceller.cancel(run_id, reason="cancelled by a person", stop_job=True)
    again = recovery.canceller.cancel(run_id, reason="cancelled by a person", stop_job=True)

    assert (outcome.action, outcome.status) == ("cancelled", RunStatus.CANCELLED)
    assert "attempt 2 will not start" in outcome.detail
    assert again.action == "settled"
    [relaunch] = recovery.run_relaunches()
    assert relaunch.action != "launched"
    assert recovery.job_names() == [job(run_id, 1)]  # no second job
    assert [m["Subject"] for m in inbox_by_status(recovery.account.inbox.messages())["CANCELLED"]] == [
        "spotline: rail.yaml cancelled"
    ]
