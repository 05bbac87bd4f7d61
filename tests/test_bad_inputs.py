"""Bad inputs and interrupted runs: each one fails clearly, carries on, or is skipped only on request.

A student's data comes zipped by hand, renamed, half-uploaded; runs get interrupted.  Every
test here builds one such case and checks the outcome: an error that names the file, the
CSV line and the path tried; a layout found one level down; a skip with the explicit
`skip_bad=True`; a run resumed number for number.  docs/RELIABILITY.md is the table of them.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import unicodedata
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from conftest import MeanColour, run, tiny_model, without_timing, write_jpeg
from reid import data as D
from reid.data import (IMAGENET_MEAN, IMAGENET_STD, DataError, IDLossDataset, ImageDecodeError, RetrievalDataset,
                       TripletDataset, retrieval_loader)
from reid.layout import DataLayoutError, check_layout, find_data_root, prepare_data
from reid.predict import write_predictions
from reid.checkpoints import CheckpointError, load_checkpoint

pytestmark = pytest.mark.reliability

SMALL = dict(train_ids=4, val_ids=3, test_ids=3, per_id=4)


# --------------------------------------------------------------------------- helpers
def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` (hidden ones too): relative path → (bytes, mtime in ns)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [[c.strip() for c in r] for r in csv.reader(f) if r]


def write_rows(path: Path, rows: list[list[str]], *, bom: bool = False, eol: str = "\n",
               encoding: str = "utf-8") -> Path:
    """Write rows joined by commas (no quoting: the cells here hold no commas)."""
    text = eol.join(",".join(r) for r in rows) + eol
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


# The five CSV kinds of DATA.md: file, the dataset that reads it, its columns, path columns.
KINDS: dict[str, tuple[str, Callable[[Path], object], tuple[str, ...]]] = {
    "train_idloss": ("train_idloss.csv", lambda r: IDLossDataset(r / "train_idloss.csv", r), ("filepath", "id")),
    "train_random_triplet": ("train_random_triplet.csv", lambda r: TripletDataset(r / "train_random_triplet.csv", r),
                             ("anchor", "positive", "negative")),
    "val_idloss": ("val_idloss.csv", lambda r: IDLossDataset(r / "val_idloss.csv", r), ("filepath", "id")),
    "val_gt": ("val/gt.csv", lambda r: RetrievalDataset(r, "val"), ("query", "gallery")),
    "test_pred": ("test/pred.csv", lambda r: RetrievalDataset(r, "test"), ("query", "gallery")),
}


def fingerprint(ds: object) -> tuple:
    """What a dataset resolved: absolute file paths, ids / triplets / ground truth."""
    def absolute(paths):
        return [str(Path(p).resolve()) for p in paths]
    if isinstance(ds, IDLossDataset):
        return absolute(ds.paths), ds.ids.tolist()
    if isinstance(ds, TripletDataset):
        return absolute(ds.cache.paths), ds.triplets.tolist()
    assert isinstance(ds, RetrievalDataset)
    return absolute(ds.queries.paths), absolute(ds.gallery.paths), ds.gt.tolist()


def expect_data_error(build: Callable[[], object], *parts: str, cls: type = DataError) -> str:
    with pytest.raises(cls) as err:
        build()
    message = str(err.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


# ============================================================================ finding the data
HOW_TO = ("train_idloss.csv", "val/gt.csv", "test/pred.csv", "course", "make_data.py pool", "make_data.py synthetic")


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_no_data_without_build_says_what_is_expected(tmp_path, state):
    folder = tmp_path / "data"
    if state == "empty":
        folder.mkdir()
    for call in (lambda: find_data_root(folder), lambda: prepare_data(folder, build_if_missing=False)):
        message = expect_data_error(call, str(folder), *HOW_TO, cls=DataLayoutError)
        assert ("no such folder" in message) == (state == "missing")
    assert folder.exists() == (state == "empty")                          # nothing was built


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_no_data_builds_the_synthetic_layout(tmp_path, state, capsys):
    folder = tmp_path / "data"
    if state == "empty":
        folder.mkdir()
    info = prepare_data(folder, seed=0, **SMALL)
    assert (info.root, info.source, info.built_now) == (folder, "synthetic", True)
    assert "SYNTHETIC" in info.describe() and "building the synthetic layout" in capsys.readouterr().out
    counts = check_layout(folder)
    assert counts["train images"] == 4 * 4 and counts["train ids"] == 4
    assert counts["val gallery"] == 3 and counts["test gallery"] == 3
    again = prepare_data(folder)                                          # the next run finds it, and says so
    assert (again.root, again.source, again.built_now) == (folder, "synthetic", False)


def test_layout_one_level_too_deep_is_found(tmp_path, tiny_layout, capsys):
    # The course zip unpacked with its own folder inside data/, plus macOS's __MACOSX beside it.
    data = tmp_path / "data"
    shutil.move(tiny_layout, data / "pa2_data")
    (data / "__MACOSX" / "pa2_data").mkdir(parents=True)
    (data / "__MACOSX" / "pa2_data" / "._train_idloss.csv").write_bytes(b"\x00\x05")
    assert find_data_root(data) == data / "pa2_data"
    info = prepare_data(data)
    assert (info.root, info.source, info.built_now) == (data / "pa2_data", "course", False)
    assert "one level down" in capsys.readouterr().out
    assert len(RetrievalDataset(info.root, "val")) == 4


def test_two_layouts_inside_is_ambiguous(tmp_path, tiny_layout):
    data = tmp_path / "data"
    shutil.copytree(tiny_layout, data / "a")
    shutil.copytree(tiny_layout, data / "b")
    expect_data_error(lambda: find_data_root(data), "several folders", "a, b", cls=DataLayoutError)


def _not_a_layout(folder: Path, what: str, tiny_layout: Path) -> list[str]:
    """Fill `folder` with something that is not a layout; returns words the error must contain."""
    folder.mkdir(parents=True)
    if what == "notes":
        (folder / "notes.txt").write_text("my notes")
        return ["missing train_idloss.csv"]
    if what == "hidden_only":
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        return ["missing train_idloss.csv"]
    if what == "zip_not_unpacked":
        shutil.make_archive(str(folder / "pa2_data"), "zip", tiny_layout.parent, tiny_layout.name)
        return ["pa2_data.zip", "unzip"]
    if what == "half_uploaded":                                           # stopped before test/
        shutil.copytree(tiny_layout, folder, dirs_exist_ok=True)
        shutil.rmtree(folder / "test")
        return ["missing test/pred.csv"]
    if what == "half_uploaded_inside":                                    # …inside the zip's own folder
        shutil.copytree(tiny_layout, folder / "pa2_data")
        (folder / "pa2_data" / "test" / "pred.csv").unlink()
        return ["pa2_data", "missing test/pred.csv"]
    raise AssertionError(what)


@pytest.mark.parametrize("what", ["notes", "hidden_only", "zip_not_unpacked", "half_uploaded", "half_uploaded_inside"])
def test_non_empty_folder_without_layout_is_never_overwritten(tmp_path, tiny_layout, what):
    folder = tmp_path / "data"
    words = _not_a_layout(folder, what, tiny_layout)
    before = snapshot(folder)
    expect_data_error(lambda: prepare_data(folder, build_if_missing=True, **SMALL), str(folder), *words,
                      "make_data.py synthetic", cls=DataLayoutError)
    assert snapshot(folder) == before                                     # same files, bytes and times
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data", tiny_layout.name])   # no temp folders


def test_data_path_is_the_zip_file_itself(tmp_path, tiny_layout):
    archive = Path(shutil.make_archive(str(tmp_path / "data"), "zip", tiny_layout.parent, tiny_layout.name))
    before = archive.read_bytes()
    expect_data_error(lambda: prepare_data(archive, **SMALL), str(archive), "is a file", "unzip",
                      cls=DataLayoutError)
    assert archive.read_bytes() == before


# ============================================================================ CSV files
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", ["misspelled", "missing"])
def test_bad_header_names_the_column(tiny_layout, kind, fault):
    name, build, columns = KINDS[kind]
    path = tiny_layout / name
    rows = read_rows(path)
    if fault == "misspelled":                                             # "filepth", "querry", …
        bad = columns[0]
        rows[0][0] = columns[0][:-2] + columns[0][-1]
    else:                                                                 # the last column is not there at all
        bad = columns[-1]
        rows = [r[:-1] for r in rows]
    write_rows(path, rows)
    expect_data_error(lambda: build(tiny_layout), str(path), f"missing column(s) {bad}", ",".join(columns))


@pytest.mark.parametrize("kind", KINDS)
def test_messy_but_valid_csv_reads_the_same(tiny_layout, kind):
    # Byte-order mark, Windows line ends, spaces around cells, a capitalised header, blank lines.
    name, build, _ = KINDS[kind]
    path = tiny_layout / name
    clean = fingerprint(build(tiny_layout))
    rows = read_rows(path)
    messy = [[f"  {c.upper() if i == 0 else c}  " for c in r] for i, r in enumerate(rows)]
    write_rows(path, messy[:2] + [[""]] + messy[2:] + [[""]], bom=True, eol="\r\n")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf") and b"\r\n" in path.read_bytes()
    assert fingerprint(build(tiny_layout)) == clean


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("content,message", [(b"", "the file is empty"), (b"\r\n\r\n", "the file is empty"),
                                             (None, "there are no rows")])
def test_empty_csv_is_an_error(tiny_layout, kind, content, message):
    name, build, columns = KINDS[kind]
    path = tiny_layout / name
    path.write_bytes(content if content is not None else (",".join(columns) + "\n").encode())
    expect_data_error(lambda: build(tiny_layout), str(path), message)


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_row_names_both_lines(tiny_layout, kind):
    name, build, _ = KINDS[kind]
    path = tiny_layout / name
    rows = read_rows(path)
    write_rows(path, rows[:3] + [rows[1]] + rows[3:])                     # line 4 repeats line 2
    expect_data_error(lambda: build(tiny_layout), str(path), "line 4: duplicate of line 2")


@pytest.mark.parametrize("kind", ["train_idloss", "val_idloss"])
@pytest.mark.parametrize("value,message", [
    ("one", "id 'one' is not an integer"), ("1.0", "id '1.0' is not an integer"),
    ("", "id '' is not an integer"), ("3e2", "id '3e2' is not an integer"), ("-1", "id -1 is out of range"),
])
def test_bad_id_names_line_and_value(tiny_layout, kind, value, message):
    name, build, _ = KINDS[kind]
    path = tiny_layout / name
    rows = read_rows(path)
    rows[3][1] = value
    write_rows(path, rows)
    expect_data_error(lambda: build(tiny_layout), str(path), f"line 4: {message}")


def test_id_beyond_num_ids(tiny_layout):
    # 3 training identities: with num_ids=3 the classifier has outputs 0..2, so id 3 is an error.
    path = tiny_layout / "train_idloss.csv"
    rows = read_rows(path)
    rows[6][1] = "3"
    write_rows(path, rows)
    expect_data_error(lambda: IDLossDataset(path, tiny_layout, num_ids=3), str(path),
                      "line 7: id 3 is out of range (expected 0..2)")


@pytest.mark.parametrize("kind", ["train_idloss", "val_idloss"])
def test_one_file_with_two_ids_is_an_error(tiny_layout, kind):
    name, build, _ = KINDS[kind]
    path = tiny_layout / name
    rows = read_rows(path)
    other = str((int(rows[1][1]) + 1) % 3)
    write_rows(path, rows + [[rows[1][0], other]])
    last = len(rows) + 1
    expect_data_error(lambda: build(tiny_layout), str(path), f"line {last}", rows[1][0], "line 2")


def test_gt_gallery_cell_must_be_a_gallery_image(tiny_layout):
    path = tiny_layout / "val/gt.csv"
    rows = read_rows(path)
    rows[2][1] = "val/gallery/12.jpg"                                     # 12 gallery images: 0..11
    write_rows(path, rows)
    expect_data_error(lambda: RetrievalDataset(tiny_layout, "val"), str(path), "line 3", "val/gallery/12.jpg")


# (kind, row index, column): a cell whose file is not there
MISSING_CELLS = [("train_idloss", 2, 0), ("train_random_triplet", 2, 0), ("train_random_triplet", 2, 2),
                 ("val_idloss", 13, 0), ("val_gt", 2, 0), ("val_gt", 2, 1), ("test_pred", 2, 0)]


@pytest.mark.parametrize("kind,row,col", MISSING_CELLS)
def test_row_naming_a_missing_file_names_csv_line_and_path(tiny_layout, kind, row, col):
    name, build, columns = KINDS[kind]
    path = tiny_layout / name
    rows = read_rows(path)
    folder = rows[row][col].rpartition("/")[0]
    rows[row][col] = f"{folder}/9999.jpg" if col == 0 or kind != "val_gt" else "val/gallery/99.jpg"
    write_rows(path, rows)
    message = expect_data_error(lambda: build(tiny_layout), str(path), f"line {row + 1}", rows[row][col],
                                str(tiny_layout / rows[row][col]), "tried")
    if kind == "train_random_triplet":
        assert f"column {columns[col]}" in message


def test_half_uploaded_images_name_the_first_missing_file(tiny_layout):
    # The CSVs arrived, the query folder did not: the first query row is named, not a KeyError later.
    shutil.rmtree(tiny_layout / "val/query")
    expect_data_error(lambda: RetrievalDataset(tiny_layout, "val"), "gt.csv, line 2", "val/query/5001.jpg")


def _path_form(form: str, cell: str, root: Path) -> str:
    """`cell` (`val/query/5001.jpg`) written as DATA.md's path forms, and those of other machines."""
    win = cell.replace("/", "\\")
    return {
        "relative": cell,
        "data_folder_prefix": f"{root.name}/{cell}",
        "renamed_folder_prefix": f"pa2_data_final (1)/{cell}",           # folder renamed after the CSVs were made
        "absolute": str(root / cell),
        "bare": Path(cell).name,
        "backslash": win,
        "colab_absolute": f"/content/drive/MyDrive/pa2_data/{cell}",      # made on another machine
        "windows_absolute": f"C:\\Users\\me\\Downloads\\pa2_data\\{win}",
        "dot_slash": f"./{cell}",
    }[form]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", ["relative", "data_folder_prefix", "renamed_folder_prefix", "absolute", "bare",
                                  "backslash", "colab_absolute", "windows_absolute", "dot_slash"])
