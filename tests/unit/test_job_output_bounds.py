"""Reading an inference job's model.tar.gz back in the job-state function: streamed, bounded, disk-free."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from spotline.adapters.drop_bucket import DropBucket
from spotline.domain.settings import Settings
from spotline.inference import job_output
from spotline.inference.job_output import read_part_output
from spotline.runs.publish import OutputUnusable

URI = "s3://drop/runs/r-000000000000/output/j/output/model.tar.gz"
SETTINGS = Settings(
    bucket="drop",
    table="t",
    topic_arn="arn:t",
    image_uri="i",
    execution_role_arn="arn:r",
    job_prefix="spotline",
)


class _Body(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.largest_read = max(self.largest_read, len(chunk))
        return chunk


class _S3:
    """get_object only; ``content_length`` None leaves the header out (as a stub might)."""

    def __init__(self, data: bytes, content_length: int | None = -1) -> None:
        self.body = _Body(data)
        self.content_length = len(data) if content_length == -1 else content_length

    def get_object(self, **_: Any) -> dict[str, Any]:
        response: dict[str, Any] = {"Body": self.body}
        if self.content_length is not None:
            response["ContentLength"] = self.content_length
        return response


def _archive(members: list[tuple[str, bytes]], extra: tuple[tarfile.TarInfo, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buffer.getvalue()


def _outputs() -> list[tuple[str, bytes]]:
    line = {"image": "a.jpg", "width": 4, "height": 4, "detections": []}
    return [("predictions.jsonl", (json.dumps(line) + "\n").encode()), ("summary.json", b'{"images": 1}')]


def test_a_normal_archive_is_read() -> None:
    output = read_part_output(DropBucket(SETTINGS, _S3(_archive(_outputs()))), URI)
    assert [(image, json.loads(raw)) for image, raw in output.lines] == [
        ("a.jpg", {"image": "a.jpg", "width": 4, "height": 4, "detections": []})
    ]
    assert output.summary == {"images": 1}


def test_lines_come_back_in_key_order_whatever_the_container_wrote() -> None:
    keys = ["b/2.jpg", "a-b.jpg", "a/b.jpg", "A.jpg"]
    body = "".join(json.dumps({"image": k, "detections": []}) + "\n\n" for k in keys).encode()
    output = read_part_output(DropBucket(SETTINGS, _S3(_archive([("predictions.jsonl", body)]))), URI)
    assert [image for image, _ in output.lines] == sorted(keys)
    assert all(raw.endswith(b"}\n") for _, raw in output.lines)


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([("predictions.jsonl", b"not json\n")], "line 1: not JSON"),
        ([("predictions.jsonl", b'{"image": "a.jpg"}\n[1, 2]\n')], "line 2: expected an object"),
        ([("predictions.jsonl", b'{"detections": []}\n')], "expected an object with an 'image'"),
        ([("predictions.jsonl", b'{"image": 7}\n')], "expected an object with an 'image'"),
        ([("predictions.jsonl", b"\xff\xfe\n")], "not JSON"),
        ([*_outputs()[:1], ("summary.json", b"[1]")], "summary.json: expected a JSON object"),
        ([("summary.json", b"{}")], r"holds no predictions\.jsonl"),
    ],
)
def test_output_that_cannot_be_used_is_unusable(members: list[tuple[str, bytes]], match: str) -> None:
    with pytest.raises(OutputUnusable, match=match):
        read_part_output(DropBucket(SETTINGS, _S3(_archive(members))), URI)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not a readable tar"),
        (b"\x1f\x8b garbage", "not a readable tar"),
        (b"x" * 2048, "not a readable"),
    ],
)
def test_an_archive_that_is_not_a_tar_is_unusable(data: bytes, match: str) -> None:
    with pytest.raises(OutputUnusable, match=match):
        read_part_output(DropBucket(SETTINGS, _S3(data)), URI)


def test_a_truncated_archive_is_unusable() -> None:
    data = _archive(_outputs())
    with pytest.raises(OutputUnusable, match="not a readable tar"):
        read_part_output(DropBucket(SETTINGS, _S3(data[: len(data) // 2])), URI)


def test_predictions_over_the_cap_are_unusable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_output, "MAX_PREDICTIONS_BYTES", 10)
    with pytest.raises(OutputUnusable, match="larger than 10 bytes"):
        read_part_output(DropBucket(SETTINGS, _S3(_archive(_outputs()))), URI)


def test_an_archive_over_the_cap_is_refused_before_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _archive(_outputs())
    monkeypatch.setattr(job_output, "MAX_ARCHIVE_BYTES", len(data) - 1)
    s3 = _S3(data)
    with pytest.raises(OutputUnusable, match="larger than"):
        read_part_output(DropBucket(SETTINGS, s3), URI)
    assert s3.body.largest_read == 0


def test_an_archive_without_a_length_is_still_read_no_further_than_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _archive(_outputs())
    monkeypatch.setattr(job_output, "MAX_ARCHIVE_BYTES", len(data) - 10)
    s3 = _S3(data, content_length=None)
    with pytest.raises(OutputUnusable, match="larger than"):
        read_part_output(DropBucket(SETTINGS, s3), URI)
    assert s3.body.largest_read <= len(data) - 9


def test_an_archive_of_many_members_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_output, "MAX_ARCHIVE_MEMBERS", 10)
    junk = [(f"junk/{i:04d}.txt", b"") for i in range(50)]
    with pytest.raises(OutputUnusable, match="more than 10 members"):
        read_part_output(DropBucket(SETTINGS, _S3(_archive([*junk, *_outputs()]))), URI)


def test_members_declaring_too_many_bytes_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_output, "MAX_ARCHIVE_TOTAL_BYTES", 4096)
    filler = [("filler.bin", b"\0" * 8192)]  # compresses to almost nothing, decompresses to 8 KiB
    with pytest.raises(OutputUnusable, match="4096 bytes"):
        read_part_output(DropBucket(SETTINGS, _S3(_archive([*filler, *_outputs()]))), URI)


def test_links_and_traversing_names_are_never_followed_or_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    link = tarfile.TarInfo("predictions.jsonl")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    data = _archive([("../../escape.txt", b"x"), ("/abs/summary.txt", b"y")], extra=(link,))
    with pytest.raises(OutputUnusable, match=r"holds no predictions\.jsonl"):
        read_part_output(DropBucket(SETTINGS, _S3(data)), URI)
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path.parent.parent / "escape.txt").exists()
