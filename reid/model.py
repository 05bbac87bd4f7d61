"""C4-C7: the modified ResNet backbones, the ReID heads and ImageNet weight loading.

Table 1 row -> attribute -> output C x H x W for a 3 x 128 x 128 input:
  Conv 7x7, 64, stride 2 + BN + ReLU   conv1, bn1, relu   64 x 64 x 64
  Max pooling 3x3, stride 2            maxpool            64 x 32 x 32
  ResBlock 64, ResBlock 64             layer1[0], [1]     64 x 32 x 32
  ResBlock-D 128, ResBlock 128         layer2[0], [1]     128 x 16 x 16
  ResBlock-D 256, ResBlock 256         layer3[0], [1]     256 x 8 x 8
  ResBlock 512, ResBlock 512           layer4[0], [1]     512 x 8 x 8
  Average pooling                      avgpool            512 x 1 x 1  (nn.AvgPool2d, kernel 8 x 8)
layer4[0] changes 256 -> 512 channels *without* downsampling, so the map entering the
pooling stays 8 x 8 (Q2: an 8 x 8 average-pooling kernel at 128 x 128).
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .checkpoints import file_sha256
from .text import wrap

RESNET18_URL = "https://download.pytorch.org/models/resnet18-5c106cde.pth"
RESNET50_URL = "https://download.pytorch.org/models/resnet50-19c8e357.pth"
WEIGHTS_ENV = "REID_IMAGENET_WEIGHTS"


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """A bias-free ``kernel x kernel`` convolution ("same" padding) and its BatchNorm."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
    return conv, nn.BatchNorm2d(c_out)


def _projection(c_in: int, c_out: int, stride: int) -> nn.Sequential | None:
    """Residual Conv 1x1 + BN when the shape changes, else ``None`` (identity shortcut)."""
    if c_in == c_out and stride == 1:
        return None
    return nn.Sequential(*_conv_bn(c_in, c_out, 1, stride))


