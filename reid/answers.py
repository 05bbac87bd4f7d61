"""Q1–Q11 answered for this run: each answer a few lines computed from the model, the data and the
History, printed by the notebook right under its ``### Qn`` heading and written to answers.md.

Every ``qN_lines`` function returns the answer as lines (at most ``MAX_LINES``, each at most
``LINE_WIDTH`` characters once :func:`answer_text` has laid them out); the notebook prints them, saves
them with the run's results (``save_results(..., {"answers": ...})``), and ``python -m reid.answers``
writes answers.md from those saved lines and the explanations below (``EXPLAINED``), so the file says
what the notebook printed, word for word.

How the answers are computed (the notebook's section of that name says it in prose):

* Q8's conclusion: *overfitting* when val mAP peaked (reid/schedule.py's reading: its 3-epoch mean more
  than 4 × min_delta below its best after ``patience`` epochs without a gain) while the training loss
  still fell; else *under-trained* when the training cross-entropy ends above half of ln(number of
  training identities) — the loss of a uniform guess — the model being still far from fitting its
  own training people; else *levelled* (the curve stopped gaining: more epochs would not help).
* Q9's rows: :func:`reid.findings.row_facts` measures each shown query against its match and its wrong
  top-1 (clothing colour, brightness, the mirrored match, the padding, and whether the wrong top-1 is a
  hub: the wrong top-1 of several val queries); the first fact past its threshold explains the row, and a
  row none explains says so.
* Q11: the paired bootstrap of ``reid.findings.compare_handout_models``, the share of listed triplets
  still active per epoch (``History.active_triplets``), and the other differences between the two
  handout models, named.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Sequence

from . import text
from .findings import HUB_FACTOR
from .schedule import CurveRule, follow_curve

__all__ = ["MAX_LINES", "answer_text", "q8_lines", "q9_lines", "q11_lines", "conclusion", "write_answers_md"]

MAX_LINES = 6
QUESTIONS = {
    "Q1": "output shape of every layer of Table 1",
    "Q2": "the average-pooling kernel",
    "Q3": "another way to get a 1-D vector",
    "Q4": "trainable parameters of the first ResBlock",
    "Q5": "which layers cannot load the pretrained weights, and which pretrained weights are discarded",
    "Q6": "output size of the last FC layer",
    "Q7": "dropout",
    "Q8": "the ID-loss model's training curves",
    "Q9": "retrieval results of the ID-loss model",
    "Q10": "how many triplets are possible in the training set",
    "Q11": "the triplet model's curves, compared with the ID-loss model's",
}
"""The questions, in the handout's order, as the notebook's ``### Qn`` headings name them."""


def answer_text(question: str, lines: Sequence[str], width: int | None = None) -> str:
    """The answer as printed: ``"Q8 — this run: "`` + the lines, each wrapped at the line width with
    continuation lines indented. The answers are written to fit ``MAX_LINES`` lines at the notebook's
    width (tests/test_answers.py holds them to it, also with the numbers of a large layout); a longer
    one is still printed whole."""
    return text.wrap(f"{question} — this run: " + "\n".join(lines), width)


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


# ------------------------------------------------------------------------------------ Q1–Q7
def _shape(s: Sequence[int]) -> str:
    return "×".join(map(str, s))


def q1_lines(shapes: list[tuple[str, tuple[int, int, int]]], input_shape: tuple[int, int]) -> list[str]:
    """Q1 from ``table1_shapes``: the input, then the shape after each stage (the notebook's table under it has
    every row)."""
    by = dict(shapes)
    blocks = [(n, s) for n, s in shapes if n.startswith("ResBlock")]
    stages = ", ".join(_shape(s) for _, s in blocks[1::2])
    return [f"a 3×{_shape(input_shape)} input gives {_shape(shapes[0][1])} after the 7×7 conv, {_shape(shapes[1][1])} "
            f"after max pooling; the four stages output {stages} (no downsampling in the 512 stage); "
            f"average pooling gives {_shape(by['Average pooling'])}; both blocks of a stage give the same shape."]


def q2_lines(kernel: tuple[int, int], channels: int = 512) -> list[str]:
    """Q2 from ``pooling_kernel``: the kernel that covers the whole map entering the pooling layer."""
    h, w = kernel
    return [f"{h}×{w}, stride {h}: it covers the whole {channels}×{h}×{w} map entering the pooling layer, "
            f"giving {channels}×1×1."]


