"""COCO channels in, batches out: records, an in-memory image cache, a resumable sampler, loaders.

A channel directory holds ``annotations.json`` (COCO) and the images its ``file_name`` entries name,
relative to the channel (``images/0001.png``). Images are resized once to ``input.size`` and, with
``dataloader.cache_images``, kept in memory as uint8. The sampler's order is a pure function of the
seed and the global sample position, so resuming at iteration ``i`` replays exactly the same batches.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler

from spotline.config import RunConfig
from spotline.config.model import AugmentSection
from spotline_container.augment import augment
from spotline_container.errors import DataError
from spotline_container.targets import encode_targets

log = logging.getLogger(__name__)

ANNOTATIONS = "annotations.json"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
CACHE_RAM_FRACTION = 0.5


@dataclass(frozen=True)
class ImageRecord:
    image_id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) x1 y1 x2 y2 in original pixels
    labels: np.ndarray  # (N,) class indices


@dataclass(frozen=True)
class CocoChannel:
    """A labelled channel: its records, class names, and the raw COCO dict for evaluation."""

    records: list[ImageRecord]
    classes: tuple[str, ...]
    coco: dict[str, Any]


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path.parent.name} channel: no {ANNOTATIONS} (COCO annotations) in {path.parent}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{path}: expected a COCO object with 'images', 'annotations' and 'categories'")
    return data


def _objects(coco: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """``coco[key]``: a list of JSON objects (absent: empty); :class:`DataError` naming the key."""
    items = coco.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DataError(f"{where}: '{key}' must be a list of objects, not {type(items).__name__}")
    return items


def load_coco_channel(channel: Path, classes: Sequence[str] = ()) -> CocoChannel:
    """Read and check a labelled channel; ``classes`` fixes the class order (default: category ids)."""
    coco = _load_json(channel / ANNOTATIONS)
    where = f"{channel.name}/{ANNOTATIONS}"
    try:
        categories = sorted(_objects(coco, "categories", where), key=lambda c: int(c["id"]))
        names = {int(c["id"]): str(c["name"]) for c in categories}
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{where}: every category needs an integer 'id' and a 'name'") from e
    class_names = tuple(classes) or tuple(names.values())
    if not class_names:
        raise DataError(f"{where}: no categories, and model.classes is empty")
    unknown = sorted(set(names.values()) - set(class_names))
    if unknown:
        raise DataError(f"{where}: categories {unknown} are not in model.classes {list(class_names)}")
    to_index = {cid: class_names.index(name) for cid, name in names.items()}
    per_image: dict[int, list[tuple[list[float], int]]] = {}
    for ann in _objects(coco, "annotations", where):
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            image_id, cid = int(ann["image_id"]), int(ann["category_id"])
            if not all(math.isfinite(v) for v in (x, y, w, h)):
                raise ValueError("bbox is not finite")
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise DataError(f"{where}: annotation {ann.get('id')!r} needs image_id, category_id, bbox") from e
        if cid not in to_index:
            raise DataError(f"{where}: annotation {ann.get('id')!r} has unknown category_id {cid}")
        if w > 0 and h > 0 and not ann.get("iscrowd", 0):
            per_image.setdefault(image_id, []).append(([x, y, x + w, y + h], to_index[cid]))
    records = []
    for img in _objects(coco, "images", where):
        try:
            image_id, name = int(img["id"]), str(img["file_name"])
            width, height = int(img["width"]), int(img["height"])
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise DataError(f"{where}: every image needs id, file_name, width and height") from e
        if width <= 0 or height <= 0:
            raise DataError(
                f"{where}: image {name!r} has width {width} and height {height}; both must be > 0"
            )
        path = _resolve(channel, name)
        objects = per_image.get(image_id, [])
        records.append(
            ImageRecord(
                image_id=image_id,
                path=path,
                width=width,
                height=height,
                boxes=np.array([o[0] for o in objects], dtype=np.float32).reshape(-1, 4),
                labels=np.array([o[1] for o in objects], dtype=np.int64),
            )
        )
    if not records:
        raise DataError(f"{where}: no images")
    return CocoChannel(records=records, classes=class_names, coco=coco)


def _resolve(channel: Path, name: str) -> Path:
    for candidate in (channel / name, channel / "images" / name):
        resolved = candidate.resolve()
        if resolved.is_file() and resolved.is_relative_to(channel.resolve()):
            return resolved
    raise DataError(f"{channel.name} channel: image {name!r} not found under {channel}")


def read_resized(path: Path, size: int) -> np.ndarray:
    """An image file as (size, size, 3) uint8 RGB; :class:`DataError` if it cannot be decoded."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when that is enough
            return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"cannot read image {path.name}: {e}") from e


def build_cache(paths: Sequence[Path], size: int) -> np.ndarray | None:
    """All images decoded and resized, (N, size, size, 3) uint8, or None when RAM is short."""
    needed = len(paths) * size * size * 3
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = needed * 2
    if needed > CACHE_RAM_FRACTION * available:
        log.warning(
            "image cache needs %.1f GB, more than half the free RAM; decoding per batch", needed / 1e9
        )
        return None
    cache = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def fill(i: int) -> None:
        cache[i] = read_resized(paths[i], size)

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(fill, range(len(paths))))
    return cache