class ResBlock(nn.Module):
    """C4, Table 2: Conv3x3-BN-ReLU -> Conv3x3-BN, plus the shortcut, then ReLU.

    ``[N, c_in, H, W] -> [N, c_out, H / stride, W / stride]``; ``stride=2`` makes a ResBlock-D.
    Shortcut: Conv 1x1 + BN when ``c_in != c_out`` (or stride > 1; in Table 1 the two
    coincide), otherwise the input itself.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(c_in, c_out, 3, stride)
        self.conv2, self.bn2 = _conv_bn(c_out, c_out, 3, 1)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(c_in, c_out, stride)
        self.out_channels = c_out
        self.table_name = f"ResBlock{'-D' if stride > 1 else ''} {c_out}"

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet-50 block: 1x1 (width) -> 3x3 (width, carries the stride) -> 1x1 (4 x width).

    ``[N, c_in, H, W] -> [N, 4 * width, H / stride, W / stride]``; projection shortcut
    (Conv 1x1 + BN) where the shape changes. Names follow torchvision's ResNet-50 (v1.5).
    """

    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        c_out = 4 * width
        self.conv1, self.bn1 = _conv_bn(c_in, width, 1, 1)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride)
        self.conv3, self.bn3 = _conv_bn(width, c_out, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(c_in, c_out, stride)
        self.out_channels = c_out
        self.table_name = f"Bottleneck{'-D' if stride > 1 else ''} {c_out}"

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class Stage(NamedTuple):
    """One stage of the plan: ``num_blocks`` blocks; only the first one uses ``stride``."""
    block: type[nn.Module]
    width: int
    num_blocks: int
    stride: int


# Stage 4 keeps stride 1 in both (the handout's modification): 8 x 8 maps at 128 x 128.
RESNET18_PLAN = (Stage(ResBlock, 64, 2, 1), Stage(ResBlock, 128, 2, 2),
                 Stage(ResBlock, 256, 2, 2), Stage(ResBlock, 512, 2, 1))
RESNET50_PLAN = (Stage(Bottleneck, 64, 3, 1), Stage(Bottleneck, 128, 4, 2),
                 Stage(Bottleneck, 256, 6, 2), Stage(Bottleneck, 512, 3, 1))


def _out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def feature_map_size(input_size: int | tuple[int, int], plan: Sequence[Stage] = RESNET18_PLAN
                     ) -> tuple[int, int]:
    """``(h, w)`` of the last stage's map for an ``(H, W)`` input: the conv 7x7/2 (pad 3), the
    max pool 3x3/2 (pad 1) and each stride-2 stage (3x3, pad 1) halve it, rounding up;
    (8, 8) at 128 x 128, (8, 4) at 128 x 64, (16, 8) at 256 x 128."""
    h, w = _hw(input_size)
    h, w = _out(h, 7, 2, 3), _out(w, 7, 2, 3)
    h, w = _out(h, 3, 2, 1), _out(w, 3, 2, 1)
    for stage in plan:
        if stage.stride != 1:
            h, w = _out(h, 3, stage.stride, 1), _out(w, 3, stage.stride, 1)
    return h, w


class ModifiedResNet(nn.Module):
    """Stem (conv 7x7 + BN + ReLU, max pool) + ``layer1..layer4`` built from a stage plan.

    ``forward``: ``[N, 3, H, W] -> [N, out_dim]`` for the ``input_size = (H, W)`` the backbone
    was built for (128 x 128, the handout's padded square, by default). The pooling layer is
    Table 1's ``nn.AvgPool2d`` whose kernel covers the whole last map (Q2: 8 x 8 at 128 x 128,
    see :func:`feature_map_size`); an input of another size is refused with an error that says
    which size the backbone was built for, rather than silently pooling to a longer vector.
    The stronger recipe builds its backbone for the person's own 1:2 shape (128 x 64 -> an
    8 x 4 map); the weights do not depend on the input size.
    """
    plan: Sequence[Stage] = RESNET18_PLAN  # defaults: the handout's ResNet-18
    imagenet_url: str = RESNET18_URL

    def __init__(self, plan: Sequence[Stage] | None = None,
                 input_size: int | tuple[int, int] = 128) -> None:
        super().__init__()
        plan = self.plan if plan is None else plan
        self.conv1, self.bn1 = _conv_bn(3, 64, 7, 2)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        c_in = 64
        for index, stage in enumerate(plan, start=1):
            blocks = []
            for b in range(stage.num_blocks):
                blocks.append(stage.block(c_in, stage.width, stage.stride if b == 0 else 1))
                c_in = blocks[-1].out_channels
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self._plan = tuple(plan)
        self.set_input_size(input_size)
        self.out_dim = c_in
        self.num_stages = len(plan)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # (BN starts at weight 1, bias 0 by default)
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def set_input_size(self, input_size: int | tuple[int, int]) -> None:
        """Rebuild the pooling layer for ``(H, W)`` inputs (it has no weights)."""
        self.input_size = _hw(input_size)
        self.avgpool = nn.AvgPool2d(kernel_size=feature_map_size(self.input_size, self._plan))

    def stages(self) -> list[nn.Sequential]:
        """``[layer1, ..., layerK]`` in order."""
        return [getattr(self, f"layer{i}") for i in range(1, self.num_stages + 1)]

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # [N, 64, H/4, W/4]
        for stage in self.stages():
            x = stage(x)                                        # [N, out_dim, H/16, W/16]
        if tuple(x.shape[-2:]) != tuple(self.avgpool.kernel_size):
            raise ValueError(f"{type(self).__name__} was built for {self.input_size[0]}x{self.input_size[1]} "
                             f"inputs (an {self.avgpool.kernel_size[0]}x{self.avgpool.kernel_size[1]} pooling "
                             f"kernel), and this input gives a {x.shape[-2]}x{x.shape[-1]} last map: build it "
                             f"with input_size=(H, W) of the images it will see")
        return torch.flatten(self.avgpool(x), 1)                # [N, out_dim]


class ModifiedResNet18(ModifiedResNet):
    """C4–C5: the handout's backbone (Table 1): ``[N, 3, 128, 128] -> [N, 512]``."""
    plan, imagenet_url = RESNET18_PLAN, RESNET18_URL


class ModifiedResNet50(ModifiedResNet):
    """Bottleneck ResNet-50 with the same modified strides: ``[N, 3, 128, 128] -> [N, 2048]``."""
    plan, imagenet_url = RESNET50_PLAN, RESNET50_URL


# ----------------------------------------------------------------------------- inspection
def _backbone(model: nn.Module) -> ModifiedResNet:
    return getattr(model, "backbone", model)  # a head keeps its backbone as .backbone


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (size[0], size[1])


def _at_size(backbone: ModifiedResNet, input_size: int | tuple[int, int] | None) -> ModifiedResNet:
    """The backbone itself, or for another input size a copy whose pooling fits that size."""
    if input_size is None or _hw(input_size) == backbone.input_size:
        return backbone
    other = copy.deepcopy(backbone)
    other.set_input_size(input_size)
    return other


def _hooked_shapes(backbone: ModifiedResNet, modules: Sequence[nn.Module],
                  input_size: tuple[int, int], inputs: bool = False) -> list[tuple]:
    """Shapes (without N) each module outputs (or takes, if ``inputs``) for one dummy
    image ``[1, 3, H, W]`` in eval mode; the backbone's mode and statistics are unchanged."""
    shapes: list[tuple] = []
    hooks = [m.register_forward_hook(
        lambda _m, inp, out: shapes.append(tuple((inp[0] if inputs else out).shape[1:])))
        for m in modules]
    param, was_training = next(backbone.parameters()), backbone.training
    try:
        with torch.no_grad():
            backbone.eval()(torch.zeros(1, 3, *_hw(input_size), device=param.device))
    finally:
        backbone.train(was_training)
        for h in hooks:
            h.remove()
    return shapes


def table1_shapes(model: nn.Module, input_size: int | tuple[int, int] | None = None
                  ) -> list[tuple[str, tuple[int, int, int]]]:
    """Q1: ``(row name, (C, H, W))`` for every Table 1 row, measured by forward hooks
    (a backbone or a model with ``.backbone``) at ``input_size`` (default: the size the backbone
    was built for); at 128: ``(64, 64, 64)`` ... ``(512, 1, 1)``."""
    bb = _at_size(_backbone(model), input_size)
    rows = [("Conv 7x7, 64, stride 2 + BN + ReLU", bb.relu),
            ("Max pooling 3x3, stride 2", bb.maxpool)]
    rows += [(block.table_name, block) for stage in bb.stages() for block in stage]
    rows.append(("Average pooling", bb.avgpool))
    names, modules = zip(*rows)
    return list(zip(names, _hooked_shapes(bb, modules, bb.input_size)))


def pooling_kernel(model: nn.Module, input_size: int | tuple[int, int] | None = None) -> tuple[int, int]:
    """Q2: the spatial size ``(H, W)`` of the map entering the average pooling, measured by a
    hook at ``input_size`` (default: the backbone's own); (8, 8) at 128 x 128. It equals the
    kernel of the backbone's ``nn.AvgPool2d`` built for that size."""
    bb = _at_size(_backbone(model), input_size)
    (shape,) = _hooked_shapes(bb, [bb.avgpool], bb.input_size, inputs=True)
    return shape[1], shape[2]


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters (buffers such as BN running stats are not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def summary_table(model: nn.Module, input_size: int | tuple[int, int] | None = None) -> str:
    """torchsummary's table for a ``[2, 3, H, W]`` input (default: the size the backbone was
    built for), as a string (run on a CPU copy)."""
    from torchsummary import summary

    size = _backbone(model).input_size if input_size is None else _hw(input_size)
    copied = copy.deepcopy(model).cpu()
    if size != _backbone(copied).input_size:
        _backbone(copied).set_input_size(size)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        summary(copied, (3, *size), device="cpu")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- C6: weights
@dataclass
class WeightReport:
    """What :func:`load_imagenet_weights` did, in state-dict names; ``str()`` answers Q5."""
    loaded: list[str]        # our tensors that received a pretrained value
    not_loaded: list[str]    # our tensors left at their initial values
    discarded: list[str]     # checkpoint tensors with no place in our model
    source: str
    ok: bool
    message: str
    mismatched: list[str] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # of discarded ones
    sha256: str | None = None  # of the file the weights came from (what a run "started from")
    file_name: str | None = None

    def summary(self) -> str:
        """Q5: which layers keep their random init, which pretrained tensors are dropped."""
        if not self.loaded:
            return wrap(self.message)
        layer = lambda name: name.rsplit(".", 1)[0]  # noqa: E731
        warm = {layer(n) for n in self.loaded}
        fresh = ", ".join(dict.fromkeys(layer(n) for n in self.not_loaded if layer(n) not in warm))
        dropped = ", ".join(f"{n} {list(self.shapes[n])}" for n in self.discarded)
        counters = sum(layer(n) in warm for n in self.not_loaded)  # BN num_batches_tracked
        lines = [self.message,
                 f"Layers that cannot take pretrained weights (random init): {fresh or 'none'}",
                 f"Pretrained tensors discarded (no place in the model): {dropped or 'none'}"]
        if counters:
            lines.append(f"{counters} BN num_batches_tracked counters are not in the checkpoint"
                         " (unused while BN momentum is set).")
        return wrap("\n".join(lines))

    __str__ = summary


@dataclass(frozen=True)
class WeightsFile:
    """Where C6's weights file is: ``path`` (None when there is none) and ``how`` it was found, or
    ``message`` saying why there is none and how to fix it."""

    path: Path | None
    how: str
    message: str = ""
    url: str = RESNET18_URL


def _hub_file(url: str) -> Path:
    """Where torch hub keeps (or would keep) the file of ``url``: ``torch.hub.get_dir()/checkpoints/<name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def find_imagenet_weights(url: str = RESNET18_URL, download: bool = True, progress: bool = False) -> WeightsFile:
    """Find C6's weights file, in order: ``$REID_IMAGENET_WEIGHTS``; torch hub's cache; one download
    into that cache (checked against the hash in the file name, as torchvision does). Nothing is
    loaded; a failed download says what failed and where to put the file offline."""
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        path = Path(env)
        if path.is_file():
            return WeightsFile(path, f"${WEIGHTS_ENV}", url=url)
        return WeightsFile(None, f"${WEIGHTS_ENV}", f"${WEIGHTS_ENV}={env} is not a file: point it at the "
                                                     f"weights file, or unset it to download {Path(url).name}", url)
    cached = _hub_file(url)
    if cached.is_file():
        return WeightsFile(cached, "torch hub cache", url=url)
    if not download:
        return WeightsFile(None, "torch hub cache", f"{cached.name} is not in torch's hub cache ({cached})", url)
    match = re.search(r"-([a-f0-9]+)\.", cached.name)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(cached), match.group(1) if match else None, progress=progress)
    except (OSError, RuntimeError) as err:  # offline: URLError, timeouts, SSL; RuntimeError: a hash mismatch
        return WeightsFile(None, "download", f"Could not download the ImageNet weights from {url} "
                                             f"({type(err).__name__}: {err}). To use them offline, put the file at "
                                             f"{cached} (torch hub cache), or point ${WEIGHTS_ENV} or source= at a copy.", url)
    return WeightsFile(cached, "downloaded", url=url)


def _read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """A local ``.pth`` state dict; clear errors naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet weights file {path} does not exist "
                                f"(given as source= or via ${WEIGHTS_ENV})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have many types
        raise ValueError(f"{path} is not a PyTorch state dict file: {err}") from err
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict (name -> tensor), "
                         f"found {type(obj).__name__}")
    return dict(obj)


def load_imagenet_weights(model: nn.Module, source: str | os.PathLike | WeightsFile | None = None,
                          progress: bool = False, verbose: bool = True) -> WeightReport:
    """C6: copy torchvision's ImageNet weights into a backbone (or ``model.backbone``).

    ``source``: a local file; or what :func:`find_imagenet_weights` found (the notebook's first cell
    looks once, and C6 loads that file without a second network attempt); None: look now —
    ``$REID_IMAGENET_WEIGHTS``, torch hub's cache, else one download of the backbone's
    ``imagenet_url``. With no file, one paragraph (what failed, where to put the file) is printed
    to stdout (``verbose``) and a report with ``ok=False`` and nothing loaded comes back. Every shape is checked:
    a mismatch raises a ``ValueError`` naming both tensors and shapes (with the report as ``.report``).
    The report records the file's SHA-256 and name (the run's start, ``reid.config.start_of``).
    """
    backbone, all_names = _backbone(model), list(model.state_dict())
    if source is None:
        url = getattr(backbone, "imagenet_url", None)
        if url is None:
            raise ValueError(f"{type(backbone).__name__} has no ImageNet file: pass source=")
        source = find_imagenet_weights(url, progress=progress)
    if isinstance(source, WeightsFile):
        if source.path is None:
            message = f"{source.message} Training continues from random initialisation."
            if verbose:
                print(wrap(message))
            return WeightReport([], all_names, [], source.url, False, message)
        path, where = source.path, (str(source.path) if source.how == f"${WEIGHTS_ENV}" else source.url)
    else:
        path = Path(source)
        where = str(source)
    checkpoint = _read_state_dict(path)
    report, matched = _match(model, checkpoint, where)
    backbone.load_state_dict({**backbone.state_dict(), **matched})
    report.sha256, report.file_name = file_sha256(path), Path(path).name
    return report


def _match(model: nn.Module, checkpoint: Mapping[str, Tensor], where: str,
           verb: str = "Loaded") -> tuple[WeightReport, dict[str, Tensor]]:
    """Pair checkpoint tensors with the backbone's by name and shape (nothing is copied).

    Returns the report and ``{our backbone name: tensor}``; raises ``ValueError`` (with
    ``.report``) naming both tensors and shapes on any mismatch: never skipped silently.
    """
    backbone = _backbone(model)
    prefix = "backbone." if backbone is not model else ""
    all_names, ours = list(model.state_dict()), backbone.state_dict()
    # Names are torchvision's except that its shortcut projection is called "downsample".
    by_tv_name = {name.replace(".shortcut.", ".downsample."): name for name in ours}
    matched, discarded, mismatched, shapes = {}, [], [], {}
    for tv_name, tensor in checkpoint.items():
        name = by_tv_name.get(tv_name)
        if name is None:
            discarded.append(tv_name)
            shapes[tv_name] = tuple(tensor.shape)
        elif tensor.shape != ours[name].shape:
            mismatched.append(f"checkpoint {tv_name} {tuple(tensor.shape)} vs model "
                              f"{prefix + name} {tuple(ours[name].shape)}")
        else:
            matched[name] = tensor
    if mismatched:
        error = ValueError("ImageNet weights do not fit the model: " + "; ".join(mismatched))
        error.report = WeightReport([], all_names, discarded, where, False, str(error),
                                    mismatched, shapes)
        raise error
    loaded = [prefix + name for name in ours if name in matched]
    not_loaded = [name for name in all_names if name not in set(loaded)]  # head, counters
    missing = [n for n in ours if n not in matched and not n.endswith("num_batches_tracked")]
    message = (f"{verb} {len(loaded)} of {len(all_names)} tensors from {where}; "
               f"{len(not_loaded)} keep their initial values; {len(discarded)} checkpoint "
               f"tensors discarded." + (f" Backbone tensors missing: {missing}" if missing else ""))
    report = WeightReport(loaded, not_loaded, discarded, where, not missing, message, [], shapes)
    return report, matched


def weight_mapping_report(model: nn.Module) -> WeightReport:
    """Q5 without a download: match ``model`` against the handout's file as it is laid out — the
    *architecture* of the torchvision ResNet that ImageNet file belongs to (random tensors, the same
    names and shapes), without the BatchNorm ``num_batches_tracked`` counters, which the 2017 files
    (``resnet18-5c106cde.pth``) do not hold. The model is not changed. ``load_imagenet_weights`` gives
    the same lists when it loads that file; the message adds what a file saved from today's
    torchvision model (with the counters) would load."""
    import torchvision

    name = Path(_backbone(model).imagenet_url).name          # "resnet18-5c106cde.pth"
    today = getattr(torchvision.models, name.split("-")[0])(weights=None).state_dict()
    reference = {k: v for k, v in today.items() if not k.endswith("num_batches_tracked")}
    report = _match(model, reference, f"{name} (the handout's file: names and shapes only)", verb="Would load")[0]
    counters = len(today) - len(reference)
    if counters:
        fits = _match(model, today, "")[0]
        report.message += (f"\nA file saved from today's torchvision.models.{name.split('-')[0]}().state_dict() also "
                           f"holds the {counters} BN num_batches_tracked counters: {len(fits.loaded)} tensors would load.")
    return report


# ----------------------------------------------------------------------------- C7: heads
def _fc_block(d_in: int, d_out: int, dropout: float) -> nn.Sequential:
    """FC -> BN -> ReLU -> Dropout: ``[N, d_in] -> [N, d_out]``."""
    return nn.Sequential(OrderedDict(fc=nn.Linear(d_in, d_out), bn=nn.BatchNorm1d(d_out),
                                     relu=nn.ReLU(inplace=True), dropout=nn.Dropout(dropout)))


class ReIDNet(nn.Module):
    """C7: the handout's ReID network: backbone -> FC 512 block -> FC 256 block -> FC num_ids.

    ``forward(x)``: ``[N, 3, H, W] -> (feature [N, feat_dim], logits [N, num_ids])``.
    **The ReID feature** (retrieval and triplet loss) is the 256-d output of the second
    block, FC256 -> BN -> ReLU -> Dropout; ``embed(x)`` returns it. The last FC (no BN,
    ReLU or dropout) gives the identity scores for the ID loss. Call ``eval()`` before
    ``embed``: dropout is off and BN uses running statistics, so a feature does not
    depend on the rest of the batch.
    """

    def __init__(self, backbone: nn.Module, num_ids: int, feat_dim: int = 256,
                 dropout: float = 0.2, hidden_dim: int = 512) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc_block1 = _fc_block(backbone.out_dim, hidden_dim, dropout)
        self.fc_block2 = _fc_block(hidden_dim, feat_dim, dropout)
        self.classifier = nn.Linear(feat_dim, num_ids)
        self.num_ids, self.embed_dim = num_ids, feat_dim

    def embed(self, x: Tensor) -> Tensor:
        """``[N, 3, H, W] -> [N, feat_dim]``: the ReID feature."""
        return self.fc_block2(self.fc_block1(self.backbone(x)))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feature = self.embed(x)                     # [N, feat_dim]
        return feature, self.classifier(feature)    # [N, num_ids]

    def embed_from_feature(self, feature: Tensor) -> Tensor:
        """The retrieval feature from forward's first output: here the same tensor."""
        return feature


class BNNeckNet(nn.Module):
    """The "stronger recipe" head (BNNeck, Luo et al., Bag of Tricks, CVPRW 2019).

    ``f = backbone(x)`` ``[N, D]`` feeds the triplet loss; ``f_bn = BN(f)`` (BN bias
    frozen at 0) feeds a bias-free classifier ``[N, num_ids]`` and is the retrieval
    feature returned by ``embed`` (use eval mode).
    """

    def __init__(self, backbone: nn.Module, num_ids: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.bnneck = nn.BatchNorm1d(backbone.out_dim)
        self.bnneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(backbone.out_dim, num_ids, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)
        self.num_ids, self.embed_dim = num_ids, backbone.out_dim

    def embed(self, x: Tensor) -> Tensor:
        """``[N, 3, H, W] -> [N, D]``: the BN-normalised feature."""
        return self.bnneck(self.backbone(x))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.backbone(x)                          # [N, D]
        return f, self.classifier(self.bnneck(f))     # [N, num_ids]

    def embed_from_feature(self, feature: Tensor) -> Tensor:
        """The retrieval feature from forward's first output (the pre-BN ``f``): ``BN(f)``."""
        return self.bnneck(feature)


def weights_copy(model: nn.Module) -> dict[str, Tensor]:
    """A copy of every tensor of ``model.state_dict()`` (backbone and head), on the CPU: an initial state
    another model can start from (``load_state_dict``), whatever random numbers are drawn in between."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def holds_weights(model: nn.Module, state: Mapping[str, Tensor]) -> bool:
    """Whether ``model``'s state dict equals ``state`` tensor for tensor (same names, equal values)."""
    mine = model.state_dict()
    return mine.keys() == state.keys() and all(torch.equal(mine[k].cpu(), state[k].cpu()) for k in mine)


BACKBONES = {"resnet18": ModifiedResNet18, "resnet50": ModifiedResNet50}
HEADS = {"reid": ReIDNet, "bnneck": BNNeckNet}


def build_model(name: str = "resnet18", num_ids: int = 230, head: str = "reid",
                input_size: int | tuple[int, int] = 128) -> nn.Module:
    """A randomly initialised backbone (``"resnet18"``/``"resnet50"``) for ``input_size``
    ``(H, W)`` images with a head (``"reid"``: :class:`ReIDNet`, ``"bnneck"``: :class:`BNNeckNet`)."""
    if name not in BACKBONES or head not in HEADS:
        raise ValueError(f"unknown model {name!r}/{head!r}: expected name in {list(BACKBONES)} "
                         f"and head in {list(HEADS)}")
    return HEADS[head](BACKBONES[name](input_size=input_size), num_ids)
