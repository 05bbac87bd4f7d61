"""Tests of reid/device.py: where bfloat16 autocast is on, and that it runs a training epoch."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import run
from reid import device as DV


ZEN4_FLAGS = "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
SKYLAKE_FLAGS = "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"


@pytest.mark.parametrize("cpuinfo, native", [
    ("processor\t: 0\n" + ZEN4_FLAGS, True),
    ("processor\t: 0\n" + SKYLAKE_FLAGS, False),                 # AVX-512 without BF16: emulated
    ("flags\t\t: fpu avx2 amx_bf16 amx_tile\n", True),            # Sapphire Rapids' AMX
    ("flags\t\t: fpu avx2 avx512_bf16x\n", False),                # whole words only
    ("processor\t: 0\nmodel name\t: some ARM core\n", False),   # no flags line
    ("", False),
])
def test_cpu_has_bf16_reads_the_flags_line(cpuinfo, native):
    assert DV.cpu_has_bf16(cpuinfo) is native


@pytest.mark.parametrize("native", [True, False])
def test_default_amp_follows_the_cpu(monkeypatch, native):
    monkeypatch.setattr(DV, "cpu_has_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert DV.resolve_amp(cpu, None) is (torch.bfloat16 if native else None)
    assert DV.resolve_amp(cpu, True) is torch.bfloat16 and DV.resolve_amp(cpu, False) is None
    assert DV.make_grad_scaler(cpu, DV.resolve_amp(cpu, None)).is_enabled() is False  # bfloat16 needs no scaler


def test_autocast_is_a_no_op_for_float32():
    with DV.autocast(torch.device("cpu"), None):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.float32


def test_cpu_bf16_autocast_path(data):
    device = torch.device("cpu")
    assert DV.resolve_amp(device, True) is torch.bfloat16
    with DV.autocast(device, DV.resolve_amp(device, True)):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.bfloat16
    h = run(data, "strong", amp=True, epochs=1)
    assert h.epochs_done == 1 and all(math.isfinite(v) for v in h.iter_loss)
