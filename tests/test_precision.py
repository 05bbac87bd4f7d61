"""The GPU's precisions and optimisers, executed on the CPU: float32 with plain Adam, bfloat16 autocast
(an A100 / L4) and float16 autocast with a GradScaler and fused Adam (a T4), each forced with the
precision switch (``TrainConfig.amp`` / ``REID_PRECISION``, reid/device.py). Every test names its
precision. Tiny models and data: the whole matrix stays within seconds, also where a CPU only emulates
float16 and bfloat16."""
from __future__ import annotations

import dataclasses
import math
import os
import sys

import pytest
import torch

from conftest import CONFIGS, TinyBackbone, run, tiny_model
from reid import device as DV
from reid.checkpoints import load_checkpoint
from reid.evaluate import MirroredSource, extract_features, retrieve
from reid.model import BNNeckNet, ReIDNet
from reid.predict import write_predictions
from reid.recipes import build_run, train_step

PRECISIONS = ("float32", "bfloat16", "float16")
DTYPE = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
ONE_STEP = dict(max_iters_per_epoch=1)


# ------------------------------------------------------------------------ the switch, in one place
@pytest.mark.parametrize("name", PRECISIONS)
def test_the_switch_sets_dtype_scaler_and_fused_adam_together(data, name):
    p = DV.resolve_precision("cpu", name)
    assert p.dtype is DTYPE[name] and p.name == name
    assert p.scaler is (name == "float16") and p.fused is (name == "float16")  # the T4's three choices
    run_ = build_run(tiny_model(), dataclasses.replace(CONFIGS["id"], amp=name), data["id"])
    assert run_.precision == p and run_.scaler.is_enabled() is p.scaler
    assert all(g["fused"] is (True if p.fused else None) for g in run_.optimizer.param_groups)


def test_the_environment_switch_forces_the_t4s_choices_without_touching_the_code(monkeypatch):
    monkeypatch.setenv(DV.PRECISION_ENV, "float16")
    assert DV.resolve_precision("cpu", None) == DV.Precision(torch.float16, scaler=True, fused=True)
    assert DV.resolve_precision("cpu", False).dtype is None  # a config's own amp wins
    monkeypatch.setenv(DV.PRECISION_ENV, "auto")
    monkeypatch.setenv(DV.CPU_BF16_ENV, "0")               # "no bfloat16" reported on any CPU
    assert DV.resolve_precision("cpu", None) == DV.Precision(None, scaler=False, fused=False)
    monkeypatch.setenv(DV.CPU_BF16_ENV, "1")
    assert DV.resolve_precision("cpu", None).dtype is torch.bfloat16
    monkeypatch.setenv(DV.PRECISION_ENV, "half")
    with pytest.raises(ValueError, match="REID_PRECISION='half': expected one of auto, float32, bfloat16, float16"):
        DV.resolve_precision("cpu", None)


# --------------------------------------------------------------------- the resume crash, and the fix
def _fused_adam_with_a_plain_state():
    model = torch.nn.Linear(4, 2)
    plain = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(3, 4)).sum().backward()
    plain.step()
    return model, plain.state_dict(), torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)


def _scaled_step(model, optimizer) -> None:
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, enabled=True)  # 2**16 overflows this tiny net
    with torch.autocast("cpu", dtype=torch.float16):
        loss = model(torch.randn(3, 4)).float().sum()
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


@pytest.mark.reliability
def test_a_plain_adam_state_in_a_fused_adam_fails_in_torch_and_not_here():
    """The crash a student met (a CPU run resumed on a T4): load_state_dict takes the saved group's
    ``fused=None`` and the GradScaler's step then fails. load_optimizer_state keeps the optimiser's flags."""
    model, state, fused = _fused_adam_with_a_plain_state()
    fused.load_state_dict(state)
    with pytest.raises(AssertionError, match="Expected grad_scale and found_inf to be None"):
        _scaled_step(model, fused)
    model, state, fused = _fused_adam_with_a_plain_state()
    DV.load_optimizer_state(fused, state)
    assert fused.param_groups[0]["fused"] is True
    _scaled_step(model, fused)
    assert int(fused.state[model.weight]["step"]) == 2  # the saved step went on


