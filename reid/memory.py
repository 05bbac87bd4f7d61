"""Device memory, planned from the size of the data: what the notebook keeps on the GPU, stage by stage.

Where each image cache lives (``[N, 3, H, W]`` float16, 2 bytes a value, decoded once):

* the val caches (``val_set``, ``val_id``; the stronger recipe's ``val_strong``, ``val_id_strong``) on
  the device: every epoch validates on them;
* the training caches on the host: ``train_model`` copies one to the device for that model's training
  only (``reid.recipes.Recipe``), and it is freed with the run;
* the test caches on the host: predictions stream them to the device in batches (``extract_features``);
* the test gallery figure draws its first ``GALLERY_FIGURE`` images, not all of them.

So at any time the device holds the val caches, at most one training cache and one model's training
state (weights, gradients, Adam's two moments, and the activations a step keeps for its backward
pass). :func:`planned_peak` adds these up per stage; ``tests/test_memory.py`` holds a layout of all
of Market-1501's size under a T4's budget with it. On a CPU the "device" is the host's memory.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["GALLERY_FIGURE", "LayoutSize", "cache_bytes", "activation_bytes", "training_state_bytes", "planned_peak"]

GALLERY_FIGURE = 100
"""At most this many test gallery images in the notebook's gallery figure (the course's test gallery has 100)."""


@dataclass(frozen=True)
class LayoutSize:
    """Images in a layout: train (train_idloss.csv), val (val_idloss.csv: its queries and gallery), test
    (queries and gallery)."""

    train: int
    val: int
    test: int


def cache_bytes(n: int, shape: tuple[int, int]) -> int:
    """Bytes of a float16 cache of ``n`` images of ``shape`` (H, W)."""
    return n * 3 * shape[0] * shape[1] * 2


def _saved_bytes(model: nn.Module, shape: tuple[int, int], dtype: torch.dtype | None, batch: int) -> int:
    """Bytes autograd keeps for the backward pass of one forward of ``batch`` images (each storage once),
    on the "meta" device: shapes and dtypes only, nothing computed. The model runs in ``dtype`` (what
    autocast gives the convolutions and the activations between them; None: float32)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage._cdata] = storage.nbytes()
        return t

    dtype = dtype or torch.float32
    meta = copy.deepcopy(model).to("meta", dtype=dtype).train()
    x = torch.empty(batch, 3, *shape, device="meta", dtype=dtype)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = meta(x)
    del out
    return sum(storages.values())


def activation_bytes(model: nn.Module, shape: tuple[int, int], dtype: torch.dtype | None) -> int:
    """Bytes one more training image makes a step keep for its backward pass, in ``dtype`` (None:
    float32): the difference between forward passes of 4 and 2 images, halved (what a pass keeps whatever
    its batch, such as the weights, cancels out). On the CPU under autocast it measured the same."""
    return (_saved_bytes(model, shape, dtype, 4) - _saved_bytes(model, shape, dtype, 2)) // 2


def training_state_bytes(model: nn.Module) -> int:
    """Weights, gradients and Adam's two moments, float32: 4 × the parameters × 4 bytes."""
    return 16 * sum(p.numel() for p in model.parameters())


def planned_peak(size: LayoutSize, models: dict[str, tuple[nn.Module, tuple[int, int], int]],
                 dtype: torch.dtype | None, handout_shape: tuple[int, int] = (128, 128)) -> dict[str, int]:
    """Bytes on the device at each stage of the notebook: {stage: bytes} for "ID model", "triplet model",
    "stronger recipe" and "predictions".

    ``models``: {stage: (model, its input (H, W), images a training step)} for the three training stages
    (a triplet step holds 3 × its rows). The val caches of the handout's shape stay from the start;
    the stronger recipe's val caches join them at its stage if its shape differs; a training stage adds
    its training cache and its model's state and activations; predictions add one batch at a time (small).
    """
    val = 2 * cache_bytes(size.val, handout_shape)  # val_set and val_id
    plan: dict[str, int] = {}
    extra_val = 0
    for stage, (model, shape, step_images) in models.items():
        if shape != handout_shape:
            extra_val = 2 * cache_bytes(size.val, shape)  # val_strong, val_id_strong: kept to the end
        act = activation_bytes(model, shape, dtype) * step_images
        plan[stage] = val + extra_val + cache_bytes(size.train, shape) + training_state_bytes(model) + act
    plan["predictions"] = val + extra_val + cache_bytes(256, handout_shape)  # a batch of 256 test images
    return plan
