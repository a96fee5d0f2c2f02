"""The container's sections: detector, input, loading, solver, augmentation, checkpoints, eval, inference.

Names follow detectron2 (``model.depth``, ``solver.base_lr``, ``solver.max_iter``). Every section has
defaults, so ``job:`` alone is a complete config. No torch here: the launch Lambda imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from spotline.config.schema import Issue, setting

CLASS_NAME = r"[A-Za-z0-9][A-Za-z0-9_\-. ]{0,63}"
INPUT_STRIDE = 32


@dataclass(frozen=True, kw_only=True)
class ModelSection:
    """A CenterNet-style detector: residual backbone, FPN-lite neck, heatmap + size + offset heads."""

    classes: tuple[str, ...] = setting(
        default_factory=tuple,
        max_items=256,
        pattern=CLASS_NAME,
        expect="a class name (letters, digits, _ - . and spaces)",
        help="class names in order; empty = the categories of the train channel's annotations.json",
    )
    depth: int = setting(2, min=1, max=8, help="residual blocks per backbone stage (4 stages)")
    width: int = setting(32, min=4, max=256, help="channels of the first stage; doubled at each stage")
    head_width: int = setting(64, min=4, max=512, help="channels of the neck and of each head")
    max_detections: int = setting(100, min=1, max=1000, help="boxes kept per image at test time")
    score_threshold: float = setting(
        0.01, min=0.0, max=1.0, help="boxes under this score are dropped before evaluation"
    )

    def checks(self, path: str) -> list[Issue]:
        at = f"{path}." if path else ""
        if len(set(self.classes)) != len(self.classes):
            return [Issue(f"{at}classes", list(self.classes), "class names must be unique")]
        return []


@dataclass(frozen=True, kw_only=True)
class InputSection:
    size: int = setting(512, min=32, max=2048, help="images are resized to size x size (a multiple of 32)")

    def checks(self, path: str) -> list[Issue]:
        at = f"{path}." if path else ""
        if self.size % INPUT_STRIDE:
            return [Issue(f"{at}size", self.size, f"must be a multiple of {INPUT_STRIDE}")]
        return []


@dataclass(frozen=True, kw_only=True)
class DataLoaderSection:
    num_workers: int = setting(
        4, min=0, max=64, help="loader processes per GPU (0 = in the training process)"
    )
    cache_images: bool = setting(
        True, help="decode and resize every image once into memory (fast epochs; needs RAM)"
    )


@dataclass(frozen=True, kw_only=True)
class SolverSection:
    optimizer: Literal["adamw", "sgd"] = setting("adamw", help="adamw or sgd (with momentum)")
    batch_size: int = setting(32, min=1, max=4096, help="images per step over all GPUs of all hosts")
    base_lr: float = setting(0.001, min=1e-8, max=10.0, help="learning rate after warm-up")
    momentum: float = setting(0.9, min=0.0, max=0.999, help="sgd momentum")
    weight_decay: float = setting(1e-4, min=0.0, max=1.0, help="decoupled (adamw) or L2 (sgd) weight decay")
    max_iter: int = setting(10_000, min=1, max=10_000_000, help="training steps")
    warmup_iters: int = setting(500, min=0, max=10_000_000, help="steps of linear warm-up from warmup_factor")
    warmup_factor: float = setting(0.001, min=0.0, max=1.0, help="learning rate multiplier at step 0")
    steps: tuple[int, ...] = setting(
        default_factory=tuple,
        max_items=16,
        min=1,
        help="steps where the learning rate is multiplied by gamma",
    )
    gamma: float = setting(0.1, min=0.0, max=1.0, help="learning rate multiplier at each of steps")
    clip_grad_norm: float | None = setting(
        None, min=1e-6, help="clip the gradient norm to this (off if absent)"
    )
    amp: Literal["none", "bf16", "fp16"] = setting("none", help="mixed precision: none, bf16 or fp16")
    channels_last: bool = setting(False, help="NHWC memory format (faster convolutions with amp on GPUs)")
    compile: bool = setting(False, help="torch.compile the model (slower start, faster steps)")
    seed: int = setting(0, min=0, max=2**31 - 1, help="seeds weights, data order and augmentation")
    log_period: int = setting(20, min=1, max=100_000, help="print train/ metric lines every this many steps")

    def checks(self, path: str) -> list[Issue]:
        at = f"{path}." if path else ""
        issues = []
        if list(self.steps) != sorted(set(self.steps)):
            issues.append(Issue(f"{at}steps", list(self.steps), "must be increasing"))
        if self.steps and self.steps[-1] >= self.max_iter:
            issues.append(Issue(f"{at}steps", list(self.steps), f"must be below max_iter ({self.max_iter})"))
        if self.warmup_iters > self.max_iter:
            issues.append(
                Issue(f"{at}warmup_iters", self.warmup_iters, f"at most max_iter ({self.max_iter})")
            )
        return issues


@dataclass(frozen=True, kw_only=True)
class AugmentSection:
    hflip: float = setting(0.5, min=0.0, max=1.0, help="probability of a left-right flip")
    vflip: float = setting(0.5, min=0.0, max=1.0, help="probability of an up-down flip")
    brightness: float = setting(0.2, min=0.0, max=1.0, help="brightness jitter, a fraction of the range")
    contrast: float = setting(0.2, min=0.0, max=1.0, help="contrast jitter, a fraction")
    scale: tuple[float, ...] = setting(
        default_factory=lambda: (0.8, 1.2),
        min_items=2,
        max_items=2,
        min=0.25,
        max=4.0,
        help="[low, high] zoom range (1 = none); the zoomed image is cropped or padded back to input.size",
    )

    def checks(self, path: str) -> list[Issue]:
        at = f"{path}." if path else ""
        if len(self.scale) == 2 and self.scale[0] > self.scale[1]:
            return [Issue(f"{at}scale", list(self.scale), "expected [low, high] with low <= high")]
        return []


@dataclass(frozen=True, kw_only=True)
class CheckpointSection:
    period_iters: int = setting(1000, min=1, max=10_000_000, help="write a checkpoint every this many steps")
    period_minutes: float = setting(5.0, min=0.1, max=1440.0, help="and at least every this many minutes")
    keep: int = setting(3, min=1, max=100, help="checkpoints kept (older ones are deleted)")


@dataclass(frozen=True, kw_only=True)
class EvalSection:
    period_iters: int = setting(
        0,
        min=0,
        max=10_000_000,
        help="evaluate on the val channel every this many steps (0 = at the end only)",
    )
    batch_size: int = setting(32, min=1, max=4096, help="images per evaluation batch")


@dataclass(frozen=True, kw_only=True)
class InferenceSection:
    batch_size: int = setting(32, min=1, max=4096, help="images per inference batch (per GPU)")
    score_threshold: float = setting(0.3, min=0.0, max=1.0, help="detections under this score are dropped")
    shard_size: int = setting(
        512,
        min=1,
        max=1_000_000,
        help="images per shard; finished shards are not redone after an interruption",
    )
    amp: Literal["none", "bf16", "fp16"] = setting("fp16", help="mixed precision on GPUs (CPUs run float32)")
    num_workers: int = setting(4, min=0, max=64, help="image decoding processes")
