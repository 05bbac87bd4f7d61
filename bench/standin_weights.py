"""A stand-in for torchvision's ImageNet ResNet-18 file, made on this machine from pedestrian crops.

    python -m bench.standin_weights POOL OUT.pth LAYOUT [LAYOUT ...] [--epochs 30] [--size 128x64]

What it stands in for. On Colab, C6 downloads ``resnet18-5c106cde.pth`` and every model fine-tunes
from it; this machine cannot download it. So this tool trains torchvision's own ``resnet18`` (its
own strides, as the ImageNet file was trained) as an identity classifier on the people of a
Market-1501-style pool that appear in **none** of the given layouts, and writes the result in
that file's format: torchvision's names, an ``fc`` of shape [1000, 512] / [1000] (its values
unused: C6 discards it), no ``num_batches_tracked``. It loads through the real C6 path
(``REID_IMAGENET_WEIGHTS=OUT.pth``, or ``load_imagenet_weights(model, OUT.pth)``).

It is a *pedestrian* prior, closer to the task than ImageNet's objects and textures, so the
accuracies reached from it overstate what an ImageNet start gives. Use it to choose what depends on
starting from pretrained weights — learning rates, warm-ups, budgets, which epoch to keep — and
to test the pretrained path, not to quote as an ImageNet result.

Which people are left out. A built layout does not record which pool identities it used (its file
names are random), so they are found by content: every layout image is hashed (SHA-256 of its
bytes, which ``make_data.py pool`` copies unchanged) and matched against the pool's files. A
layout that ``make_data.py`` built from a pool (its ``BUILD_INFO.json`` says ``pool``) and matches
no pool image is an error: it was built from another pool, and nothing would be left out.

Beside ``OUT.pth`` goes ``OUT.json``: the identities left out (with how many images of each
layout matched), the identities and images trained on, the settings, epochs, steps, minutes, the
file's SHA-256, and what the backbone alone (no fine-tuning: ModifiedResNet18 with the file loaded
through C6, its 512-d pooled feature) scores on each layout's val split — the prior a fine-tune
starts from. Keep the files under ``runs/`` (``*.pth`` is git-ignored); never commit one.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torchvision
from torch import nn

from reid.batching import random_flip, random_shift, shuffled_batches
from reid.build import read_pool
from reid.checkpoints import file_sha256
from reid.data import IMAGE_SUFFIXES, RetrievalDataset
from reid.device import autocast, pick_device, resolve_amp, seed_everything
from reid.evaluate import retrieve
from reid.images import decode_images
from reid.model import ModifiedResNet18, load_imagenet_weights
from reid.runs import SettingError, parse_setting
from reid.train import warmup_cosine

STANDS_IN_FOR = ("torchvision's ImageNet ResNet-18 (resnet18-5c106cde.pth), format only: a pedestrian "
                 "identity classifier trained on pool people absent from the given layouts; its accuracies "
                 "overstate an ImageNet start")
STANDS_IN_FOR_OTHER = ("torchvision's ImageNet ResNet-18 (resnet18-5c106cde.pth), format only: a pedestrian "
                       "identity classifier trained on another pool (other people, other cameras) than the "
                       "layouts'; a prior that has never seen the evaluated cameras")
IMAGENET_CLASSES = 1000


class StandinError(ValueError):
    """A layout or pool that cannot give a sound stand-in (a pool layout matching no pool image, …)."""


def layout_images(root: Path) -> list[Path]:
    """Every image file under a layout's train/, val/ and test/ folders, sorted."""
    return sorted(p for split in ("train", "val", "test") for p in (root / split).rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def pool_people_in(layout: Path, pool_index: dict[str, int]) -> tuple[set[int], int, int]:
    """(pool identities whose images ``layout`` holds, images scanned, images matched), by content.

    Raises:
        StandinError when the layout has no images, or when its BUILD_INFO.json says it was built
        from a pool and none of its images is in this pool (it was built from another one).
    """
    images = layout_images(layout)
    if not images:
        raise StandinError(f"{layout}: no images under train/, val/ or test/ (not a layout?)")
    found = [pool_index.get(file_sha256(p)) for p in images]
    people = {pid for pid in found if pid is not None}
    matched = sum(pid is not None for pid in found)
    info = layout / "BUILD_INFO.json"
    source = json.loads(info.read_text()).get("source") if info.is_file() else None
    if not people and source == "pool":
        raise StandinError(f"{layout}: built from a pool (BUILD_INFO.json) but none of its {len(images)} images is "
                           f"in this pool: pass the pool it was built from")
    if not people:
        print(f"! {layout}: none of its {len(images)} images is in the pool, so none of the pool's people is left out "
              f"for it (fine for synthetic or other data; not for a layout built from this pool and re-encoded)")
    return people, len(images), matched


def training_people(pool_root: Path, layouts: Sequence[Path],
                    other_pool: bool = False) -> tuple[list[Path], list[int], dict[str, Any]]:
    """(pool files to train on, their identities, a record of what was left out and why): the pool
    people that appear in none of ``layouts``. ``other_pool``: the pool is not the one the layouts were
    built from (e.g. the synthetic pedestrians of ``make_data.py synthetic-pool`` against a Market-1501
    layout: other people, other cameras), so no person can be shared; the layouts are still scanned,
    and a match is an error."""
    pool = read_pool(pool_root)
    if not pool:
        raise StandinError(f"{pool_root}: no Market-named crops (0002_c1s1_000451_03.jpg) with identity > 0")
    index = {file_sha256(item.source): item.pid for item in pool}
    excluded: set[int] = set()
    per_layout = {}
    for layout in layouts:
        if other_pool:
            images = layout_images(layout)
            shared = sum(file_sha256(p) in index for p in images)
            if shared:
                raise StandinError(f"{layout}: {shared} of its images are in {pool_root}, which --other-pool says "
                                   f"is another pool")
            per_layout[str(layout)] = {"images": len(images), "matched_pool_images": 0, "pool_identities": 0}
            continue
        people, scanned, matched = pool_people_in(layout, index)
        excluded |= people
        per_layout[str(layout)] = {"images": scanned, "matched_pool_images": matched, "pool_identities": len(people)}
    kept = [item for item in pool if item.pid not in excluded]
    if not kept:
        raise StandinError(f"every identity of {pool_root} appears in the given layouts: nothing left to train on")
    record = {"pool": str(pool_root), "pool_identities": len({i.pid for i in pool}), "pool_images": len(pool),
              "layouts": per_layout, "excluded_identities": sorted(excluded), "other_pool": other_pool}
    return [item.source for item in kept], [item.pid for item in kept], record


def imagenet_format(state: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision resnet18 state dict in the 2017 file's format: no ``num_batches_tracked``, and an
    ``fc`` of ImageNet's shape [1000, 512] / [1000] drawn as torchvision initialises it (C6 discards it)."""
    out = {k: v.detach().cpu().clone() for k, v in state.items()
           if not k.endswith("num_batches_tracked") and not k.startswith("fc.")}
    torch.manual_seed(seed)
    fc = nn.Linear(out["layer4.1.bn2.weight"].numel(), IMAGENET_CLASSES)
    out["fc.weight"], out["fc.bias"] = fc.weight.detach().clone(), fc.bias.detach().clone()
    return out


def train_standin(paths: list[Path], pids: list[int], size: tuple[int, int], epochs: int, batch: int = 64,
                  lr: float = 1e-3, seed: int = 0, device: str | None = None) -> tuple[dict, dict[str, Any]]:
    """Train torchvision's resnet18 as a classifier of ``pids`` on ``paths`` at ``size`` (H, W): Adam
    ``lr`` (weight decay 5e-4) with a 2-epoch warm-up and a cosine, label smoothing 0.1, random flips
    and shifts of up to 1/16 of the height, autocast where it is fast. Returns (state dict, log)."""
    seed_everything(seed)
    dev = pick_device(device)
    amp = resolve_amp(dev, None)
    t0 = time.perf_counter()
    cache = decode_images(paths, image_size=size, device=dev)
    decode_s = time.perf_counter() - t0
    labels = {pid: i for i, pid in enumerate(sorted(set(pids)))}
    ids = torch.tensor([labels[p] for p in pids], device=dev)
    model = torchvision.models.resnet18(weights=None, num_classes=len(labels)).to(dev, memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-4)
    g = torch.Generator().manual_seed(seed)
    steps_per_epoch = len(shuffled_batches(len(ids), batch, g))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(2 * steps_per_epoch, epochs * steps_per_epoch))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    log: dict[str, Any] = {"epoch_loss": [], "epoch_accuracy": [], "decode_seconds": round(decode_s, 1)}
    t1 = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        losses, correct = [], 0
        for idx in shuffled_batches(len(ids), batch, g):
            x = cache.images[idx.to(dev)].to(dev, torch.float32, memory_format=torch.channels_last)
            x = random_shift(random_flip(x, g), g, max(1, size[0] // 16))
            with autocast(dev, amp):
                logits = model(x.contiguous(memory_format=torch.channels_last))
            y = ids[idx.to(dev)]
            loss = loss_fn(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.detach())
            correct += int((logits.argmax(1) == y).sum())
        mean = float(torch.stack(losses).mean())
        if not math.isfinite(mean):
            raise FloatingPointError(f"stand-in training loss is {mean} at epoch {epoch + 1}; lower --lr")
        log["epoch_loss"].append(round(mean, 4))
        log["epoch_accuracy"].append(round(correct / (len(losses) * batch), 4))
        print(f"stand-in epoch {epoch + 1}/{epochs}: loss {mean:.3f}, train accuracy "
              f"{log['epoch_accuracy'][-1]:.3f}, {(time.perf_counter() - t1) / 60:.1f} min", flush=True)
    log.update(steps=epochs * steps_per_epoch, train_minutes=round((time.perf_counter() - t1) / 60, 2),
               precision=str(amp or torch.float32).removeprefix("torch."), device=str(dev))
    return model.state_dict(), log


def backbone_alone(weights: Path, layout: Path) -> dict[str, dict[str, float]]:
    """Val Rank-1 / mAP of ModifiedResNet18 with ``weights`` loaded through C6 and no fine-tuning (its
    512-d pooled feature, Euclidean), at C2's padded 128×128 and at the person's 128×64."""
    out = {}
    for name, size in (("128x128 padded", 128), ("128x64", (128, 64))):
        model = ModifiedResNet18(input_size=size)
        report = load_imagenet_weights(model, weights)
        if not report.ok:
            raise StandinError(f"{weights}: did not load through C6: {report.message}")
        model.eval()
        with torch.no_grad():
            m = retrieve(model, RetrievalDataset(layout, "val", image_size=size)).metrics()
        out[name] = {"rank1": round(m["rank1"], 4), "mAP": round(m["mAP"], 4)}
    return out


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_setting(f"input_size={text}")[1]  # type: ignore[return-value]
    except SettingError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pool", type=Path, help="folder of Market-named crops (e.g. ../shared/data/market1501-train)")
    ap.add_argument("out", type=Path, help="the .pth to write (keep it under runs/); OUT.json goes beside it")
    ap.add_argument("layouts", type=Path, nargs="+", help="layouts whose people must not be trained on")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--size", type=_size, default=(128, 64), help="training input HxW (default 128x64)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--force", action="store_true", help="replace an existing OUT")
    ap.add_argument("--other-pool", action="store_true",
                    help="the pool is not the layouts' own (other people and cameras): nothing to leave out")
    args = ap.parse_args(argv)
    if args.out.suffix != ".pth":
        ap.error(f"{args.out}: expected a .pth file name")
    if args.out.exists() and not args.force:
        ap.error(f"{args.out} exists: pass --force to replace it")
    t0 = time.perf_counter()
    try:
        paths, pids, record = training_people(args.pool, args.layouts, args.other_pool)
    except (StandinError, FileNotFoundError) as err:
        ap.error(str(err))
    print(f"Training on {len(set(pids))} identities ({len(paths)} images) of {record['pool_identities']}; "
          f"{len(record['excluded_identities'])} left out (in the layouts).", flush=True)
    state, log = train_standin(paths, pids, args.size, args.epochs, args.batch, args.lr, args.seed, args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    torch.save(imagenet_format(state, args.seed), tmp)
    os.replace(tmp, args.out)
    record.update(stands_in_for=STANDS_IN_FOR_OTHER if args.other_pool else STANDS_IN_FOR, file=str(args.out), sha256=file_sha256(args.out),
                  trained_identities=sorted(set(pids)), trained_images=len(paths), input_size=list(args.size),
                  epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed, **log)
    record["backbone_alone_val"] = {str(layout): backbone_alone(args.out, layout) for layout in args.layouts
                                    if (layout / "val" / "gt.csv").is_file()}
    record["minutes"] = round((time.perf_counter() - t0) / 60, 2)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    print(f"Wrote {args.out} (sha256 {record['sha256'][:12]}…) and {args.out.with_suffix('.json')} in "
          f"{record['minutes']:.1f} min. Backbone alone, val Rank-1: " +
          "; ".join(f"{Path(k).name} {v['128x128 padded']['rank1']:.3f} padded / {v['128x64']['rank1']:.3f} at 128x64"
                    for k, v in record["backbone_alone_val"].items()))
    return record


if __name__ == "__main__":
    main()
