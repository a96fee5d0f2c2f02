"""The intake rules, the split, the manifest and the results subject: pure functions, no AWS."""

from __future__ import annotations

import json

import pytest

from spotline.domain.events import parse_object_created
from spotline.domain.naming import JOB_NAME, job_name
from spotline.domain.settings import Settings
from spotline.inference.intake import classify
from spotline.inference.launch import inference_run_id, manifest_body, split_evenly
from spotline.inference.results import subject_for
from spotline.inference.summary import BatchSummary
from tests.support.events import load_event, s3_object_created

BUCKET = "spotline-drop-123456789012"
SETTINGS = Settings(
    bucket=BUCKET,
    table="t",
    topic_arn="arn:aws:sns:eu-west-3:123456789012:t",
    image_uri="i",
    execution_role_arn="arn:aws:iam::123456789012:role/r",
    job_prefix="spotline",
    max_image_bytes=1000,
)


def _classify(key: str, size: int = 10, bucket: str = BUCKET) -> tuple[str, str, str]:
    what = classify(parse_object_created(s3_object_created(bucket, key, etag="e", size=size)), SETTINGS)
    return what.kind, what.batch, what.relative_key


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("inference/rail/a.jpg", ("image", "rail", "a.jpg")),
        ("inference/rail/km-1/B.JPEG", ("image", "rail", "km-1/B.JPEG")),
        ("inference/rail/c.png", ("image", "rail", "c.png")),
        ("inference/rail/d.tiff", ("image", "rail", "d.tiff")),
        ("inference/rail/e.webp", ("image", "rail", "e.webp")),
        (
            "inference/Voie 2 – défauts/IMG 0007 (copie).jpg",
            ("image", "Voie 2 – défauts", "IMG 0007 (copie).jpg"),
        ),
        ("inference/rail/_READY", ("ready", "rail", "_READY")),
        ("inference/rail/sub/_READY", ("ignored", "rail", "sub/_READY")),
        ("inference/rail/_job.yaml", ("ignored", "rail", "_job.yaml")),
        ("inference/rail/notes.txt", ("ignored", "rail", "notes.txt")),
        ("inference/rail/.DS_Store", ("ignored", "rail", ".DS_Store")),
        ("inference/rail/.thumbs/a.jpg", ("ignored", "rail", ".thumbs/a.jpg")),
        ("inference/a.jpg", ("ignored", "", "")),
        ("inference/rail/", ("ignored", "", "")),
        ("inference/rail/../x.jpg", ("ignored", "", "")),
    ],
)
def test_intake_rules(key: str, expected: tuple[str, str, str]) -> None:
    assert _classify(key) == expected


def test_oversized_and_empty_images_are_skipped_and_other_buckets_ignored() -> None:
    assert _classify("inference/rail/a.jpg", size=1001)[0] == "skipped"
    assert _classify("inference/rail/a.jpg", size=1000)[0] == "image"
    assert _classify("inference/rail/a.jpg", size=0)[0] == "skipped"
    assert _classify("inference/rail/a.jpg", bucket="someone-else")[0] == "ignored"


def test_sample_event_with_spaces_and_non_ascii_decodes_to_the_real_key() -> None:
    obj = parse_object_created(load_event("s3_inference_unicode_key"))
    assert obj.key == "inference/Voie 2 – défauts/Caméra avant/IMG 0007 (copie).JPG"
    assert classify(obj, SETTINGS).kind == "skipped"  # 1.8 MB is over this test's 1000-byte cap


@pytest.mark.parametrize(
    ("n", "cap", "sizes"), [(10, 10, [10]), (11, 10, [6, 5]), (25, 10, [9, 8, 8]), (0, 5, [])]
)
def test_split_is_ceil_n_over_max_even_parts_in_order(n: int, cap: int, sizes: list[int]) -> None:
    keys = [f"{i:03d}.jpg" for i in range(n)]
    parts = split_evenly(keys, cap)
    assert [len(p) for p in parts] == sizes
    assert [k for p in parts for k in p] == keys


def test_manifest_is_sagemakers_manifest_file_format() -> None:
    body = manifest_body(BUCKET, "Voie 2", ["a.jpg", "km 1/é.png"])
    assert json.loads(body) == [{"prefix": f"s3://{BUCKET}/inference/Voie 2/"}, "a.jpg", "km 1/é.png"]


def test_run_ids_and_job_names_are_deterministic_and_valid() -> None:
    a = inference_run_id(BUCKET, "Voie 2 – défauts du 27/11", 3, 2)
    assert a == inference_run_id(BUCKET, "Voie 2 – défauts du 27/11", 3, 2)
    assert a != inference_run_id(BUCKET, "Voie 2 – défauts du 27/11", 3, 1)
    assert JOB_NAME.fullmatch(job_name("spotline", a, 99))


def test_subject_counts_with_thousands_separators() -> None:
    lines = [{"image": f"{i}.jpg", "detections": [{"class": "crack"}] if i < 37 else []} for i in range(5000)]
    counts = BatchSummary(worst_kept=4, previewable=lambda _: True)
    for line in lines:
        counts.add(line)
    summary = {"batch": "rail-2026-11-27", "generation": 1, **counts.to_dict()}
    assert subject_for(summary) == "rail-2026-11-27: 37 of 5,000 images show defects"
    assert summary["detections_per_class"] == {"crack": 37}
    assert subject_for({**summary, "generation": 2, "images_with_defects": 1}).startswith(
        "rail-2026-11-27 (#2): 1 of"
    )
