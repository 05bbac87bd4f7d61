"""Shared fixtures and dummy models.

* ``tiny_layout``: a tiny hand-written data layout, independent of make_data.py; ``layout``: the
  same with two test gallery images copied from the test queries (the right answers known).
* ``MeanColour``, ``LeftHalf``: dummy models with a hand-checkable ``embed``.
* ``data``: a synthetic layout (make_data.build_synthetic) loaded as training/val datasets;
  ``TinyBackbone`` / ``tiny_model``: a one-conv network to train on it in seconds; ``CONFIGS``,
  ``run``, ``without_timing``: train a preset on it and compare histories.
* The Colab simulations' parts: ``archive`` (what ``git archive`` ships of the working tree),
  ``first_cell``, ``foldername``, ``MOUNT_LINE``, ``zip_layout``.

Test modules import helpers from here (``from conftest import ...``), never from each other.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from make_data import build_synthetic  # noqa: E402
from reid.data import IDLossDataset, RetrievalDataset, TripletDataset  # noqa: E402
from reid.model import BNNeckNet, ReIDNet  # noqa: E402
from reid.train import History, TrainConfig, train_model  # noqa: E402

TIMING = ("epoch_seconds", "elapsed_seconds")
TEST_LINE_WIDTH = 60
"""The unit tests print at this width, narrower than the notebook's, so a test that reads a message across
a wrapped line fails here on every machine, not only where a long temporary path moves the break."""


def fits_the_width(text: str) -> bool:
    """Every line of a wrapped message within reid.text.LINE_WIDTH, except a line that is one word too long to
    break (a path): where a line breaks then depends on nothing but the width."""
    from reid import text as textmod

    return all(len(line) <= textmod.LINE_WIDTH or len(line.split()) == 1 for line in text.splitlines())


@pytest.fixture(autouse=True)
def _narrow_lines_and_float32(monkeypatch):
    """Every unit test: messages wrapped at TEST_LINE_WIDTH (read them with reid.text.unwrap), and no
    precision switch inherited from the shell (tests that need a precision force it)."""
    from reid import text

    monkeypatch.setattr(text, "LINE_WIDTH", TEST_LINE_WIDTH)
    monkeypatch.delenv("REID_PRECISION", raising=False)
MOUNT_LINE = 'DRIVE = "/content/drive"'
"""The first cell's mount point; the Colab simulations point it at a temporary "Drive"."""
ALLOW_CPU_LINE = "ALLOW_CPU = False"
"""The first cell's switch for a Colab runtime without a GPU; the simulations (no GPU here) turn it on."""


def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (64, 128)) -> Path:
    """A small random-colour JPEG (`size` = width, height) at `path`."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, size=3)
    arr = np.clip(base + rng.integers(-20, 21, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, quality=95)
    return path


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def tiny_layout(tmp_path: Path) -> Path:
    """A complete layout by hand: 3 train ids × 2 images, val 12 gallery / 4 queries, test 3 / 2.

    Val has 12 gallery images so that numeric order (2 < 10) differs from text order.
    """
    root = tmp_path / "pa2_data"
    train_rows, trip_rows = [], []
    for ident in range(3):
        for j in range(2):
            name = f"train/{1000 + 10 * ident + j}.jpg"
            write_jpeg(root / name, seed=100 + 10 * ident + j)
            train_rows.append(f"{name},{ident}")
    for ident in range(3):
        a, p = f"train/{1000 + 10 * ident}.jpg", f"train/{1001 + 10 * ident}.jpg"
        n = f"train/{1000 + 10 * ((ident + 1) % 3)}.jpg"
        trip_rows.append(f"{a},{p},{n}")
    write_csv(root / "train_idloss.csv", "filepath,id", train_rows)
    write_csv(root / "train_random_triplet.csv", "anchor,positive,negative", trip_rows)
    for k in range(12):
        write_jpeg(root / f"val/gallery/{k}.jpg", seed=200 + k)
    val_q = {"val/query/5001.jpg": 3, "val/query/5002.jpg": 10, "val/query/5003.jpg": 0, "val/query/5004.jpg": 2}
    for i, q in enumerate(val_q):
        write_jpeg(root / q, seed=300 + i)
    write_csv(root / "val/gt.csv", "query,gallery", [f"{q},val/gallery/{g}.jpg" for q, g in val_q.items()])
    write_csv(root / "val_idloss.csv", "filepath,id",
              [f"val/gallery/{k}.jpg,{k}" for k in range(12)] + [f"{q},{g}" for q, g in val_q.items()])
    for k in range(3):
        write_jpeg(root / f"test/gallery/{k}.jpg", seed=400 + k)
    for i in range(2):
        write_jpeg(root / f"test/query/{7000 + i}.jpg", seed=500 + i)
    write_csv(root / "test/pred.csv", "query,gallery", ["test/query/7001.jpg,", "test/query/7000.jpg,"])
    return root


@pytest.fixture
def layout(tiny_layout: Path) -> Path:
    # Make gallery 1 a copy of query 7001 and gallery 2 a copy of query 7000: the right answers.
    shutil.copy(tiny_layout / "test/query/7001.jpg", tiny_layout / "test/gallery/1.jpg")
    shutil.copy(tiny_layout / "test/query/7000.jpg", tiny_layout / "test/gallery/2.jpg")
    return tiny_layout


class MeanColour(nn.Module):
    """embed = per-channel mean and std of the image: identical files get distance 0."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


