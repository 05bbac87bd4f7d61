"""Finding the data: where the layout is, what it is (course, synthetic, pool), and its counts.

Map of this module:
    LAYOUT_FILES, has_layout      the five CSVs that make a folder the assignment's layout
    find_data_root                the folder itself, or the one folder inside it holding a layout
    DataInfo, read_source         the data's root, its source (BUILD_INFO.json) and fingerprint
    prepare_data                  locate the layout, or build the synthetic one in an empty folder
    check_layout                  counts of ids and images per part, for the notebook
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from reid.build import BUILD_INFO, build_synthetic
from reid.data import DataLayoutError, gallery_files, read_csv



LAYOUT_FILES = ("train_idloss.csv", "train_random_triplet.csv", "val_idloss.csv",
                "val/gt.csv", "test/pred.csv")
HOW_TO_GET_DATA = (
    "Expected the assignment's layout: train/, train_idloss.csv, train_random_triplet.csv, "
    "val_idloss.csv, val/gallery/0.jpg…, val/query/, val/gt.csv, test/gallery/, test/query/, test/pred.csv. "
    "Get it by (1) unzipping the course's data zip into this folder, "
    "(2) `python make_data.py pool PATH/TO/market1501/bounding_box_train DATA_DIR` from a Market-1501 "
    "folder, or (3) `python make_data.py synthetic DATA_DIR` for the built-in synthetic data "
    "(the notebook builds it by itself when the folder is missing or empty).")


def has_layout(folder: Path) -> bool:
    """Whether `folder` holds the five CSVs of LAYOUT_FILES (images are checked when datasets are made)."""
    return all((folder / f).is_file() for f in LAYOUT_FILES)


def find_data_root(folder: str | Path) -> Path:
    """The folder that holds the layout: `folder` itself, or the one folder inside it that does
    (a zip unpacked with its own top folder, e.g. `data/pa2_data/`).

    Raises DataLayoutError saying what is expected and how to get it.
    """
    folder = Path(folder)
    if folder.is_file():
        unzip = f" It is a zip: unzip it first (`unzip -q {folder} -d DATA_DIR`)." if zipfile.is_zipfile(folder) else ""
        raise DataLayoutError(f"{folder}: is a file, not a folder.{unzip} {HOW_TO_GET_DATA}")
    if not folder.is_dir():
        raise DataLayoutError(f"{folder}: no such folder. {HOW_TO_GET_DATA}")
    if has_layout(folder):
        return folder
    inner = [d for d in sorted(folder.iterdir()) if d.is_dir() and has_layout(d)]
    if len(inner) == 1:
        print(f"Using {inner[0]}: the layout is one level down, inside {folder}.")
        return inner[0]
    if len(inner) > 1:
        raise DataLayoutError(f"{folder}: several folders hold a layout ({', '.join(d.name for d in inner)}); "
                              f"point REID_DATA at one of them")
    raise DataLayoutError(f"{folder}: not the assignment's layout ({_nearest_layout(folder)}). {HOW_TO_GET_DATA}")


def _nearest_layout(folder: Path) -> str:
    """What `folder` (or the folder inside it closest to a layout) lacks, and zips lying there unpacked."""
    candidates = [folder] + [d for d in sorted(folder.iterdir()) if d.is_dir()]
    best = max(candidates, key=lambda d: sum((d / f).is_file() for f in LAYOUT_FILES))   # ties: folder itself
    missing = [f for f in LAYOUT_FILES if not (best / f).is_file()]
    text = f"missing {', '.join(missing)}"
    if len(missing) < len(LAYOUT_FILES):
        inside = "" if best == folder else f"{best.name}/ inside it is "
        text = f"{inside}{text}: an upload or unzip that stopped early?"
    zips = sorted(p.name for p in folder.glob("*.zip"))
    if zips:
        text += f"; {', '.join(zips)} is there: unzip it first (`unzip -q {folder / zips[0]} -d {folder}`)"
    return text


@dataclass
class DataInfo:
    """Where the data is and what it is: `source` is 'course', 'synthetic' or 'pool'."""

    root: Path
    source: str
    built_now: bool = False

    @property
    def fingerprint(self) -> str:
        """8 hex digits of a hash of the layout's CSVs: a different data set gets different
        checkpoints. Of test/pred.csv only the query column counts: its gallery column is what
        the notebook writes, and writing it must not make the next run retrain every model."""
        digest = hashlib.sha1()
        for name in LAYOUT_FILES:
            data = (self.root / name).read_bytes()
            if name == "test/pred.csv":
                data = b"\n".join(line.split(b",")[0].strip() for line in data.splitlines())
            digest.update(data)
        return digest.hexdigest()[:8]

    def describe(self) -> str:
        what = {"synthetic": "the built-in SYNTHETIC data set (no course data found)",
                "pool": "a layout built from a labelled pool (e.g. Market-1501)",
                "course": "the course's data"}.get(self.source, self.source)
        return f"Data: {self.root} — {what}{' (built just now)' if self.built_now else ''}."


def read_source(root: Path) -> str:
    """'synthetic' or 'pool' for a layout reid.build made (its BUILD_INFO.json), else 'course'."""
    info = root / BUILD_INFO
    if info.is_file():
        try:
            return str(json.loads(info.read_text()).get("source", "course"))
        except (json.JSONDecodeError, OSError):
            return "course"
    return "course"


def prepare_data(folder: str | Path | None = None, build_if_missing: bool = True, seed: int = 0,
                 **counts: int) -> DataInfo:
    """Locate the data (default `$REID_DATA` or `data/`); build the synthetic layout there when the
    folder is missing or empty.  A non-empty folder without a layout is never overwritten: it raises.
    """
    folder = Path(folder if folder is not None else os.environ.get("REID_DATA", "data"))
    empty = not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))
    if empty and build_if_missing:
        print(f"No data in {folder}: building the synthetic layout there (seed {seed}).")
        build_synthetic(folder, seed=seed, force=folder.exists(), **counts)
        return DataInfo(find_data_root(folder), "synthetic", built_now=True)
    root = find_data_root(folder)
    return DataInfo(root, read_source(root))


def check_layout(root: Path) -> dict[str, int]:
    """Counts of a layout, for the notebook's first output: ids and images per part."""
    train = read_csv(root / "train_idloss.csv", ("filepath", "id"))
    val = read_csv(root / "val" / "gt.csv", ("query", "gallery"))
    test = read_csv(root / "test" / "pred.csv", ("query", "gallery"))
    return {
        "train images": len(train.rows),
        "train ids": len(set(train.column("id"))),
        "triplets": len(read_csv(root / "train_random_triplet.csv", ("anchor", "positive", "negative")).rows),
        "val queries": len(val.rows),
        "val gallery": len(gallery_files(root / "val" / "gallery")),
        "test queries": len(test.rows),
        "test gallery": len(gallery_files(root / "test" / "gallery")),
    }
