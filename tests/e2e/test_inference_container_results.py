"""The container's real inference output (CPU) becomes results/<batch>/… and one matching SNS message.

A tiny model is trained by the container; its archive is promoted; a folder of images (one key with
spaces and non-ASCII characters) goes through intake and closing on moto; the launched job's request
is then run as SageMaker would — the manifest's images and the model archive laid out as channels, the
container's ``train`` entry point in inference mode — and its ``/opt/ml/model`` is archived where
SageMaker uploads it. The job-state publisher turns that into results and a message.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from spotline.domain.states import RunKind
from spotline_container.sagemaker_tree import make_tree
from spotline_container.synthetic import generate_dataset
from tests.container.conftest import run_container, tiny_config
from tests.support.aws_account import BUCKET, Account
from tests.support.batches import feed, image_event, pipeline, promote, settings_for
from tests.support.results import inference_messages, settle_completed

pytestmark = pytest.mark.slow
BATCH = "Voie 7 – nuit"


def _archive(directory: Path, out: Path, names: tuple[str, ...] | None = None) -> bytes:
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(directory.iterdir()):
            if path.is_file() and (names is None or path.name in names):
                tar.add(path, arcname=path.name)
    return out.read_bytes()


def test_container_output_becomes_results_and_one_message(account: Account, tmp_path: Path) -> None:
    data = generate_dataset(tmp_path / "rail", 24, 8, 6, seed=1, image_size=64)
    trained = run_container(
        make_tree(
            tmp_path / "train-ml",
            config_yaml=tiny_config(max_iter=20),
            channels={"train": data["train"], "val": data["val"]},
        )
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    model_key = "runs/rail-tiny-000000000000/output/spotline-rail-tiny-000000000000-a01/output/model.tar.gz"
    account.s3.put_object(
        Bucket=BUCKET,
        Key=model_key,
        Body=_archive(
            trained.base / "model", tmp_path / "model.tar.gz", ("model.pt", "config.yaml", "metrics.json")
        ),
    )

    p = pipeline(account, settings_for(account))
    promote(p.table, f"s3://{BUCKET}/{model_key}")
    images = sorted(data["unlabelled"].glob("*.jpg"))
    relative = [f"cam/{i.name}" for i in images[:-1]] + [f"caméra arrière/{images[-1].stem} (2).jpg"]
    for path, rel in zip(images, relative, strict=True):
        account.s3.upload_file(str(path), BUCKET, f"inference/{BATCH}/{rel}")
    feed(p, [image_event(f"inference/{BATCH}/{rel}", size=1000) for rel in relative])
    feed(p, [image_event(f"inference/{BATCH}/_READY", size=0)])
    [run] = [r for r in p.ledger.recent_runs() if r.kind == RunKind.INFERENCE]
    request = run.first_request
    assert request is not None

    # Run the job as SageMaker would: channels from the request, the container's own entry point.
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in request["InputDataConfig"]}
    manifest_bucket, _, manifest_key = channels["images"]["S3Uri"][5:].partition("/")
    manifest = json.loads(account.s3.get_object(Bucket=manifest_bucket, Key=manifest_key)["Body"].read())
    prefix = manifest[0]["prefix"][5:].partition("/")[2]
    images_dir, model_dir = tmp_path / "images-channel", tmp_path / "model-channel"
    for rel in manifest[1:]:
        (images_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        account.s3.download_file(BUCKET, prefix + rel, str(images_dir / rel))
    model_dir.mkdir()
    account.s3.download_file(
        BUCKET, channels["model"]["S3Uri"][5:].partition("/")[2], str(model_dir / "model.tar.gz")
    )
    hyperparameters = {**request["HyperParameters"], "inference.score_threshold": "0.0"}
    job = run_container(
        make_tree(
            tmp_path / "infer-ml",
            hyperparameters=hyperparameters,
            channels={"model": model_dir, "images": images_dir},
        )
    )
    assert job.returncode == 0, job.stderr[-3000:]
    output_key = f"runs/{run.run_id}/output/{request['TrainingJobName']}/output/model.tar.gz"
    account.s3.put_object(
        Bucket=BUCKET, Key=output_key, Body=_archive(job.base / "model", tmp_path / "output.tar.gz")
    )
    shutil.rmtree(images_dir)

    describe = {
        "TrainingJobName": request["TrainingJobName"],
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/{output_key}"},
        "TrainingTimeInSeconds": 60,
        "BillableTimeInSeconds": 20,
    }
    settle_completed(account, p.settings, run.run_id, describe)

    container_lines = [
        json.loads(x) for x in (job.base / "model" / "predictions.jsonl").read_text().splitlines()
    ]
    published = account.s3.get_object(Bucket=BUCKET, Key=f"results/{BATCH}/predictions.jsonl")["Body"].read()
    lines = [json.loads(x) for x in published.decode().splitlines()]
    assert sorted(line["image"] for line in lines) == sorted(relative)
    assert lines == sorted(container_lines, key=lambda line: line["image"])
    with_defects = sum(1 for line in lines if line.get("detections"))
    summary = json.loads(
        account.s3.get_object(Bucket=BUCKET, Key=f"results/{BATCH}/summary.json")["Body"].read()
    )
    assert summary["images"] == len(relative)
    assert summary["images_with_defects"] == with_defects
    assert summary["detections"] == sum(len(line.get("detections") or []) for line in lines)

    [message] = inference_messages(account)
    assert message["Subject"] == f"Voie 7 ? nuit: {with_defects:,} of {len(relative)} images show defects"
    assert json.loads(message["Message"])["images_with_defects"] == with_defects