def test_path_forms_resolve_to_the_same_files(tiny_layout, kind, form):
    name, build, columns = KINDS[kind]
    path = tiny_layout / name
    clean = fingerprint(build(tiny_layout))
    rows = read_rows(path)
    for r in rows[1:]:
        for i, column in enumerate(columns):
            if column != "id" and r[i]:
                r[i] = _path_form(form, r[i], tiny_layout)
    write_rows(path, rows)
    assert fingerprint(build(tiny_layout)) == clean


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16"])
def test_csv_not_in_utf8_is_named(tiny_layout, encoding):
    # Excel on Windows saves "ANSI" (cp1252) or "Unicode text" (UTF-16): say so rather than a UnicodeDecodeError.
    write_jpeg(tiny_layout / "train/Zoë.jpg", seed=7)
    path = write_rows(tiny_layout / "train_idloss.csv", [["filepath", "id"], ["train/Zoë.jpg", "0"]], encoding=encoding)
    if encoding == "utf-16":
        assert len(IDLossDataset(path, tiny_layout)) == 1                  # a UTF-16 file with its BOM is read
    else:
        expect_data_error(lambda: IDLossDataset(path, tiny_layout), str(path), "UTF-8")


def test_semicolon_separated_csv_gets_a_hint(tiny_layout):
    path = write_rows(tiny_layout / "train_idloss.csv", [["filepath;id"], ["train/1000.jpg;0"]])
    expect_data_error(lambda: IDLossDataset(path, tiny_layout), str(path), "missing column(s) filepath", "';'")


