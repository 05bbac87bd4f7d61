"""Tests for reid/model.py (C4-C7): Table 1 shapes, parameter counts, ImageNet weights, heads."""
from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
from conftest import fits_the_width
import torch
import torchvision
from torch import nn

from reid.model import (RESNET18_URL, RESNET50_URL, BNNeckNet, Bottleneck, ModifiedResNet18,
                        ModifiedResNet50, ReIDNet, ResBlock, build_model, count_parameters, feature_map_size,
                        load_imagenet_weights, pooling_kernel, summary_table, table1_shapes,
                        weight_mapping_report)

TABLE1_AT_128 = [
    ("Conv 7x7, 64, stride 2 + BN + ReLU", (64, 64, 64)),
    ("Max pooling 3x3, stride 2", (64, 32, 32)),
    ("ResBlock 64", (64, 32, 32)),
    ("ResBlock 64", (64, 32, 32)),
    ("ResBlock-D 128", (128, 16, 16)),
    ("ResBlock 128", (128, 16, 16)),
    ("ResBlock-D 256", (256, 8, 8)),
    ("ResBlock 256", (256, 8, 8)),
    ("ResBlock 512", (512, 8, 8)),
    ("ResBlock 512", (512, 8, 8)),
    ("Average pooling", (512, 1, 1)),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_weights_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REID_IMAGENET_WEIGHTS", raising=False)


# ----------------------------------------------------------------------------- C4-C5
def test_table1_shapes_at_128() -> None:
    assert table1_shapes(ModifiedResNet18()) == TABLE1_AT_128
    assert table1_shapes(build_model("resnet18", num_ids=5)) == TABLE1_AT_128  # via .backbone


def test_pooling_is_avgpool2d_with_the_q2_kernel() -> None:
    model = ModifiedResNet18().eval()
    assert isinstance(model.avgpool, nn.AvgPool2d) and model.avgpool.kernel_size == (8, 8)
    assert pooling_kernel(model) == (8, 8) == feature_map_size(128)
    assert pooling_kernel(model, (256, 128)) == (16, 8) == feature_map_size((256, 128))
    assert model.input_size == (128, 128)                      # measuring another size leaves it alone
    assert feature_map_size((128, 64)) == (8, 4) and feature_map_size(100) == (7, 7)
    x = torch.randn(2, 512, 8, 8)
    torch.testing.assert_close(model.avgpool(x), x.mean((2, 3), keepdim=True))


@pytest.mark.parametrize("size", [(128, 64), (256, 128), (100, 60)])
def test_backbone_built_for_another_input_size(size) -> None:
    model = ModifiedResNet18(input_size=size).eval()
    kernel = feature_map_size(size)
    assert model.avgpool.kernel_size == kernel == pooling_kernel(model)
    assert table1_shapes(model)[-2][1][1:] == kernel and table1_shapes(model)[-1][1] == (512, 1, 1)
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 512)
        with pytest.raises(ValueError, match=rf"built for {size[0]}x{size[1]} inputs"):
            model(torch.randn(1, 3, 128, 128))
    assert "AvgPool2d" in summary_table(model) and f"[-1, 512, {kernel[0]}, {kernel[1]}]" in summary_table(model)


def test_table1_shapes_leave_training_mode_and_stats_alone() -> None:
    model = ModifiedResNet18().train()
    before = model.bn1.running_mean.clone()
    table1_shapes(model)
    assert model.training and torch.equal(model.bn1.running_mean, before)


def test_first_resblock_has_73984_parameters() -> None:
    block = ModifiedResNet18().layer1[0]
    assert count_parameters(block) == 2 * (64 * 64 * 3 * 3) + 2 * (2 * 64) == 73_984


