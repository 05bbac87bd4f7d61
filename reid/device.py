"""Device, precision (autocast, gradient scaler, fused Adam) and seeds: decided here, once.

* ``pick_device``: CUDA when there is one, else the CPU (or what the caller prefers).
* ``resolve_precision``: everything a training run's numbers depend on besides the data — the
  autocast dtype (bfloat16 / float16 / none), whether a ``GradScaler`` is on (float16 only) and
  whether Adam takes the fused kernel — as one :class:`Precision`. ``resolve_amp`` is its dtype.
* The switches, for the whole process, without touching the code that trains:
  ``REID_PRECISION`` = ``auto`` (default) | ``float32`` | ``bfloat16`` | ``float16`` (the T4's
  choices: float16 autocast, a GradScaler and fused Adam, on whatever device runs) and
  ``REID_CPU_BF16`` = ``0`` | ``1`` (report this CPU without / with bfloat16 in hardware, which
  decides ``auto`` on a CPU). A config's own ``amp`` wins over ``REID_PRECISION``.
* ``cpu_has_bf16`` / ``cpu_name``: what the CPU is, for the choice and for every timing's label.
* ``autocast``: ``torch.autocast`` for a resolved dtype, a no-op for None.
* ``make_grad_scaler``, ``load_optimizer_state``: the scaler of a precision, and an optimiser
  state loaded into an optimiser of another kind (plain ↔ fused) without taking its flags.
* ``seed_everything``: python, numpy and torch seeds in one call.
* ``peak_memory``: the device's (or the process's) peak memory, for the line after each model.

Evaluation always runs in float32 (``EVAL_DTYPE``): it is cheap, and one precision for every
number of a model means a test-time-flip row differs from the plain row by the flip alone.
"""
from __future__ import annotations

import contextlib
import functools
import os
import random
import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["pick_device", "seed_everything", "cpu_has_bf16", "cpu_name", "machine_line", "Precision",
           "resolve_precision", "resolve_amp", "autocast", "make_grad_scaler", "load_optimizer_state",
           "PRECISION_ENV", "CPU_BF16_ENV", "EVAL_DTYPE", "peak_memory", "reset_peak_memory"]

PRECISION_ENV = "REID_PRECISION"
CPU_BF16_ENV = "REID_CPU_BF16"
EVAL_DTYPE: torch.dtype | None = None
"""The precision of every evaluation (features for Rank-k, mAP, the val loss, the figures and
pred.csv): None = float32, whatever the training ran in."""
_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


# ------------------------------------------------------------------------------- the CPU
def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Does this CPU multiply bfloat16 in hardware (x86 flags ``avx512_bf16`` or ``amx_bf16``)?

    There oneDNN runs the network's bfloat16 convolutions about twice as fast as float32
    (``bench/bench_train.py``); elsewhere it emulates bfloat16, slower than float32.
    ``cpuinfo``: the text of /proc/cpuinfo (None: this machine's, unless ``REID_CPU_BF16`` is set
    to 0 or 1, which reports it absent or present; no such file → False).
    """
    if cpuinfo is None:
        forced = os.environ.get(CPU_BF16_ENV, "").strip()
        if forced in ("0", "1"):
            return forced == "1"
        if forced:
            raise ValueError(f"{CPU_BF16_ENV}={forced!r}: expected 0 (report no bfloat16) or 1")
        return _cpu_has_bf16_here()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return bool({"avx512_bf16", "amx_bf16"} & set(line.partition(":")[2].split()))
    return False


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return ""


def _cpu_has_bf16_here() -> bool:
    return cpu_has_bf16(_cpuinfo())  # no /proc/cpuinfo (not Linux): stay in float32


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``model name`` in /proc/cpuinfo; else the platform's word for it)."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("model name"):
            return " ".join(line.partition(":")[2].split())
    import platform  # noqa: PLC0415
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_line(device: torch.device | str | None = None) -> str:
    """One line naming what the timings of this run come from: the GPU, or the CPU, its cores and
    whether it has bfloat16 in hardware (``REID_CPU_BF16`` shown when it overrides the flags)."""
    device = pick_device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"GPU: {torch.cuda.get_device_name(device)} (compute capability {major}.{minor})"
    forced = os.environ.get(CPU_BF16_ENV, "").strip()
    bf16 = "bfloat16 in hardware" if cpu_has_bf16() else "no bfloat16 in hardware"
    if forced in ("0", "1"):
        bf16 += f" (as {CPU_BF16_ENV}={forced} reports it)"
    return f"CPU: {cpu_name()}, {os.cpu_count()} cores, {bf16}"


# ------------------------------------------------------------------------------ precision
@dataclass(frozen=True)
class Precision:
    """How a training run computes: ``dtype`` of autocast (None = float32), ``scaler`` (a GradScaler,
    float16 only) and ``fused`` (Adam / AdamW's fused kernel: on CUDA, and with the T4's float16)."""

    dtype: torch.dtype | None
    scaler: bool
    fused: bool

    @property
    def name(self) -> str:
        return "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")

    def describe(self) -> str:
        """``float32`` / ``bfloat16 autocast`` / ``float16 autocast + GradScaler``, ``+ fused Adam``."""
        words = "float32" if self.dtype is None else f"{self.name} autocast"
        if self.scaler:
            words += " + GradScaler"
        return words + (" + fused Adam" if self.fused else "")


def _requested(amp: bool | str | None) -> bool | str | None:
    """The precision asked for: the config's ``amp``, else ``REID_PRECISION`` (None = auto)."""
    if amp is None:
        raw = os.environ.get(PRECISION_ENV, "").strip().lower()
        amp = None if raw in ("", "auto") else raw
    if isinstance(amp, str) and amp not in _DTYPES:
        source = f"{PRECISION_ENV}={amp!r}" if os.environ.get(PRECISION_ENV) else f"amp={amp!r}"
        raise ValueError(f"{source}: expected one of auto, {', '.join(_DTYPES)}")
    return amp