# ----------------------------------------------------------------------------- gallery folders
@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize("fault,message", [
    ("gap", "gaps, missing 1"), ("duplicate", "gallery index 2 appears 2 times (2.jpg, 2.png)"),
    ("copy_name", "gallery file names must be their gallery index"), ("empty", "no gallery images"),
    ("missing", "gallery folder not found"),
])
def test_gallery_numbering_faults(tiny_layout, split, fault, message):
    gallery = tiny_layout / split / "gallery"
    if fault == "gap":
        (gallery / "1.jpg").unlink()
    elif fault == "duplicate":
        shutil.copy(gallery / "2.jpg", gallery / "2.png")
    elif fault == "copy_name":                                            # a browser's second download
        shutil.copy(gallery / "2.jpg", gallery / "2 (1).jpg")
    elif fault == "empty":
        for p in gallery.iterdir():
            p.unlink()
    else:
        shutil.rmtree(gallery)
    expect_data_error(lambda: RetrievalDataset(tiny_layout, split), str(gallery), message)


def test_gallery_ignores_system_files_and_upper_case_suffixes(tiny_layout):
    gallery = tiny_layout / "test/gallery"
    (gallery / ".DS_Store").write_bytes(b"\x00")
    (gallery / "Thumbs.db").write_bytes(b"\x00")
    (gallery / "desktop.ini").write_text("[.ShellClassInfo]")
    (gallery / "1.jpg").rename(gallery / "1.JPG")
    ds = RetrievalDataset(tiny_layout, "test")
    assert [p.name for p in ds.gallery.paths] == ["0.jpg", "1.JPG", "2.jpg"]


