"""Tests of reid/train.py on a tiny synthetic layout and a tiny backbone (CPU, seconds)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from make_data import build_synthetic
from reid.data import IDLossDataset, RetrievalDataset, TripletDataset
from reid.model import BNNeckNet, ReIDNet
from reid import train as T
from reid.train import (CheckpointError, History, PKSampler, TrainConfig, batch_hard_triplet_loss,
                        load_checkpoint, random_erasing, random_flip, random_shift, train_model, warmup_cosine)

TIMING = ("epoch_seconds", "elapsed_seconds")


class TinyBackbone(nn.Module):
    """[N, 3, 128, 128] -> [N, 8]: one strided conv, ReLU, global average pool."""

    def __init__(self, nan_at: int | None = None, interrupt_at: int | None = None):
        super().__init__()
        self.out_dim = 8
        self.conv = nn.Conv2d(3, 8, kernel_size=8, stride=8)
        self.calls, self.nan_at, self.interrupt_at = 0, nan_at, interrupt_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls == self.interrupt_at:
                raise KeyboardInterrupt
        y = torch.relu(self.conv(x)).mean(dim=(2, 3))  # [N, 8]
        if self.training and self.calls == self.nan_at:
            y = y * float("nan")
        return y


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = build_synthetic(tmp_path_factory.mktemp("syn") / "d", seed=0, train_ids=8, val_ids=5,
                           test_ids=5, per_id=4)
    return {"id": IDLossDataset(root / "train_idloss.csv", root),
            "triplet": TripletDataset(root / "train_random_triplet.csv", root).label_from(
                IDLossDataset(root / "train_idloss.csv", root)),
            "val": RetrievalDataset(root, "val"),
            "val_idloss": IDLossDataset(root / "val_idloss.csv", root)}


def tiny_model(head: str = "reid", seed: int = 0, **backbone_kw) -> nn.Module:
    torch.manual_seed(seed)
    cls = BNNeckNet if head == "bnneck" else ReIDNet
    return cls(TinyBackbone(**backbone_kw), num_ids=8)


# amp=False: exact comparisons with float32 references hold on every CPU (the default turns
# bfloat16 on where the CPU has it in hardware); test_cpu_bf16_autocast_path covers bfloat16.
CONFIGS = {
    "id": TrainConfig.handout_id(epochs=2, batch_size=8, amp=False),
    "triplet": TrainConfig.handout_triplet(epochs=2, p=4, k=2, amp=False),                    # batch-all
    "triplet_listed": TrainConfig.handout_triplet(epochs=2, mining="none", batch_size=4, amp=False),
    "triplet_hard": TrainConfig.handout_triplet(epochs=2, mining="batch_hard", p=4, k=2, amp=False),
    "strong": TrainConfig.strong(epochs=2, p=4, k=2, warmup_epochs=1, amp=False),
}


def run(data: dict, recipe: str, ckpt: Path | None = None, model: nn.Module | None = None,
        resume: bool = False, progress: bool = False, **overrides) -> History:
    cfg = dataclasses.replace(CONFIGS[recipe], **overrides)
    train_set = data["triplet" if recipe.startswith("triplet") else "id"]
    model = model if model is not None else tiny_model("bnneck" if recipe == "strong" else "reid")
    return train_model(model, cfg, train_set, data["val"], data["val_idloss"],
                       checkpoint_dir=ckpt, resume=resume, progress=progress)


def without_timing(h: History) -> dict:
    return {k: v for k, v in h.to_dict().items() if k not in TIMING}


# ---------------------------------------------------------------------------------- losses
def batch_hard_loop(feats: torch.Tensor, ids: torch.Tensor, margin: float) -> torch.Tensor:
    total = 0.0
    for i in range(len(feats)):
        pos = [torch.dist(feats[i], feats[j]) for j in range(len(feats)) if ids[j] == ids[i]]
        neg = [torch.dist(feats[i], feats[j]) for j in range(len(feats)) if ids[j] != ids[i]]
        total += max(0.0, float(max(pos) - min(neg)) + margin)
    return torch.tensor(total / len(feats))


def test_batch_hard_matches_loop():
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(12, 5, generator=g)
    ids = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    for margin in (0.0, 0.3, 1.0):
        assert batch_hard_triplet_loss(feats, ids, margin).item() == pytest.approx(
            batch_hard_loop(feats, ids, margin).item(), abs=1e-5)


def test_batch_hard_by_hand_and_finite_gradient():
    # 1-d features: id 0 at 0 and 1, id 1 at 3. Anchor 0: pos 1, neg 3 -> max(0, 1-3+m).
    feats = torch.tensor([[0.0], [1.0], [3.0], [3.0]], requires_grad=True)
    ids = torch.tensor([0, 0, 1, 1])
    # anchors: 0 -> 1-3, 1 -> 1-2, 2 -> 0-2, 3 -> 0-2; margin 1.5 -> 0, .5, 0, 0
    loss = batch_hard_triplet_loss(feats, ids, margin=1.5)
    assert loss.item() == pytest.approx(0.5 / 4, abs=1e-5)
    loss.backward()  # identical features (distance 0) must not give NaN gradients
    assert torch.isfinite(feats.grad).all()


def test_handout_triplet_loss_is_torch_triplet_margin_loss():
    a, p, n = torch.rand(3, 6, 4).unbind(0)
    ref = nn.TripletMarginLoss(margin=T.HANDOUT_MARGIN)(a, p, n)
    assert T.handout_triplet_loss(a, p, n).item() == pytest.approx(ref.item(), abs=1e-6)


def test_mined_negatives_by_hand():
    # 1-d features, B = 2 listed triplets as [anchors; positives; negatives]:
    # anchors 0 (id 0), 10 (id 1); positives 1 (id 0), 10.5 (id 1); negatives 20 (id 2), 9 (id 3).
    feats = torch.tensor([[0.0], [10.0], [1.0], [10.5], [20.0], [9.0]], requires_grad=True)
    ids = torch.tensor([0, 1, 0, 1, 2, 3])
    # anchor 0: other ids at 10, 10.5, 20, 9 -> nearest 9: max(0, 1 - 9 + 10) = 2
    # anchor 10: other ids at 0, 1, 20, 9 -> nearest 9: max(0, 0.5 - 1 + 10) = 9.5
    loss = T.mined_triplet_loss(feats, ids, margin=10.0)
    assert loss.item() == pytest.approx((2 + 9.5) / 2, abs=1e-4)
    # the listed negatives: anchor 0 -> 20 gives 0; anchor 10 -> 9 gives 9.5
    listed = T.handout_triplet_loss(feats[:2], feats[2:4], feats[4:], margin=10.0)
    assert listed.item() == pytest.approx(9.5 / 2, abs=1e-4)
    loss.backward()
    grad = feats.grad[:, 0]
    assert torch.isfinite(grad).all() and grad[1].item() == pytest.approx(-1.0, abs=1e-4)  # (-1 - 1) / 2
    assert grad[4].item() == 0  # the listed negative at 20 is nobody's nearest: it gets no gradient


def test_mined_hardest_positives_by_hand():
    # 1-d features, B = 2 listed triplets [anchors; positives; negatives] with ids
    # anchors 0 (id 0), 10 (id 1); positives 1 (id 0), 10.5 (id 1); negatives 4 (id 0), 9 (id 3).
    # The listed negative 4 of anchor 10 shares anchor 0's identity: it is anchor 0's farthest
    # positive (4 > 1) and, for anchor 10, an other-id image at distance 6.
    feats = torch.tensor([[0.0], [10.0], [1.0], [10.5], [4.0], [9.0]], requires_grad=True)
    ids = torch.tensor([0, 1, 0, 1, 0, 3])
    # anchor 0: hardest positive 4, nearest negative 9 -> max(0, 4 - 9 + 10) = 5
    # anchor 10: hardest positive 10.5 (0.5 away), nearest negative 9 -> max(0, 0.5 - 1 + 10) = 9.5
    loss = T.mined_triplet_loss(feats, ids, margin=10.0, hardest_positive=True)
    assert loss.item() == pytest.approx((5 + 9.5) / 2, abs=1e-4)
    # listed positives: anchor 0 -> 1 gives max(0, 1 - 9 + 10) = 2
    assert T.mined_triplet_loss(feats, ids, margin=10.0).item() == pytest.approx((2 + 9.5) / 2, abs=1e-4)
    loss.backward()
    assert feats.grad[2, 0].item() == 0  # anchor 0's listed positive (1) was not its hardest: no gradient
    assert feats.grad[4, 0].item() == pytest.approx(0.5, abs=1e-4)  # d(d(0, 4))/dx / 2: descent pulls 4 in


def test_batch_all_by_hand_and_against_a_loop():
    # 1-d, B = 1 listed triplet [anchor 0 (id 0); positive 1 (id 0); negative 3 (id 1)], margin 2:
    # one triplet: max(0, 1 - 3 + 2) = 0 -> nothing violates, the loss is 0 (with a gradient path)
    feats = torch.tensor([[0.0], [1.0], [3.0]], requires_grad=True)
    loss = T.batch_all_triplet_loss(feats, torch.tensor([0, 0, 1]), margin=2.0)
    assert loss.item() == 0 and loss.requires_grad
    # margin 3: 1 - 3 + 3 = 1
    assert T.batch_all_triplet_loss(feats, torch.tensor([0, 0, 1]), margin=3.0).item() == pytest.approx(1.0)
    # A random batch of 3 listed triplets: the mean of nn.TripletMarginLoss over the violating
    # (listed anchor, other same-id image, other-id image) triplets, by a plain loop.
    torch.manual_seed(0)
    feats, ids = torch.randn(9, 4), torch.tensor([0, 1, 2, 0, 1, 2, 1, 0, 3])
    ref = nn.TripletMarginLoss(margin=1.0)
    values = [ref(feats[a:a + 1], feats[p:p + 1], feats[n:n + 1]).item()
              for a in range(3) for p in range(9) for n in range(9)
              if p != a and ids[p] == ids[a] and ids[n] != ids[a]]
    active = [v for v in values if v > 0]
    assert len(values) == 31 and 0 < len(active) < 31  # some triplets are easy, some are not
    assert T.batch_all_triplet_loss(feats, ids, 1.0).item() == pytest.approx(sum(active) / len(active), abs=1e-5)


def test_batch_hard_mining_draws_p_ids_by_k_rows(data):
    labelled = data["triplet"]
    cfg = dataclasses.replace(CONFIGS["triplet"], mining="batch_hard", p=3, k=2)
    run_ = T.build_run(tiny_model("reid"), cfg, labelled)
    anchor_ids = labelled.ids[labelled.triplets[:, 0]]  # [T]
    batches = run_.recipe.plan()
    assert len(batches) == run_.iters_per_epoch() == len(T.PKSampler(anchor_ids, 3, 2)) > 0
    for idx in batches:
        assert len(idx) == 6 and len(set(idx.tolist())) == 6
        counts = torch.bincount(anchor_ids[idx]).tolist()
        assert sorted(c for c in counts if c) == [2, 2, 2]  # 3 anchor identities, 2 rows each
    h = train_model(tiny_model("reid"), cfg, labelled, data["val"], data["val_idloss"])
    assert len(h.rank1) == 2 and all(math.isfinite(x) for x in h.iter_loss)


@pytest.mark.reliability
def test_mined_negatives_need_identities(data):
    cfg = dataclasses.replace(CONFIGS["triplet"], mining="negative")
    bare = TripletDataset.__new__(TripletDataset)
    bare.__dict__.update({k: v for k, v in data["triplet"].__dict__.items() if k != "ids"}, ids=None)
    with pytest.raises(ValueError, match="label_from"):
        T.build_run(tiny_model("reid"), cfg, bare)
    with pytest.raises(ValueError, match="TrainConfig.mining.*'hardest'"):
        T.build_run(tiny_model("reid"), dataclasses.replace(cfg, mining="hardest"), data["triplet"])


def test_training_with_mined_negatives(data):
    labelled = data["triplet"]
    cfg = dataclasses.replace(CONFIGS["triplet_listed"], mining="negative")
    h = train_model(tiny_model("reid"), cfg, labelled, data["val"], data["val_idloss"])
    assert len(h.rank1) == 2 and all(math.isfinite(x) for x in h.iter_loss)
    listed = train_model(tiny_model("reid"), CONFIGS["triplet_listed"], labelled, data["val"], data["val_idloss"])
    assert h.iter_loss[0] >= listed.iter_loss[0] - 1e-6  # same first batch, a negative at least as hard


# ------------------------------------------------------------------------ sampling, augmentation
def test_pk_sampler_gives_p_ids_times_k_images():
    ids = torch.tensor([i for i in range(6) for _ in range(5)] + [6, 6, 7])  # ids 6, 7 are short
    sampler = PKSampler(ids, p=4, k=2, generator=torch.Generator().manual_seed(0))
    batches = list(sampler)
    # chunks of K=2: ids 0-5 two each, id 6 one, id 7 one (topped up): 14 -> 14 // 4 = 3 batches
    assert len(batches) == len(sampler) == 3
    for b in batches:
        assert b.shape == (8,)
        counts = torch.bincount(ids[b], minlength=8)
        assert sorted(counts[counts > 0].tolist()) == [2, 2, 2, 2]
    again = list(PKSampler(ids, p=4, k=2, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(x, y) for x, y in zip(batches, again))


def test_shuffled_batches_cover_without_repeats():
    bs = T.shuffled_batches(10, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in bs] == [4, 4]
    assert len(torch.cat(bs).unique()) == 8
    assert [len(b) for b in T.shuffled_batches(3, 4, torch.Generator())] == [3]


def test_random_flip_flips_chosen_images():
    x = torch.arange(2 * 1 * 1 * 3, dtype=torch.float).view(2, 1, 1, 3)
    assert torch.equal(random_flip(x, torch.Generator(), p=1.0), x.flip(-1))
    assert torch.equal(random_flip(x, torch.Generator(), p=0.0), x)


def test_random_erasing_stays_on_the_person():
    x = torch.zeros(16, 3, 32, 32)
    x[:, :, :, 8:24] = 1.0  # content in columns 8..23, zero padding either side
    assert torch.equal(random_erasing(x, torch.Generator(), p=0.0), x)
    y = random_erasing(x, torch.Generator().manual_seed(0), p=1.0, scale=(0.1, 0.2))
    erased = (y[:, 0] == 0) & (x[:, 0] == 1)  # [16, 32, 32]
    frac = erased.flatten(1).sum(1) / (32 * 16)  # share of the content area
    assert (frac > 0).all() and (frac <= 0.2 + 1e-6).all()
    assert torch.equal(y[..., :8], x[..., :8]) and torch.equal(y[..., 24:], x[..., 24:])


def test_random_shift_translates_each_image_and_fills_with_zeros():
    """Each image moves by its own (dy, dx) in [-s, s]; what moves in is zero (the padding
    value), what moves out is lost: checked pixel by pixel against a loop."""
    x = torch.randn(6, 3, 10, 8)
    assert random_shift(x, torch.Generator(), 0) is x
    y = random_shift(x, torch.Generator().manual_seed(3), 2)
    seen = set()
    for b in range(6):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = torch.zeros_like(x[b])
                # ref[:, i, j] = x[b, :, i - dy, j - dx] where that pixel exists
                ref[:, max(dy, 0):10 + min(dy, 0), max(dx, 0):8 + min(dx, 0)] = \
                    x[b, :, max(-dy, 0):10 - max(dy, 0), max(-dx, 0):8 - max(dx, 0)]
                if torch.equal(y[b], ref):
                    matches.append((dy, dx))
        assert len(matches) == 1, (b, matches)  # exactly one translation explains the image
        seen.add(matches[0])
    assert len(seen) > 1  # the shifts differ between images
    again = random_shift(x, torch.Generator().manual_seed(3), 2)
    assert torch.equal(y, again)  # the generator decides


def test_warmup_cosine_by_hand():
    f = warmup_cosine(warmup_iters=4, total_iters=14, min_factor=0.1)
    assert [f(i) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0)
    assert f(9) == pytest.approx(0.55)  # halfway through the cosine: (1 + 0.1) / 2
    assert f(14) == pytest.approx(0.1)


# ------------------------------------------------------------------------------ training
@pytest.mark.parametrize("recipe", ["id", "triplet", "triplet_listed", "triplet_hard", "strong"])
def test_each_recipe_returns_complete_history(data, recipe, tmp_path, capsys):
    h = run(data, recipe, progress=True)
    # triplet (batch-hard) and strong: 8 ids × 2 chunks of K rows / P=4 ids a batch
    n_iters = {"id": 32 // 8, "triplet": 4, "triplet_listed": 32 // 4, "triplet_hard": 4, "strong": 4}[recipe]
    assert h.recipe == recipe.split("_")[0] and not h.interrupted
    assert len(h.iter_loss) == 2 * n_iters
    for key in ("epoch_train_loss", "val_loss", "rank1", "rank5", "rank10", "mAP", *TIMING):
        assert len(getattr(h, key)) == 2, key
        assert all(v is not None and math.isfinite(v) for v in getattr(h, key)), key
    assert all(0 <= r1 <= r5 <= r10 <= 1 for r1, r5, r10 in zip(h.rank1, h.rank5, h.rank10))
    assert h.elapsed_seconds[0] <= h.elapsed_seconds[1]
    h.save_json(tmp_path / "h.json")
    assert History.load_json(tmp_path / "h.json") == h
    assert capsys.readouterr().err == ""


@pytest.mark.reliability
def test_same_seed_same_history(data):
    assert without_timing(run(data, "strong")) == without_timing(run(data, "strong"))


@pytest.mark.reliability
@pytest.mark.parametrize("recipe", ["id", "strong"])
def test_resume_equals_uninterrupted(data, recipe, tmp_path):
    full_model = tiny_model("bnneck" if recipe == "strong" else "reid")
    full = run(data, recipe, tmp_path / "a", model=full_model)
    first = run(data, recipe, tmp_path / "b", time_budget_s=0.0)  # stops after epoch 1 of 2
    assert first.epochs_done == 1
    resumed_model = tiny_model("bnneck" if recipe == "strong" else "reid", seed=123)
    resumed = run(data, recipe, tmp_path / "b", model=resumed_model, resume=True)
    a, b = without_timing(full), without_timing(resumed)
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], list):
            assert a[key] == pytest.approx(b[key], abs=1e-6), key
        else:
            assert a[key] == b[key], key
    for (name, p), q in zip(full_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), atol=1e-6), name


@pytest.mark.reliability
def test_keyboard_interrupt_keeps_last_checkpoint(data, tmp_path, capsys):
    model = tiny_model(interrupt_at=4 + 2)  # 4 iterations per epoch: stop in epoch 2
    h = run(data, "id", tmp_path, model=model)
    assert h.interrupted and h.epochs_done == 1 and len(h.iter_loss) == 4
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1
    for name, p in model.state_dict().items():  # the model is back at the checkpoint
        assert torch.equal(p, state["model"][name]), name
    out = capsys.readouterr().out
    assert "resume=True" in out and "epoch 2" in out
    model.backbone.interrupt_at = None  # Ctrl-C is over: resuming finishes the run
    assert run(data, "id", tmp_path, model=model, resume=True).epochs_done == 2


@pytest.mark.reliability
def test_interrupt_while_writing_keeps_previous_checkpoint(data, tmp_path, monkeypatch):
    run(data, "id", tmp_path, epochs=1)
    before = (tmp_path / "last.pt").read_bytes()

    def half_written_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(T.torch, "save", half_written_save)
    h = run(data, "id", tmp_path, resume=True)
    assert h.interrupted and h.epochs_done == 1
    assert (tmp_path / "last.pt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


@pytest.mark.reliability
def test_corrupt_checkpoint_is_reported(data, tmp_path):
    run(data, "id", tmp_path, epochs=1)
    path = tmp_path / "last.pt"
    path.write_bytes(path.read_bytes()[: 1000])
    with pytest.raises(CheckpointError, match="last.pt"):
        run(data, "id", tmp_path, resume=True)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="last.pt"):
        run(data, "id", tmp_path, resume=True)


@pytest.mark.reliability
def test_nan_loss_names_epoch_and_iteration(data):
    with pytest.raises(FloatingPointError, match=r"epoch 1/2, iteration 3/4"):
        run(data, "id", model=tiny_model(nan_at=3))


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
    assert T.cpu_has_bf16(cpuinfo) is native


@pytest.mark.parametrize("native", [True, False])
def test_default_amp_follows_the_cpu(monkeypatch, native):
    monkeypatch.setattr(T, "cpu_has_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert T.resolve_amp(cpu, None) is (torch.bfloat16 if native else None)
    assert T.resolve_amp(cpu, True) is torch.bfloat16 and T.resolve_amp(cpu, False) is None
    assert T.make_grad_scaler(cpu, T.resolve_amp(cpu, None)).is_enabled() is False  # bfloat16 needs no scaler


def test_cpu_bf16_autocast_path(data):
    device = torch.device("cpu")
    assert T.resolve_amp(device, True) is torch.bfloat16
    with T.autocast_context(device, True):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.bfloat16
    h = run(data, "strong", amp=True, epochs=1)
    assert h.epochs_done == 1 and all(math.isfinite(v) for v in h.iter_loss)


@pytest.mark.reliability
def test_resume_refuses_other_settings(data, tmp_path):
    run(data, "id", tmp_path, time_budget_s=0.0)                 # one epoch, checkpoint written
    with pytest.raises(CheckpointError, match=r"other settings \(lr: 0.0003 → 0.002\)"):
        run(data, "id", tmp_path, resume=True, lr=2e-3)
    assert run(data, "id", tmp_path, resume=True, epochs=3).epochs_done == 3   # more epochs is fine


def test_resume_reads_a_setting_newer_than_the_checkpoint_as_its_default(data, tmp_path):
    run(data, "id", tmp_path, time_budget_s=0.0)
    state = load_checkpoint(tmp_path / T.CHECKPOINT_NAME)
    del state["cfg"]["min_lr_factor"]  # as if written before that setting existed
    T.save_checkpoint(tmp_path / T.CHECKPOINT_NAME, state)
    assert run(data, "id", tmp_path, resume=True).epochs_done == 2
    state = load_checkpoint(tmp_path / T.CHECKPOINT_NAME)
    del state["cfg"]["min_lr_factor"]
    T.save_checkpoint(tmp_path / T.CHECKPOINT_NAME, state)
    with pytest.raises(CheckpointError, match=r"min_lr_factor: 0.01 → 0.1"):
        run(data, "id", tmp_path, resume=True, min_lr_factor=0.1)


def test_strong_preset_scales_warmup_to_short_runs():
    assert TrainConfig.strong().warmup_epochs == 5.0
    assert TrainConfig.strong(epochs=8).warmup_epochs == 2.0          # a quarter of the run
    assert TrainConfig.strong(epochs=8, warmup_epochs=3.0).warmup_epochs == 3.0


@pytest.mark.parametrize("flip_test, metric", [(False, "euclidean"), (True, "euclidean"), (True, "cosine")])
@pytest.mark.parametrize("head", ["reid", "bnneck"])
def test_validation_passes_each_val_image_once(data, head, flip_test, metric, monkeypatch):
    """Val Rank-k and mAP from the one pass over val_idloss (plus one over the mirror images with
    flip_test) equal those of retrieval_metrics; the val loss ignores flip_test."""
    model = tiny_model(head)
    model.train()
    for _ in range(3):  # move the BN running statistics away from their initial values
        model(data["val_idloss"].cache.images[:8].float())
    cfg = dataclasses.replace(CONFIGS["strong" if head == "bnneck" else "id"], flip_test=flip_test, metric=metric)
    run_ = T.build_run(model, cfg, data["id"])
    triplets = T.random_triplets(data["val_idloss"].ids, torch.Generator().manual_seed(0))
    assert T._rows_in(data["val_idloss"], data["val"]) is not None
    expected = T.retrieval_metrics(model, data["val"], flip=flip_test, metric=metric)
    expected_loss = T.validation_loss(model, data["val_idloss"], triplets, 64, torch.device("cpu"), None)
    calls = []
    monkeypatch.setattr(T, "retrieval_metrics", lambda *a, **k: calls.append(a))
    got = T.evaluate_val(run_, data["val"], data["val_idloss"], triplets)
    assert not calls  # no second pass over the val images
    assert got["val_loss"] == pytest.approx(expected_loss, rel=1e-6)
    for key in ("rank1", "rank5", "rank10", "mAP"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


@pytest.mark.reliability
def test_unknown_metric_is_refused_before_training(data):
    with pytest.raises(ValueError, match="TrainConfig.metric.*'manhattan'"):
        T.build_run(tiny_model("reid"), dataclasses.replace(CONFIGS["id"], metric="manhattan"), data["id"])


@pytest.mark.reliability
@pytest.mark.parametrize("shift", [-1, 2.5, True])
def test_bad_shift_is_refused_before_training(data, shift):
    with pytest.raises(ValueError, match=f"TrainConfig.shift.*{shift!r}"):
        T.build_run(tiny_model("reid"), dataclasses.replace(CONFIGS["id"], shift=shift), data["id"])


def test_validation_falls_back_when_val_idloss_lacks_an_image(data):
    """A val_idloss.csv without some query: Rank-k comes from its own pass, the same numbers."""
    model = tiny_model("reid")
    run_ = T.build_run(model, dataclasses.replace(CONFIGS["id"]), data["id"])
    val_id = data["val_idloss"]
    short = type("Short", (), {"paths": val_id.paths[1:], "cache": val_id.cache, "ids": val_id.ids})()
    assert T._rows_in(short, data["val"]) is None
    triplets = T.random_triplets(val_id.ids, torch.Generator().manual_seed(0))
    got = T.evaluate_val(run_, data["val"], short, triplets)
    assert got["rank1"] == pytest.approx(T.retrieval_metrics(model, data["val"])["rank1"])