class LeftHalf(nn.Module):
    """embed = per-channel mean of the image's left half: a mirror image embeds differently."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : x.shape[-1] // 2].mean(dim=(2, 3))


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
    """A synthetic layout: 8 train ids, 5 val ids, 4 images each, as the datasets training takes."""
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
# bfloat16 on where the CPU has it in hardware); tests/test_precision.py forces each precision.
# checkpoint_every_s=0: last.pt after every epoch, whatever the clock (the timer has its own tests).
_EVERY_EPOCH = dict(amp=False, checkpoint_every_s=0.0)
CONFIGS = {
    "id": TrainConfig.handout_id(epochs=2, batch_size=8, **_EVERY_EPOCH),
    "triplet": TrainConfig.handout_triplet(epochs=2, mining="batch_all", p=4, k=2, **_EVERY_EPOCH),
    "triplet_listed": TrainConfig.handout_triplet(epochs=2, batch_size=4, **_EVERY_EPOCH),          # the preset
    "triplet_hard": TrainConfig.handout_triplet(epochs=2, mining="batch_hard", p=4, k=2, **_EVERY_EPOCH),
    # the test layouts hold 128×128 images: the stronger recipe's 128×64 is tested on its own
    "strong": TrainConfig.strong(epochs=2, p=4, k=2, warmup_epochs=1, input_size=None, **_EVERY_EPOCH),
}


def run(data: dict, recipe: str, ckpt: Path | None = None, model: nn.Module | None = None,
        resume: bool = False, progress: bool = False, sync=None, **overrides) -> History:
    cfg = dataclasses.replace(CONFIGS[recipe], **overrides)
    train_set = data["triplet" if recipe.startswith("triplet") else "id"]
    model = model if model is not None else tiny_model("bnneck" if recipe == "strong" else "reid")
    return train_model(model, cfg, train_set, data["val"], data["val_idloss"],
                       checkpoint_dir=ckpt, resume=resume, progress=progress, sync=sync)


def without_timing(h: History) -> dict:
    return {k: v for k, v in h.to_dict().items() if k not in TIMING}


# --------------------------------------------------------------------------- the Colab simulations
def first_cell() -> str:
    nb = json.loads((ROOT / "assignment.ipynb").read_text(encoding="utf-8"))
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


def foldername() -> str:
    match = re.match(r'FOLDERNAME = "([^"]+)"', first_cell())
    assert match, "the first code cell must start with FOLDERNAME = \"...\""
    return match.group(1)


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    """What `git archive` ships of the working tree as it would be committed (a temporary index,
    so neither the real index nor the working tree is touched; .gitattributes export-ignore holds)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to archive")
    tmp = tmp_path_factory.mktemp("archive")
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp / "index")}
    git = ["git", "-C", str(ROOT)]
    subprocess.run(git + ["add", "-A"], env=env, check=True, capture_output=True)
    tree = subprocess.run(git + ["write-tree"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    tar = subprocess.run(git + ["archive", "--format=tar", tree], check=True, capture_output=True).stdout
    out = tmp / "project"
    out.mkdir()
    subprocess.run(["tar", "-x", "-C", str(out)], input=tar, check=True)
    return out


def zip_layout(layout: Path, zip_path: Path, inside: str = "") -> Path:
    """Zip a layout folder flat (`inside=""`) or inside one folder (`inside="pa2_data/"`)."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(layout.rglob("*")):
            if path.is_file():
                zf.write(path, inside + path.relative_to(layout).as_posix())
    return zip_path




# --------------------------------------------------------------------------- the pretrained start
@pytest.fixture(scope="session")
def standin(tmp_path_factory) -> dict:
    """A tiny Market-named pool drawn by reid.synthetic, a layout built from it, another pool's layout, and
    a stand-in weights file of one short epoch on the pool's other people (``bench.standin_weights``, its
    command line's ``main``): what the pretrained-path tests and the Colab simulation start from."""
    from reid.build import build_from_pool, write_synthetic_pool

    tmp = tmp_path_factory.mktemp("pretrained")
    pool = write_synthetic_pool(tmp / "pool", identities=30, per_id=8)
    layout = build_from_pool(pool, tmp / "layout", seed=0, train_ids=10, val_ids=5, test_ids=5, per_id=8)
    other = build_from_pool(write_synthetic_pool(tmp / "other_pool", identities=20, per_id=8, seed=7),
                            tmp / "other_layout", seed=0, train_ids=10, val_ids=5, test_ids=5, per_id=8)
    weights = tmp / "runs" / "standin.pth"
    from bench import standin_weights  # its command line, in this process (no second start of torch)

    with contextlib.redirect_stdout(io.StringIO()):
        standin_weights.main([str(pool), str(weights), str(layout), "--epochs", "1", "--size", "64x32"])
    return {"tmp": tmp, "pool": pool, "layout": layout, "other": other, "weights": weights,
            "record": json.loads(weights.with_suffix(".json").read_text())}
