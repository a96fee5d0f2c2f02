"""Which run and attempt a training job is: tags first, never an adopted job's name."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spotline.domain.job_identity import JobIdentity, identify_job
from spotline.domain.naming import JOB_NAME, job_name, parse_job_name, run_id_for_job
from spotline.domain.requests import TAG_ADOPT, TAG_ATTEMPT, TAG_RUN_ID

PREFIX = "spotline"
# What the SageMaker SDK's _get_unique_name makes: a base name and a timestamp.
SDK_NAMES = st.from_regex(
    r"[a-zA-Z0-9](-?[a-zA-Z0-9]){0,38}-20[0-9]{2}(-[0-9]{2}){5}-[0-9]{3}", fullmatch=True
)


@given(SDK_NAMES)
def test_an_adopted_job_is_attempt_1_of_a_run_its_name_gives_always_the_same(name: str) -> None:
    identity = identify_job(PREFIX, name, {TAG_ADOPT: "true"})
    assert identity == JobIdentity(run_id_for_job(name), 1, adopted=True)
    assert identify_job(PREFIX, name, {TAG_ADOPT: " TRUE "}) == identity
    # The run's own jobs get spotline's names, and those names parse back to the run.
    for attempt in (1, 2, 99):
        relaunched = job_name(PREFIX, identity.run_id, attempt)
        assert JOB_NAME.fullmatch(relaunched) and len(relaunched) <= 63
        assert parse_job_name(PREFIX, relaunched) == (identity.run_id, attempt)


@given(SDK_NAMES, st.sampled_from(["", "false", "no", "1", "yes"]))
def test_a_job_without_spotline_tags_is_nobodys_run(name: str, adopt: str) -> None:
    assert identify_job(PREFIX, name, {TAG_ADOPT: adopt, "team": "rail"}) is None
    assert identify_job(PREFIX, name, {}) is None


def test_the_run_id_tag_wins_over_the_name_and_the_adopt_tag() -> None:
    tags = {TAG_RUN_ID: "rail-0123456789ab", TAG_ATTEMPT: "3", TAG_ADOPT: "true"}
    assert identify_job(PREFIX, "rail-legacy-2026-11-27-01-02-03-456", tags) == JobIdentity(
        "rail-0123456789ab", 3
    )


@given(st.text(max_size=80), st.text(max_size=5))
def test_a_tag_that_cannot_name_jobs_falls_back_to_the_name(run_id: str, attempt: str) -> None:
    name = job_name(PREFIX, "rail-0123456789ab", 2)
    identity = identify_job(PREFIX, name, {TAG_RUN_ID: run_id, TAG_ATTEMPT: attempt})
    assert identity is not None
    try:
        job_name(PREFIX, identity.run_id, identity.attempt)
    except ValueError as e:  # pragma: no cover - the assertion below reports it
        raise AssertionError(f"{identity} makes no job name") from e
    if (identity.run_id, identity.attempt) != ("rail-0123456789ab", 2):
        assert (identity.run_id, identity.attempt) == (run_id, int(attempt))
