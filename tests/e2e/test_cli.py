"""The ``spotline`` command against the running local stack: submit, status, report, and user mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotline_local.cli.main import main
from tests.e2e.conftest import E2E, TrainedRun, wait_for

pytestmark = pytest.mark.slow


def workdir(e2e: E2E) -> str:
    return str(e2e.stack.workdir)


def test_status_lists_runs_and_details_one(
    e2e: E2E, trained_run: TrainedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--workdir", workdir(e2e)]) == 0
    listing = capsys.readouterr().out
    assert "RUN" in listing and "COST" in listing and "SAVED VS ON-DEMAND" in listing
    row = next(line for line in listing.splitlines() if line.startswith(trained_run.run_id))
    assert "SUCCEEDED" in row and "ml.g4dn.xlarge" in row and "%" in row

    assert main(["status", trained_run.run_id, "--workdir", workdir(e2e)]) == 0
    detail = capsys.readouterr().out
    assert f"run        {trained_run.run_id}" in detail
    assert "MaxWaitTimeExceeded" in detail and "-a02" in detail
    assert "promoted   yes" in detail


def test_report_fetches_the_page_and_opens_it_only_where_a_browser_can_be_shown(
    e2e: E2E,
    trained_run: TrainedRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    args = ["report", trained_run.run_id, "--workdir", workdir(e2e), "--out", str(tmp_path), "--open"]
    assert main(args) == 0
    out = capsys.readouterr().out
    page = tmp_path / "runs" / trained_run.run_id / "report.html"
    assert page.read_bytes() == e2e.read(f"runs/{trained_run.run_id}/report.html")
    assert f"no browser to show it here: open {page.resolve()}" in out  # nothing launched

    opened = tmp_path / "opened.txt"
    recorder = tmp_path / "browser.sh"
    recorder.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    recorder.chmod(0o755)
    monkeypatch.setenv("BROWSER", f"{recorder} %s")
    assert main(args) == 0
    wait_for("the browser command", lambda: (opened.is_file() and opened.read_text().strip()) or None, 30)
    assert opened.read_text().strip() == page.resolve().as_uri()


def test_submit_validates_then_uploads(e2e: E2E, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "cli-bad.yaml"
    bad.write_text("job:\n  channels: {train: elsewhere/}\n")
    assert main(["submit", str(bad), "--workdir", workdir(e2e)]) == 2
    captured = capsys.readouterr()
    assert "job.channels.train" in captured.out
    assert captured.err.startswith("spotline: error: not submitted")
    assert "Traceback" not in captured.err
    assert "configs/cli-bad.yaml" not in e2e.keys("configs/")

    good = tmp_path / "cli-good.yaml"
    good.write_text("job:\n  spot: false\n  max_attempts: 1\n  channels: {train: datasets/e2e/train/}\n")
    assert main(["submit", str(good), "--key", "e2e-cli-submit.yaml", "--workdir", workdir(e2e)]) == 0
    out = capsys.readouterr().out
    run_id = out.split("run id ")[1].split()[0]
    assert "configs/e2e-cli-submit.yaml" in e2e.keys("configs/")
    run = e2e.finished(run_id)
    assert run.source.key == "configs/e2e-cli-submit.yaml"


def test_user_mistakes_are_one_line_and_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--workdir", str(tmp_path / "nothing-here")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("spotline: error: no local stack is running")
    assert err.splitlines()[1].startswith("  hint: ")
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
