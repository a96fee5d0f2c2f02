"""spotline never deletes what it did not write: folders it writes into on the user's machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotline_local.cli.main import main
from spotline_local.owned_folder import MARKER, ForeignFolder, claim


def test_a_folder_of_the_users_is_refused_and_keeps_its_files(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(ForeignFolder, match="not empty and was not made by spotline"):
        claim(tmp_path, "demo output")
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
    assert not (tmp_path / MARKER).exists()


def test_demo_out_dot_in_a_clone_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``spotline demo --out .`` from a repository root used to empty the clone."""
    (tmp_path / "README.md").write_text("# my clone")
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--out", ".", "--workdir", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err
    assert "was not made by spotline" in err and "choose another --out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".git", "README.md"]  # no workdir either


def test_demo_refuses_a_foreign_workdir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(tmp_path / "out"), "--workdir", str(work)]) == 2
    assert "choose another --workdir" in capsys.readouterr().err
    assert (work / "notes.txt").read_text() == "mine"


def test_an_empty_or_new_folder_becomes_spotlines(tmp_path: Path) -> None:
    assert claim(tmp_path / "new" / "out", "x").entries() == []
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (claim(empty, "x").path / MARKER).is_file()


def test_a_rerun_replaces_only_what_spotline_wrote(tmp_path: Path) -> None:
    out = claim(tmp_path / "out", "demo output")
    with out.publish() as staging:
        (staging / "summary.json").write_text("first")
        (staging / "old-picture.png").write_text("first")
    (out.path / "my-notes.txt").write_text("the user's")  # added by the user between runs
    with out.publish() as staging:
        (staging / "summary.json").write_text("second")
    names = sorted(p.name for p in out.path.iterdir())
    assert names == [MARKER, "my-notes.txt", "summary.json"]
    assert (out.path / "summary.json").read_text() == "second"
    assert (out.path / "my-notes.txt").read_text() == "the user's"


def test_a_failed_rerun_keeps_the_previous_results(tmp_path: Path) -> None:
    out = claim(tmp_path / "out", "demo output")
    with out.publish() as staging:
        (staging / "summary.json").write_text("good run")

    def failing_rerun() -> None:
        with out.publish() as staging:
            (staging / "summary.json").write_text("half")
            raise RuntimeError("the stage failed")

    with pytest.raises(RuntimeError):
        failing_rerun()
    assert (out.path / "summary.json").read_text() == "good run"
    assert sorted(p.name for p in out.path.iterdir()) == [MARKER, "summary.json"]  # no staging left


def test_clear_removes_only_the_recorded_entries(tmp_path: Path) -> None:
    work = claim(tmp_path / "work", "local stack")
    work.remember("jobs", "stack.lock")
    (work.path / "jobs").mkdir()
    (work.path / "jobs" / "x.log").write_text("ours")
    (work.path / "stack.lock").write_text("")
    (work.path / "keep.txt").write_text("not ours")
    work.clear(keep=("stack.lock",))
    assert sorted(p.name for p in work.path.iterdir()) == [MARKER, "keep.txt", "stack.lock"]
