"""Data (handout C1, C3, C8 and the triplet CSV): validated tables, datasets, loaders.

Data flows one way: CSV files → validated tables of paths and ids (every path checked
when a dataset is made) → one decoded tensor cache per dataset (reid/images.py, with C2's
transform) → batches.  Nothing downstream re-opens image files.

Map of this module:
    read_csv, resolve_path        CSVs read strictly; paths in every form course material uses
    RetrievalDataset          C1  val/test: query image + ground-truth gallery index, get_gallery_imgs()
    retrieval_loader          C3  DataLoader with shuffle=False
    IDLossDataset             C8  train_idloss.csv / val_idloss.csv → (image, id)
    TripletDataset                train_random_triplet.csv → (anchor, positive, negative)
    count_possible_triplets   Q10 ordered triplets a labelled set allows

Input shape: every dataset takes `image_size` once and its cache holds images of that
shape (reid/images.py: an int is C2's padded square, `(H, W)` the person unpadded).
The shapes quoted below (`[N, 3, 128, 128]`) are the default's; at `(H, W)` read `[N, 3, H, W]`.

Finding the layout and saying which data it is (course, synthetic, pool) is in reid/layout.py.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

# The image side (C2 and the cache) lives in reid/images.py; its names are re-exported here, where
# the datasets that use them are.
from .images import (CACHE_DTYPE, IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD, PERSON_SIZE, DataError,  # noqa: F401
                     ImageCache, ImageDecodeError, ImageSize, _decode_checked, decode_images, image_shape,
                     image_transform, load_image, person_transform, reid_transform)

UNKNOWN_GT = -1
"""Ground-truth index reported for test queries, whose true gallery image the course keeps."""
SPLITS = ("val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


# --------------------------------------------------------------------------- errors
class DataLayoutError(DataError):
    """A folder does not hold the assignment's data layout."""


def _where(csv_path: Path, row: int | None) -> str:
    return f"{csv_path}" + (f", line {row}" if row is not None else "")


# --------------------------------------------------------------------------- CSV tables and paths
@dataclass
class CsvTable:
    """A CSV read strictly: `columns` in file order, `rows` of stripped strings, `lines` their line numbers."""

    path: Path
    columns: list[str]
    rows: list[list[str]]
    lines: list[int] = field(default_factory=list)

    def column(self, name: str) -> list[str]:
        return [r[self.columns.index(name)] for r in self.rows]