# ============================================================================ images
MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def colour_of(image: torch.Tensor) -> torch.Tensor:
    """Mean RGB (0–255) of the non-padded part of a cached `[3, 128, 128]` image."""
    content = (image != 0).any(0)
    rgb = (image.float() * STD + MEAN) * 255
    return rgb[:, content].mean(dim=1)


def content_size(image: torch.Tensor) -> tuple[int, int]:
    """(width, height) of the non-padded box of a `[3, 128, 128]` image."""
    content = (image != 0).any(0)
    return int(content.any(0).sum()), int(content.any(1).sum())


def corrupt(path: Path, how: str) -> None:
    good = path.read_bytes()
    path.write_bytes({
        "truncated": good[: len(good) // 2],
        "header_only": good[:100],                                        # an upload that stopped at once
        "zero_bytes": b"",
        "text": b"not an image\n",
        "html": b"<!DOCTYPE html><html><title>Google Drive - Virus scan warning</title></html>",
    }[how])


# where: (dataset builder, file to break, words the error must name)
CORRUPT_WHERE = {
    "train_idloss": (lambda r, **kw: IDLossDataset(r / "train_idloss.csv", r, **kw), "train/1010.jpg",
                     "train_idloss.csv, line 4"),
    "val_idloss": (lambda r, **kw: IDLossDataset(r / "val_idloss.csv", r, **kw), "val/query/5002.jpg",
                   "val_idloss.csv, line 15"),
    "val_query": (lambda r, **kw: RetrievalDataset(r, "val"), "val/query/5002.jpg", "gt.csv, line 3"),
    "val_gallery": (lambda r, **kw: RetrievalDataset(r, "val"), "val/gallery/10.jpg", "image 10.jpg"),
    "test_query": (lambda r, **kw: RetrievalDataset(r, "test"), "test/query/7000.jpg", "pred.csv, line 3"),
    "triplet": (lambda r, **kw: TripletDataset(r / "train_random_triplet.csv", r), "train/1010.jpg",
                "train_random_triplet.csv, line 2"),
}


@pytest.mark.parametrize("where", CORRUPT_WHERE)
@pytest.mark.parametrize("how", ["truncated", "header_only", "zero_bytes", "text", "html"])
def test_corrupt_image_is_an_error_naming_file_and_line(tiny_layout, where, how):
    build, rel, words = CORRUPT_WHERE[where]
    corrupt(tiny_layout / rel, how)
    message = expect_data_error(lambda: build(tiny_layout), str(tiny_layout / rel), words, cls=ImageDecodeError)
    assert ("skip_bad=True" in message) == (where in ("train_idloss", "val_idloss"))   # only where it exists


@pytest.mark.parametrize("kind", ["train_idloss", "val_idloss"])
def test_skip_bad_is_an_explicit_opt_in_that_counts(tiny_layout, kind, capsys):
    build, rel, _ = CORRUPT_WHERE[kind]
    clean = build(tiny_layout)
    corrupt(tiny_layout / rel, "truncated")
    corrupt(tiny_layout / "train/1020.jpg" if kind == "train_idloss" else tiny_layout / "val/gallery/7.jpg", "text")
    ds = build(tiny_layout, skip_bad=True)
    assert len(ds) == len(clean) - 2 and len(ds.skipped) == 2
    assert "Skipped 2 image(s)" in capsys.readouterr().out
    kept = [i for i, p in enumerate(clean.paths) if p in ds.paths]
    assert ds.ids.tolist() == [clean.ids[i].item() for i in kept]        # ids stay with their images
    assert torch.equal(ds.cache.images, clean.cache.images[kept])


def test_skip_bad_with_nothing_left_is_an_error(tiny_layout):
    for p in (tiny_layout / "train").iterdir():
        corrupt(p, "zero_bytes")
    expect_data_error(lambda: IDLossDataset(tiny_layout / "train_idloss.csv", skip_bad=True),
                      "train_idloss.csv", "none of the 6 images", cls=ImageDecodeError)


def test_decompression_bomb_is_a_named_error(tiny_layout, monkeypatch):
    # PIL refuses images over 2 × MAX_IMAGE_PIXELS with its own exception type; lower the limit to see it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    expect_data_error(lambda: IDLossDataset(tiny_layout / "train_idloss.csv"), "train_idloss.csv, line 2",
                      "train/1000.jpg", cls=ImageDecodeError)


