"""Tests of reid/train.py (and reid/checkpoints.py through it) on a tiny synthetic layout and a tiny
backbone (CPU, seconds): presets, the loop, resuming, validation."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from conftest import CONFIGS, TIMING, run, tiny_model, without_timing
from reid import checkpoints as CK
from reid import train as T
from reid import validation as V
from reid.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from reid.evaluate import retrieve
from reid.losses import random_triplets
from reid.batching import PKSampler
from reid.data import TripletDataset
from reid.train import History, TrainConfig, train_model, warmup_cosine
from reid.text import unwrap  # noqa: E402



def test_batch_hard_mining_draws_p_ids_by_k_rows(data):
    labelled = data["triplet"]
    cfg = dataclasses.replace(CONFIGS["triplet"], mining="batch_hard", p=3, k=2)
    run_ = T.build_run(tiny_model("reid"), cfg, labelled)
    anchor_ids = labelled.ids[labelled.triplets[:, 0]]  # [T]
    batches = run_.recipe.batches()
    assert len(batches) == run_.iters_per_epoch() == len(PKSampler(anchor_ids, 3, 2)) > 0
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
        if isinstance(a[key], list) and key != "match_rank":
            assert a[key] == pytest.approx(b[key], abs=1e-6), key
        else:
            assert a[key] == b[key], key
    assert full.kept_epoch == resumed.kept_epoch  # both models hold the kept epoch's weights
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
    out = unwrap(capsys.readouterr().out)
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

    monkeypatch.setattr(CK.torch, "save", half_written_save)
    h = run(data, "id", tmp_path, resume=True)
    assert h.interrupted and h.epochs_done == 1
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary file left


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
    save_checkpoint(tmp_path / T.CHECKPOINT_NAME, state)
    assert run(data, "id", tmp_path, resume=True).epochs_done == 2
    state = load_checkpoint(tmp_path / T.CHECKPOINT_NAME)
    del state["cfg"]["min_lr_factor"]
    save_checkpoint(tmp_path / T.CHECKPOINT_NAME, state)
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
    flip_test) equal those of retrieve(...).metrics(); the val loss ignores flip_test."""
    model = tiny_model(head)
    model.train()
    for _ in range(3):  # move the BN running statistics away from their initial values
        model(data["val_idloss"].cache.images[:8].float())
    cfg = dataclasses.replace(CONFIGS["strong" if head == "bnneck" else "id"], flip_test=flip_test, metric=metric)
    run_ = T.build_run(model, cfg, data["id"])
    triplets = random_triplets(data["val_idloss"].ids, torch.Generator().manual_seed(0))
    source, _, _ = V._val_images(data["val"], data["val_idloss"])
    assert source is data["val_idloss"].cache  # every val image is in val_idloss.csv
    expected = retrieve(model, data["val"], flip=flip_test, metric=metric).metrics()
    expected_loss = T.validation_loss(model, data["val_idloss"], triplets, 64, torch.device("cpu"), None)

    passes, real = [], V.extract_features
    monkeypatch.setattr(V, "extract_features", lambda m, src, *a, **k: passes.append(len(src)) or real(m, src, *a, **k))
    got = T.evaluate_val(run_, data["val"], data["val_idloss"], triplets)
    # one pass over the val images (two with flip_test: the second over their mirror images)
    assert passes == [len(data["val_idloss"].paths)] * (2 if flip_test else 1)
    assert got["val_loss"] == pytest.approx(expected_loss, rel=1e-6)
    for key in ("rank1", "rank5", "rank10", "mAP"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    assert got["retrieval"].metric == metric and got["retrieval"].flip is flip_test


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
    """A val_idloss.csv without some query: one pass over val_idloss's images and the val set's
    own queries and gallery; the same numbers as measuring the two apart."""
    model = tiny_model("reid")
    run_ = T.build_run(model, dataclasses.replace(CONFIGS["id"]), data["id"])
    val_id, val = data["val_idloss"], data["val"]
    short = type("Short", (), {"paths": val_id.paths[1:], "cache": val_id.cache, "ids": val_id.ids})()
    source, q_rows, g_rows = V._val_images(val, short)
    assert len(source) == len(val_id.cache) + len(val.queries) + len(val.gallery)
    assert q_rows.tolist() == list(range(len(val_id.cache), len(val_id.cache) + len(val.queries)))
    assert g_rows.tolist() == list(range(len(val_id.cache) + len(val.queries), len(source)))
    triplets = random_triplets(val_id.ids, torch.Generator().manual_seed(0))
    got = T.evaluate_val(run_, val, short, triplets)
    assert got["rank1"] == pytest.approx(retrieve(model, val).metrics()["rank1"])
    expected = retrieve(model, val, flip=run_.cfg.flip_test).metrics()  # measured as validation does
    for key in ("rank1", "rank5", "rank10", "mAP"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    assert got["val_loss"] == pytest.approx(
        T.validation_loss(model, val_id, triplets, 64, torch.device("cpu"), None), rel=1e-6)


def test_validation_without_val_idloss_has_no_val_loss(data):
    model = tiny_model("reid")
    run_ = T.build_run(model, dataclasses.replace(CONFIGS["id"], flip_test=False), data["id"])
    got = T.evaluate_val(run_, data["val"])
    assert got["val_loss"] is None
    assert got["rank1"] == pytest.approx(retrieve(model, data["val"]).metrics()["rank1"])


def test_history_keeps_the_last_validation_but_does_not_save_it(data, tmp_path):
    h = run(data, "id", epochs=1)
    assert h.kept_retrieval is not None and h.kept_retrieval.metrics()["rank1"] == h.rank1[-1]
    assert "kept_retrieval" not in h.to_dict()
    h.save_json(tmp_path / "h.json")
    assert History.load_json(tmp_path / "h.json").kept_retrieval is None


# ------------------------------------------------------------------------ the kept epoch
def _patched_val(monkeypatch, maps: list[float]) -> list[dict]:
    """Validation as train_model runs it, except that epoch e reports mAP maps[e - 1]; returns the
    model's weights at each validation, in order."""
    states, real = [], V.evaluate_val  # the real one, also when a test patches twice

    def fake(run_, *args, **kwargs):
        states.append({k: v.detach().clone() for k, v in run_.model.state_dict().items()})
        got = real(run_, *args, **kwargs)
        return {**got, "mAP": maps[len(states) - 1]}

    monkeypatch.setattr(T, "evaluate_val", fake)
    return states


def test_best_epoch_on_val_map_is_kept(data, tmp_path, monkeypatch):
    """Validation gives mAP 0.2, 0.5, 0.3: best.pt holds epoch 2, last.pt epoch 3; the model ends
    holding epoch 2, and its table row and its predictions are epoch 2's."""
    from reid.predict import rank_gallery
    from reid.report import compare_models

    states = _patched_val(monkeypatch, [0.2, 0.5, 0.3])
    model = tiny_model()
    h = run(data, "id", tmp_path, model=model, epochs=3)
    assert h.mAP == [0.2, 0.5, 0.3] and h.kept_epoch == 2 and h.at_kept("rank1") == h.rank1[1]
    best, last = load_checkpoint(tmp_path / "best.pt"), load_checkpoint(tmp_path / "last.pt")
    assert best["epoch"] == 2 and last["epoch"] == 3
    for name, value in states[1].items():
        assert torch.equal(best["model"][name], value), name
        assert torch.equal(model.state_dict()[name], value), name  # the model holds epoch 2
    assert any(not torch.equal(best["model"][n], last["model"][n]) for n in best["model"])
    table = compare_models({"ID": (model, h, CONFIGS["id"])}, data["val"])
    assert table.loc["ID", "Rank-1"] == round(h.rank1[1], 3)
    assert h.kept_retrieval is not None and h.kept_retrieval.metrics()["rank1"] == h.rank1[1]
    epoch2 = tiny_model()
    epoch2.load_state_dict(states[1])
    epoch2.eval()
    model.eval()
    assert torch.equal(rank_gallery(model, data["val"])[1], rank_gallery(epoch2, data["val"])[1])


def test_complete_checkpoint_loads_the_kept_epoch(data, tmp_path, monkeypatch):
    states = _patched_val(monkeypatch, [0.2, 0.5, 0.3])
    run(data, "id", tmp_path, epochs=3)
    again = tiny_model(seed=5)
    h = run(data, "id", tmp_path, model=again, epochs=3, resume=True)  # nothing left to train
    assert h.epochs_done == 3 and h.kept_epoch == 2 and h.kept_retrieval is None  # measured elsewhere
    for name, value in states[1].items():
        assert torch.equal(again.state_dict()[name], value), name


@pytest.mark.reliability
def test_crash_between_last_and_best_is_mended_on_resume(data, tmp_path, monkeypatch):
    """last.pt is written before best.pt; a crash between leaves best.pt one kept epoch behind while
    the kept epoch is the last one: resuming rewrites best.pt from last.pt."""
    _patched_val(monkeypatch, [0.2, 0.5, 0.6])
    run(data, "id", tmp_path, epochs=2)
    stale = tmp_path / "best_epoch1.pt"
    _patched_val(monkeypatch, [0.2, 0.5, 0.6])
    run(data, "id", stale, epochs=1)
    (tmp_path / "best.pt").write_bytes((stale / "best.pt").read_bytes())  # best.pt says epoch 1, last.pt kept 2
    h = run(data, "id", tmp_path, epochs=2, resume=True)
    assert h.kept_epoch == 2 and load_checkpoint(tmp_path / "best.pt")["epoch"] == 2


def test_kept_epoch_without_a_checkpoint_folder(data, monkeypatch):
    states = _patched_val(monkeypatch, [0.4, 0.1])
    model = tiny_model()
    h = run(data, "id", None, model=model, epochs=2)
    assert h.kept_epoch == 1
    for name, value in states[0].items():
        assert torch.equal(model.state_dict()[name], value), name


@pytest.mark.reliability
@pytest.mark.parametrize("first, second", [("random", "sha256:ab12"), ("sha256:ab12", "random"),
                                           ("sha256:ab12", "sha256:cd34")])
def test_a_checkpoint_never_resumes_a_run_of_another_start(data, tmp_path, first, second):
    """A from-scratch checkpoint is never loaded as a pretrained one, nor the reverse (nor one
    pretrained file's run as another's): the start is a setting resuming may not change."""
    run(data, "id", tmp_path, epochs=1, start=first)
    with pytest.raises(CheckpointError, match="start"):
        run(data, "id", tmp_path, epochs=2, start=second, resume=True)
    # the weights file's name may change (a renamed copy of the same file)
    assert run(data, "id", tmp_path, epochs=2, start=first, start_file="renamed.pth", resume=True).epochs_done == 2


def test_backbone_learning_rate_factor(data):
    model = tiny_model()
    run_ = T.build_run(model, dataclasses.replace(CONFIGS["id"], lr=1e-3, backbone_lr_factor=0.1), data["id"])
    groups = run_.optimizer.param_groups
    assert groups[0]["lr"] == pytest.approx(0.1 * groups[1]["lr"])  # the schedule scales both alike
    assert groups[0]["initial_lr"] == pytest.approx(1e-4) and groups[1]["initial_lr"] == pytest.approx(1e-3)
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.backbone.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="backbone_lr_factor"):
        T.build_run(tiny_model(), dataclasses.replace(CONFIGS["id"], backbone_lr_factor=0.0), data["id"])


@pytest.mark.parametrize("epochs", [1, 14, 18, 19, 35, 56, 140])
def test_epoch_log_stays_on_a_screen(epochs):
    shown = [e for e in range(1, epochs + 1) if T.shown_epoch(e, epochs)]
    assert len(shown) <= 20 and shown[0] == 1 and shown[-1] == epochs
    assert shown == list(range(1, epochs + 1)) if epochs <= 18 else len(shown) >= 10


@pytest.mark.reliability
def test_ctrl_c_while_best_pt_is_written_keeps_a_true_kept_epoch(data, tmp_path, monkeypatch):
    """Ctrl-C inside epoch 2's best.pt write: best.pt still holds epoch 1, so epoch 2 was never kept; the
    model and the history agree on what it holds (epoch 2 from last.pt, whose weights are the best)."""
    states = _patched_val(monkeypatch, [0.2, 0.5])
    real, calls = CK.torch.save, []

    def save(obj, f):
        calls.append(obj.get("kind"))
        if obj.get("kind") == "best" and obj["epoch"] == 2:
            raise KeyboardInterrupt
        return real(obj, f)

    monkeypatch.setattr(CK.torch, "save", save)
    model = tiny_model()
    h = run(data, "id", tmp_path, model=model, epochs=3)
    assert h.interrupted and h.epochs_done == 2 and h.kept_epoch == 2
    for name, value in states[1].items():       # last.pt (epoch 2) is what the model holds: the kept epoch
        assert torch.equal(model.state_dict()[name], value), name
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 1
    monkeypatch.setattr(CK.torch, "save", real)
    _patched_val(monkeypatch, [0.2, 0.5, 0.3])
    h = run(data, "id", tmp_path, epochs=3, resume=True)           # resuming mends best.pt from last.pt
    assert h.kept_epoch == 2 and load_checkpoint(tmp_path / "best.pt")["epoch"] == 2


@pytest.mark.reliability
def test_a_lost_best_pt_is_rebuilt_from_last_pt(data, tmp_path, monkeypatch):
    """best.pt lost while the kept epoch is an earlier one (a Drive copy of last.pt without its best.pt):
    last.pt holds the kept epoch's weights too, so best.pt is written again from them."""
    _patched_val(monkeypatch, [0.2, 0.5, 0.3])
    run(data, "id", tmp_path, epochs=3)
    kept_weights = load_checkpoint(tmp_path / "best.pt")["model"]
    (tmp_path / "best.pt").unlink()
    _patched_val(monkeypatch, [0.2, 0.5, 0.3, 0.25])
    model = tiny_model(seed=3)
    h = run(data, "id", tmp_path, model=model, epochs=4, resume=True)
    assert h.keep_from == 1 and h.kept_epoch == 2
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == 2 and all(torch.equal(best["model"][k], v) for k, v in kept_weights.items())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in kept_weights.items())  # the model holds it


