"""Mixed precision and memory format as config switches: autocast, the fp16 grad scaler, channels_last."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from spotline_toolkit.failures import UserError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_amp(amp: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run (bf16 needs Ampere or newer on CUDA)."""
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"solver.amp=bf16 is not supported by {torch.cuda.get_device_name(device)}; use fp16")


@contextlib.contextmanager
def autocast(amp: str, device: torch.device) -> Iterator[None]:
    """Run the forward pass in ``amp`` (none, bf16, fp16) on ``device``."""
    if amp == "none":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=DTYPES[amp]):
        yield


def grad_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler, active only for fp16 (bf16 has float32's range)."""
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")
