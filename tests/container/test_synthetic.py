"""The synthetic rail-track dataset: deterministic by seed, three defect classes, three splits."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from spotline_container.synthetic import CLASSES, generate_dataset


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_dataset_other_seed_other_images(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", 6, 3, 2, seed=7, image_size=64)
    b = generate_dataset(tmp_path / "b", 6, 3, 2, seed=7, image_size=64)
    c = generate_dataset(tmp_path / "c", 6, 3, 2, seed=8, image_size=64)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert set(a) == set(b) == set(c) == {"train", "val", "unlabelled"}


def test_coco_annotations_cover_every_defect_class(tmp_path: Path) -> None:
    paths = generate_dataset(tmp_path, 40, 5, 3, seed=0, image_size=96)
    coco = json.loads((paths["train"] / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(CLASSES)
    assert len(coco["images"]) == 40
    used = {a["category_id"] for a in coco["annotations"]}
    assert used == {c["id"] for c in coco["categories"]}
    sizes = {i["id"]: (i["width"], i["height"]) for i in coco["images"]}
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        width, height = sizes[ann["image_id"]]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height
    for image in coco["images"]:
        assert (paths["train"] / image["file_name"]).is_file()
    assert len(list(paths["unlabelled"].glob("*.jpg"))) == 3