def q3_lines(channels: int, kernel: tuple[int, int], fc_out: int) -> list[str]:
    """Q3: flattening instead of pooling, with the sizes it implies for this backbone and its first FC."""
    flat = channels * kernel[0] * kernel[1]
    return [f"flatten the {channels}×{kernel[0]}×{kernel[1]} map into a {flat:,}-d vector: an FC to {fc_out} then "
            f"needs {flat * fc_out:,} weights, against {channels * fc_out:,} after pooling. Other ways: global max "
            "pooling, generalised-mean (GeM) pooling, or a 1×1 convolution to a few channels, then flatten."]


def q4_lines(block: Any) -> list[str]:
    """Q4 from the first ResBlock itself: its trainable parameters, tensor by tensor."""
    params = dict(block.named_parameters())
    conv = params["conv1.weight"]
    bn = params["bn1.weight"].numel() + params["bn1.bias"].numel()
    total = sum(t.numel() for t in params.values() if t.requires_grad)
    return [f"{total:,} = 2 convolutions × {conv.shape[0]}·{conv.shape[1]}·{conv.shape[2]}·{conv.shape[3]} "
            f"({conv.numel():,} each, no bias) + 2 BatchNorms × ({bn // 2} γ + {bn // 2} β); no residual "
            f"convolution ({conv.shape[1]} → {conv.shape[0]} channels)."]


def q5_lines(report: Any, loaded: bool | None = None) -> list[str]:
    """Q5 from ``weight_mapping_report`` (the handout's file's names and shapes); ``loaded``: whether this
    run's C6 loaded the file (False: the answer says the tensors *would* load, and that none did)."""
    layer = lambda n: n.rsplit(".", 1)[0]  # noqa: E731
    warm = {layer(n) for n in report.loaded}
    fresh = list(dict.fromkeys(layer(n) for n in report.not_loaded if layer(n) not in warm))
    dropped = ", ".join(f"{n} [{', '.join(map(str, report.shapes[n]))}]" for n in report.discarded)
    verb, none = ("would load", "; none did in this run: C6 found no weights file") if loaded is False else ("load", "")
    return [f"{len(report.loaded)} backbone tensors {verb} (every convolution and BatchNorm{none}); the head cannot — "
            f"{', '.join(fresh)} — and keeps its random init; discarded from the file: {dropped}."]


def q6_lines(out_features: int, train_ids: int) -> list[str]:
    """Q6: the last FC's output size, against the training identities of train_idloss.csv."""
    return [f"{out_features} scores, one per training identity ({train_ids} in train_idloss.csv): the ID loss is a "
            f"{out_features}-way classification."]


def q7_lines(model: Any, image: Any) -> list[str]:
    """Q7 from the model: where its dropout layers are and their p, and whether the feature of one image is
    the same twice in eval mode and in train mode (measured on ``image`` ``[3, H, W]``)."""
    import torch  # noqa: PLC0415

    drops = [(n, m.p) for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout)]
    was = model.training
    x = torch.stack([image, image])
    with torch.no_grad():
        model.eval()
        same_eval = bool(torch.equal(model.embed(x)[0], model.embed(x)[1]))
        model.train()
        torch.manual_seed(0)
        same_train = bool(torch.equal(model.embed(x)[0], model.embed(x)[1]))
    model.train(was)
    where = " and ".join(n.split(".")[0] for n, _ in drops)
    return [f"Dropout(p={drops[0][1]:g}) after the ReLU of {where}: in training it zeroes each activation with "
            f"probability {drops[0][1]:g} (the rest × {1 / (1 - drops[0][1]):.2f}), a regulariser against "
            f"co-adapted units; in eval it is off. Measured: the feature of one constant input, twice, the same in eval: "
            f"{same_eval}; in train: {same_train}."]


def q10_lines(n_triplets: int, counts: Sequence[int]) -> list[str]:
    """Q10 from the identities' image counts nᵢ: Σ nᵢ(nᵢ − 1)(N − nᵢ), ordered anchor–positive pairs."""
    n, m = sum(counts), len(counts)
    same = len(set(counts)) == 1
    formula = (f"= {m} · {counts[0]} · {counts[0] - 1} · {n - counts[0]:,}" if same else "= Σ nᵢ(nᵢ − 1)(N − nᵢ)")
    return [f"{n_triplets:,} {formula} ({m} identities, {n:,} images; anchor and positive ordered, the negative any "
            "image of another identity)."]