@pytest.mark.reliability
def test_a_best_pt_newer_than_last_pt_is_replaced_by_the_kept_epoch(data, tmp_path, monkeypatch):
    """best.pt of a later epoch than last.pt's kept one (last.pt written every 60 s, best.pt copied from
    another run of the folder): resuming writes the kept epoch's weights from last.pt back into best.pt."""
    _patched_val(monkeypatch, [0.2, 0.5, 0.3])
    run(data, "id", tmp_path / "a", epochs=3)
    _patched_val(monkeypatch, [0.2, 0.5, 0.3, 0.1, 0.9])
    run(data, "id", tmp_path / "b", epochs=5)
    (tmp_path / "a" / "best.pt").write_bytes((tmp_path / "b" / "best.pt").read_bytes())  # epoch 5's
    _patched_val(monkeypatch, [0.2, 0.5, 0.3, 0.25])
    h = run(data, "id", tmp_path / "a", epochs=4, resume=True)
    assert h.kept_epoch == 2 and load_checkpoint(tmp_path / "a" / "best.pt")["epoch"] == 2


@pytest.mark.reliability
def test_a_lost_best_pt_of_an_old_last_pt_moves_the_kept_epoch_to_what_exists(data, tmp_path, monkeypatch):
    """A last.pt written before it held the kept weights (no ``kept_model``) whose best.pt is lost: the
    history keeps from the last epoch on, so it never names weights the model cannot hold."""
    _patched_val(monkeypatch, [0.2, 0.5, 0.3])
    run(data, "id", tmp_path, epochs=3)
    state = load_checkpoint(tmp_path / "last.pt")
    for key in ("kept_model", "kept_epoch"):
        state.pop(key)
    save_checkpoint(tmp_path / "last.pt", state)
    (tmp_path / "best.pt").unlink()
    _patched_val(monkeypatch, [0.2, 0.5, 0.3, 0.25])
    h = run(data, "id", tmp_path, model=tiny_model(seed=3), epochs=4, resume=True)
    assert h.keep_from == 3 and h.kept_epoch == 3
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 3