@pytest.mark.reliability
@pytest.mark.parametrize("recipe", ["id", "strong"])
@pytest.mark.parametrize("written", PRECISIONS)
@pytest.mark.parametrize("resumed", PRECISIONS)
def test_a_checkpoint_of_each_precision_resumes_in_each(data, tmp_path, recipe, written, resumed):
    """{float32 plain Adam, bfloat16 plain Adam, float16 + GradScaler + fused Adam} written, resumed in
    each of the three (both directions): one step each, no error, the epoch count goes on."""
    first = run(data, recipe, tmp_path, amp=written, epochs=1, **ONE_STEP)
    assert first.epochs_done == 1
    saved = load_checkpoint(tmp_path / "last.pt")
    assert all(g["fused"] is (True if written == "float16" else None) for g in saved["optimizer"]["param_groups"])
    model = tiny_model("bnneck" if recipe == "strong" else "reid", seed=9)
    h = run(data, recipe, tmp_path, model=model, amp=resumed, epochs=2, resume=True, **ONE_STEP)
    assert h.epochs_done == 2 and len(h.iter_loss) == 2 and all(math.isfinite(v) for v in h.iter_loss)
    state = load_checkpoint(tmp_path / "last.pt")
    assert all(g["fused"] is (True if resumed == "float16" else None) for g in state["optimizer"]["param_groups"])
    assert (state["scaler"] != {}) is (resumed == "float16")


# ------------------------------------------------------------ the training paths in each precision
@pytest.mark.parametrize("name", PRECISIONS)
def test_train_validate_keep_resume_predict_and_rerank_in_each_precision(data, tmp_path, layout, name):
    """Every path a run takes, in one precision: the three recipes' steps, validation, the kept epoch,
    a resume, predictions and re-ranking; each loss and metric finite (a float16 overflow shows here)."""
    for recipe in ("id", "triplet_listed", "strong"):
        h = run(data, recipe, tmp_path / recipe, amp=name, epochs=1, max_iters_per_epoch=2)
        h = run(data, recipe, tmp_path / recipe, amp=name, epochs=2, max_iters_per_epoch=2, resume=True)
        assert h.epochs_done == 2 and h.kept_epoch in (1, 2), recipe
        values = {"loss": h.iter_loss, "val loss": h.val_loss, "Rank-1": h.rank1, "mAP": h.mAP}
        for what, numbers in values.items():
            assert all(v is not None and math.isfinite(v) for v in numbers), f"{name} {recipe}: {what} {numbers}"
        if recipe == "triplet_listed":
            assert all(0.0 <= s <= 1.0 for s in h.active_triplets), h.active_triplets
    model = tiny_model(seed=1)
    run(data, "id", model=model, amp=name, epochs=1, max_iters_per_epoch=2)
    ret = retrieve(model, data["val"])
    reranked = ret.rerank().metrics()
    assert all(math.isfinite(v) for v in (*ret.metrics().values(), *reranked.values())), name
    written = write_predictions(model, layout)
    assert written.read_text().count(",test/gallery/") == 2, name


@pytest.mark.reliability
def test_a_float16_overflow_is_reported_as_such(data):
    """Features beyond float16's 65,504 overflow to inf under float16 autocast: the non-finite check
    fires, names the precision, and says how to train without it."""

    class Loud(TinyBackbone):
        def forward(self, x):
            return super().forward(x) * 1e6

    model = ReIDNet(Loud(), num_ids=8)
    torch.nn.init.constant_(model.fc_block1.fc.weight, 1e3)  # the head multiplies the loud feature further
    with pytest.raises(FloatingPointError, match=r"float16 autocast \+ GradScaler \+ fused Adam.*REID_PRECISION"):
        run(data, "id", model=model, amp="float16", epochs=1)
    h = run(data, "id", model=ReIDNet(Loud(), num_ids=8), amp="float32", epochs=1)   # float32 holds it
    assert all(math.isfinite(v) for v in h.iter_loss)


