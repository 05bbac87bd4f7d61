"""Section 8 of BENCHMARKS.md: training as long as the curve gains, checked on three priors.

The runs (``results/ceiling/<recipe>_<prior>_<curve|today>.json``, each from
``python -m bench.time_to_accuracy data_market --recipe R --weights runs/standin/W.pth --epochs E
--test --test-every-epoch``; the commands are in the section) start from three stand-ins for the
ImageNet file: one trained on synthetic pedestrians (other people, other cameras than Market-1501's),
one trained on Market-1501 people absent from the layout (the same six cameras: a prior far stronger
than ImageNet's), and a weak one (two epochs of the latter). "curve" runs train with the presets'
curve rule under a high ceiling, as a GPU would; "today" runs use the fixed budgets and cosine decay
the presets had before (14 epochs for the ID model, 20 for the stronger recipe).

What the section computes (:func:`ceiling_section`): each run's curve, where and why it stopped, its
kept epoch's val and test numbers; the chosen rule against today's, query by query on test (the paired
bootstrap of ``reid/stats.py``); which kept-epoch rule loses less between val and test (the best epoch,
or the best 3-epoch mean: :func:`kept_rule_table`); and which rule picks the better handout model for
pred.csv (:func:`pred_rule_table`).
"""
from __future__ import annotations

import json
from pathlib import Path

from reid.predict import window_mean
from reid.schedule import CurveRule, follow_curve, stop_words
from reid.stats import paired_comparison

ROOT = Path(__file__).resolve().parent.parent
PRIORS = {"synthetic": ("standin_synthetic", "synthetic pedestrians: other people, other cameras"),
          "weak": ("standin_weak", "2 epochs on Market-1501 people outside the layout (weak)"),
          "market": ("standin", "Market-1501 people outside the layout, the same cameras (strong)")}
MODELS = {"id": "ID model (handout)", "triplet": "triplet model (handout)", "strong": "stronger recipe (beyond)"}


def load_runs(folder: Path) -> dict[str, dict]:
    """{run name: its JSON} for every run in ``folder`` that holds a history."""
    docs = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    return {name: doc for name, doc in docs.items() if "rank1" in doc}


def kept_epoch(maps: list[float], rule: str = "best") -> int:
    """1-based epoch kept by ``rule``: "best", the first epoch with the highest val mAP; "smoothed", the
    first with the highest mean of it and its neighbours (one each side, those that exist)."""
    if rule == "smoothed":   # the mean pred.csv's rule reads (reid.predict.kept_mean)
        maps = [window_mean(maps, e) for e in range(1, len(maps) + 1)]
    return max(range(len(maps)), key=lambda i: (maps[i], -i)) + 1


def _hits(ranks: list[int]) -> list[float]:
    return [1.0 if r == 1 else 0.0 for r in ranks]


def _stopped(run: dict) -> str:
    cfg = run["config"]
    if cfg.get("schedule", "cosine") == "cosine":
        return f"cosine over its {cfg['epochs']} epochs"
    rule = CurveRule(patience=cfg["patience"], min_delta=cfg["min_delta"], drops=cfg["lr_drops"])
    budget, elapsed = cfg.get("time_budget_s"), (run.get("elapsed_seconds") or [0.0])[-1]
    if not run.get("stop_reason") and budget and elapsed >= budget and len(run["mAP"]) < cfg["epochs"]:
        state = follow_curve(run["mAP"], rule).state(rule)
        return f"the experiment's {budget / 60:.0f}-minute wall budget, its curve {state}"
    return stop_words(follow_curve(run["mAP"], rule), rule, len(run["mAP"]), cfg["epochs"])