def _mode_image(mode: str) -> tuple[Image.Image, str, tuple[float, float, float]]:
    """A uniform 32×64 image in `mode`, the format to save it in, and the RGB it must become."""
    size = (32, 64)
    if mode == "L":
        return Image.new("L", size, 100), "PNG", (100, 100, 100)
    if mode == "LA":                                                      # half transparent over black
        return Image.new("LA", size, (200, 128)), "PNG", (200 * 128 / 255,) * 3
    if mode == "RGBA":
        return Image.new("RGBA", size, (200, 100, 50, 255)), "PNG", (200, 100, 50)
    if mode == "P":
        img = Image.new("P", size, 0)
        img.putpalette([200, 100, 50] + [0, 0, 0] * 255)
        return img, "PNG", (200, 100, 50)
    if mode == "P_transparent":                                           # palette entry 0 fully transparent
        img = Image.new("P", size, 0)
        img.putpalette([200, 100, 50] + [0, 0, 0] * 255)
        img.info["transparency"] = 0
        return img, "PNG", None                                           # all black: only the padding
    if mode in ("CMYK_jpeg", "CMYK_tiff"):                                # C=0, M=Y=255: red
        return Image.new("CMYK", size, (0, 255, 255, 0)), mode[5:].upper(), (255, 0, 0)
    if mode == "I;16":                                                    # 40000 / 65535 · 255 = 155.6
        return Image.fromarray(np.full(size[::-1], 40000, dtype=np.uint16)), "PNG", (155, 155, 155)
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "P_transparent", "CMYK_jpeg", "CMYK_tiff", "I;16"])
def test_image_modes_inside_datasets(tiny_layout, mode):
    img, fmt, rgb = _mode_image(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"transparency": 0} if mode == "P_transparent" else {}))
    for rel in ("train/1010.jpg", "val/gallery/3.jpg"):                   # .jpg names, other bytes: PIL sniffs
        (tiny_layout / rel).write_bytes(buf.getvalue())
    with Image.open(tiny_layout / "train/1010.jpg") as check:             # the file kept the mode
        assert check.mode == mode.split("_")[0] and check.format == fmt
    train = IDLossDataset(tiny_layout / "train_idloss.csv")
    val = RetrievalDataset(tiny_layout, "val")
    for image in (train.cache[2], val.get_gallery_imgs()[3]):        # line 4 = row 2
        assert image.shape == (3, 128, 128) and torch.isfinite(image).all()
        if rgb is None:                                                   # transparent → black, not the palette colour
            assert colour_of(image).max() < 1
        else:
            assert content_size(image) == (64, 128)
            torch.testing.assert_close(colour_of(image), torch.tensor(rgb, dtype=torch.float32), atol=2.5, rtol=0)


