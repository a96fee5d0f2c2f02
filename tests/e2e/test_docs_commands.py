"""Every command a user types from README.md and docs/*.md, run as written against the local stack.

The commands are read out of the Markdown's fenced blocks (in a block with ``$ `` prompts, only
the prompted lines are commands; the rest is output), so the docs cannot drift from what works. A
command that cannot run here is listed in :data:`NOT_RUN_HERE` with where it is tested instead.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from spotline_local.cli.main import main
from tests.e2e.conftest import E2E, TrainedRun
from tests.support.processes import run_watched

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
COMMAND = re.compile(r"(\.venv/bin/)?(spotline|aws|sam|make|pip|docker) |\.venv/bin/python ")
NOT_RUN_HERE = {
    "make demo": "CI runs it on a clean clone (the README's first command)",
    "make test": "CI runs it on a clean clone: it is this suite",
    "sam build": "tests/packaging/test_sam_build.py runs it and cold-starts every handler",
    "sam deploy --guided": "needs an AWS account",
    "pip install 'spotline[notebook]'": "make test-notebook installs the extra in its own venv",
    ".venv/bin/python benchmarks/bench_launch.py": "make bench",
    ".venv/bin/spotline local up": "starts a stack of its own: tests/e2e/test_processes.py",
    "spotline local up --images my-images.yaml --faults my-faults.yaml": (
        "starts a stack of its own: tests/e2e/test_own_image_recovery.py runs the example's images file"
    ),
}
CONFIG = """job:
  instance_type: ml.g4dn.xlarge
  max_runtime: 10m
  channels: {train: datasets/e2e/train/, val: datasets/e2e/val/}
model: {depth: 1, width: 8, head_width: 16}
input: {size: 64}
dataloader: {num_workers: 0}
solver: {batch_size: 4, max_iter: 8, warmup_iters: 2, log_period: 2}
checkpoint: {period_iters: 4, keep: 2}
"""


def user_commands() -> list[tuple[str, str]]:
    """(document, command) for every command line of the docs' fenced blocks, in order."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in FENCE.findall(doc.read_text(encoding="utf-8")):
            lines = block.splitlines()
            prompted = any(line.startswith("$ ") for line in lines)
            for line in lines:
                if prompted and not line.startswith("$ "):
                    continue
                command = line.removeprefix("$ ").split("  #")[0].strip()
                if COMMAND.match(command + " "):
                    found.append((doc.name, command))
    return found


def test_the_docs_commands_are_found_and_every_exception_is_still_in_the_docs() -> None:
    commands = [c for _, c in user_commands()]
    assert len(commands) >= 15 and any(c.startswith(".venv/bin/spotline status") for c in commands)
    assert set(NOT_RUN_HERE) <= set(commands)  # no stale exception


def test_every_command_of_the_docs_runs_against_the_local_stack(
    e2e: E2E,
    trained_run: TrainedRun,
    dataset: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # the user's folder: their config files, their photos
    for name in ("my-run.yaml", "my-config.yaml"):
        (tmp_path / name).write_text(CONFIG)
    (tmp_path / "photos").mkdir()
    for image in sorted(dataset["unlabelled"].glob("*.jpg"))[:3]:
        shutil.copy(image, tmp_path / "photos" / image.name)
    aws = Path(sys.executable).with_name("aws")
    env = {**os.environ, **e2e.stack.endpoint_env()}
    words = {"<DropBucketName>": e2e.bucket, "RUN_ID": trained_run.run_id, "RUN": trained_run.run_id}

    ran = []
    for doc, command in user_commands():
        if command in NOT_RUN_HERE:
            continue
        argv = [words.get(w, w.replace("<DropBucketName>", e2e.bucket)) for w in shlex.split(command)]
        if argv[0].endswith("spotline"):
            args = argv[1:]
            if args[0] in ("status", "report", "submit", "logs", "cancel", "alerts"):
                args += ["--workdir", str(e2e.stack.workdir)]
            code = main(args)
            output = capsys.readouterr()
            assert code == 0, f"{doc}: `{command}` exited {code}\n{output.out}\n{output.err}"
        elif argv[0] == "aws":
            done = run_watched([aws, *argv[1:]], cwd=tmp_path, env=env)
            assert done.returncode == 0, f"{doc}: `{command}` exited {done.returncode}\n{done.stderr}"
        else:
            pytest.fail(f"{doc}: `{command}` is neither run here nor listed in NOT_RUN_HERE")
        ran.append(command)
    assert any("submit" in c for c in ran) and any(c.startswith("aws s3 cp") for c in ran)
