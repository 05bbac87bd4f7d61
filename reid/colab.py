"""Running the notebook from a fresh Colab runtime (or anywhere else): where things live.

On Colab the project folder sits in the student's Google Drive (`MyDrive/FOLDERNAME`, mounted
and made the working folder by the notebook's first cell). Everything the student keeps is
written there — figures, `pred.csv`, the submission zip, and a copy of the checkpoints — so a
dropped runtime loses little. Checkpoints are written every epoch to the runtime's local disk
(`/content/reid_runs`) and copied to Drive at most every 10 minutes (reid/drive.py: each replaced
140 MB file would otherwise fill Drive's trash); the course's data zip is unpacked once to the
local disk (`/content/reid_data`), because Drive is slow for thousands of small files. Off Colab
everything stays where it always was: `runs/`, `figures/` and `data/` in the project,
`REID_DATA` and `REID_RUNS` honoured (`REID_LOCAL` names another local disk, for simulations).

Map of this module:
    check_project       the project files the notebook needs, named when missing (first cell)
    check_line, gpu_check, weights_check   the checklist the notebook prints as it learns things
    find_weights_once   the first cell's weights line: looks once per kernel (reid.model.find_imagenet_weights)
    layout_zips         which zips in a folder hold the assignment's layout (by their contents)
    unpack_layout_zip   unpack one, once; reuse it while the zip is the same
    Workspace           project / runs / figures paths, `find_data`, `keep`, `mirror`, `pack`
The run token and the submission check are in reid/submission.py.

This module imports only the standard library at its top, so the first cell can import it to
name missing files before anything else of the project is imported.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reid.layout import DataInfo

SUBMISSION_NAME = "submission.zip"
UNPACK_MARKER = ".unpacked_from.json"
"""Written last into a folder this module unpacked a zip into: the zip's name, size and mtime."""
ROOT_FILES = ("helpers.py", "make_data.py", "reid/__init__.py", "reid/colab.py", "reid/data.py", "reid/model.py",
              "reid/train.py", "reid/evaluate.py", "reid/predict.py", "reid/report.py", "reid/plots.py")
"""The notebook's entry points and the modules behind helpers.py (named even when helpers.py is
missing); the project modules they import, directly or not, are needed too."""
LAYOUT_MARKS = ("train_idloss.csv", "train_random_triplet.csv", "val_idloss.csv", "val/gt.csv", "test/pred.csv")
"""What a zip must hold (flat, or inside one folder) to be the course's data: reid.data.LAYOUT_FILES."""


class ProjectFilesError(FileNotFoundError):
    """The project folder lacks files the notebook needs."""


# --------------------------------------------------------------------------- the checklist
def check_line(ok: bool | None, text: str) -> str:
    """One checklist line: '✓ text' (fine), '✗ text' (needs the student), '! text' (works, but note it);
    wrapped at the line width (reid.text.LINE_WIDTH), continuation lines indented."""
    from .text import wrap  # noqa: PLC0415
    return wrap({True: "✓", False: "✗", None: "!"}[ok] + " " + text)


class NoGPUError(RuntimeError):
    """A Colab runtime without a GPU: training would take an hour on its two slow CPUs."""


NO_GPU_STEPS = ("Runtime → Change runtime type → T4 GPU, Save, then Runtime → Run all again (on Colab's CPU "
                "training takes about an hour and gives far weaker models)")


def gpu_check(in_colab: bool, allow_cpu: bool = False) -> str:
    """The GPU line of the checklist, with the machine the timings come from (reid.device.machine_line).
    On Colab without a GPU it stops the notebook with the steps to get one (NoGPUError), unless
    ``allow_cpu`` (the first cell's ALLOW_CPU) says to go on knowingly; elsewhere the CPU is a normal choice."""
    import torch  # noqa: PLC0415 (kept out of the module's top: see the module docstring)

    from .device import machine_line  # noqa: PLC0415
    if torch.cuda.is_available():
        return check_line(True, machine_line("cuda"))
    if in_colab and not allow_cpu:
        raise NoGPUError(f"This Colab runtime has no GPU. {NO_GPU_STEPS}. To go on without one anyway, set "
                         "ALLOW_CPU = True in this cell.")
    if in_colab:
        return check_line(False, f"no GPU (ALLOW_CPU = True): training runs on the CPU. {NO_GPU_STEPS}. "
                                 + machine_line("cpu"))
    return check_line(None, f"no GPU: training runs on the CPU. {machine_line('cpu')}")


