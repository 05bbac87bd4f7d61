"""BENCHMARKS.md section 7: the three models fine-tuned from a stand-in for the ImageNet file, every
curve, and the settings chosen from them (``reid.config.PRETRAINED``, ``reid.budget``).

Reads results/pretrained/: ``standin.json`` (what ``bench.standin_weights`` wrote beside the weights
file) and one JSON per run of ``bench.time_to_accuracy`` (``<model>_<start>[_<variant>].json``:
model id / triplet / strong, start scratch / standin). COMPARISONS says which pairs of runs decide a
setting; :func:`decide` applies the rule: a change replaces today's setting only when its kept-epoch
val mAP is ahead by more than ``MARGIN`` and its test Rank-1 and mAP are not behind.
"""
from __future__ import annotations

import json
from pathlib import Path

from reid.runs import settings_changed

ROOT = Path(__file__).resolve().parent.parent
MARGIN = 0.02
MODELS = {"id": "ID model (handout)", "triplet": "triplet model (handout)", "strong": "stronger recipe (beyond)"}

COMPARISONS: tuple[tuple[str, str, str, str], ...] = (
    ("id", "learning rate 1e-4 (today 3e-4)", "id_standin", "id_standin_lr1e-4"),
    ("id", "learning rate 1e-3 (today 3e-4)", "id_standin", "id_standin_lr1e-3"),
    ("id", "backbone at 0.1× the head's rate", "id_standin", "id_standin_bb0.1"),
    ("id", "a 1-epoch warm-up (today none)", "id_standin", "id_standin_warmup1"),
    ("strong", "learning rate 3.5e-4 (today 1e-3)", "strong_standin", "strong_standin_lr3.5e-4"),
    ("strong", "learning rate 1e-4 (today 1e-3)", "strong_standin", "strong_standin_lr1e-4"),
    ("strong", "backbone at 0.1× the head's rate", "strong_standin", "strong_standin_bb0.1"),
    ("strong", "a 1-epoch warm-up (today 5)", "strong_standin", "strong_standin_warmup1"),
)
"""(model, the change, run with today's setting, run with the change): each decides one setting."""


def _runs(results: Path) -> dict[str, dict]:
    """{file stem: run JSON} of every recorded run (everything but standin.json), by model then name."""
    order = {m: i for i, m in enumerate(MODELS)}
    paths = sorted((p for p in results.glob("*.json") if p.stem != "standin"),
                   key=lambda p: (order.get(p.stem.split("_")[0], 9), p.stem))
    return {p.stem: json.loads(p.read_text()) for p in paths}


def kept(run: dict) -> int:
    """1-based kept epoch of a recorded run: the first with the highest val mAP (``History.kept_epoch``)."""
    maps = run["mAP"]
    return max(range(len(maps)), key=lambda i: (maps[i], -i)) + 1


def decide(today: dict, arm: dict) -> dict[str, float | bool]:
    """The rule for one comparison: differences at the kept epochs (arm − today) and whether the arm
    replaces today's setting (val mAP ahead by more than MARGIN, test Rank-1 and mAP not behind)."""
    kt, ka = kept(today) - 1, kept(arm) - 1
    d = {"val mAP": arm["mAP"][ka] - today["mAP"][kt], "val Rank-1": arm["rank1"][ka] - today["rank1"][kt],
         "test Rank-1": arm["test"]["rank1"] - today["test"]["rank1"],
         "test mAP": arm["test"]["mAP"] - today["test"]["mAP"]}
    d["replaces"] = d["val mAP"] > MARGIN and d["test Rank-1"] >= 0 and d["test mAP"] >= 0
    return d


def _start(run: dict) -> str:
    start = run["config"].get("start", "random")
    return "random" if start == "random" else f"stand-in ({start.removeprefix('sha256:')[:8]})"


def _row(name: str, run: dict) -> str:
    k = kept(run)
    test = run.get("test")
    last = run.get("test_last", test)
    tests = (f"{test['rank1']:.3f} / {test['mAP']:.3f} | {last['rank1']:.3f} / {last['mAP']:.3f}"
             if test else "not recorded | ")
    return (f"| `{name}` | {_start(run)} | {settings_changed(run['config'])} | {len(run['rank1'])} | "
            f"{', '.join(f'{v:.3f}' for v in run['rank1'])} | {k} | {run['rank1'][k - 1]:.3f} / {run['mAP'][k - 1]:.3f} | "
            f"{run['rank1'][-1]:.3f} / {run['mAP'][-1]:.3f} | {tests} | {run['elapsed_seconds'][-1] / 60:.1f} |")