# ----------------------------------------------------------------------------------------- Q8
def conclusion(history: Any, num_ids: int, rule: CurveRule = CurveRule()) -> tuple[str, str]:
    """(word, reason) for Q8: "overfitting", "under-trained" or "levelled", with the numbers that decide
    it (see the module docstring)."""
    p = follow_curve(history.mAP, rule)
    state = p.state(rule)
    loss = [v for v in history.epoch_train_loss if v is not None]
    uniform = math.log(num_ids)
    share = loss[-1] / uniform if loss else float("nan")
    if state == "peaked" and len(loss) >= 2 and loss[-1] < loss[0]:
        b = p.best_epoch
        return "overfitting", (f"val mAP's 3-epoch mean peaked at epoch {b} ({p.smoothed[b - 1]:.3f}) and fell to "
                               f"{p.smoothed[-1]:.3f} while the training loss kept falling ({loss[0]:.2f} → {loss[-1]:.2f})")
    if share > 0.5:
        return "under-trained", (f"the training cross-entropy ended at {loss[-1]:.2f}, {_pct(share)} of ln {num_ids} = "
                                 f"{uniform:.2f} (a uniform guess): far from fitting its own training people, so not "
                                 "overfitting")
    return "levelled", (f"the training cross-entropy ended at {loss[-1]:.2f} ({_pct(share)} of ln {num_ids}) and val mAP "
                        "stopped gaining: more epochs would not help")


def _mean_of(history: Any, rule: CurveRule) -> str:
    """"3-epoch mean" — or "2-epoch mean" for a run of two epochs (the smoothing takes what there is)."""
    return f"{min(rule.smooth, len(history.mAP))}-epoch mean"


def how_it_ended(history: Any, ceiling_steps: int, rule: CurveRule) -> str:
    """How a run ended, by the rule that trains it: stopped by its val curve, or at its step ceiling —
    still gaining, within ``patience`` epochs of its last gain, or after the curve levelled."""
    p = follow_curve(history.mAP, rule)
    if history.stop_reason:
        return f"its val curve stopped it after {history.epochs_done} epochs, levelled at the lowest rate"
    at = f"the step ceiling ({ceiling_steps:,} steps, {history.epochs_done} epochs) ended it"
    if p.since_gain == 0:
        return f"{at} while val mAP still gained (its {_mean_of(history, rule)} at a new best, {p.smoothed[-1]:.3f})"
    if p.state(rule) == "rising":
        return (f"{at} {p.since_gain} epoch{'s' if p.since_gain > 1 else ''} after val mAP's last gain, "
                f"before the {rule.patience} epochs the rule waits to call it levelled")
    return f"{at} after val mAP had levelled ({p.since_gain} epochs without a gain)"


def q8_lines(history: Any, num_ids: int, ceiling_steps: int, rule: CurveRule = CurveRule()) -> list[str]:
    """Q8 for this run: the conclusion (overfitting / under-trained / levelled) with the numbers that decide
    it, what the curves did (training loss, validation loss, val Rank-1), and how training ended."""
    word, reason = conclusion(history, num_ids, rule)
    vl = [v for v in history.val_loss if v is not None]
    loss = [v for v in history.epoch_train_loss if v is not None]
    r1 = history.rank1
    curves = [f"training cross-entropy {loss[0]:.2f} → {loss[-1]:.2f}"] if loss else []
    if vl:
        curves.append(f"val triplet loss {vl[0]:.3f} → {vl[-1]:.3f}")
    curves.append(f"val Rank-1 {r1[0]:.3f} → {r1[-1]:.3f}")
    ended = f"How it ended: {how_it_ended(history, ceiling_steps, rule)}."
    if word == "under-trained":
        ended += " More steps or a pretrained start would help."
    return [f"{word} — {reason}.", f"Curves over {len(r1)} epochs: " + ", ".join(curves) + ".", ended]


