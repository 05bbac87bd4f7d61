"""reid/actmap.py: activation maps from the last feature map, their statistics and the figure."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from conftest import fits_the_width
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from reid.actmap import (activation_maps, activation_stats, content_boxes,  # noqa: E402
                         describe_activation_maps, feature_maps, raw_activation_maps,
                         region_masks, show_activation_maps)
from reid.data import reid_transform  # noqa: E402
from reid.model import build_model  # noqa: E402


class LitCorner(nn.Module):
    """A last stage whose output ignores the input: ``[N, 2, 8, 8]``, channel 0 = 1 and
    channel 1 = 2 on the top-left 2 x 2 positions, 0 elsewhere (sum of squares 5 there)."""

    def forward(self, x: Tensor) -> Tensor:
        out = torch.zeros(len(x), 2, 8, 8, device=x.device)
        out[:, 0, :2, :2], out[:, 1, :2, :2] = 1.0, 2.0
        return out


class FakeBackbone(nn.Module):
    """Same interface as ModifiedResNet: ``stages()`` and a forward that pools the last one."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.layer4 = LitCorner()

    def stages(self) -> list[nn.Module]:
        return [self.layer4]

    def forward(self, x: Tensor) -> Tensor:
        return self.layer4(x * self.scale).mean(dim=(2, 3))


class FakeHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = FakeBackbone()