def read_csv(path: str | Path, required: Sequence[str]) -> CsvTable:
    """Read a CSV with a header, tolerant of a byte-order mark, CRLF line ends and spaces around cells.

    Raises DataError naming the file when it is missing or empty, when a required column
    is missing (listing the columns found), when a row has the wrong number of cells, or
    when two rows are identical.  Blank lines are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV file (expected columns {','.join(required)})")
    data = path.read_bytes()
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"  # Excel's "Unicode text"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start} is {data[err.start:err.start + 1]!r}); "
                        f"save it as UTF-8 (Excel: 'CSV UTF-8')") from err
    reader = csv.reader(io.StringIO(text, newline=""))
    records = [(n, [c.strip() for c in rec]) for n, rec in enumerate(reader, start=1)]
    records = [(n, rec) for n, rec in records if any(rec)]
    if not records:
        raise DataError(f"{path}: the file is empty; expected a header {','.join(required)} and rows")
    header_line, header = records[0]
    columns = [c.strip().lower() for c in header]
    missing = [c for c in required if c not in columns]
    if missing:
        seps = [s for s in ";\t|" if len(header) == 1 and s in header[0]]
        hint = f" (the columns seem separated by {seps[0]!r}; commas are expected)" if seps else ""
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; the header has {header} "
                        f"but {','.join(required)} is expected{hint}")
    rows, lines, seen = [], [], {}
    for n, rec in records[1:]:
        if len(rec) < len(columns):
            rec = rec + [""] * (len(columns) - len(rec))
        if len(rec) > len(columns) and any(rec[len(columns):]):
            raise DataError(f"{path}, line {n}: {len(rec)} cells but the header has {len(columns)}")
        rec = rec[:len(columns)]
        key = tuple(rec)
        if key in seen:
            raise DataError(f"{path}, line {n}: duplicate of line {seen[key]} ({','.join(rec)})")
        seen[key] = n
        rows.append(rec)
        lines.append(n)
    if not rows:
        raise DataError(f"{path}: the header is there but there are no rows")
    return CsvTable(path, columns, rows, lines)


def resolve_path(raw: str, root: Path, split_dirs: str | Sequence[str], where: str) -> Path:
    """Find the file a CSV cell names, accepting the forms of ../shared/DATA.md.

    Tried in order: an absolute path; relative to `root` (`val/query/1.jpg`); relative to
    `root` after dropping leading folders one at a time (`pa2_data/val/query/1.jpg`, or an
    absolute path made on another machine: `/content/pa2_data/val/query/1.jpg`,
    `C:\\Users\\me\\pa2_data\\val\\query\\1.jpg`); the file name inside each of
    `root/split_dirs` (for a bare name, or for `query/1.jpg` inside the split dir of that
    name, `val/query`).  Backslashes are read as separators; names are also tried in both
    Unicode normal forms (zips made on macOS store `ë` as `e` + a combining mark).

    Raises:
        DataError naming `where` (CSV and row), the cell and every path tried.
    """
    if not raw:
        raise DataError(f"{where}: empty path")
    split_dirs = [split_dirs] if isinstance(split_dirs, str) else split_dirs
    tried: list[Path] = []
    for form in dict.fromkeys([raw] + [unicodedata.normalize(nf, raw) for nf in ("NFC", "NFD")]):
        rel = Path(form.replace("\\", "/"))
        parts = rel.parts[1:] if rel.is_absolute() else rel.parts
        if rel.is_absolute():
            tried.append(rel)
        tried.extend(root.joinpath(*parts[i:]) for i in range(len(parts)))
        tried.extend(root / d / rel.name for d in split_dirs if len(parts) == 1 or Path(d).name == parts[-2])
    tried = list(dict.fromkeys(tried))
    for candidate in tried:
        if candidate.is_file():
            return candidate
    shown = ", ".join(str(p) for p in dict.fromkeys(tried))
    raise DataError(f"{where}: '{raw}' resolves to no file (tried {shown})")


def _parse_ids(table: CsvTable, num_ids: int | None) -> list[int]:
    ids = []
    for value, line in zip(table.column("id"), table.lines):
        if not re.fullmatch(r"[+-]?\d+", value):
            raise DataError(f"{table.path}, line {line}: id '{value}' is not an integer")
        ident = int(value)
        if ident < 0 or (num_ids is not None and ident >= num_ids):
            limit = f"0..{num_ids - 1}" if num_ids is not None else ">= 0"
            raise DataError(f"{table.path}, line {line}: id {ident} is out of range (expected {limit})")
        ids.append(ident)
    return ids


def _check_listed_once(paths: Sequence[Path], ids: Sequence[int], lines: Sequence[int], csv_path: Path) -> None:
    """Each image once per CSV: a second row naming the same file (in any path form) is an error."""
    first: dict[Path, tuple[int, int]] = {}
    for path, ident, line in zip(paths, ids, lines):
        line0, id0 = first.setdefault(path.resolve(), (line, ident))
        if line0 != line:
            raise DataError(f"{csv_path}, line {line}: {path} is already listed on line {line0} "
                            f"(id {id0} there, {ident} here); each image must appear once")


# --------------------------------------------------------------------------- C8 and triplets
class IDLossDataset(Dataset):
    """C8: (image, id) pairs from `train_idloss.csv` or `val_idloss.csv` (columns filepath,id).

    Args:
        csv_path: the CSV; paths in it are resolved against `root` (default: the CSV's folder).
        root: the data root.
        device: where the image cache lives.
        num_ids: if given, every id must lie in 0..num_ids-1.
        skip_bad: leave out (and count) images that cannot be decoded instead of raising.
        image_size: 128 (C2's padded square) or (H, W) (the person transform), see `image_transform`.

    Attributes:
        cache: ImageCache `[N, 3, H, W]` (`[N, 3, 128, 128]` by default);  ids: LongTensor `[N]`;
        num_ids: max id + 1.
    """

    def __init__(self, csv_path: str | Path, root: str | Path | None = None,
                 device: str | torch.device = "cpu", num_ids: int | None = None,
                 skip_bad: bool = False, image_size: ImageSize = IMAGE_SIZE) -> None:
        self.csv = Path(csv_path)
        self.root = Path(root) if root is not None else self.csv.parent
        table = read_csv(self.csv, ("filepath", "id"))
        ids = _parse_ids(table, num_ids)
        split_dir = ("train", "val/query", "val/gallery")
        if self.csv.name.startswith("val"):
            split_dir = split_dir[1:] + split_dir[:1]
        where = [_where(self.csv, line) for line in table.lines]
        paths = [resolve_path(p, self.root, split_dir, w) for p, w in zip(table.column("filepath"), where)]
        _check_listed_once(paths, ids, table.lines, self.csv)
        self.cache, kept, self.skipped = _decode_checked(paths, where, skip_bad, device, image_size=image_size)
        self.paths = self.cache.paths
        self.ids = torch.tensor([ids[i] for i in kept], dtype=torch.long)
        self.num_ids = num_ids if num_ids is not None else int(max(ids)) + 1

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.cache[i], int(self.ids[i])


class TripletDataset(Dataset):
    """(anchor, positive, negative) images from `train_random_triplet.csv`.

    Each distinct file is decoded once into `cache` (`[N, 3, H, W]` for `image_size`, see
    `image_transform`; `[N, 3, 128, 128]` by default); `triplets` is a LongTensor `[T, 3]`
    of indices into it.
    """

    def __init__(self, csv_path: str | Path, root: str | Path | None = None,
                 device: str | torch.device = "cpu", image_size: ImageSize = IMAGE_SIZE) -> None:
        self.csv = Path(csv_path)
        self.root = Path(root) if root is not None else self.csv.parent
        table = read_csv(self.csv, ("anchor", "positive", "negative"))
        index: dict[Path, int] = {}
        where_of: dict[Path, str] = {}
        triplets = []
        for row, line in zip(table.rows, table.lines):
            loc = _where(self.csv, line)
            trip = []
            for col in ("anchor", "positive", "negative"):
                path = resolve_path(row[table.columns.index(col)], self.root, "train", f"{loc}, column {col}")
                where_of.setdefault(path, loc)
                trip.append(index.setdefault(path, len(index)))
            if trip[0] == trip[2] or trip[1] == trip[2]:
                raise DataError(f"{loc}: the negative is the same file as the anchor or positive")
            triplets.append(trip)
        paths = list(index)
        self.cache, _, _ = _decode_checked(paths, [where_of[p] for p in paths], False, device, skippable=False,
                                           image_size=image_size)
        self.triplets = torch.tensor(triplets, dtype=torch.long)
        self.ids: Tensor | None = None  # [N] identity of each cache image, set by label_from

    def label_from(self, id_set: "IDLossDataset") -> "TripletDataset":
        """Give every cached image its identity from an IDLossDataset of the same images
        (train_idloss.csv); needed for negatives mined in the batch. Returns self."""
        known = {Path(p): int(i) for p, i in zip(id_set.paths, id_set.ids.tolist())}
        missing = [p for p in self.cache.paths if p not in known]
        if missing:
            raise DataError(f"{self.csv}: {len(missing)} image(s) have no identity in the ID-loss table "
                            f"({len(id_set.paths)} images), e.g. {missing[0]}; expected every triplet "
                            f"image to be listed in train_idloss.csv")
        self.ids = torch.tensor([known[p] for p in self.cache.paths], dtype=torch.long)
        for a, p, n in self.triplets.tolist():
            if self.ids[a] != self.ids[p] or self.ids[a] == self.ids[n]:
                raise DataError(f"{self.csv}: triplet ({self.cache.paths[a]}, {self.cache.paths[p]}, "
                                f"{self.cache.paths[n]}) disagrees with the identities of the ID-loss "
                                f"table (anchor and positive must share one, the negative must not)")
        return self

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        a, p, n = self.triplets[i].tolist()
        return self.cache[a], self.cache[p], self.cache[n]


# --------------------------------------------------------------------------- C1: retrieval
def gallery_files(folder: Path) -> list[Path]:
    """The gallery images `0.<ext> … (G-1).<ext>` of `folder`, ordered by gallery index.

    Raises DataError when the folder is missing or empty, when a number is missing (a gap)
    or appears twice (e.g. `3.jpg` and `3.png`), or when an image file's name is not a number.
    """
    if not folder.is_dir():
        raise DataError(f"{folder}: gallery folder not found")
    by_index: dict[int, list[Path]] = {}
    for path in folder.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if not re.fullmatch(r"\d+", path.stem):
            raise DataError(f"{path}: gallery file names must be their gallery index (0.jpg, 1.jpg, …)")
        by_index.setdefault(int(path.stem), []).append(path)
    if not by_index:
        raise DataError(f"{folder}: no gallery images (expected 0.jpg … N-1.jpg)")
    dupes = {k: v for k, v in by_index.items() if len(v) > 1}
    if dupes:
        k, v = next(iter(sorted(dupes.items())))
        raise DataError(f"{folder}: gallery index {k} appears {len(v)} times ({', '.join(sorted(p.name for p in v))})")
    gaps = sorted(set(range(max(by_index) + 1)) - set(by_index))
    if gaps:
        raise DataError(f"{folder}: gallery numbering has gaps, missing {', '.join(map(str, gaps[:10]))}"
                        f"{' …' if len(gaps) > 10 else ''} (expected 0 … {max(by_index)})")
    return [by_index[k][0] for k in range(len(by_index))]


def _gallery_index(raw: str, gallery: list[Path], root: Path, split: str, where: str) -> int:
    path = resolve_path(raw, root, f"{split}/gallery", where) if raw else None
    stem = Path(raw.replace("\\", "/")).stem
    if path is None or not re.fullmatch(r"\d+", stem) or int(stem) >= len(gallery) \
            or path.resolve() != gallery[int(stem)].resolve():
        raise DataError(f"{where}: gallery '{raw}' is not one of the {len(gallery)} gallery images")
    return int(stem)


class RetrievalDataset(Dataset):
    """C1: the val or test retrieval set.

    `__getitem__(i)` → (query image `[3, H, W]`, index of its ground-truth gallery image);
    for `test` the ground truth is unknown and the index is `UNKNOWN_GT` (-1).
    `get_gallery_imgs()` → all gallery images `[G, 3, H, W]`, row k = `gallery/k.jpg`.
    `(H, W)` follows `image_size` (see `image_transform`): (128, 128), C2's padded square,
    by default; (128, 64) for the stronger recipe's person at their own shape.

    The queries come from `val/gt.csv` (val) or `test/pred.csv` (test) in file order, which
    `write_predictions` keeps.  `query_paths` / `gallery_paths` hold the paths in the CSV's
    form (`val/query/…`, `val/gallery/3.jpg`).
    """

    def __init__(self, root: str | Path, split: str, device: str | torch.device = "cpu",
                 image_size: ImageSize = IMAGE_SIZE) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root, self.split = Path(root), split
        if self.root.is_dir() and not (self.root / split).is_dir():   # e.g. data/ holding data/pa2_data/
            inner = [d for d in sorted(self.root.iterdir()) if (d / split).is_dir()]
            if inner:
                raise DataLayoutError(f"{self.root}: no {split}/ folder here; found the layout in {inner[0]} "
                                      f"— pass that")
        gallery = gallery_files(self.root / split / "gallery")
        self.gallery_paths = [f"{split}/gallery/{p.name}" for p in gallery]
        self.csv = self.root / split / ("gt.csv" if split == "val" else "pred.csv")
        table = read_csv(self.csv, ("query", "gallery"))
        where = [_where(self.csv, line) for line in table.lines]
        queries = [resolve_path(q, self.root, f"{split}/query", w) for q, w in zip(table.column("query"), where)]
        if split == "val":
            gt = [_gallery_index(g, gallery, self.root, split, w) for g, w in zip(table.column("gallery"), where)]
        else:
            gt = [UNKNOWN_GT] * len(queries)
        self.query_paths = table.column("query")
        self.gt = torch.tensor(gt, dtype=torch.long)
        gwhere = [f"{self.root / split / 'gallery'}, image {p.name}" for p in gallery]
        self.gallery, _, _ = _decode_checked(gallery, gwhere, False, device, False, image_size)
        self.queries, _, _ = _decode_checked(queries, where, False, device, False, image_size)

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.queries[i], int(self.gt[i])

    def get_gallery_imgs(self, count: int | None = None) -> Tensor:
        """All gallery images, `[G, 3, H, W]` float32 (`[G, 3, 128, 128]` by default), ordered by gallery
        index; with ``count``, only the first ``count`` of them (a figure needs no float32 copy of a large
        gallery)."""
        return self.gallery.images[:count].float()

    @property
    def has_gt(self) -> bool:
        return bool((self.gt != UNKNOWN_GT).all())


def retrieval_loader(dataset: RetrievalDataset, batch_size: int = 128) -> DataLoader:
    """C3: a DataLoader over the queries in file order (shuffle=False), yielding (images `[B, 3, H, W]`,
    `[B, 3, 128, 128]` by default, gt `[B]`)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)


def count_possible_triplets(ids: Sequence[int] | Tensor) -> int:
    """Q10: ordered (anchor, positive, negative) triplets a labelled set allows.

    The anchor and positive are two different images of one identity (order matters: a
    triplet pulls the anchor towards the positive), the negative any image of another
    identity, so with nᵢ images of identity i among N images: Σᵢ nᵢ·(nᵢ−1)·(N−nᵢ).
    For 230 identities of 10 images: 230 · 10 · 9 · 2290 = 47,403,000.
    """
    counts = torch.bincount(torch.as_tensor(ids, dtype=torch.long)).double()
    counts = counts[counts > 0]
    total = counts.sum()
    return int((counts * (counts - 1) * (total - counts)).sum().item())