# ----------------------------------------------------------------------------------------- Q9
def q9_lines(rows: list[dict[str, Any]], rank1: float, hubs: tuple[int, int, int, float], queries: int,
             gallery: int, colour: dict[str, tuple[int, float]]) -> list[str]:
    """Q9 for this run: val Rank-1 against chance, when the model succeeds over all val queries (by the
    clothing-colour fact of :func:`reid.findings.colour_split`), the measured fact that explains each miss
    shown (:func:`reid.findings.row_facts`), and the hubs (``hubs``: :func:`reid.findings.hubs`)."""
    misses = [r for r in rows if r["match_rank"] > 1]
    lines = [f"Rank-1 {rank1:.3f} on {queries:,} val queries (chance 1/{gallery:,}); shown: the first "
             f"{len(rows) - len(misses)} hits and {len(misses)} misses."]
    (n_near, r_near), (n_not, r_not) = colour["nearer"], colour["not"]
    lines.append(f"When it succeeds: Rank-1 {r_near:.3f} if the match is nearer in clothing colour than the nearest "
                 f"wrong image ({n_near:,} queries), {r_not:.3f} if not ({n_not:,}).")
    if misses:
        causes: dict[str, int] = {}
        for r in misses:
            causes[r["cause"]] = causes.get(r["cause"], 0) + 1
        lines.append("The misses shown, by measured fact: "
                     + "; ".join(f"{c} ({n})" for c, n in causes.items()) + ".")
    n_hubs, top, count, mean = hubs
    if count:
        lines.append(f"Hubs: gallery {top} is the wrong top-1 of {count} queries ({count / mean:.1f}× the mean, "
                     f"{mean:.1f}); {n_hubs} of {gallery:,} take {HUB_FACTOR:.0f}× it or more.")
    return lines


# ---------------------------------------------------------------------------------------- Q11
def _own_curves(h: Any, rule: CurveRule) -> str:
    """The triplet model's own curves in one sentence: its loss on training and on val triplets (the same
    objective), val Rank-1, and where the val mAP curve stands by the training rule."""
    state = {"rising": "still gaining at its last epoch", "levelled": "levelled", "peaked": "peaked and fell",
             "too short": "one epoch only"}[follow_curve(h.mAP, rule).state(rule)]
    loss = [v for v in h.epoch_train_loss if v is not None]
    vl = [v for v in h.val_loss if v is not None]
    text = f"the triplet model over {len(h.rank1)} epochs: val Rank-1 {h.rank1[0]:.3f} → {h.rank1[-1]:.3f}, {state}"
    if loss and vl:
        gap = "no overfitting gap" if vl[-1] - loss[-1] < 0.5 * max(loss[-1], 1e-9) else "val well above train"
        text += f"; triplet loss train {loss[0]:.3f} → {loss[-1]:.3f}, val {vl[0]:.3f} → {vl[-1]:.3f} ({gap})"
    return text + "."


def q11_lines(comparisons: list[dict[str, Any]], tri_history: Any, id_cfg: Any, tri_cfg: Any,
              id_images: int, tri_images: int, rule: CurveRule = CurveRule()) -> list[str]:
    """Q11 for this run: the triplet model's own curves, then against the ID model (as kept, at equal
    epochs and at about equal images, paired over the val queries), the active-triplet mechanism measured,
    and what else differs between the two handout models."""
    def said(c: dict[str, Any]) -> str:
        return c["word"] + (f" by {abs(c['difference']):.3f}" if "difference" in c and c["word"] != "level" else "")

    by = {c["when"]: c for c in comparisons}
    kept = by.get("as kept (the tables)")
    epochs = by.get("after the same number of epochs")
    images = by.get("after about the same number of training images")
    lines = [_own_curves(tri_history, rule)]
    parts = []
    if kept:
        parts.append(f"as kept {said(kept)} ({kept['triplet_rank1']:.3f} vs {kept['id_rank1']:.3f})")
    if epochs:
        parts.append(f"at equal epochs {said(epochs)}")
    if images:
        same = kept and (images["id_epoch"], images["triplet_epoch"]) == (kept["id_epoch"], kept["triplet_epoch"])
        parts.append("at about equal images the same pair as kept" if same else f"at about equal images {said(images)}")
    if parts:
        lines.append("Against the ID model (val Rank-1, paired): " + "; ".join(parts) + ".")
    active = [a for a in tri_history.active_triplets if a is not None]
    if active:
        lines.append(f"Listed triplets with loss > 0 (the only ones with a gradient): {_pct(active[0])} in epoch 1, "
                     f"{_pct(active[-1])} in epoch {len(active)}.")
    aug = lambda c: "flips + shifts" if c.shift else "flips"  # noqa: E731
    if aug(id_cfg) != aug(tri_cfg):
        also = f"augmentation ({aug(id_cfg)} vs {aug(tri_cfg)}), "
    else:
        also = ""
    lines.append(f"Also different: {also}images a step ({id_cfg.batch_size} vs {3 * tri_cfg.batch_size}), an epoch "
                 f"({id_images:,} vs {tri_images:,}).")
    return lines