def padded(n: int = 2, top: int = 0, bottom: int = 0, left: int = 32, right: int = 32,
           seed: int = 0) -> Tensor:
    """``[n, 3, 128, 128]`` random non-zero content with exact zero margins of the given widths."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 128, 128, generator=g) + 0.1
    x[:, :, :top], x[:, :, 128 - bottom:] = 0, 0
    x[:, :, :, :left], x[:, :, :, 128 - right:] = 0, 0
    return x


def test_map_peaks_where_the_feature_map_is_lit():
    images = padded(3)
    raw = raw_activation_maps(FakeHead(), images)
    assert raw.shape == (3, 8, 8)
    assert torch.allclose(raw[:, :2, :2], torch.full((3, 2, 2), 0.5))   # 5 / sqrt(4 * 25)
    assert raw.sum() == pytest.approx(3 * 4 * 0.5) and raw[:, 2:].abs().sum() == 0
    up = activation_maps(FakeHead(), images)
    assert up.shape == (3, 128, 128) and up.dtype == torch.float32
    # bilinear, align_corners=False: pixel p samples cell (p + 0.5) / 16 - 0.5
    assert torch.allclose(up[:, :24, :24], torch.full((3, 24, 24), 0.5))  # cells 0..1 only
    assert up[:, 40:].abs().sum() == 0 and up[:, :, 40:].abs().sum() == 0  # cells >= 2 only
    assert up[0, 31, 31] == pytest.approx(0.5 * (1 - 0.46875) ** 2)       # between cell 1 and 2


@pytest.mark.parametrize("name,head,channels,n", [("resnet18", "reid", 512, 2),
                                                  ("resnet18", "bnneck", 512, 2),
                                                  ("resnet50", "bnneck", 2048, 1)])
def test_real_models_give_8x8_maps_normalised_over_positions(name, head, channels, n):
    torch.manual_seed(0)
    model = build_model(name, num_ids=5, head=head).train()
    images = padded(n, seed=1)
    before = model.backbone.bn1.running_mean.clone()
    fmap = feature_maps(model, images, batch_size=1)
    assert fmap.shape == (n, channels, 8, 8)
    model.eval()
    with torch.no_grad():  # the hooked map is the one the pooling averages
        assert torch.allclose(fmap.mean(dim=(2, 3)), model.backbone(images), atol=1e-5)
    model.train()
    raw = raw_activation_maps(model, images)
    assert raw.shape == (n, 8, 8)
    assert torch.allclose(raw.pow(2).sum(dim=(1, 2)), torch.ones(n), atol=1e-5)
    for i in range(n):  # plain reference: one image at a time
        energy = (fmap[i] ** 2).sum(dim=0)
        assert torch.allclose(raw[i], energy / energy.pow(2).sum().sqrt(), atol=1e-6)
    up = activation_maps(model, images)
    assert up.shape == (n, 128, 128) and not up.requires_grad
    assert model.training and torch.equal(model.backbone.bn1.running_mean, before)
    model.backbone.bn1.eval()                               # a mixed mode survives too
    activation_maps(model, images)
    assert model.training and not model.backbone.bn1.training


def test_a_model_without_stages_is_refused():
    with pytest.raises(TypeError, match="no stages"):
        activation_maps(nn.Conv2d(3, 4, 3), torch.zeros(1, 3, 128, 128))


def test_content_boxes_find_the_zero_padding():
    tall = reid_transform()(Image.new("RGB", (64, 128), (200, 100, 50)))   # pads 32 left/right
    wide = reid_transform()(Image.new("RGB", (128, 64), (10, 200, 90)))    # pads 32 top/bottom
    blank = torch.zeros(3, 128, 128)
    boxes = content_boxes(torch.stack([tall, wide, blank, padded(1, 10, 5, 20, 3)[0]]))
    assert boxes.tolist() == [[0, 128, 32, 96], [32, 96, 0, 128], [0, 128, 0, 128],
                              [10, 123, 20, 125]]


def test_stats_of_known_maps():
    images = padded(1)                                     # person: all rows, columns 32..95
    upper = torch.zeros(1, 128, 128)
    upper[:, :43, 32:96] = 1.0                             # rows 0..42: 3 * 42 / 128 < 1
    row = activation_stats(upper, images).iloc[0]
    assert row.tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0])
    row = activation_stats(torch.ones(1, 128, 128), images).iloc[0]
    # 43, 43 and 42 rows of 64 columns, and 2 x 32 columns of padding, out of 128 x 128
    assert row.tolist() == pytest.approx([43 * 64 / 16384, 43 * 64 / 16384, 42 * 64 / 16384, 0.5])
    on_padding = torch.zeros(1, 128, 128)
    on_padding[:, 5:9, 100:110] = 2.0
    on_padding[:, 50, 50] = 2.0                            # one pixel in the middle third
    assert activation_stats(on_padding, images).iloc[0].tolist() == pytest.approx(
        [0, 1 / 41, 0, 40 / 41])
    with pytest.raises(ValueError, match=r"expected \[N, H, W\]"):
        activation_stats(torch.ones(2, 128, 128), images)


def test_stats_match_a_pixel_loop():
    images = padded(2, top=10, bottom=5, left=20, right=3, seed=3)
    maps = torch.rand(2, 128, 128, generator=torch.Generator().manual_seed(4))
    got, values = activation_stats(maps, images), maps.tolist()
    for i in range(2):
        sums = dict.fromkeys(["upper", "middle", "lower", "padding"], 0.0)
        for r in range(128):
            for c in range(128):
                if 10 <= r < 123 and 20 <= c < 125:
                    region = ["upper", "middle", "lower"][(3 * (r - 10)) // 113]
                else:
                    region = "padding"
                sums[region] += values[i][r][c]
        total = sum(sums.values())
        assert got.iloc[i].tolist() == pytest.approx([v / total for v in sums.values()], rel=1e-5)
    masks = region_masks(images)
    assert torch.equal(sum(m.int() for m in masks.values()), torch.ones(2, 128, 128, dtype=torch.int))


def test_description_comes_from_the_numbers():
    a = pd.DataFrame({"upper": [0.40, 0.42], "middle": [0.35, 0.35], "lower": [0.20, 0.20],
                      "padding": [0.05, 0.03]})
    b = pd.DataFrame({"upper": [0.1], "middle": [0.3], "lower": [0.5], "padding": [0.1]})
    text = describe_activation_maps({"stronger recipe": a, "ID loss": b})
    assert fits_the_width(text)                                        # wrapped to the line width
    entries = text.replace("\n  ", " ").splitlines()                 # one entry per model, unwrapped
    assert entries == [
        "stronger recipe: 4 % of the map on padding; of the part on the person, 43 % on its upper third, "
        "36 % middle, 21 % lower (mean of 2 images).",
        "ID loss: 10 % of the map on padding; of the part on the person, 11 % on its upper third, "
        "33 % middle, 56 % lower (mean of 1 image)."]


def person_like(n: int, seed: int = 0) -> Tensor:
    """``[n, 3, 128, 128]``: smooth coloured blobs with pixel noise, zero-padded 32 left/right."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 3, 16, 8, generator=g)
    body = torch.nn.functional.interpolate(coarse, size=(128, 64), mode="bilinear")
    body = body + 0.15 * torch.randn(n, 3, 128, 64, generator=g)
    return torch.nn.functional.pad(body, (32, 32))


