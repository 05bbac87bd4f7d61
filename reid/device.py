"""Device, mixed precision (AMP) and seeds: decided here, once, for training and evaluation.

* ``pick_device``: CUDA when there is one, else the CPU (or what the caller prefers).
* ``resolve_amp``: the autocast dtype for a device (bfloat16 / float16) or None (float32);
  ``cpu_has_bf16`` says whether a CPU runs bfloat16 in hardware.
* ``autocast``: ``torch.autocast`` for a resolved dtype, a no-op for None.
* ``make_grad_scaler``: active only for float16.
* ``seed_everything``: python, numpy and torch seeds in one call.
"""
from __future__ import annotations

import contextlib
import functools
import random
from pathlib import Path

import numpy as np
import torch

__all__ = ["pick_device", "seed_everything", "cpu_has_bf16", "resolve_amp", "autocast", "make_grad_scaler"]


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``prefer`` if given, else CUDA when available, else CPU."""
    if prefer is not None:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); ``deterministic`` also pins cuDNN."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Does this CPU multiply bfloat16 in hardware (x86 flags ``avx512_bf16`` or ``amx_bf16``)?

    There oneDNN runs the network's bfloat16 convolutions about twice as fast as float32
    (``bench/bench_train.py``); elsewhere it emulates bfloat16, slower than float32.
    ``cpuinfo``: the text of /proc/cpuinfo (read when None; no such file → False).
    """
    if cpuinfo is None:
        return _cpu_has_bf16_here()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return bool({"avx512_bf16", "amx_bf16"} & set(line.partition(":")[2].split()))
    return False


@functools.lru_cache(maxsize=1)
def _cpu_has_bf16_here() -> bool:
    try:
        return cpu_has_bf16(Path("/proc/cpuinfo").read_text())
    except OSError:  # not Linux: no cheap way to tell, so stay in float32
        return False


def resolve_amp(device: torch.device, amp: bool | None) -> torch.dtype | None:
    """Autocast dtype to use, or None for full fp32.

    ``amp=None`` means on where it is fast: on CUDA, and on a CPU with bfloat16 in hardware
    (:func:`cpu_has_bf16`). CUDA uses bfloat16 from compute capability 8.0 (Ampere) on, else
    float16 (which then needs a GradScaler); the CPU uses bfloat16 (``amp=True`` forces it).
    """
    if amp is None:
        amp = device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    if not amp:
        return None
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 0):
        return torch.float16  # pre-Ampere GPUs (e.g. Colab's T4) only emulate bfloat16
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast(device.type, dtype)``, or a no-op when ``dtype`` is None (float32)."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, amp_dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A GradScaler that is active only for float16 (bfloat16 has fp32's exponent range)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