def weights_check(found: object, in_colab: bool) -> str:
    """The weights line of the checklist: ``found`` is what :func:`find_weights_once` found (a
    reid.model.WeightsFile), or a bool (C6: whether the weights loaded). ✓ says where from; ✗ says why
    and how to fix it."""
    if isinstance(found, bool):
        if found:
            return check_line(True, "ImageNet weights loaded into the backbone")
        hint = " (Colab reaches the internet: run the first cell again)" if in_colab else ""
        return check_line(False, f"ImageNet weights not loaded (the first cell says why): the models start from random "
                                 f"initialisation{hint}")
    path, how, message = getattr(found, "path", None), getattr(found, "how", ""), getattr(found, "message", "")
    if path is not None:
        return check_line(True, f"ImageNet weights: {path} ({how}); C6 loads this file")
    hint = (" Colab reaches the internet: Runtime → Restart session, then Run all." if in_colab else
            " Without them every model trains from random initialisation.")
    return check_line(False, f"ImageNet weights not found. {message}{hint}")


_WEIGHTS: dict[str, object] = {}


def find_weights_once(url: str | None = None) -> object:
    """The first cell's look for C6's weights file (reid.model.find_imagenet_weights: $REID_IMAGENET_WEIGHTS,
    torch hub's cache, one download), once per kernel: running the first cell again reuses what it found."""
    from .model import RESNET18_URL, find_imagenet_weights  # noqa: PLC0415 (torch: after the project check)
    url = url or RESNET18_URL
    if url not in _WEIGHTS:
        _WEIGHTS[url] = find_imagenet_weights(url)
    return _WEIGHTS[url]


# --------------------------------------------------------------------------- project files
def _module_file(name: str, project: Path) -> str:
    """The file a dotted module name lives in, relative to `project` (`reid.data` → reid/data.py)."""
    rel = Path(*name.split("."))
    if name == "reid" or (project / rel).is_dir():
        return f"{rel.as_posix()}/__init__.py"
    return rel.with_suffix(".py").as_posix()


def _local_imports(path: Path, project: Path) -> set[str]:
    """Project files that `path` imports anywhere in it (`from reid.x import …`, `import make_data`, …);
    a `reid` module that is imported but missing is included, so that it can be named."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return set()
    package = path.parent.relative_to(project).parts
    modules, maybe = set(), set()   # surely modules; names that may be modules (`from reid import data`)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            modules.add(module)
            maybe.update(f"{module}.{alias.name}" for alias in node.names)

    def local(name: str) -> bool:
        top = name.split(".")[0]
        return top == "reid" or (project / f"{top}.py").is_file()

    found = {_module_file(n, project) for n in modules if n and local(n)}
    found |= {f for n in maybe if local(n) and (project / (f := _module_file(n, project))).is_file()}
    return found


def required_files(project: str | Path) -> list[str]:
    """The files the notebook needs, relative to `project`: ROOT_FILES and every project module
    they import, directly or through each other (read from the sources, so a new module counts)."""
    project = Path(project)
    needed, todo = set(ROOT_FILES), list(ROOT_FILES)
    while todo:
        path = project / todo.pop()
        if path.is_file():
            for rel in _local_imports(path, project) - needed:
                needed.add(rel)
                todo.append(rel)
    return sorted(needed)


def check_project(project: str | Path) -> Path:
    """Check that `project` holds every file of `required_files`; returns it as an absolute Path.

    Raises:
        ProjectFilesError naming every missing file and the folder.
    """
    project = Path(project).absolute()
    missing = [f for f in required_files(project) if not (project / f).is_file()]
    if missing:
        raise ProjectFilesError(f"{project}: missing {', '.join(missing)}. Upload the whole project folder "
                                f"(as unpacked from its zip or `git archive`) and run this cell again.")
    return project


# --------------------------------------------------------------------------- the course's zip
def layout_prefix(names: list[str]) -> str | None:
    """The folder inside a zip that holds the layout ('' when flat, 'pa2_data/' when inside one
    folder), judged from its member names; None when the zip is not the assignment's data."""
    files = {n.replace("\\", "/") for n in names if not n.startswith("__MACOSX/")}
    tops = {""} | {n.split("/", 1)[0] + "/" for n in files if "/" in n}
    found = [p for p in sorted(tops) if all(p + mark in files for mark in LAYOUT_MARKS)]
    return found[0] if found else None


