"""Device memory planned from the data's size (reid/memory.py): a layout as large as all of Market-1501
fits a T4 (15 GB) with room to spare, where keeping every cache on the GPU would not."""
from __future__ import annotations

import torch

from reid.memory import GALLERY_FIGURE, LayoutSize, activation_bytes, cache_bytes, planned_peak, training_state_bytes
from reid.model import build_model

GB = 1e9
MARKET = LayoutSize(train=12_936, val=2_000, test=19_000)  # all of Market-1501's people in one layout


def test_cache_bytes_by_hand():
    assert cache_bytes(1, (128, 128)) == 3 * 128 * 128 * 2 == 98_304
    assert cache_bytes(10, (256, 128)) == cache_bytes(10, (128, 128)) * 2


def test_activation_bytes_scale_with_the_input():
    model = build_model("resnet18", num_ids=10)
    small = activation_bytes(model, (128, 128), torch.float16)
    assert small > 0
    big = activation_bytes(build_model("resnet18", num_ids=10, input_size=(256, 128)), (256, 128), torch.float16)
    assert 1.7 * small < big < 2.3 * small  # twice the pixels


def test_the_notebook_fits_a_t4_on_a_market_sized_layout():
    """The planned peak for a layout of 12,936 training and 19,000 test images on a T4 (float16): the val
    caches, one training cache and one model's training state at a time, under 6 GB at every stage."""
    models = {"ID model": (build_model("resnet18", num_ids=751), (128, 128), 64),
              "triplet model": (build_model("resnet18", num_ids=751), (128, 128), 3 * 32),
              "stronger recipe": (build_model("resnet18", num_ids=751, head="bnneck", input_size=(256, 128)),
                                  (256, 128), 64)}
    plan = planned_peak(MARKET, models, torch.float16)
    assert set(plan) == {"ID model", "triplet model", "stronger recipe", "predictions"}
    assert max(plan.values()) < 6 * GB, {k: round(v / GB, 2) for k, v in plan.items()}
    assert plan["predictions"] < plan["ID model"]  # the test caches stay on the host
    # every cache on the GPU until the kernel ends, and a float32 copy of the whole test gallery for its
    # figure, as before: over 10 GB of caches alone
    every_cache = (cache_bytes(MARKET.train, (128, 128)) * 2 + cache_bytes(MARKET.train, (256, 128))
                   + cache_bytes(MARKET.test, (128, 128)) + cache_bytes(MARKET.test, (256, 128))
                   + 4 * cache_bytes(MARKET.val, (128, 128)) + 2 * cache_bytes(16_000, (128, 128)))
    assert every_cache > 10 * GB
    assert GALLERY_FIGURE == 100


def test_training_state_is_weights_grads_and_two_moments():
    model = torch.nn.Linear(10, 5)  # 55 parameters
    assert training_state_bytes(model) == 55 * 4 * 4
