"""A tuning run's trials and its tuning jobs in the ledger.

Trials are items ``TRIAL#<job name>`` under their run (keys in :mod:`spotline.ledger.keys`), written
whole each time a trial's end is read (the same description writes the same item, so a duplicate
event changes nothing). A run holds at most its tuning jobs' ``MaxNumberOfTrainingJobs`` trials
(750 each, and one follow-up), so reading them all is bounded.

Each tuning job is linked to its run (``TUNINGJOB#<name>``) *before* it is created: whatever the
tuner or a trial reports about a tuning job finds its run, even when the launch died after the
create.
"""

from __future__ import annotations

from spotline.ledger.keys import RUN_SK, TRIAL_PREFIX, run_pk, trial_sk, tuning_job_pk
from spotline.ledger.records import Trial
from spotline.ledger.table import LedgerTable


class TrialLedger:
    def __init__(self, table: LedgerTable) -> None:
        self.table = table

    def record(self, trial: Trial) -> Trial:
        """Write the trial as it ended (again, the same, for a duplicate event)."""
        self.table.update(run_pk(trial.run_id), trial_sk(trial.job_name), trial.to_item())
        return trial

    def get(self, run_id: str, job_name: str) -> Trial | None:
        item = self.table.get(run_pk(run_id), trial_sk(job_name))
        return Trial.from_item(item) if item else None

    def trials(self, run_id: str) -> list[Trial]:
        """Every recorded trial of the run, oldest first (by creation, then name)."""
        trials = [Trial.from_item(i) for i in self.table.query(run_pk(run_id), TRIAL_PREFIX)]
        return sorted(trials, key=lambda t: (t.created_at or "", t.job_name))

    def link_tuning_job(self, name: str, run_id: str) -> None:
        """Tie tuning job ``name`` to its run (idempotent: a name is only ever derived from its run)."""
        self.table.update(tuning_job_pk(name), RUN_SK, {"run_id": run_id})

    def run_of_tuning_job(self, name: str) -> str | None:
        item = self.table.get(tuning_job_pk(name), RUN_SK)
        return str(item["run_id"]) if item and item.get("run_id") else None