def resolve_precision(device: torch.device | str, amp: bool | str | None = None) -> Precision:
    """The precision a run on ``device`` trains in.

    ``amp``: None = ``REID_PRECISION``, else auto: on where it is fast — on CUDA (bfloat16 from
    compute capability 8.0, Ampere, on; float16 with a GradScaler before, e.g. Colab's T4) and on a
    CPU with bfloat16 in hardware (:func:`cpu_has_bf16`); float32 elsewhere. ``True``: the device's
    autocast dtype; ``False``: float32; ``"float32"`` / ``"bfloat16"`` / ``"float16"``: that one
    on any device (``"float16"`` with the T4's GradScaler and fused Adam, also on a CPU).
    """
    device = torch.device(device)
    amp = _requested(amp)
    if amp is None:
        amp = device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    if amp is True:
        pre_ampere = device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 0)
        dtype = torch.float16 if pre_ampere else torch.bfloat16  # pre-Ampere GPUs only emulate bfloat16
    else:
        dtype = None if amp is False else _DTYPES[amp]
    fp16 = dtype == torch.float16
    return Precision(dtype, scaler=fp16, fused=device.type == "cuda" or fp16)


def resolve_amp(device: torch.device | str, amp: bool | str | None) -> torch.dtype | None:
    """The autocast dtype of :func:`resolve_precision` (None = float32)."""
    return resolve_precision(device, amp).dtype


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast(device.type, dtype)``, or a no-op when ``dtype`` is None (float32)."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, amp_dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A GradScaler that is active only for float16 (bfloat16 has fp32's exponent range)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)


_OWN_FLAGS = ("fused", "foreach", "capturable", "differentiable")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, keeping the optimiser's own kernel flags.

    ``load_state_dict`` copies every saved param-group entry, ``fused`` and ``foreach`` included: a
    plain Adam's state (written on a CPU) loaded into the fused Adam of a T4 run left its groups
    saying ``fused=None`` while the optimiser still unscaled inside its step, and the GradScaler's
    step failed ("Expected grad_scale and found_inf to be None"). The saved groups get this
    optimiser's flags first, so the step tensors are also placed for its kernel (on the device for
    fused, on the host otherwise). The reverse, a fused state into a plain Adam, is handled alike.
    """
    own = {k: optimizer.defaults[k] for k in _OWN_FLAGS if k in optimizer.defaults}
    groups = [{**g, **own} for g in state["param_groups"]]
    optimizer.load_state_dict({**state, "param_groups": groups})


# -------------------------------------------------------------------------------- memory
def reset_peak_memory(device: torch.device | str) -> None:
    """Start a new peak for :func:`peak_memory` (CUDA; a process's peak RSS cannot be reset)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device | str) -> tuple[float, str]:
    """(bytes, what they are): CUDA's peak allocated memory since the last reset, or on a CPU the
    process's peak resident memory (RSS) since it started."""
    device = torch.device(device)
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device)), "peak GPU memory allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return float(rss if sys.platform == "darwin" else rss * 1024), "the process's peak resident memory"