def _standin_lines(results: Path) -> list[str]:
    path = results / "standin.json"
    if not path.is_file():
        return ["(no stand-in recorded: `python -m bench.standin_weights`, then copy its JSON to "
                "results/pretrained/standin.json)"]
    s = json.loads(path.read_text())
    layouts = ", ".join(f"`{Path(k).name}` ({v['pool_identities']} identities)" for k, v in s["layouts"].items())
    alone = "; ".join(f"`{Path(k).name}` {v['128x128 padded']['rank1']:.3f} at 128×128 padded, "
                      f"{v['128x64']['rank1']:.3f} at 128×64" for k, v in s["backbone_alone_val"].items())
    size = "×".join(map(str, s["input_size"]))
    return [f"The stand-in: `python -m bench.standin_weights {s['pool']} runs/standin/standin.pth "
            f"{' '.join(Path(k).name for k in s['layouts'])} --epochs {s['epochs']}` trains torchvision's own "
            f"`resnet18` (its own strides, as the ImageNet file was trained) as an identity classifier on the "
            f"{len(s['trained_identities'])} identities ({s['trained_images']} images) of the pool's "
            f"{s['pool_identities']} that appear in none of the layouts {layouts} — found by hashing every layout "
            f"image against the pool — for {s['epochs']} epochs at {size} ({s['steps']} steps, "
            f"{s['train_minutes']:.1f} minutes of training, {s['minutes']:.1f} in all, final training accuracy "
            f"{s['epoch_accuracy'][-1]:.3f}), and saves it in the format of `resnet18-5c106cde.pth` "
            f"(sha256 {s['sha256'][:12]}…; the file stays outside git). What it stands in for: "
            f"{s['stands_in_for']}. It is a pedestrian prior, closer to the task than ImageNet's, so the "
            "accuracies below overstate a real ImageNet start; they are for choosing learning rates, warm-ups, "
            "budgets and the kept epoch, and for testing the pretrained path.",
            "",
            f"The backbone alone (C6 loads the file into ModifiedResNet18, no fine-tuning; its 512-d pooled "
            f"feature), val Rank-1: {alone}: the prior a fine-tune starts from."]


def decision_lines(results: Path) -> list[str]:
    runs = _runs(results)
    lines = ["| model | change | today's run | run with the change | Δ kept val mAP | Δ kept val Rank-1 | "
             "Δ test Rank-1 | Δ test mAP | replaces today's? |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model, change, today, arm in COMPARISONS:
        if today not in runs or arm not in runs:
            lines.append(f"| {MODELS[model]} | {change} | `{today}` | `{arm}` | not recorded | | | | |")
            continue
        d = decide(runs[today], runs[arm])
        lines.append(f"| {MODELS[model]} | {change} | `{today}` | `{arm}` | {d['val mAP']:+.3f} | "
                     f"{d['val Rank-1']:+.3f} | {d['test Rank-1']:+.3f} | {d['test mAP']:+.3f} | "
                     f"{'yes' if d['replaces'] else 'no'} |")
    return lines


def pretrained_section(results: Path = ROOT / "results" / "pretrained") -> str:
    """Section 7, from results/pretrained/."""
    runs = _runs(results) if results.is_dir() else {}
    lines = ["## 7. The pretrained start: fine-tuning from a stand-in for the ImageNet file (Market layout, CPU)",
             "", *(_standin_lines(results) if results.is_dir() else ["(nothing recorded yet)"]), "",
             "Each run: `python -m bench.time_to_accuracy data_market --recipe R --epochs E [--weights "
             "runs/standin/standin.pth] [--set FIELD=VALUE ...] --minutes 90 --test --out "
             "results/pretrained/NAME.json`, one at a time on the 2-core CPU under bfloat16 autocast, on the "
             "Market layout of sections 3 and 4 (layout seed 0; val 49 gallery images and 355 queries, test 100 "
             "and 717). \"Settings other than its start's preset\" compares a run with today's preset for the "
             "same start (`TrainConfig.handout_id` / `handout_triplet` / `strong`, with `reid.config.PRETRAINED` "
             "for a pretrained start). The kept epoch is the first with the best val mAP (the notebook keeps "
             "that epoch's weights); test is scored at the kept epoch and at the last. Val numbers at a chosen "
             "epoch are optimistic (the epoch was chosen on val); the test numbers are the clean figure.",
             "",
             "| run | start | settings other than its start's preset | epochs | val Rank-1 per epoch | kept epoch | "
             "kept val Rank-1 / mAP | last val Rank-1 / mAP | test Rank-1 / mAP, kept | test, last | minutes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
             *([_row(name, run) for name, run in runs.items()] or ["| (none) |" + " |" * 10]),
             "",
             "### What was chosen",
             "",
             f"A change replaces today's setting only if its kept-epoch val mAP is ahead by more than {MARGIN} and "
             "its test Rank-1 and mAP are not behind (differences: the run with the change minus today's, each at "
             "its kept epoch).",
             "",
             *decision_lines(results)]
    return "\n".join(lines)