class TrainSet(Dataset[dict[str, np.ndarray]]):
    """Keys are ``(record index, global sample position)``; the position seeds the augmentation."""

    def __init__(
        self,
        records: list[ImageRecord],
        *,
        num_classes: int,
        size: int,
        aug: AugmentSection,
        seed: int,
        cache: np.ndarray | None,
    ) -> None:
        self.records, self.num_classes, self.size = records, num_classes, size
        self.aug, self.seed, self.cache = aug, seed, cache

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, np.ndarray]:
        index, position = key
        record = self.records[index]
        image = self.cache[index] if self.cache is not None else read_resized(record.path, self.size)
        scale = np.array([self.size / record.width, self.size / record.height] * 2, dtype=np.float32)
        rng = np.random.default_rng([self.seed, position])
        image, boxes, labels = augment(image, record.boxes * scale, record.labels, self.aug, rng)
        sample = encode_targets(boxes, labels, self.num_classes, self.size)
        sample["image"] = image.transpose(2, 0, 1)
        return sample


class ResumableBatchSampler(Sampler[list[tuple[int, int]]]):
    """This rank's share of global batches ``start_iter .. max_iter``; epochs reshuffle by seed."""

    def __init__(
        self, n: int, global_batch: int, *, rank: int, world: int, seed: int, start_iter: int, max_iter: int
    ) -> None:
        self.n, self.global_batch, self.rank, self.seed = n, global_batch, rank, seed
        self.local_batch = global_batch // world
        self.start_iter, self.max_iter = start_iter, max_iter
        self._epoch, self._perm = -1, np.arange(n)

    def _index(self, position: int) -> int:
        epoch, k = divmod(position, self.n)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, 7, epoch]).permutation(self.n)
        return int(self._perm[k])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for it in range(self.start_iter, self.max_iter):
            first = it * self.global_batch + self.rank * self.local_batch
            yield [(self._index(p), p) for p in range(first, first + self.local_batch)]

    def __len__(self) -> int:
        return max(0, self.max_iter - self.start_iter)


def collate(samples: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.stack([s[key] for s in samples])) for key in samples[0]}


def _worker_init(_: int) -> None:
    # SIGTERM is for the training process: it stops the loader itself after saving a checkpoint.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)


def build_train_loader(
    channel: CocoChannel,
    config: RunConfig,
    *,
    rank: int,
    world: int,
    start_iter: int,
    pin_memory: bool,
) -> DataLoader[dict[str, np.ndarray]]:
    size = config.input.size
    cache = build_cache([r.path for r in channel.records], size) if config.dataloader.cache_images else None
    dataset = TrainSet(
        channel.records,
        num_classes=len(channel.classes),
        size=size,
        aug=config.augment,
        seed=config.solver.seed,
        cache=cache,
    )
    sampler = ResumableBatchSampler(
        len(dataset),
        config.solver.batch_size,
        rank=rank,
        world=world,
        seed=config.solver.seed,
        start_iter=start_iter,
        max_iter=config.solver.max_iter,
    )
    workers = config.dataloader.num_workers
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if workers else None,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )


class ImageSet(Dataset[dict[str, Any]]):
    """Test-time images: resized pixels plus what is needed to map boxes back (no augmentation)."""

    def __init__(self, paths: Sequence[Path], size: int, keys: Sequence[Any], tolerate_errors: bool) -> None:
        self.paths, self.size, self.keys, self.tolerate_errors = (
            list(paths),
            size,
            list(keys),
            tolerate_errors,
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path = self.paths[i]
        try:
            with Image.open(path) as img:
                width, height = img.size
                img.draft("RGB", (self.size, self.size))
                pixels = np.asarray(
                    img.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)
                )
            error = ""
        except (OSError, UnidentifiedImageError, ValueError) as e:
            if not self.tolerate_errors:
                raise DataError(f"cannot read image {path.name}: {e}") from e
            pixels, width, height, error = np.zeros((self.size, self.size, 3), np.uint8), 0, 0, str(e)
        return {
            "image": pixels.transpose(2, 0, 1),
            "key": self.keys[i],
            "width": width,
            "height": height,
            "error": error,
        }


def collate_images(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "image": torch.from_numpy(np.stack([s["image"] for s in samples])),
        "key": [s["key"] for s in samples],
        "width": [s["width"] for s in samples],
        "height": [s["height"] for s in samples],
        "error": [s["error"] for s in samples],
    }


def build_image_loader(
    paths: Sequence[Path],
    keys: Sequence[Any],
    size: int,
    batch_size: int,
    num_workers: int,
    *,
    pin_memory: bool,
    tolerate_errors: bool = False,
) -> DataLoader[dict[str, Any]]:
    return DataLoader(
        ImageSet(paths, size, keys, tolerate_errors),
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate_images,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if num_workers else None,
    )


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, in a stable order (hidden files skipped)."""
    found = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())