def test_figure_rows_padding_and_size(tmp_path):
    images = person_like(8)
    torch.manual_seed(0)
    maps = {name: torch.nn.functional.interpolate(torch.rand(8, 1, 8, 8) ** 2, size=(128, 128),
                                                  mode="bilinear")[:, 0]
            for name in ("ID loss", "triplet", "stronger recipe")}       # smooth, like real maps
    models = {name: FakeHead() for name in maps}
    titles = [f"q{i}" for i in range(8)]
    fig = show_activation_maps(models, images, path=tmp_path / "a.png", titles=titles, maps=maps)
    assert len(fig.axes) == 4 * 8
    assert [ax.get_title() for ax in fig.axes[:8]] == titles
    assert [fig.axes[8 * r].get_ylabel().replace("\n", " ") for r in range(4)] == ["image", *maps]  # wrapped
    wash = fig.axes[8].images[2].get_array()               # model row 1, image 0: padding layer
    assert (wash[:, :32, 3] > 0).all() and (wash[:, 32:96, 3] == 0).all()
    size = (tmp_path / "a.png").stat().st_size
    print(f"activation-map figure, 8 images x 4 rows: {size / 1000:.0f} KB")
    assert 10_000 < size < 200_000  # tiles large enough for readable titles (1.5 inches high)
    fig = show_activation_maps(build_model(), images[:2], path=tmp_path / "b.png")
    assert len(fig.axes) == 2 * 2 and fig.axes[2].get_ylabel() == "model"


def test_maps_in_frame_places_each_map_over_the_person():
    from reid.actmap import maps_in_frame

    frames = torch.zeros(2, 3, 128, 128)
    frames[0, :, :, 32:96] = 1.0            # a 1:2 person, centred: columns 32..95
    frames[1, :, 16:112, :] = 1.0           # a wide one: rows 16..111
    maps = torch.zeros(2, 8, 4)
    maps[0, :4] = 1.0                       # the upper half of the person
    maps[1] = 2.0
    placed = maps_in_frame(maps, frames)
    assert placed.shape == (2, 128, 128)
    assert placed[0, :, :32].abs().sum() == 0 and placed[0, :, 96:].abs().sum() == 0   # nothing on padding
    assert placed[0, :56, 32:96].min() == 1.0 and placed[0, 72:, 32:96].max() == 0.0  # 16 px a map row
    assert torch.allclose(placed[1, 16:112], torch.full((96, 128), 2.0)) and placed[1, :16].sum() == 0
    with pytest.raises(ValueError, match="2 maps for 1 frames"):
        maps_in_frame(maps, frames[:1])


def test_shares_are_whole_percentages_that_sum_to_100():
    from reid.actmap import whole_percentages

    assert whole_percentages([0.3685, 0.2852, 0.3463]) == [37, 28, 35]     # rounded alone: 37 + 29 + 35 = 101
    assert sorted(whole_percentages([1 / 3] * 3)) == [33, 33, 34]
    assert whole_percentages([0.5, 0.5]) == [50, 50]


def test_a_model_without_padding_is_said_to_have_none():
    table = pd.DataFrame({"upper": [0.4], "middle": [0.3], "lower": [0.3], "padding": [0.0]})
    text = " ".join(describe_activation_maps({"stronger recipe": table}).split())
    assert text.startswith("stronger recipe: none of the map on padding (its input has none); of the part on the "
                           "person, 40 % on its upper third")
