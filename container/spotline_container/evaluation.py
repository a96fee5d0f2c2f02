"""COCO evaluation (mAP@0.5 and mAP@[.5:.95]) through faster-coco-eval, never hand-written AP."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import torch
from faster_coco_eval import COCO, COCOeval_faster
from torch import nn

from spotline.config import RunConfig
from spotline_container.data import CocoChannel, build_image_loader
from spotline_container.model import normalize
from spotline_container.postprocess import decode, to_original
from spotline_container.precision import autocast

log = logging.getLogger(__name__)


def coco_map(ground_truth: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, float]:
    """``{"mAP50": ..., "mAP": ...}`` of ``results`` (COCO detection results) against ``ground_truth``."""
    if not results:
        return {"mAP50": 0.0, "mAP": 0.0}
    gt = copy.deepcopy(ground_truth)
    for ann in gt.get("annotations", []):
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
    coco_gt = COCO(gt)
    coco_dt = coco_gt.loadRes(results)
    evaluator = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=log.debug)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return {"mAP50": float(max(evaluator.stats[1], 0.0)), "mAP": float(max(evaluator.stats[0], 0.0))}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    channel: CocoChannel,
    config: RunConfig,
    device: torch.device,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, float] | None:
    """mAP of ``model`` on a labelled channel; None if ``should_stop`` turned true on the way."""
    size = config.input.size
    name_to_id = {c["name"]: int(c["id"]) for c in channel.coco.get("categories", [])}
    category_ids = [name_to_id.get(name, -1) for name in channel.classes]
    loader = build_image_loader(
        [r.path for r in channel.records],
        [r.image_id for r in channel.records],
        size,
        config.eval.batch_size,
        min(2, config.dataloader.num_workers),
        pin_memory=device.type == "cuda",
    )
    was_training = model.training
    model.eval()
    results: list[dict[str, Any]] = []
    try:
        for batch in loader:
            if should_stop():
                return None
            images = normalize(batch["image"].to(device, non_blocking=True), config.solver.channels_last)
            with autocast(config.solver.amp, device):
                outputs = model(images)
            dets = decode(outputs, config.model.max_detections)
            for i, image_id in enumerate(batch["key"]):
                keep = dets.scores[i] >= config.model.score_threshold
                boxes = to_original(dets.boxes[i][keep], size, batch["width"][i], batch["height"][i]).cpu()
                for box, score, cls in zip(
                    boxes.tolist(), dets.scores[i][keep].tolist(), dets.classes[i][keep].tolist(), strict=True
                ):
                    x1, y1, x2, y2 = box
                    results.append(
                        {
                            "image_id": image_id,
                            "category_id": category_ids[cls],
                            "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": score,
                        }
                    )
    finally:
        model.train(was_training)
    return coco_map(channel.coco, results)