def test_a_resumed_run_past_its_time_budget_trains_no_further(data, tmp_path):
    run(data, "id", tmp_path, epochs=3, time_budget_s=0.0)
    h = run(data, "id", tmp_path, epochs=3, time_budget_s=0.0, resume=True)
    assert h.epochs_done == 1


# ----------------------------------------------------------------- the checkpoint timer (issue: a GPU epoch
# takes seconds, and writing last.pt after each one would cost as much as the training)
class _Clock:
    """A stand-in for time.perf_counter: ``step`` seconds pass at each reading."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def perf_counter(self) -> float:
        self.now += self.step
        return self.now


def _saved_epochs(monkeypatch) -> list[int]:
    """The epoch of each last.pt written from now on."""
    saved: list[int] = []
    real = T.save_checkpoint

    def save(path, state):
        if path.name == T.CHECKPOINT_NAME:
            saved.append(state["epoch"])
        return real(path, state)

    monkeypatch.setattr(T, "save_checkpoint", save)
    return saved


@pytest.mark.reliability
def test_last_pt_is_written_on_a_timer_and_at_the_end(data, tmp_path, monkeypatch):
    """checkpoint_every_s: last.pt when that long has passed since the last write, and at the end; the
    clock only says when files are written, never what the run computes."""
    saved = _saved_epochs(monkeypatch)
    monkeypatch.setattr(T, "time", _Clock(step=10.0))  # each epoch reads the clock a few times
    timed = run(data, "id", tmp_path / "timed", epochs=6, checkpoint_every_s=45.0)
    assert saved[-1] == 6 and len(saved) < 6 and saved == sorted(set(saved))
    saved.clear()
    every = run(data, "id", tmp_path / "every", epochs=6, checkpoint_every_s=0.0)
    assert saved == [1, 2, 3, 4, 5, 6]
    assert without_timing(timed) == without_timing(every)
    saved.clear()
    run(data, "id", tmp_path / "end", epochs=6, checkpoint_every_s=float("inf"))
    assert saved == [6]


@pytest.mark.reliability
def test_ctrl_c_between_timer_writes_saves_exactly_the_last_completed_epoch(data, tmp_path, monkeypatch):
    """No last.pt written yet (the timer not due) when Ctrl-C comes in epoch 3: last.pt then holds epoch 2
    exactly, its weights and history, and resuming matches an uninterrupted run number for number."""
    full_model = tiny_model()
    full = run(data, "id", tmp_path / "full", model=full_model, epochs=4, checkpoint_every_s=float("inf"))
    model = tiny_model(interrupt_at=2 * 4 + 3)  # 4 steps an epoch: Ctrl-C at epoch 3's third step
    h = run(data, "id", tmp_path / "cut", model=model, epochs=4, checkpoint_every_s=float("inf"))
    assert h.interrupted and h.epochs_done == 2
    state = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert state["epoch"] == 2 and state["history"]["epoch_train_loss"] == full.epoch_train_loss[:2]
    model.backbone.interrupt_at = None
    resumed = run(data, "id", tmp_path / "cut", model=model, epochs=4, resume=True,
                  checkpoint_every_s=float("inf"))
    a, b = without_timing(full), without_timing(resumed)
    for key in a:
        if isinstance(a[key], list) and key != "match_rank":
            assert a[key] == pytest.approx(b[key], abs=1e-6), key
    for (name, p), q in zip(full_model.state_dict().items(), model.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), atol=1e-6), name


@pytest.mark.reliability
def test_an_error_mid_run_keeps_the_epochs_completed_before_it(data, tmp_path):
    """A NaN loss in epoch 3 with no last.pt due yet: the two completed epochs are written before the
    error propagates, so a resume (after the cause is fixed) does not start over."""
    with pytest.raises(FloatingPointError):
        run(data, "id", tmp_path, model=tiny_model(nan_at=2 * 4 + 1), epochs=4, checkpoint_every_s=float("inf"))
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


@pytest.mark.reliability
def test_a_stopped_run_is_complete_and_a_resume_trains_no_further(data, tmp_path, monkeypatch, capsys):
    """The val curve stops a run (patience 1, no drops): the stop is in the History and last.pt, and a
    resume with a higher ceiling does not train on."""
    _patched_val(monkeypatch, [0.5, 0.4, 0.3, 0.2, 0.1])
    h = run(data, "id", tmp_path, epochs=5, patience=1, lr_drops=0, progress=True)
    assert h.epochs_done == 2 and h.stop_reason.startswith("levelled")
    out = unwrap(capsys.readouterr().out)
    assert "Stopped: levelled: no gain in val mAP above 0.005 for 1 epoch at the lowest rate, at epoch 2" in out
    assert load_checkpoint(tmp_path / "last.pt")["history"]["stop_reason"] == h.stop_reason
    again = run(data, "id", tmp_path, epochs=9, patience=1, lr_drops=0, resume=True)
    assert again.epochs_done == 2 and len(again.iter_loss) == len(h.iter_loss)


def test_the_rate_drops_when_the_curve_levels(data, tmp_path, monkeypatch):
    """patience 2, one drop: a flat curve gains at epoch 1 only, the rate falls ×0.1 after epoch 3 (two
    epochs without a gain), and the run stops after epoch 5 (two more at the lowest rate); the History
    records the rate each epoch trained at."""
    _patched_val(monkeypatch, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    h = run(data, "id", tmp_path, epochs=6, patience=2, lr_drops=1)
    lr = TrainConfig.handout_id().lr
    assert h.epochs_done == 5 and h.lr == pytest.approx([lr, lr, lr, lr / 10, lr / 10])


def test_a_thinned_log_prints_the_epochs_later_lines_name(monkeypatch):
    """A 40-epoch run prints a line every 3 epochs; the kept epoch, the best Rank-1 and the lowest val loss
    get their lines anyway, once training ends, when the thinned log skipped them."""
    maps = [0.1 + 0.01 * i for i in range(40)]
    maps[16] = 0.9                                   # epoch 17: kept, skipped by the every-3rd log
    h = History(recipe="id", epoch_train_loss=[1.0] * 40, val_loss=[1.0] * 19 + [0.5] + [1.0] * 20,
                rank1=maps, rank5=maps, rank10=maps, mAP=maps, epoch_seconds=[1.0] * 40)
    assert T.named_epochs(h) == [17, 20]
    text = T.skipped_epoch_lines(h, 40, T.named_epochs(h))
    assert text.splitlines()[0] == "Epochs named below that the thinned log skipped:"
    assert [line.split(":")[0] for line in text.splitlines()[1:]] == ["epoch 17/40", "epoch 20/40"]
    assert T.skipped_epoch_lines(h, 14, T.named_epochs(h)) == ""   # a short run's log skips nothing