def run_rows(runs: dict[str, dict]) -> list[str]:
    """One row per run: prior, model, schedule, epochs, why it stopped, kept epoch, kept val, test at kept."""
    rows = ["| run | epochs / ceiling | how it ended | val mAP per epoch | kept | kept val Rank-1 / mAP | "
            "test Rank-1 / mAP, kept | test, last |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in runs.items():
        k = r.get("kept_epoch") or kept_epoch(r["mAP"])
        t = r.get("test_per_epoch") or []
        at = (lambda e: f"{t[e - 1]['rank1']:.3f} / {t[e - 1]['mAP']:.3f}" if len(t) >= e else "")  # noqa: E731
        rows.append(f"| `{name}` | {len(r['mAP'])} / {r['config']['epochs']} | {_stopped(r)} | "
                    f"{', '.join(f'{v:.3f}' for v in r['mAP'])} | {k} | {r['rank1'][k - 1]:.3f} / {r['mAP'][k - 1]:.3f} | "
                    f"{at(k)} | {at(len(r['mAP']))} |")
    return rows


def comparison_rows(runs: dict[str, dict]) -> list[str]:
    """The chosen rule ("curve") against today's budgets ("today") per prior and model: the differences of
    kept val mAP and of test Rank-1, and the paired bootstrap of test hits at each run's kept epoch."""
    rows = ["| model | prior | Δ kept val mAP | Δ test Rank-1 (kept) | test, query by query (95 %) | epochs, curve · today |",
            "| --- | --- | --- | --- | --- | --- |"]
    for model in MODELS:
        for prior in PRIORS:
            a, b = runs.get(f"{model}_{prior}_curve"), runs.get(f"{model}_{prior}_today")
            if not a or not b or not a.get("test_per_epoch") or not b.get("test_per_epoch"):
                continue
            ka, kb = kept_epoch(a["mAP"]), kept_epoch(b["mAP"])
            ta, tb = a["test_per_epoch"][ka - 1], b["test_per_epoch"][kb - 1]
            word, diff, (lo, hi) = paired_comparison(_hits(ta["match_rank"]), _hits(tb["match_rank"]))
            rows.append(f"| {MODELS[model]} | {prior} | {a['mAP'][ka - 1] - b['mAP'][kb - 1]:+.3f} | "
                        f"{ta['rank1'] - tb['rank1']:+.3f} | {word} [{lo:+.3f}, {hi:+.3f}] | "
                        f"{len(a['mAP'])} · {len(b['mAP'])} |")
    return rows


def kept_rule_table(runs: dict[str, dict]) -> tuple[list[str], str]:
    """(rows, the rule that lost less) — for every run with test at every epoch, the kept epoch by the best
    val mAP and by the best 3-epoch mean, and the test mAP and val − test gap at each; the rule with the
    higher mean test mAP over the runs (ties: "best")."""
    rows = ["| run | kept: best · smoothed | test mAP: best · smoothed | val − test mAP: best · smoothed |",
            "| --- | --- | --- | --- |"]
    test = {"best": [], "smoothed": []}
    for name, r in runs.items():
        t = r.get("test_per_epoch")
        if not t or len(t) != len(r["mAP"]):
            continue
        ks = {rule: kept_epoch(r["mAP"], rule) for rule in test}
        for rule, k in ks.items():
            test[rule].append(t[k - 1]["mAP"])
        rows.append(f"| `{name}` | {ks['best']} · {ks['smoothed']} | {t[ks['best'] - 1]['mAP']:.3f} · "
                    f"{t[ks['smoothed'] - 1]['mAP']:.3f} | {r['mAP'][ks['best'] - 1] - t[ks['best'] - 1]['mAP']:+.3f} · "
                    f"{r['mAP'][ks['smoothed'] - 1] - t[ks['smoothed'] - 1]['mAP']:+.3f} |")
    if not test["best"]:
        return rows, "best"
    means = {rule: sum(v) / len(v) for rule, v in test.items()}
    n = len(test["best"])
    rows.append(f"| mean of {n} run{'s' if n != 1 else ''} | | {means['best']:.3f} · {means['smoothed']:.3f} | |")
    return rows, "smoothed" if means["smoothed"] > means["best"] else "best"


def pred_rule_table(runs: dict[str, dict]) -> list[str]:
    """For each prior with an ID and a triplet run that have test at every epoch: the handout model each
    pred.csv rule picks — the higher val Rank-1 at the kept epoch ("rank1"), or the higher val mAP averaged
    over the kept epoch and its neighbours ("smoothed") — and the test Rank-1 (pred.csv's top-1) of each."""
    rows = ["| prior | ID: kept val Rank-1 · mean val mAP · test Rank-1 | triplet: the same | \"rank1\" picks | "
            "\"smoothed\" picks |", "| --- | --- | --- | --- | --- |"]
    for prior in PRIORS:
        pair = {m: runs.get(f"{m}_{prior}_curve") for m in ("id", "triplet")}
        if not all(r and r.get("test_per_epoch") for r in pair.values()):
            continue
        facts = {}
        for m, r in pair.items():
            k = kept_epoch(r["mAP"])
            facts[m] = (r["rank1"][k - 1], window_mean(r["mAP"], k), r["test_per_epoch"][k - 1]["rank1"])
        pick = {rule: max(facts, key=lambda m: facts[m][i]) for rule, i in (("rank1", 0), ("smoothed", 1))}
        cell = lambda m: " · ".join(f"{v:.3f}" for v in facts[m])  # noqa: E731
        rows.append(f"| {prior} | {cell('id')} | {cell('triplet')} | {pick['rank1']} (test {facts[pick['rank1']][2]:.3f}) | "
                    f"{pick['smoothed']} (test {facts[pick['smoothed']][2]:.3f}) |")
    return rows


def prior_rows(folder: Path) -> list[str]:
    """The three priors: what each was trained on, and what its backbone alone scores on the layout's val."""
    rows = ["| prior | trained on | epochs | sha256 | backbone alone, val Rank-1: 128×128 padded · 128×64 |",
            "| --- | --- | --- | --- | --- |"]
    for prior, (stem, what) in PRIORS.items():
        path = folder / f"{stem}.json"
        if not path.is_file():
            continue
        rec = json.loads(path.read_text())
        alone = next(iter(rec["backbone_alone_val"].values()))
        rows.append(f"| {prior} | {what}: {len(rec['trained_identities'])} identities, {rec['trained_images']} images | "
                    f"{rec['epochs']} | {rec['sha256'][:12]}… | {alone['128x128 padded']['rank1']:.3f} · "
                    f"{alone['128x64']['rank1']:.3f} |")
    return rows


def _or_none(rows: list[str], what: str) -> list[str]:
    """A table, or one line saying that nothing is recorded for it yet (a table of its header alone)."""
    return rows if len(rows) > 2 else [f"Not recorded yet: {what}."]


def ceiling_section(folder: Path = ROOT / "results" / "ceiling") -> str:
    lines = ["## 8. Training as long as the curve gains: three priors", ""]
    runs = load_runs(folder)
    priors = prior_rows(folder)
    priors = ["**The priors** (`python -m bench.standin_weights`; the synthetic one with `--other-pool` on "
              "`make_data.py synthetic-pool` people):", "", *priors, ""] if len(priors) > 2 else []
    if not runs:
        return "\n".join(lines + priors + [
            "The fine-tuning runs from these priors (`bench/ceiling_report.py`'s docstring: each model with the "
            "curve rule under a high ceiling and with the earlier fixed budgets, test scored at every epoch) are "
            "not recorded yet, so the curve rule, the kept-epoch rule (the best val mAP) and the pred.csv rule "
            "(the smoothed val mAP) have not been checked against them."])
    kept_rows, better = kept_rule_table(runs)
    n = len(kept_rows) - 3 if len(kept_rows) > 2 else 0     # the runs in the table (header, rule, mean row)
    lines += [__doc__.split("\n\n")[1].replace("\n", " "), "", *priors,
              "**Every run** (Market seed-0 layout; test scored at every epoch):", "", *run_rows(runs), "",
              "**The curve rule against today's fixed budgets** (curve minus today, each at its kept epoch):", "",
              *_or_none(comparison_rows(runs), "no pair of a curve run and a today run of one model and prior"), "",
              "**Which epoch to keep** — the best val mAP, or the best mean of an epoch and its neighbours:", "",
              *kept_rows, "", f"The rule with the higher mean test mAP over {'the' if n == 1 else 'these'} {n} run{'s' if n != 1 else ''}: "
              f"**{better}**" + (" — too few runs to change the notebook's rule (the best epoch)." if n < 6 else "."), "",
              "**Which handout model fills pred.csv**:", "",
              *_or_none(pred_rule_table(runs), "no prior with both handout models' curve runs")]
    return "\n".join(lines)


if __name__ == "__main__":
    print(ceiling_section())