# -------------------------------------------------------------- one precision for a model's numbers
@pytest.mark.parametrize("name", PRECISIONS)
def test_validation_and_every_later_measurement_share_one_precision(data, name):
    """A model trained in any precision is validated in float32, as retrieve() measures it afterwards:
    the kept epoch's validation equals a later measurement, and the flip row differs from the plain row
    by the flip alone (its features are the mean of the plain and the mirrored ones)."""
    model = tiny_model("bnneck", seed=2)
    h = run(data, "strong", model=model, amp=name, epochs=1, max_iters_per_epoch=2)
    again = retrieve(model, data["val"], flip=True, metric="cosine")
    assert torch.allclose(h.kept_retrieval.query, again.query, atol=1e-5)  # float32 both: batch order only
    assert h.kept_retrieval.metrics() == again.metrics()
    plain = retrieve(model, data["val"], flip=False, metric="cosine")
    mirror = extract_features(model, MirroredSource(data["val"].queries))
    assert torch.allclose(again.query, (plain.query + mirror) / 2, atol=1e-6)


# ----------------------------------------------------------------------- no host sync in a step
class _Syncs:
    """Counts the calls that make a CUDA step wait on the host (even where they are no-ops on a CPU): every
    .item / .tolist / .cpu / nonzero / bool / float / int / numpy, and each Tensor.to(device) that the
    project's code makes (on a CPU every tensor is on the host; torch's own .to calls inside the GradScaler
    and fused Adam move device tensors between devices, which on CUDA are no host copies)."""

    NAMES = ("item", "tolist", "cpu", "nonzero", "__bool__", "__float__", "__int__", "numpy")

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        for name in self.NAMES:
            self._wrap(monkeypatch, torch.Tensor, name)
        real_nonzero = torch.nonzero

        def nonzero(*a, **k):
            self.calls.append("torch.nonzero")
            return real_nonzero(*a, **k)

        monkeypatch.setattr(torch, "nonzero", nonzero)
        real_to = torch.Tensor.to

        def to(t, *a, **k):
            named = "device" in k or any(isinstance(v, (torch.device, str)) for v in a)
            ours = f"{os.sep}reid{os.sep}" in sys._getframe(1).f_code.co_filename
            if named and ours:
                self.calls.append("Tensor.to(device) from the host")
            return real_to(t, *a, **k)

        monkeypatch.setattr(torch.Tensor, "to", to)

    def _wrap(self, monkeypatch, owner, name):
        real = getattr(owner, name)

        def counted(*a, **k):
            self.calls.append(name)
            return real(*a, **k)

        monkeypatch.setattr(owner, name, counted)


@pytest.mark.parametrize("recipe, overrides", [
    ("id", {}), ("triplet_listed", {}), ("strong", {"erase": True}), ("triplet", {})],
    ids=["id", "triplet", "strong-with-erasing", "batch-all"])
def test_a_training_step_never_waits_on_the_host(data, monkeypatch, recipe, overrides):
    """The T4's path (float16 + GradScaler + fused Adam) and the data side of every recipe: inside the
    steps of an epoch no .item / .tolist / .cpu / nonzero / bool / float / int, and no Tensor.to(device)
    of a host tensor. The epoch's plan (batches and augmentation draws) is made before the steps."""
    cfg = dataclasses.replace(CONFIGS[recipe], amp="float16", **overrides)
    model = tiny_model("bnneck" if recipe == "strong" else "reid")
    train_set = data["triplet" if recipe.startswith("triplet") else "id"]
    run_ = build_run(model, cfg, train_set)
    plan = run_.recipe.plan(run_.iters_per_epoch())
    syncs = _Syncs(monkeypatch)
    for step in range(plan.steps):
        train_step(run_, plan, step)
    monkeypatch.undo()
    assert syncs.calls == [], f"{recipe}: {syncs.calls}"


def test_the_sync_counter_sees_a_sync(monkeypatch):
    from reid.images import ImageCache

    syncs = _Syncs(monkeypatch)
    x = torch.ones(2)
    x.sum().item()
    bool(x.any())
    x.to("cpu")                                                          # not the project's code: not counted
    ImageCache(["a.jpg"], torch.zeros(1, 3, 2, 2)).batch(torch.zeros(1, dtype=torch.long))  # the project's .to
    monkeypatch.undo()
    assert syncs.calls == ["item", "__bool__", "Tensor.to(device) from the host"]


def test_bnneck_model_runs_in_float16_autocast(data):
    model = BNNeckNet(TinyBackbone(), num_ids=8)
    h = run(data, "strong", model=model, amp="float16", epochs=1, max_iters_per_epoch=1)
    assert math.isfinite(h.iter_loss[0])
