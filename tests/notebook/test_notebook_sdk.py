"""The notebook path with the real SageMaker SDK (sagemaker==3.27.0) against the local stack.

The cells of docs/notebook.md run, as written, in the SDK's own interpreter: they launch a Spot
job of the NumPy example image through ``spotline.notebook``; the local stack interrupts attempt
1 on one of its metric lines; spotline relaunches it; the cells' ``wait()`` returns with the run
SUCCEEDED on attempt 2, which resumed from attempt 1's checkpoint. The job the SDK created is the
one the launch function's request describes, name and tags included.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spotline.notebook import NotebookRun, Stack
from spotline_local.faults import Fault
from spotline_local.images import load_images
from spotline_local.stack import LocalStack, StackOptions
from tests.notebook.conftest import NOTEBOOK_PYTHON_ENV
from tests.support.local_stack import running_stack

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "numpy_trainer"
CONFIG = "rail-geometry.yaml"


def notebook_cells() -> str:
    """The Python cells of docs/notebook.md, in order."""
    cells = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "notebook.md").read_text(), flags=re.S)
    assert len(cells) == 3
    return "\n".join(cells)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    folder = tmp_path_factory.mktemp("notebook")
    options = StackOptions(
        workdir=folder / ".spotline" / "local",
        faults=[
            Fault(job="spotline-*-a01", kind="spot_interruption", at_line=r"^#metric train/loss=\S+ step=12$")
        ],
        images=load_images(EXAMPLE / "local-images.yaml"),
        schedule_period_s=1.0,
        retry_delay_s=0.2,
        phase_delay_s=0.1,
    )
    with running_stack(options) as local:
        yield local


def test_the_notebook_cells_launch_a_spot_run_that_is_relaunched_resumed_and_followed(
    stack: LocalStack,
) -> None:
    folder = stack.workdir.parent.parent
    s3 = stack.clients("s3")
    data = folder / "data"
    subprocess.run([sys.executable, str(EXAMPLE / "train.py"), "synth", str(data)], check=True)
    for split in ("train", "valid"):
        s3.upload_file(
            str(data / split / "geometry.csv"), stack.bucket, f"datasets/rail-geometry/{split}/geometry.csv"
        )
    config = (EXAMPLE / CONFIG).read_text()
    config = config.replace("checkpoint_every: 5}", "checkpoint_every: 4, step_delay_s: 0.05}")
    config = config.replace("  max_attempts: 3\n", "  max_attempts: 3\n  retry_backoff: 1s\n")
    (folder / CONFIG).write_text(config)

    script = notebook_cells() + (
        "\nimport json\n"
        "print('RESULT ' + json.dumps({'status': result.status, 'run_id': run.run_id,"
        " 'jobs': [a['job_name'] for a in result.attempts], 'savings': result.report['savings']}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPOTLINE_", "POWERTOOLS_"))}
    env["PYTHONPATH"] = str(ROOT / "functions")
    done = subprocess.run(
        [os.environ[NOTEBOOK_PYTHON_ENV], "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    [line] = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    run = NotebookRun.from_file(folder / CONFIG, Stack.local(stack.workdir))
    assert result["run_id"] == run.run_id
    assert result["status"] == "SUCCEEDED"
    assert result["jobs"] == [run.job_name, run.job_name.replace("-a01", "-a02")]  # spotline's names
    assert result["savings"]["savings_usd"] > 0
    assert "attempt 2 SUCCEEDED" in done.stderr  # wait() followed the run past the Spot stop

    # Attempt 2 resumed from attempt 1's checkpoint rather than restarting.
    log = (stack.workdir / "jobs" / result["jobs"][1] / "container.log").read_text()
    assert re.search(r"resuming from checkpoint checkpoint_\d{8}\.npz \(epoch 0, batch 1[2-9]", log)

    # What the SDK sent is the launch function's request for this config.
    sagemaker = stack.clients("sagemaker")
    created = sagemaker.describe_training_job(TrainingJobName=run.job_name)
    tags = sagemaker.list_tags(ResourceArn=created["TrainingJobArn"])["Tags"]
    expected = dict(run.request)
    expected["OutputDataConfig"] = {"CompressionType": "GZIP", **expected["OutputDataConfig"]}  # its default
    for key, value in expected.items():
        got = sorted(tags, key=str) if key == "Tags" else created.get(key)
        want = sorted(value, key=str) if key == "Tags" else value
        assert got == want, key