@pytest.mark.parametrize("size,box", [((1, 1), (128, 128)), ((4000, 3000), (128, 96)),
                                      ((10, 1000), (1, 128)), ((1000, 10), (128, 1))])
def test_extreme_sizes_inside_datasets(tiny_layout, size, box):
    # The longer side becomes 128: 4000×3000 → 128×96; 10×1000 → 1.28 → 1 column; 1×1 → all of 128×128.
    Image.new("RGB", size, (200, 100, 50)).save(tiny_layout / "train/1010.jpg", quality=95)
    image = IDLossDataset(tiny_layout / "train_idloss.csv").cache[2]
    assert torch.isfinite(image).all()
    assert content_size(image) == box
    torch.testing.assert_close(colour_of(image), torch.tensor([200.0, 100.0, 50.0]), atol=3.0, rtol=0)


NON_ASCII = ["Zoë_行人.jpg", "façade été.jpg", "пешеход №1.jpg", "🚶.jpg"]


@pytest.mark.parametrize("name", NON_ASCII)
def test_non_ascii_names_in_csvs_and_folders(tiny_layout, name):
    write_jpeg(tiny_layout / "train" / name, seed=11)
    write_jpeg(tiny_layout / "val/query" / name, seed=12)
    rows = read_rows(tiny_layout / "train_idloss.csv")
    write_rows(tiny_layout / "train_idloss.csv", rows + [[f"train/{name}", "1"]])
    write_rows(tiny_layout / "val/gt.csv", read_rows(tiny_layout / "val/gt.csv") + [[f"val/query/{name}", "val/gallery/0.jpg"]])
    train = IDLossDataset(tiny_layout / "train_idloss.csv")
    assert train.paths[-1].name == name and train.ids[-1] == 1
    assert RetrievalDataset(tiny_layout, "val").queries.paths[-1].name == name


