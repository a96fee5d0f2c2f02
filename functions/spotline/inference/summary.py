"""A batch's summary, computed one prediction line at a time in bounded memory.

What grows with the batch is only counted: images, detections per class (at most
:data:`MAX_CLASSES` names), the images with defects and the unreadable ones (the first
:data:`MAX_LISTED` of each are listed, the rest counted: every line stays in ``predictions.jsonl``),
and the images of parts that failed for good (listed the same way; all of them in
``missing.jsonl``). The worst findings, for the previews and for the report page, are top-K
heaps. Another list of names with reasons (files left out of a batch, say) is one more
:class:`CappedList`.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spotline.domain.plain import plain_fields

MAX_LISTED = 1_000
MAX_CLASSES = 1_000
OTHER_CLASSES = "(other)"


@dataclass
class CappedList:
    """The first ``cap`` items added, and how many there were in all."""

    cap: int = MAX_LISTED
    items: list[Any] = field(default_factory=list)
    total: int = 0

    def add(self, item: Any) -> None:
        self.total += 1
        if len(self.items) < self.cap:
            self.items.append(item)

    @property
    def not_listed(self) -> int:
        return self.total - len(self.items)


def worst_score(line: Mapping[str, Any]) -> float:
    """The highest detection score of a prediction line (0 without detections)."""
    scores = []
    for d in line.get("detections") or ():
        try:
            scores.append(float(d.get("score", 0.0)))
        except (AttributeError, TypeError, ValueError):
            continue
    return max((s for s in scores if not math.isnan(s)), default=0.0)


@dataclass(frozen=True)
class MissingPart:
    """A part of the close that failed for good: its images are not in the results."""

    part: int
    run_id: str
    status: str
    reason: str
    images: int
    manifest: str


class WorstLines:
    """The ``kept`` lines with the highest-scoring detections seen so far, ties in the order added."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._heap: list[tuple[float, int, dict[str, Any]]] = []

    def add(self, line: Mapping[str, Any], order: int) -> None:
        # The heap's smallest is the lowest score, latest added: the first to go.
        if self.kept <= 0:
            return
        entry = (worst_score(line), -order, dict(line))
        if len(self._heap) < self.kept:
            heapq.heappush(self._heap, entry)
        elif entry[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, entry)

    def lines(self) -> list[dict[str, Any]]:
        """Worst first."""
        return [line for _, _, line in sorted(self._heap, key=lambda e: e[:2], reverse=True)]


class BatchSummary:
    """Counts over a close's prediction lines, fed one line at a time."""

    def __init__(
        self,
        classes: Iterable[str] = (),
        *,
        worst_kept: int,
        previewable: Callable[[str], bool],
        findings_kept: int = 0,
    ) -> None:
        self.per_class: Counter[str] = Counter({c: 0 for c in list(classes)[:MAX_CLASSES]})
        self.images = 0
        self.detections = 0
        self.defect_images = CappedList()
        self.unreadable = CappedList()
        self.missing = CappedList()
        self.missing_parts: list[MissingPart] = []
        self.previewable = previewable
        self._worst = WorstLines(worst_kept)  # previewable images only: what the preview search reads
        self._findings = WorstLines(findings_kept)  # any image: what the report page lists

    def add(self, line: Mapping[str, Any]) -> None:
        """One prediction line of the container's ``predictions.jsonl``."""
        self.images += 1
        image = str(line.get("image"))
        if "error" in line:
            self.unreadable.add(image)
            return
        detections = line.get("detections")
        if not isinstance(detections, list) or not detections:
            return
        self.defect_images.add(image)
        for d in detections:
            name = str(d.get("class")) if isinstance(d, Mapping) else OTHER_CLASSES
            if name not in self.per_class and len(self.per_class) >= MAX_CLASSES:
                name = OTHER_CLASSES
            self.per_class[name] += 1
            self.detections += 1
        self._findings.add(line, self.images)
        if self.previewable(image):
            self._worst.add(line, self.images)

    def add_missing_part(self, part: MissingPart, images: Iterable[str]) -> None:
        self.missing_parts.append(part)
        for image in images:
            self.missing.add(image)

    def worst(self) -> list[dict[str, Any]]:
        """The previewable lines with the highest-scoring detections, worst first (``worst_kept``)."""
        return self._worst.lines()

    def findings(self) -> list[dict[str, Any]]:
        """The lines with the highest-scoring detections, worst first (``findings_kept``)."""
        return self._findings.lines()

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "images_with_defects": self.defect_images.total,
            "unreadable_images": self.unreadable.total,
            "missing_images": self.missing.total,
            "detections": self.detections,
            "detections_per_class": dict(self.per_class),
            "defect_images": list(self.defect_images.items),
            "defect_images_not_listed": self.defect_images.not_listed,
            "unreadable": list(self.unreadable.items),
            "unreadable_not_listed": self.unreadable.not_listed,
            "missing": list(self.missing.items),
            "missing_not_listed": self.missing.not_listed,
            "missing_parts": [plain_fields(p) for p in self.missing_parts],
        }