def test_projection_only_where_channels_change_and_convs_have_no_bias() -> None:
    model = ModifiedResNet18()
    with_projection = [name for name, m in model.named_modules()
                       if isinstance(m, ResBlock) and m.shortcut is not None]
    assert with_projection == ["layer2.0", "layer3.0", "layer4.0"]
    assert model.layer4[0].conv1.stride == (1, 1) and model.layer4[0].shortcut[0].stride == (1, 1)
    assert model.layer3[0].conv1.stride == (2, 2) and model.layer3[0].shortcut[0].stride == (2, 2)
    assert count_parameters(ResBlock(64, 128)) == 64 * 128 * 9 + 128 * 128 * 9 + 64 * 128 + 6 * 128
    convs = [m for m in ModifiedResNet50().modules() if isinstance(m, nn.Conv2d)]
    convs += [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(conv.bias is None for conv in convs)


def test_backbone_parameter_counts_match_torchvision_without_fc() -> None:
    # Strides do not change parameter counts: torchvision's totals minus the 1000-way fc.
    assert count_parameters(ModifiedResNet18()) == 11_689_512 - (512 * 1000 + 1000) == 11_176_512
    r50 = ModifiedResNet50()
    assert count_parameters(r50) == 25_557_032 - (2048 * 1000 + 1000) == 23_508_032
    assert r50.out_dim == 2048 and isinstance(r50.layer4[0], Bottleneck)
    assert table1_shapes(r50)[-2:] == [("Bottleneck 2048", (2048, 8, 8)),
                                       ("Average pooling", (2048, 1, 1))]


def test_summary_table_is_torchsummarys_text() -> None:
    text = summary_table(ModifiedResNet18())
    assert "Total params: 11,176,512" in text and "[-1, 512, 8, 8]" in text


def test_reidnet_shapes_and_head_parameters() -> None:
    model = build_model("resnet18", num_ids=230)
    assert isinstance(model, ReIDNet)
    feature, logits = model(torch.randn(2, 3, 128, 128))
    assert feature.shape == (2, 256) and logits.shape == (2, 230)
    assert (model.embed_dim, model.num_ids) == (256, 230)
    head = (512 * 512 + 512) + 2 * 512 + (512 * 256 + 256) + 2 * 256 + (256 * 230 + 230)
    assert count_parameters(model) - count_parameters(model.backbone) == head == 454_630


def test_bnneck_shapes_and_frozen_bias() -> None:
    model = build_model("resnet18", num_ids=7, head="bnneck", input_size=64)
    assert isinstance(model, BNNeckNet) and model.embed_dim == 512
    f, logits = model(torch.randn(2, 3, 64, 64))
    assert f.shape == (2, 512) and logits.shape == (2, 7)
    assert not model.bnneck.bias.requires_grad and model.classifier.bias is None
    with pytest.raises(ValueError, match="resnet18"):
        build_model("vgg", num_ids=3)


@pytest.mark.parametrize("head", ["reid", "bnneck"])
def test_embed_in_eval_mode_does_not_depend_on_the_batch(head: str) -> None:
    model = build_model("resnet18", num_ids=5, head=head, input_size=64)
    model.train()(torch.randn(4, 3, 64, 64))  # move BN running stats off their defaults
    model.eval()
    x = torch.randn(3, 3, 64, 64)  # a smaller image keeps the test fast
    with torch.no_grad():
        alone, batch = model.embed(x[:1]), model.embed(x)
    assert alone.shape == (1, model.embed_dim)
    torch.testing.assert_close(alone, batch[:1], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- C6
def _randomised_torchvision(arch: str) -> nn.Module:
    """A torchvision ResNet with random weights and non-trivial BN statistics, eval mode."""
    tv = getattr(torchvision.models, arch)()
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(7)
    return tv.eval()


def _save(tv: nn.Module, path: Path, counters: bool = False) -> Path:
    """``tv``'s weights as the handout's 2017 files hold them: without the BN ``num_batches_tracked``
    counters (``counters=True``: as today's torchvision saves them)."""
    state = tv.state_dict()
    torch.save({k: v for k, v in state.items() if counters or not k.endswith("num_batches_tracked")}, path)
    return path


@pytest.mark.parametrize("arch, ours, stride_conv", [
    ("resnet18", ModifiedResNet18, "conv1"), ("resnet50", ModifiedResNet50, "conv2")])
def test_loaded_backbone_equals_torchvision_with_stage4_stride_1(
        tmp_path: Path, arch: str, ours: type[nn.Module], stride_conv: str) -> None:
    tv = _randomised_torchvision(arch)
    file = _save(tv, tmp_path / f"{arch}.pth")
    model = ours()
    report = load_imagenet_weights(model, source=file)
    counters = [n for n in model.state_dict() if n.endswith("num_batches_tracked")]
    assert report.ok and report.discarded == ["fc.weight", "fc.bias"]
    assert report.not_loaded == counters and report.loaded == [n for n in model.state_dict() if n not in counters]
    getattr(tv.layer4[0], stride_conv).stride = (1, 1)
    tv.layer4[0].downsample[0].stride = (1, 1)
    tv.fc = nn.Identity()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        expected, got = tv(x), model.eval()(x)
    assert got.shape == (2, model.out_dim)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    return _save(_randomised_torchvision("resnet18"), tmp_path_factory.mktemp("w") / "r18.pth")


def test_report_for_reidnet_names_head_and_discarded_fc(resnet18_file: Path) -> None:
    model = build_model("resnet18", num_ids=10)
    report = load_imagenet_weights(model, source=resnet18_file)
    head = [n for n in model.state_dict() if not n.startswith("backbone.")]
    counters = [n for n in model.state_dict() if n.startswith("backbone.") and n.endswith("num_batches_tracked")]
    assert report.ok and report.not_loaded == counters + head and "classifier.weight" in head
    assert report.discarded == ["fc.weight", "fc.bias"]
    assert "backbone.layer4.0.shortcut.0.weight" in report.loaded
    text = str(report)
    assert "fc_block1.fc" in text and "classifier" in text and "fc.weight [1000, 512]" in text
    assert "backbone.conv1" not in text.split("random init):")[1].split("\n")[0]


def test_mapping_report_answers_q5_offline_and_agrees_with_loading(resnet18_file: Path) -> None:
    model = build_model("resnet18", num_ids=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dry = weight_mapping_report(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # untouched
    real = load_imagenet_weights(model, source=resnet18_file)
    assert (dry.loaded, dry.not_loaded, dry.discarded) == (real.loaded, real.not_loaded,
                                                           real.discarded)
    r50 = weight_mapping_report(ModifiedResNet50())
    assert r50.ok and all(n.endswith("num_batches_tracked") for n in r50.not_loaded)
    assert "fc.weight [1000, 2048]" in str(r50)


def test_q5_describes_the_handouts_2017_file() -> None:
    """resnet18-5c106cde.pth holds no num_batches_tracked: 100 tensors load into the C7 model, the 20
    BN counters and the 16 head tensors keep their initial values; a file saved from today's
    torchvision would load the 20 counters too, and the report says so in one line."""
    model = build_model("resnet18", num_ids=230)
    report = weight_mapping_report(model)
    assert len(report.loaded) == 100 and len(report.not_loaded) == 36 and len(model.state_dict()) == 136
    text = " ".join(report.summary().split())  # the summary is wrapped at 110 characters
    assert fits_the_width(report.summary())
    assert text.startswith("Would load 100 of 136 tensors from resnet18-5c106cde.pth")
    assert "also holds the 20 BN num_batches_tracked counters: 120 tensors would load." in text
    assert "20 BN num_batches_tracked counters are not in the checkpoint" in text


def test_todays_torchvision_file_loads_the_counters_too(tmp_path: Path) -> None:
    torch.manual_seed(2)
    file = _save(_randomised_torchvision("resnet18"), tmp_path / "today.pth", counters=True)
    model = build_model("resnet18", num_ids=10)
    report = load_imagenet_weights(model, source=file)
    assert report.ok and len(report.loaded) == 120
    assert model.backbone.bn1.num_batches_tracked.item() == 7


def test_old_checkpoint_without_bn_counters_still_loads(tmp_path: Path,
                                                        resnet18_file: Path) -> None:
    state = torch.load(resnet18_file)  # the fixture is in the 2017 files' format: no num_batches_tracked
    assert not any(k.endswith("num_batches_tracked") for k in state)
    report = load_imagenet_weights(ModifiedResNet18(), source=resnet18_file)
    assert report.ok and len(report.not_loaded) == 20  # 1 stem BN + 8 blocks x 2 + 3 projections
    assert "20 BN num_batches_tracked counters" in report.summary()


def test_shape_mismatch_raises_naming_both_tensors(tmp_path: Path, resnet18_file: Path) -> None:
    state = torch.load(resnet18_file)
    state["layer2.0.downsample.0.weight"] = torch.zeros(128, 64, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    model = ModifiedResNet18()
    before = model.conv1.weight.clone()
    expected = r"layer2\.0\.downsample\.0\.weight \(128, 64, 3, 3\)"
    with pytest.raises(ValueError, match=expected) as e:
        load_imagenet_weights(model, source=tmp_path / "bad.pth")
    assert "layer2.0.shortcut.0.weight (128, 64, 1, 1)" in str(e.value)
    assert e.value.report.mismatched and not e.value.report.ok
    assert torch.equal(model.conv1.weight, before)  # nothing half-loaded


def test_bad_local_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_imagenet_weights(ModifiedResNet18(), source=tmp_path / "nowhere.pth")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.txt"):
        load_imagenet_weights(ModifiedResNet18(), source=tmp_path / "notes.txt")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="list.pth"):
        load_imagenet_weights(ModifiedResNet18(), source=tmp_path / "list.pth")


def test_environment_variable_names_the_file(monkeypatch: pytest.MonkeyPatch,
                                             resnet18_file: Path) -> None:
    monkeypatch.setenv("REID_IMAGENET_WEIGHTS", str(resnet18_file))
    report = load_imagenet_weights(ModifiedResNet18())
    assert report.ok and report.source == str(resnet18_file)


@pytest.fixture
def hub_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch" / "hub"


def test_download_path_through_torch_hub_cache(monkeypatch: pytest.MonkeyPatch, hub_dir: Path,
                                               resnet18_file: Path) -> None:
    calls = []

    def fake_download(url: str, dst: str, hash_prefix: str | None = None,
                      progress: bool = True) -> None:
        calls.append((url, hash_prefix))
        Path(dst).write_bytes(resnet18_file.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    model = build_model("resnet18", num_ids=3)
    report = load_imagenet_weights(model)
    assert report.ok and report.source == RESNET18_URL
    assert calls == [(RESNET18_URL, "5c106cde")]
    assert (hub_dir / "checkpoints" / "resnet18-5c106cde.pth").is_file()
    load_imagenet_weights(model)  # second time: served from the cache, no download
    assert len(calls) == 1


def test_offline_download_reports_random_init(monkeypatch: pytest.MonkeyPatch, hub_dir: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    def no_network(url: str, dst: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    model = ModifiedResNet50()
    before = model.conv1.weight.clone()
    report = load_imagenet_weights(model)
    out, err = capsys.readouterr()
    assert not report.ok and report.loaded == [] and report.discarded == []
    assert report.not_loaded == list(model.state_dict())
    cached = str(hub_dir / "checkpoints" / "resnet50-19c8e357.pth")
    for text in (report.message, str(report), out):
        text = " ".join(text.split())  # printed wrapped at 110 characters
        assert RESNET50_URL in text and cached in text and "random initialisation" in text
        assert "REID_IMAGENET_WEIGHTS" in text and "no network" in text
    assert err == ""
    assert torch.equal(model.conv1.weight, before)