def test_decomposed_names_from_a_mac_zip_are_found(tiny_layout):
    # macOS writes "ë" as e + combining diaeresis (NFD); the CSV has the single character (NFC).
    nfc, nfd = unicodedata.normalize("NFC", "Zoë.jpg"), unicodedata.normalize("NFD", "Zoë.jpg")
    assert nfc != nfd
    write_jpeg(tiny_layout / "train" / nfd, seed=13)
    path = write_rows(tiny_layout / "train_idloss.csv", [["filepath", "id"], [f"train/{nfc}", "0"]])
    assert IDLossDataset(path, tiny_layout).paths[0].name == nfd


def test_loaders_never_reopen_image_files(tiny_layout, monkeypatch):
    """Decoding happens once, when a dataset is made: afterwards the files may vanish."""
    train = IDLossDataset(tiny_layout / "train_idloss.csv")
    triplets = TripletDataset(tiny_layout / "train_random_triplet.csv")
    val = RetrievalDataset(tiny_layout, "val")
    shutil.rmtree(tiny_layout)

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image file was opened after the dataset was built")
    monkeypatch.setattr(D, "load_image", no_decoding)
    monkeypatch.setattr(Image, "open", no_decoding)
    images, ids = zip(*DataLoader(train, batch_size=4, shuffle=True, num_workers=0))
    assert torch.cat(images).shape == (6, 3, 128, 128) and sorted(torch.cat(ids).tolist()) == [0, 0, 1, 1, 2, 2]
    a, p, n = next(iter(DataLoader(triplets, batch_size=3, num_workers=0)))
    assert a.shape == p.shape == n.shape == (3, 3, 128, 128)
    queries, gt = zip(*retrieval_loader(val, batch_size=3))
    assert torch.equal(torch.cat(queries), val.queries.images.float()) and torch.cat(gt).tolist() == [3, 10, 0, 2]
    assert val.get_gallery_imgs().shape == (12, 3, 128, 128)


