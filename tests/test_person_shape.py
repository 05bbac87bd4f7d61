"""The stronger recipe at the person's own shape (issue 16): a 128×64 cache trains and validates
with a backbone built for 128×64, through the unchanged training loop."""
from __future__ import annotations

import math

import torch

from reid.data import IDLossDataset, RetrievalDataset
from reid.model import build_model
from reid.train import TrainConfig, build_run, train_model


def test_strong_recipe_trains_at_128x64(tiny_layout):
    shape = (128, 64)
    train = IDLossDataset(tiny_layout / "train_idloss.csv", tiny_layout, image_size=shape)
    val = RetrievalDataset(tiny_layout, "val", image_size=shape)
    val_id = IDLossDataset(tiny_layout / "val_idloss.csv", tiny_layout, image_size=shape)
    assert train.cache.image_size == val.gallery.image_size == val_id.cache.image_size == shape
    torch.manual_seed(0)
    model = build_model("resnet18", train.num_ids, head="bnneck", input_size=shape)
    # 3 ids × 2 images: P=3 ids × K=2 images, one batch of 6 an epoch.
    cfg = TrainConfig.strong(epochs=1, p=3, k=2, max_iters_per_epoch=1, amp=False, device="cpu")
    batch = build_run(model, cfg, train).recipe.images(torch.arange(6))
    assert batch.shape == (6, 3, 128, 64)
    history = train_model(model, cfg, train, val, val_idloss=val_id, progress=False)
    assert len(history.iter_loss) == 1 and math.isfinite(history.iter_loss[0])
    assert len(history.rank1) == len(history.val_loss) == 1 and 0 <= history.rank1[0] <= 1
    assert math.isfinite(history.val_loss[0])