# -------------------------------------------------------------------------------- answers.md
EXPLAINED = {
    "Q1": "The first 512 block changes the channels without downsampling (stride 1), unlike torchvision's "
          "ResNet-18, so the map entering the pooling layer is 8×8 rather than 4×4.",
    "Q2": "`nn.AvgPool2d` with that kernel, computed from the input size the backbone is built for; a backbone "
          "built for another size gets its own (8×4 for the stronger recipe's 128×64 people).",
    "Q3": "Flattening keeps where each activation was (the head's colour in the top rows, the shoes at the "
          "bottom) but ties the network to one input size, gives the next layer 64 times the weights (more to fit noise with) and "
          "loses the tolerance to small shifts that averaging gives. Global max pooling keeps each channel's "
          "strongest response; generalised-mean (GeM) pooling interpolates between the two.",
    "Q4": "Each convolution has `bias=False`: the BatchNorm after it has the bias.",
    "Q5": "Every backbone weight has a counterpart of the same shape (the stride change of the first 512 block "
          "changes no weight's shape). The head is new, so it starts from random values.",
    "Q6": "The ID loss is a classification over the training identities; the val and test people are others, "
          "so retrieval uses the 256-d feature before this layer, not its scores.",
    "Q7": "With about 10 images per person a 230-way classifier can memorise its training images; dropout "
          "keeps the head from leaning on a few co-adapted units. In eval mode it is off, so a query's "
          "feature does not depend on chance; that it does not depend on the rest of its batch either is "
          "BatchNorm's doing (in eval it uses its running statistics, not the batch's).",
    "Q8": "How these lines are decided: the notebook's section \"How these answers are computed\", and "
          "`reid/answers.py` (`conclusion`). The curves are `figures/curves_id.png`.",
    "Q9": "Each row's explanation is the first measured fact past its threshold (`reid/findings.py`, "
          "`row_facts`); the figure is `figures/ranked_id.png`.",
    "Q10": "Anchor and positive are two different images of one person, ordered (the loss pulls the anchor "
           "towards the positive, so (a, p) and (p, a) are two triplets); the negative is any image of another "
           "person: Σᵢ nᵢ(nᵢ − 1)(N − nᵢ). Unordered pairs would halve it.",
    "Q11": "The comparisons are paired: the same val queries, each model's rank-1 hit resampled together "
           "(`reid/stats.py`). From random weights and a few CPU epochs the order of the two says more about the "
           "budget than about the losses; a GPU run from ImageNet weights, where both curves level, compares the "
           "methods. The curves, with the share of active triplets, are `figures/curves_id_vs_triplet.png`.",
}


MARKET_RUNS = (("market_tta_id", "ID loss + label smoothing, test-time flip (earlier preset)"),
               ("market_tta_triplet", "triplet loss, batch-all triplets (earlier preset)"),
               ("market_tta_strong_26ep_128x128", "stronger recipe at 128×128 (earlier preset)"),
               ("market_tta_strong", "stronger recipe at 128×64, 100 epochs (one seed)"),
               ("market_tta_strong_60ep_128x128", "stronger recipe at 128×128, 60 epochs: the same minutes (one seed)"))
