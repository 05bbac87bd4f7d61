"""Section 9 of BENCHMARKS.md: what each machine measured — a training step of each preset, and the whole
notebook — named by its CPU (or GPU) and precision, from ``results/speed/*.json``.

    python -m bench.bench_train --recipes float32 --out results/speed/recipes_float32_<machine>.json
    python -m bench.speed_report notebook MINUTES [--data synthetic]   # after `time make run`

The second records a whole `make run` (its wall minutes, as timed around it) with the machine it ran on
and each model's training minutes from the run's results file.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def slug(machine: str) -> str:
    """A file-name piece for a machine line: "CPU: AMD EPYC, 2 cores, no bfloat16 …" → "amd-epyc-no-bf16"."""
    name = machine.split(":", 1)[1].split(",")[0].strip().lower()
    bf16 = "no-bf16" if "no bfloat16" in machine else ("bf16" if "bfloat16" in machine else "gpu")
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-") + "-" + bf16


def _recipe_rows(recipes: list[dict]) -> list[str]:
    """The table of training-step speeds, one row per recorded machine and precision."""
    lines: list[str] = []
    lines += ["A training step of each preset, end to end (`python -m bench.bench_train --recipes PRECISION`; "
              "median of the steps timed, after one warm-up step; the images of a triplet step are its rows' "
              "anchors, positives and negatives):", "",
              "| machine | precision | ID model, img/s (s a step) | triplet model | stronger recipe | threads |",
              "| --- | --- | --- | --- | --- | --- |"]
    for doc in recipes:
        by = {r["recipe"]: r for r in doc["recipes"]}
        cell = lambda r: f"{r['images_per_s']:.1f} ({r['seconds_a_step']:.2f} s, {r['input'][0]}×{r['input'][1]})"  # noqa: E731
        lines.append(f"| {doc['machine']} | {doc['recipes'][0]['precision']} | {cell(by['id'])} | {cell(by['triplet'])} | "
                     f"{cell(by['strong'])} | {doc['threads']} |")
    return lines


def speed_section(folder: Path = ROOT / "results" / "speed") -> str:
    lines = ["## 9. Training speed, by machine and precision", ""]
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    recipes = [json.loads(p.read_text()) for p in files if p.name.startswith("recipes_")]
    notebooks = [json.loads(p.read_text()) for p in files if p.name.startswith("notebook_")]
    if not recipes and not notebooks:
        return "\n".join(lines + ["(not recorded yet: the commands of `bench/speed_report.py`'s docstring)"])
    if recipes:
        lines += _recipe_rows(recipes)
    else:
        lines += ["A training step of each preset by precision: not recorded yet on any machine "
                  "(`python -m bench.bench_train --recipes PRECISION`)."]
    if notebooks:
        lines += ["", "The whole notebook in full mode (`make run`, timed around it), on the data named:", "",
                  "| machine | precision | data | start | minutes in all | training minutes: ID · triplet · stronger |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for doc in notebooks:
            lines.append(f"| {doc['machine']} | {doc['precision']} | {doc['data']} | {doc['start']} | "
                         f"{doc['minutes']:.1f} | {' · '.join(f'{m:.1f}' for m in doc['training_minutes'])} |")
    return "\n".join(lines)


def record_notebook(minutes: float, data: str = "synthetic", out_folder: Path = ROOT / "results" / "speed") -> Path:
    """Write results/speed/notebook_<machine>.json for a `make run` of ``minutes``: the machine, the
    precision and start of its models, and each model's training minutes (results/<data>.json)."""
    from reid.device import machine_line, pick_device, resolve_precision  # noqa: PLC0415

    res = json.loads((ROOT / "results" / f"{data}.json").read_text())
    runs = list(res["runs"].values())
    machine = machine_line()
    doc = {"machine": machine, "data": data, "minutes": minutes,
           "precision": resolve_precision(pick_device(), runs[0]["config"].get("amp")).describe(),
           "start": runs[0]["config"]["start"],
           "training_minutes": [sum(r["history"]["epoch_seconds"]) / 60 for r in runs]}
    out = out_folder / f"notebook_{slug(machine)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    nb = sub.add_parser("notebook", help="record a timed `make run`")
    nb.add_argument("minutes", type=float)
    nb.add_argument("--data", default="synthetic")
    args = ap.parse_args(argv)
    print(f"Wrote {record_notebook(args.minutes, args.data)}")
    return 0


if __name__ == "__main__":
    main()