# ============================================================================ runs
def test_ctrl_c_mid_epoch_then_resume_equals_uninterrupted(data, tmp_path, capsys):
    full_model = tiny_model()
    full = run(data, "id", tmp_path / "full", model=full_model)
    model = tiny_model(interrupt_at=4 + 3)                                # 4 iterations per epoch: Ctrl-C in epoch 2
    stopped = run(data, "id", tmp_path / "cut", model=model)
    assert stopped.interrupted and stopped.epochs_done == 1
    assert stopped.iter_loss == full.iter_loss[:4] and stopped.rank1 == full.rank1[:1]   # history of epoch 1 kept
    assert load_checkpoint(tmp_path / "cut/last.pt")["epoch"] == 1
    assert "resume=True" in capsys.readouterr().out
    model.backbone.interrupt_at = None
    resumed = run(data, "id", tmp_path / "cut", model=model, resume=True)
    assert not resumed.interrupted
    assert without_timing(resumed) == without_timing(full)                # on the CPU: the same numbers
    for (name, p), q in zip(full_model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(p, q), name


def test_nan_in_epoch_two_keeps_the_epoch_one_checkpoint(data, tmp_path):
    with pytest.raises(FloatingPointError, match=r"epoch 2/2, iteration 2/4"):
        run(data, "id", tmp_path, model=tiny_model(nan_at=4 + 2))
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1 and len(state["history"]["iter_loss"]) == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    resumed = run(data, "id", tmp_path, resume=True)                      # the cause fixed: carry on
    assert resumed.epochs_done == 2 and without_timing(resumed) == without_timing(run(data, "id"))


def test_resuming_a_finished_run_trains_no_further(data, tmp_path):
    first = run(data, "id", tmp_path)
    before = (tmp_path / "last.pt").read_bytes()
    model = tiny_model(seed=5)
    again = run(data, "id", tmp_path, model=model, resume=True)
    assert without_timing(again) == without_timing(first)
    assert (tmp_path / "last.pt").read_bytes() == before
    kept = load_checkpoint(tmp_path / "best.pt")  # the model holds the kept epoch
    assert kept["epoch"] == first.kept_epoch
    assert torch.equal(model.backbone.conv.weight, kept["model"]["backbone.conv.weight"])


@pytest.mark.parametrize("cut", ["empty", "half", "last_byte"])
def test_truncated_checkpoint_is_reported_and_left_alone(data, tmp_path, cut):
    run(data, "id", tmp_path, epochs=1)
    path = tmp_path / "last.pt"
    good = path.read_bytes()
    bad = {"empty": b"", "half": good[: len(good) // 2], "last_byte": good[:-1]}[cut]
    path.write_bytes(bad)
    expect_data_error(lambda: run(data, "id", tmp_path, resume=True), str(path), "truncated or corrupt",
                      cls=CheckpointError)
    assert path.read_bytes() == bad                                       # evidence kept, nothing overwritten


def test_checkpoint_of_another_model_is_named(data, tmp_path):
    run(data, "id", tmp_path, epochs=1)
    other = tiny_model()
    other.classifier = torch.nn.Linear(other.classifier.in_features, 5)   # 5 ids instead of 8
    expect_data_error(lambda: run(data, "id", tmp_path, model=other, resume=True), str(tmp_path / "last.pt"),
                      "classifier", cls=CheckpointError)


def test_disk_full_while_checkpointing_keeps_the_previous_one(data, tmp_path, monkeypatch):
    run(data, "id", tmp_path, epochs=1)
    before = (tmp_path / "last.pt").read_bytes()

    def disk_full(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run(data, "id", tmp_path, resume=True)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no partial file left


# ============================================================================ outputs
def test_messy_pred_csv_keeps_its_queries_order_and_extra_columns(layout):
    pred = layout / "test/pred.csv"
    write_rows(pred, [["Query", " gallery ", "note"], [" test/query/7001.jpg ", "", "a"],
                      ["test/query/7000.jpg", "", "b"]], bom=True, eol="\r\n")
    write_predictions(MeanColour(), layout)
    assert read_rows(pred) == [["Query", "gallery", "note"], ["test/query/7001.jpg", "test/gallery/1.jpg", "a"],
                               ["test/query/7000.jpg", "test/gallery/2.jpg", "b"]]
    assert sorted(p.name for p in pred.parent.iterdir()) == ["gallery", "pred.csv", "query"]


def test_ctrl_c_while_writing_pred_csv_leaves_it_intact(layout, monkeypatch):
    pred = layout / "test/pred.csv"
    before = pred.read_bytes()

    def interrupted(fd):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_predictions(MeanColour(), layout)
    assert pred.read_bytes() == before
    assert sorted(p.name for p in pred.parent.iterdir()) == ["gallery", "pred.csv", "query"]


@pytest.mark.parametrize("cut", ["empty", "half"])
def test_mapped_read_of_a_checkpoint_is_the_same_and_names_a_broken_one(data, tmp_path, cut):
    """load_checkpoint(mmap=True) (strong_input_size reads only the config that way) gives the same
    entries as a full read, and a broken file is the same CheckpointError naming it."""
    run(data, "id", tmp_path, epochs=1)
    path = tmp_path / "last.pt"
    full, mapped = load_checkpoint(path), load_checkpoint(path, mmap=True)
    assert mapped["cfg"] == full["cfg"] and mapped["model"].keys() == full["model"].keys()
    assert all(torch.equal(mapped["model"][k], v) for k, v in full["model"].items())
    del mapped, full                                    # no mapping of the file is alive when it is cut
    good = path.read_bytes()
    path.write_bytes(b"" if cut == "empty" else good[: len(good) // 2])
    expect_data_error(lambda: load_checkpoint(path, mmap=True), str(path), "truncated or corrupt", cls=CheckpointError)


def test_mapped_read_falls_back_to_a_plain_read(data, tmp_path, monkeypatch):
    """A file system that cannot map the file (Drive's FUSE mount, say) still gives the checkpoint."""
    run(data, "id", tmp_path, epochs=1)
    path = tmp_path / "last.pt"
    want = load_checkpoint(path)["cfg"]
    real_load = torch.load

    def no_mmap(*args, **kwargs):
        if kwargs.get("mmap"):
            raise OSError(19, "No such device: mmap")
        return real_load(*args, **kwargs)
    monkeypatch.setattr(torch, "load", no_mmap)
    assert load_checkpoint(path, mmap=True)["cfg"] == want