def layout_zips(folder: str | Path) -> tuple[list[Path], list[str]]:
    """The zips directly in `folder` that hold the layout, recognised by their contents whatever
    their names; and notes on the other zips there (not the data, or unreadable)."""
    hits, others = [], []
    for path in sorted(Path(folder).glob("*.zip")):
        try:
            with zipfile.ZipFile(path) as zf:
                prefix = layout_prefix(zf.namelist())
        except (zipfile.BadZipFile, OSError) as err:
            others.append(f"{path.name} (unreadable: {err}; an upload that stopped early?)")
            continue
        (hits if prefix is not None else others).append(path if prefix is not None else f"{path.name} (not the data)")
    return hits, others


def _zip_stamp(path: Path) -> dict[str, object]:
    stat = path.stat()
    return {"zip": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _replaceable(folder: Path) -> bool:
    """Whether `folder` may be (re)filled: missing, empty, or holding a zip this module unpacked."""
    return not folder.exists() or (folder.is_dir() and (not any(folder.iterdir()) or (folder / UNPACK_MARKER).is_file()))


def unpack_layout_zip(zip_path: str | Path, dest: str | Path) -> tuple[Path, bool]:
    """Unpack the course's zip into `dest` once; returns (the layout's root, whether reused).

    The contents go to a temporary folder beside `dest`, which then replaces it, with a marker
    recording the zip's name, size and mtime: a later call with the same zip reuses `dest`, a
    changed zip is unpacked again. A `dest` holding anything else is never touched.

    Raises:
        FileExistsError when `dest` holds files this function did not put there;
        ValueError when the zip does not hold the layout.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    marker = dest / UNPACK_MARKER
    if marker.is_file():
        try:
            stamp = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            stamp = {}
        if {k: stamp.get(k) for k in ("zip", "size", "mtime_ns")} == _zip_stamp(zip_path):
            return dest / stamp.get("prefix", ""), True
    if not _replaceable(dest):
        raise FileExistsError(f"{dest}: not empty and not unpacked from a zip by the notebook; "
                              f"move it away to let {zip_path.name} be unpacked there")
    with zipfile.ZipFile(zip_path) as zf:
        prefix = layout_prefix(zf.namelist())
        if prefix is None:
            raise ValueError(f"{zip_path}: does not hold the assignment's layout ({', '.join(LAYOUT_MARKS)})")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
        print(f"Unpacking {zip_path.name} to {dest} (once; later runs reuse it) …")
        zf.extractall(tmp)
    (tmp / UNPACK_MARKER).write_text(json.dumps({**_zip_stamp(zip_path), "prefix": prefix}))
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest / prefix, False


def _atomic_copy(src: Path, dest: Path) -> None:
    """Copy `src` to `dest` through a temporary file beside it, so `dest` is never half written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_zip(dest: str | Path, members: dict[str, Path]) -> Path:
    """Write a zip of `members` (name inside the zip → file) at `dest`, replacing it atomically."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, path in members.items():
                zf.write(path, name)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


# --------------------------------------------------------------------------- the workspace
@dataclass
class Workspace:
    """Where the notebook reads and writes.

    Attributes:
        project: the project folder, absolute (on Colab MyDrive/FOLDERNAME, the working folder).
        colab: whether this is a Colab runtime.
        quick: quick mode (`REID_QUICK=1`): its runs and figures go under runs/quick.
        local: the runtime's local disk on Colab, where the course's zip is unpacked and checkpoints
            are written (`$REID_LOCAL` when set, else /content).
        runs_root: `$REID_RUNS`, default `project/runs`.
    """

    project: Path
    colab: bool = False
    quick: bool = False
    local: Path = Path("/content")
    runs_root: Path | None = None

    def __post_init__(self) -> None:
        self.project = Path(self.project).absolute()
        self.local = Path(self.local)
        self.runs_root = self.project / (self.runs_root if self.runs_root is not None else "runs")

    @classmethod
    def detect(cls, quick: bool = False, project: str | Path | None = None,
               local: str | Path = "/content") -> "Workspace":
        """The workspace of this kernel: Colab when `google.colab` is loaded, the project = the
        working folder (the first cell made it the Drive folder on Colab), `$REID_RUNS` honoured."""
        local = os.environ.get("REID_LOCAL", "") or local
        return cls(Path(project if project is not None else os.getcwd()), "google.colab" in sys.modules,
                   quick, Path(local), Path(os.environ.get("REID_RUNS", "runs")))

    @property
    def kept(self) -> Path:
        """What is kept of the runs — the submission zip, the run record, the Drive copy of the checkpoints:
        runs_root/quick or runs_root/full (in the project folder, so in Drive on Colab)."""
        return self.runs_root / ("quick" if self.quick else "full")

    @property
    def runs(self) -> Path:
        """Where checkpoints are written every epoch: the runtime's local disk on Colab
        (local/reid_runs/quick|full, mirrored to :attr:`kept` by :meth:`mirror`), else :attr:`kept`."""
        return self.local / "reid_runs" / self.kept.name if self.colab else self.kept

    def mirror(self, interval_s: float = 600.0) -> object:
        """On Colab the reid.drive.DriveMirror that copies checkpoints from :attr:`runs` to :attr:`kept` (at
        most every ``interval_s``, at each model's end and on Ctrl-C); None elsewhere (nothing to copy)."""
        if not self.colab:
            return None
        from .drive import DriveMirror  # noqa: PLC0415
        return DriveMirror(self.runs, self.kept, interval_s)

    @property
    def figures(self) -> Path:
        """Figures: runs/quick/figures in quick mode, else project/figures (the ones answers.md shows)."""
        override = getattr(self, "figures_override", None)
        if override is not None:
            return override
        return self.kept / "figures" if self.quick else self.project / "figures"

    @property
    def data_dir(self) -> Path:
        return self.project / "data"

    @property
    def unpack_dir(self) -> Path:
        """Where the course's zip is unpacked: the runtime's local disk on Colab, else data/."""
        return self.local / "reid_data" if self.colab else self.data_dir

    @property
    def submission_zip(self) -> Path:
        return self.kept / SUBMISSION_NAME

    def keep(self, path: str | Path, name: str | None = None) -> Path:
        """On Colab, copy a file the student keeps into the project folder (Drive) unless it is
        there already, replacing an older copy atomically; returns where it is kept. Off Colab
        nothing moves and `path` is returned."""
        path = Path(path).absolute()
        if not self.colab or path.is_relative_to(self.project):
            return path
        target = self.project / (name or path.name)
        _atomic_copy(path, target)
        return target

    def pack(self, notebook: str | Path, pred_csv: str | Path, beyond_csv: str | Path | None = None,
             zip_path: str | Path | None = None) -> Path:
        """Write the submission zip (``zip_path``, default :attr:`submission_zip`, replaced atomically): the
        notebook file as saved, pred.csv, the stronger recipe's pred_beyond.csv when given, and the
        figures; on Colab pred.csv is kept in the Drive folder and the zip offered for download. Whether
        the saved notebook is this run is checked before (reid.submission).

        Raises:
            FileNotFoundError when the notebook or pred.csv is missing.
        """
        nb, pred_csv = Path(notebook), Path(pred_csv)
        for path, what in ((nb, "the saved notebook"), (pred_csv, "no predictions: run the prediction cell first")):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: {what}")
        pred = self.keep(pred_csv, "pred.csv")
        figures = sorted(self.figures.glob("*.png"))
        members = {nb.name: nb, "pred.csv": pred}
        if beyond_csv is not None and Path(beyond_csv).is_file():
            members["pred_beyond.csv"] = Path(beyond_csv)
        members.update({f"figures/{p.name}": p for p in figures})
        zip_path = write_zip(zip_path or self.submission_zip, members)
        print(check_line(True, f"submission: {zip_path} — {nb.name} as saved, {', '.join(list(members)[1:3])}, "
                               f"{len(figures)} figures"))
        if self.colab:
            from google.colab import files  # noqa: PLC0415 (only on Colab)
            files.download(str(zip_path))
        return zip_path

    # ----------------------------------------------------------------------- the data
    def find_data(self, synthetic: bool = False, **counts: int) -> DataInfo:
        """Locate the data, print its checklist line, and return it (a reid.data.DataInfo).

        In order: `REID_DATA` (a folder; `synthetic` asks for the synthetic set); the synthetic
        set when asked (`synthetic=True`); data/ in the project holding the layout; one zip in
        the project folder holding the layout (any name; flat or inside one folder), unpacked
        once to `unpack_dir`. Off Colab, nothing found builds the synthetic set in data/ (and
        says so); on Colab it is an error saying where to put the zip. `counts` (train_ids,
        val_ids, test_ids, per_id) size a synthetic set built now.

        Raises:
            DataLayoutError: no data on Colab, two zips holding the layout, or a folder that is
                not the layout.
        """
        from reid.layout import prepare_data  # noqa: PLC0415 (see the module docstring)
        env = os.environ.get("REID_DATA", "")
        if env == "synthetic":
            synthetic, env = True, ""
        if env:
            info = prepare_data(self.project / env, build_if_missing=synthetic or not self.colab, **counts)
            print(self._data_line(info, f"REID_DATA={env}"))
            return info
        if synthetic:
            info = prepare_data(self._synthetic_dir(), **counts)
            print(self._data_line(info, "asked for (USE_SYNTHETIC_DATA = True or REID_DATA=synthetic)"))
            return info
        return self._find_course_data(counts)

    def _synthetic_dir(self) -> Path:
        """Colab: the local disk; elsewhere data/ when it is free or synthetic, else runs/synthetic-data."""
        from reid.layout import read_source  # noqa: PLC0415
        if self.colab:
            return self.local / "reid_synthetic"
        free = not self.data_dir.exists() or not any(self.data_dir.iterdir())
        return self.data_dir if free or read_source(self.data_dir) == "synthetic" else self.runs_root / "synthetic-data"

    def _find_course_data(self, counts: dict[str, int]) -> DataInfo:
        from reid.data import DataLayoutError
        from reid.layout import DataInfo, find_data_root, prepare_data, read_source  # noqa: PLC0415
        data_root, data_err = None, None
        unpacked_here = (self.data_dir / UNPACK_MARKER).is_file()   # then the zip decides, below
        if self.data_dir.is_dir() and any(self.data_dir.iterdir()) and not unpacked_here:
            try:
                data_root = find_data_root(self.data_dir)
            except DataLayoutError as err:
                data_err = err
        zips, others = layout_zips(self.project)
        if data_root is not None:
            info = DataInfo(data_root, read_source(data_root))
            ignored = f"; {', '.join(z.name for z in zips)} ignored: delete data/ to use it" if zips else ""
            print(self._data_line(info, f"{data_root}{ignored}"))
            return info
        if len(zips) > 1:
            raise DataLayoutError(f"{self.project}: {len(zips)} zips hold the assignment's data "
                                  f"({', '.join(z.name for z in zips)}); keep one and run this cell again")
        if zips:
            root, reused = unpack_layout_zip(zips[0], self.unpack_dir)
            info = DataInfo(root, read_source(root))
            how = "reused the copy unpacked" if reused else "unpacked"
            print(self._data_line(info, f"{zips[0].name}, {how} in {self.unpack_dir}"))
            return info
        if self.colab:
            raise DataLayoutError(self._no_data_message(others, data_err))
        info = prepare_data(self.data_dir, **counts)       # off Colab: today's default, the synthetic set
        extra = f" (no course data: put its zip in {self.project})" if info.source == "synthetic" else ""
        print(self._data_line(info, f"{info.root}{extra}"))
        return info

    def _no_data_message(self, other_zips: list[str], data_err: Exception | None) -> str:
        text = (f"No course data found. Put the course's data zip (any name; the zip holding train_idloss.csv, "
                f"val/gt.csv, test/pred.csv …) into {self.project} — the folder {self.project.name} of your "
                f"Google Drive — and run this cell again: it is unpacked to {self.unpack_dir} by itself. "
                f"Or set USE_SYNTHETIC_DATA = True in this cell to use the project's synthetic data.")
        if other_zips:
            text += f" Zips there that are not the data: {', '.join(other_zips)}."
        if data_err is not None:
            text += f" ({data_err})"
        return text

    @staticmethod
    def _data_line(info: DataInfo, how: str) -> str:
        what = {"course": "the course's data", "synthetic": "the SYNTHETIC data set",
                "pool": "a layout built from a labelled pool"}.get(info.source, info.source)
        return check_line(None if info.source == "synthetic" else True, f"data: {what} — {how}")
