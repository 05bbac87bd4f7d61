"""Training budgets (reid/budget.py), the recorded input size, and resuming with other run settings."""
from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch

from conftest import CONFIGS, run, tiny_model, without_timing
from reid import budget
from reid import text
from reid.budget import (MIN_EPOCHS, default_epochs, default_input_size, epochs_from_env, images_per_epoch,
                         plan_training, samples_per_epoch)
from reid.checkpoints import load_checkpoint
from reid.model import build_model
from reid.text import unwrap
from reid.train import TrainConfig, build_run


class Sized(SimpleNamespace):
    """Only what the budget reads: ids [N], cache.images [N, 3, H, W] (empty), triplets [N, 3]."""

    def __len__(self) -> int:
        return len(self.ids)


def sized(n_ids: int, per_id: int, shape: tuple[int, int] = (128, 128)) -> Sized:
    ids = torch.arange(n_ids).repeat_interleave(per_id)
    return Sized(ids=ids, cache=SimpleNamespace(images=torch.empty(1, 3, *shape).expand(len(ids), -1, -1, -1)),
                 triplets=torch.stack([torch.arange(len(ids))] * 3, dim=1))


def test_images_per_epoch_by_hand():
    course = sized(230, 10)
    assert images_per_epoch(TrainConfig.handout_id(), course) == 2300 // 64 * 64 == 2240
    assert images_per_epoch(TrainConfig.handout_triplet(), course) == 2300 // 32 * 32 * 3 == 6816
    # P×K: each id gives ⌊10/4⌋ = 2 chunks of 4; 460 chunks / 16 ids a batch = 28 full batches of 64
    assert images_per_epoch(TrainConfig.strong(), course) == 28 * 64
    mined = TrainConfig.handout_triplet(mining="batch_all", p=8, k=4)
    assert images_per_epoch(mined, course) == (230 * 2 // 8) * 32 * 3
    small = sized(3, 2)  # fewer rows than a batch: one batch of all of them
    assert images_per_epoch(TrainConfig.handout_id(), small) == 6


PRE = {"start": "sha256:" + "ab" * 32, "start_file": "w.pth"}   # a pretrained start


def test_the_ceiling_is_steps_per_device_class_as_epochs_of_the_data():
    course, small = sized(230, 10), sized(40, 10)
    ceiling = budget.STEP_CEILING
    # the course's data: the ID model's 35 steps an epoch, the triplet model's 71, the stronger recipe's 28
    assert budget.steps_per_epoch(TrainConfig.handout_id(), course) == 2300 // 64 == 35
    assert budget.steps_per_epoch(TrainConfig.handout_triplet(), course) == 2300 // 32 == 71
    assert budget.steps_per_epoch(TrainConfig.strong(), sized(230, 10, (128, 64))) == 28
    for preset, steps in ((TrainConfig.handout_id, 35), (TrainConfig.handout_triplet, 71), (TrainConfig.strong, 28)):
        cfg = preset()
        for device in ("cpu", "cuda"):
            data = sized(230, 10, default_input_size(cfg.recipe, device))
            assert default_epochs(cfg, data, device) == max(MIN_EPOCHS, math.ceil(ceiling[budget.device_class(device)]
                                                                                  [cfg.recipe] / steps))
        # the same steps from either start: a pretrained curve stops itself sooner
        assert default_epochs(preset(**PRE), course, "cpu") == default_epochs(cfg, course, "cpu")
    # the CPU's about 15 minutes a model: 5 epochs of the ID model, 2 of the triplet model, 10 of the stronger
    assert default_epochs(TrainConfig.handout_id(), course, "cpu") == 5
    assert default_epochs(TrainConfig.handout_triplet(), course, "cpu") == 2
    assert default_epochs(TrainConfig.strong(), sized(230, 10, (128, 64)), "cpu") == 10
    # a GPU's: 120 epochs of the ID model and the stronger recipe, 60 of the triplet model
    assert default_epochs(TrainConfig.handout_id(), course, "cuda") == 120
    assert default_epochs(TrainConfig.handout_triplet(), course, "cuda") == 60
    assert default_epochs(TrainConfig.strong(), sized(230, 10, (256, 128)), "cuda") == 120
    assert default_epochs(TrainConfig.handout_id(), course, torch.device("meta")) == 5  # not CUDA: the CPU's
    # steps, not epochs: a smaller layout gets more epochs of fewer steps, a huge one at least MIN_EPOCHS
    assert default_epochs(TrainConfig.handout_id(), small, "cpu") == math.ceil(175 / (400 // 64)) == 30
    assert default_epochs(TrainConfig.handout_id(), sized(2000, 100), "cpu") == MIN_EPOCHS
    # samples, the unit of Q11's "about the same number of images": a triplet row counts once
    assert samples_per_epoch(TrainConfig.handout_triplet(), course) == 2300 // 32 * 32 == 2272
    mined = TrainConfig.handout_triplet(mining="batch_all", p=8, k=4)
    assert samples_per_epoch(mined, course) == images_per_epoch(mined, course) // 3 == (230 * 2 // 8) * 32


@pytest.mark.parametrize("preset", [TrainConfig.handout_id, TrainConfig.handout_triplet, TrainConfig.strong])
def test_the_ceiling_gives_the_same_steps_at_any_input_size(preset):
    """The stronger recipe trains at 128×64 on a CPU and at 256×128 on CUDA: the ceiling counts steps, so
    the same layout gives it the same epochs of the same steps at either size."""
    cfg = preset()
    small, large = sized(230, 10, (128, 64)), sized(230, 10, (256, 128))
    assert default_epochs(cfg, small, "cuda") == default_epochs(cfg, large, "cuda")
    assert budget.steps_per_epoch(cfg, small) == budget.steps_per_epoch(cfg, large)


def test_choose_epochs_says_how_it_counted(monkeypatch):
    monkeypatch.delenv(budget.EPOCHS_ENV, raising=False)
    course = sized(230, 10)
    epochs, line = budget.choose_epochs(TrainConfig.handout_triplet(), course, "cpu")
    assert epochs == 2 and unwrap(line) == ("At most 2 epochs = the ceiling of 142 steps on a CPU ÷ 71 an epoch "
                                            "(reid/budget.py); the val curve may stop it sooner.")
    epochs, line = budget.choose_epochs(TrainConfig.handout_id(**PRE), course, "cuda")
    assert epochs == 120 and unwrap(line).startswith("At most 120 epochs = the ceiling of 4,200 steps on CUDA ÷ 35")
    cosine = TrainConfig.handout_id(schedule="cosine")
    assert "may stop it sooner" not in budget.choose_epochs(cosine, course, "cpu")[1]
    assert budget.choose_epochs(TrainConfig.handout_id(), course, "cpu", quick=True) == (2, "2 epochs (quick mode)")
    monkeypatch.setenv(budget.EPOCHS_ENV, "3")
    assert budget.choose_epochs(TrainConfig.handout_id(), course, "cpu") == (
        3, "at most 3 epochs (REID_EPOCHS; the ceiling here would be 5)")


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("start", [{}, PRE], ids=["random", "pretrained"])
def test_the_ceiling_line_fits_the_notebooks_width(monkeypatch, device, start):
    """The line each training cell prints fits the line width for every model, start and device, also
    for a large layout (six-digit step counts)."""
    monkeypatch.delenv(budget.EPOCHS_ENV, raising=False)
    for preset in (TrainConfig.handout_id, TrainConfig.handout_triplet, TrainConfig.strong):
        cfg = preset(**start)
        for data in (sized(230, 10, default_input_size(cfg.recipe, device)), sized(12_000, 10)):
            line = budget.choose_epochs(cfg, data, device)[1]
            assert all(len(part) <= text.LINE_WIDTH for part in line.splitlines()), line


def test_plan_training_follows_the_models_own_load_report(monkeypatch):
    monkeypatch.delenv(budget.EPOCHS_ENV, raising=False)
    course = sized(230, 10)
    loaded = SimpleNamespace(ok=True, loaded=["backbone.conv1.weight"], sha256="cd" * 32, file_name="resnet18-5c106cde.pth")
    cfg, how = plan_training(TrainConfig.handout_id, course, "cpu", loaded)
    assert cfg.start == "sha256:" + "cd" * 32 and cfg.start_file == "resnet18-5c106cde.pth"
    assert cfg.warmup_epochs == 1.0 and cfg.epochs == 5  # the pretrained start's settings, the CPU's ceiling
    failed = SimpleNamespace(ok=False, loaded=[], sha256=None, file_name=None)
    for report in (failed, None):
        cfg, how = plan_training(TrainConfig.handout_id, course, "cpu", report)
        assert cfg.start == "random" and cfg.warmup_epochs == 0.0 and cfg.epochs == 5
    cfg, _ = plan_training(TrainConfig.strong, course, "cpu", loaded, quick=True, p=4, k=4)
    assert (cfg.epochs, cfg.p, cfg.k, cfg.start) == (2, 4, 4, "sha256:" + "cd" * 32)


def test_default_input_size():
    assert default_input_size("id", "cuda") == default_input_size("triplet", "cpu") == (128, 128)
    assert default_input_size("strong", "cpu") == (128, 64)
    assert default_input_size("strong", "cuda") == (256, 128)
    assert TrainConfig.strong().input_size == (128, 64) and TrainConfig.handout_id().input_size is None
    # the model's shape and the datasets' image_size a config stands for
    assert TrainConfig.handout_id().model_shape() == (128, 128) and TrainConfig.handout_id().image_size() == 128
    assert TrainConfig.strong(input_size=(128, 128)).image_size() == 128       # C2's padded square
    assert TrainConfig.strong().model_shape() == TrainConfig.strong().image_size() == (128, 64)
    assert TrainConfig.strong(input_size=[256, 128]).image_size() == (256, 128)  # a JSON list reads the same


@pytest.mark.parametrize("raw, expected", [(None, 7), ("", 7), ("40", 40), (" 3 ", 3)])
def test_epochs_from_env(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv(budget.EPOCHS_ENV, raising=False)
    else:
        monkeypatch.setenv(budget.EPOCHS_ENV, raw)
    assert epochs_from_env(7) == expected


@pytest.mark.reliability
@pytest.mark.parametrize("raw", ["0", "-2", "ten", "4.5"])
def test_epochs_from_env_refuses_bad_values(monkeypatch, raw):
    monkeypatch.setenv(budget.EPOCHS_ENV, raw)
    with pytest.raises(ValueError, match=f"REID_EPOCHS={raw!r}: expected a positive whole number"):
        epochs_from_env(7)


# ------------------------------------------------------------------------ the recorded input size
def test_build_run_records_the_data_shape_and_refuses_a_mismatch(data):
    r = build_run(tiny_model("reid"), CONFIGS["id"], data["id"])
    assert r.cfg.input_size == (128, 128)
    with pytest.raises(ValueError, match=r"input_size is \(128, 64\) but the training images are \(128, 128\)"):
        build_run(tiny_model("reid"), dataclasses.replace(CONFIGS["id"], input_size=(128, 64)), data["id"])
    wrong = build_model("resnet18", num_ids=8, input_size=(128, 64))
    with pytest.raises(ValueError, match=r"backbone was built for \(128, 64\) inputs"):
        build_run(wrong, CONFIGS["id"], data["id"])


def test_checkpoint_records_the_input_size(data, tmp_path):
    run(data, "id", tmp_path)
    assert tuple(load_checkpoint(tmp_path / "last.pt")["cfg"]["input_size"]) == (128, 128)


@pytest.mark.reliability
def test_resume_with_another_batch_size_follows_its_own_schedule(data, tmp_path):
    """A run resumed on another device with another batch size is not refused: epochs and batch
    size are run settings. The LR schedule continues from the epoch boundary of the new plan."""
    first = run(data, "id", tmp_path, time_budget_s=0.0)  # stops after epoch 1 of 2 (batch 8: 4 steps)
    assert first.epochs_done == 1
    resumed = run(data, "id", tmp_path, resume=True, batch_size=16)  # 2 steps an epoch now
    assert resumed.epochs_done == 2 and len(resumed.iter_loss) == 4 + 2
    fresh16 = build_run(tiny_model("reid"), dataclasses.replace(CONFIGS["id"], batch_size=16), data["id"])
    state = load_checkpoint(tmp_path / "last.pt")
    # where the new plan's schedule ends after 2 epochs of 2 steps
    assert state["scheduler"]["last_epoch"] == 2 * 2
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(
        fresh16.scheduler.base_lrs[0] * fresh16.scheduler.lr_lambdas[0](4))


@pytest.mark.reliability
def test_resume_with_nothing_changed_is_still_exact(data, tmp_path):
    full = run(data, "id", tmp_path / "a")
    run(data, "id", tmp_path / "b", time_budget_s=0.0)
    resumed = run(data, "id", tmp_path / "b", resume=True, model=tiny_model("reid", seed=5))
    a, b = without_timing(full), without_timing(resumed)
    assert a["iter_loss"] == pytest.approx(b["iter_loss"], abs=1e-6) and a["rank1"] == b["rank1"]


@pytest.mark.reliability
def test_resume_keeps_refusing_what_the_model_learns(data, tmp_path):
    run(data, "id", tmp_path, time_budget_s=0.0)
    with pytest.raises(Exception, match="label_smoothing"):
        run(data, "id", tmp_path, resume=True, label_smoothing=0.1)


def test_strong_input_size_keeps_a_checkpoints_shape(tmp_path):
    from reid.budget import strong_input_size
    from reid.checkpoints import CHECKPOINT_FORMAT, save_checkpoint

    assert strong_input_size(tmp_path, "cpu") == (128, 64) and strong_input_size(tmp_path, "cuda") == (256, 128)
    save_checkpoint(tmp_path / "last.pt", {"format": CHECKPOINT_FORMAT, "cfg": {"input_size": [256, 128]}})
    assert strong_input_size(tmp_path, "cpu") == (256, 128)   # a GPU run resumed on a CPU keeps 256×128
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    assert strong_input_size(tmp_path, "cpu") == (128, 64)    # train_model reports the broken file


@pytest.mark.reliability
def test_strong_resume_with_another_budget_changes_only_run_settings(data, tmp_path):
    """The strong preset's warm-up follows its epochs (a quarter of a short run): a run resumed on
    another device with another epoch budget is not refused for it."""
    first = run(data, "strong", tmp_path, epochs=2, warmup_epochs=0.5, time_budget_s=0.0)
    assert first.epochs_done == 1
    resumed = run(data, "strong", tmp_path, resume=True, epochs=3, warmup_epochs=0.75)
    assert resumed.epochs_done == 3


def test_retrieval_options_rank_as_the_config_validates():
    """TrainConfig.retrieval_options: retrieve's flip, metric and batch size for a config (bench.time_to_accuracy
    --test and bench.rerank_market rank with it); no precision: every evaluation runs in float32."""
    strong = TrainConfig.strong(amp="float16", eval_batch_size=32)
    assert strong.retrieval_options("cpu") == {"flip": True, "metric": "cosine", "batch_size": 32}
    handout = TrainConfig.handout_id(amp=False)
    assert handout.retrieval_options(torch.device("cpu")) == {"flip": False, "metric": "euclidean",
                                                              "batch_size": handout.eval_batch_size}