"""Recorded Market-1501 runs (20 minutes each from random weights, earlier sessions) answers.md tabulates."""


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def results_lines(results: dict[str, Any]) -> list[str]:
    """This run's kept models (val), the same models measured again, and test where the layout has answers."""
    lines = ["## This run's models", "",
             "Each model at its kept epoch, as it is validated (val; the stronger recipe with test-time flip and "
             "cosine distance), from the run's `results` file:", "",
             _row(["model", "Rank-1", "Rank-5", "Rank-10", "mAP", "epoch kept", "training min"]), _row(["---"] * 7)]
    for name, r in results["table"].items():
        lines.append(_row([name, *(f"{r[k]:.3f}" for k in ("Rank-1", "Rank-5", "Rank-10", "mAP")),
                           r["epoch (kept on val mAP)"], f"{r['train min']:.1f}"]))
    lines += ["", "Beyond the handout, the same kept models measured again (val, Rank-1 / mAP):", "",
              _row(["model", "with test-time flip", "with re-ranking"]), _row(["---"] * 3)]
    for name, b in results["beyond"].items():
        lines.append(_row([name, f"{b['Rank-1 (test-time flip)']:.3f} / {b['mAP (test-time flip)']:.3f}",
                           f"{b['Rank-1 (re-ranking)']:.3f} / {b['mAP (re-ranking)']:.3f}"]))
    scores = results.get("test_scores")
    if scores:
        n = next(iter(scores.values()))["queries"]
        lines += ["", f"Test, against the layout's `test_gt.csv` ({n} queries; `pred.csv` from the "
                      f"{results['pred_model']} model): "
                  + "; ".join(f"{name} Rank-1 {s['rank1']:.3f}, mAP {s['mAP']:.3f}" for name, s in scores.items())
                  + "."]
    return lines


def market_lines(root: Path) -> list[str]:
    """One table of the recorded Market-1501 runs of earlier recipes, with the pointer to the rest."""
    lines = ["## Measured on Market-1501 (recorded runs, not this run)", "",
             "From random weights on a layout built from Market-1501 (seed 0), 20 minutes a model on the CPU, "
             "at the last epoch (a 2-core AMD EPYC with bfloat16 in hardware). The last two rows are one seed on one "
             "layout; over 5 layouts and 3 seeds at equal time the two input shapes are level (BENCHMARKS section 5; "
             "`reid.runs.ablation_table` for what each addition measured). Every other recorded run, with its curves and commands, is in "
             "`bench/BENCHMARKS.md`.", "",
             _row(["run", "Rank-1", "Rank-5", "Rank-10", "mAP"]), _row(["---"] * 5)]
    for stem, name in MARKET_RUNS:
        path = root / "results" / f"{stem}.json"
        if path.is_file():
            h = json.loads(path.read_text())
            lines.append(_row([name, *(f"{h[k][-1]:.3f}" for k in ("rank1", "rank5", "rank10", "mAP"))]))
    return lines


def _data_words(line: str) -> str:
    """What a run's data line says of its data, without the machine's path: "Data: /x/data — the built-in
    SYNTHETIC data set (no course data found)." → "the built-in SYNTHETIC data set (no course data found)"."""
    return line.split(" — ", 1)[-1].rstrip(".").removesuffix(" (built just now)")


def write_answers_md(results: dict[str, Any], out: Path, root: Path = Path(".")) -> str:
    """answers.md from a run's saved answers (``results["answers"]``: {question: lines}) and ``EXPLAINED``:
    one section per question, the run's answer first, then why; then the run's tables and one table of
    recorded Market-1501 runs."""
    answers = results["answers"]
    parts = ["# Answers to Q1–Q11", "",
             f"Written by `python -m reid.answers` from the committed full run of `assignment.ipynb` on "
             f"{_data_words(results['data'])}: each answer is the one the notebook printed under its "
             "heading, word for word, then a short why. README holds the measured results beyond these "
             "questions.", ""]
    for q, title in QUESTIONS.items():
        lines = answers.get(q)
        if lines:
            parts += [f"## {q} — {title}", "", " ".join(lines), "", EXPLAINED[q], ""]
    parts += results_lines(results) + [""] + market_lines(root) + [""]
    doc = "\n".join(parts)
    out.write_text(doc)
    return doc


def newest_results(folder: Path = Path("results")) -> Path:
    """The newest ``results/*.json`` that holds a run's answers (the notebook writes ``<data source>.json``)."""
    found = [p for p in folder.glob("*.json") if '"answers"' in p.read_text()]
    if not found:
        raise FileNotFoundError(f"{folder}: no results file with answers (run the notebook in full mode)")
    return max(found, key=lambda p: p.stat().st_mtime)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write answers.md from a full run's results JSON.")
    ap.add_argument("results", type=Path, nargs="?", default=None,
                    help="default: the newest results/*.json holding answers")
    ap.add_argument("--out", type=Path, default=Path("answers.md"))
    args = ap.parse_args(argv)
    path = args.results or newest_results()
    write_answers_md(json.loads(path.read_text()), args.out, path.resolve().parent.parent)
    print(f"Wrote {args.out} from {path}.")


if __name__ == "__main__":
    main()
