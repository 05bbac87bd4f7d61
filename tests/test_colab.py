"""Colab from a fresh runtime (reid/colab.py and the notebook's first cell), simulated.

The runtime is faked: a `google.colab` module in sys.modules whose `drive.mount` records the
call, a "Drive" that is a temporary folder holding MyDrive/FOLDERNAME = what `git archive` of
this repository ships, a "local disk" that is another temporary folder, and a working folder
elsewhere. The first cell is the notebook's own source, executed, with only its mount point
(`DRIVE = "/content/drive"`) pointed at the fake Drive.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch

from reid.colab import (SUBMISSION_NAME, UNPACK_MARKER, ProjectFilesError, Workspace, check_project,
                        layout_prefix, layout_zips, required_files, unpack_layout_zip, weights_check)
from reid.data import DataLayoutError, RetrievalDataset
from reid.layout import DataInfo

ROOT = Path(__file__).resolve().parent.parent
MOUNT_LINE = 'DRIVE = "/content/drive"'


# --------------------------------------------------------------------------- helpers and fixtures
def first_cell() -> str:
    nb = json.loads((ROOT / "assignment.ipynb").read_text(encoding="utf-8"))
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


def foldername() -> str:
    match = re.match(r'FOLDERNAME = "([^"]+)"', first_cell())
    assert match, "the first code cell must start with FOLDERNAME = \"...\""
    return match.group(1)


@pytest.fixture(scope="module")
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


@pytest.fixture
def fake_colab(monkeypatch) -> types.SimpleNamespace:
    """`google.colab` in sys.modules: drive.mount and files.download record their calls."""
    calls = types.SimpleNamespace(mounts=[], downloads=[])
    google, colab = types.ModuleType("google"), types.ModuleType("google.colab")
    drive, files = types.ModuleType("google.colab.drive"), types.ModuleType("google.colab.files")
    drive.mount = lambda mountpoint, **kw: calls.mounts.append(mountpoint)
    files.download = lambda path: calls.downloads.append(path)
    google.colab, colab.drive, colab.files = colab, drive, files
    google.__path__ = colab.__path__ = []
    for name, module in (("google", google), ("google.colab", colab), ("google.colab.drive", drive),
                         ("google.colab.files", files)):
        monkeypatch.setitem(sys.modules, name, module)
    return calls


@pytest.fixture(autouse=True)
def no_reid_variables(monkeypatch):
    """`make test` runs pytest with REID_DATA / REID_RUNS / REID_QUICK set for the notebook; the
    simulated runtimes start without them (a test that wants one sets it)."""
    for var in ("REID_DATA", "REID_RUNS", "REID_QUICK", "REID_EPOCHS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def runtime(tmp_path, archive, fake_colab, monkeypatch) -> types.SimpleNamespace:
    """A fresh Colab runtime: Drive at tmp/drive with the project in MyDrive/FOLDERNAME, the local
    disk at tmp/content, the working folder tmp/elsewhere, no REID_* variables, no GPU."""
    drive = tmp_path / "drive"
    project = drive / "MyDrive" / foldername()
    shutil.copytree(archive, project)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    for var in ("REID_DATA", "REID_RUNS", "REID_QUICK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    pips = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: pips.append(cmd))
    return types.SimpleNamespace(drive=drive, project=project, local=tmp_path / "content",
                                 calls=fake_colab, pips=pips)


@contextlib.contextmanager
def project_modules():
    """Let exec'd code import reid/helpers afresh (from the folder first on sys.path); afterwards
    restore sys.path and the modules this test process had."""
    def ours(name: str) -> bool:
        return name in ("reid", "helpers", "make_data") or name.startswith("reid.")
    saved_path = list(sys.path)
    saved = {k: v for k, v in sys.modules.items() if ours(k)}
    for k in saved:
        del sys.modules[k]
    try:
        yield
    finally:
        for k in [k for k in sys.modules if ours(k)]:
            del sys.modules[k]
        sys.modules.update(saved)
        sys.path[:] = saved_path


def run_first_cell(drive: Path | None = None) -> tuple[dict, str]:
    """Execute the notebook's first code cell; `drive` replaces its mount point. Returns (namespace, stdout)."""
    source = first_cell()
    if drive is not None:
        assert source.count(MOUNT_LINE) == 1, f"the first cell must set {MOUNT_LINE} once"
        source = source.replace(MOUNT_LINE, f"DRIVE = {str(drive)!r}")
    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "first cell", "exec"), ns)
    return ns, out.getvalue()


def colab_ws(project: Path, local: Path, quick: bool = False) -> Workspace:
    return Workspace(project, colab=True, quick=quick, local=local)


# --------------------------------------------------------------------------- the first cell
@pytest.mark.parametrize("cwd", ["/", "elsewhere"])
def test_first_cell_mounts_drive_and_works_in_the_project_folder(runtime, monkeypatch, cwd):
    if cwd == "/":
        monkeypatch.chdir("/")
    with project_modules():
        ns, out = run_first_cell(runtime.drive)
        assert runtime.calls.mounts == [str(runtime.drive)]
        assert Path(os.getcwd()) == runtime.project
        assert sys.path[0] == str(runtime.project)
        # reid was imported from the Drive copy, not from this checkout
        assert Path(sys.modules["reid.colab"].__file__).parent.parent == runtime.project
    assert ns["IN_COLAB"] is True and ns["PROJECT"] == str(runtime.project)
    assert runtime.pips == []                       # torchsummary is there: nothing installed
    assert "✗ no GPU: Runtime → Change runtime type → GPU" in out


def test_first_cell_installs_only_what_colab_lacks(runtime, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchsummary" else real(name, *a))
    with project_modules():
        run_first_cell(runtime.drive)
    assert runtime.pips == [[sys.executable, "-m", "pip", "install", "-q", "torchsummary"]]


def test_first_cell_names_the_gpu(runtime, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Tesla T4")
    with project_modules():
        _, out = run_first_cell(runtime.drive)
    assert "✓ GPU: Tesla T4" in out and "Change runtime type" not in out


def test_first_cell_names_missing_project_files(runtime):
    for rel in ("helpers.py", "reid/model.py", "make_data.py"):
        (runtime.project / rel).unlink()
    with project_modules(), pytest.raises(FileNotFoundError) as err:    # the Drive copy's ProjectFilesError
        run_first_cell(runtime.drive)
    assert type(err.value).__name__ == ProjectFilesError.__name__ and str(runtime.project) in str(err.value)
    for rel in ("helpers.py", "reid/model.py", "make_data.py"):
        assert rel in str(err.value)
    assert "reid/data.py" not in str(err.value)


def test_first_cell_wrong_foldername_says_where_it_looked(runtime):
    shutil.rmtree(runtime.project)
    with project_modules(), pytest.raises(FileNotFoundError, match=f"MyDrive/{foldername()}"):
        run_first_cell(runtime.drive)


def test_first_cell_off_colab_mounts_nothing_and_stays_put(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(ROOT)
    pips = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: pips.append(cmd))
    before = list(sys.path)
    with project_modules():
        ns, out = run_first_cell()
        assert sys.path == before
    assert ns["IN_COLAB"] is False and "PROJECT" not in ns and "DRIVE" not in ns
    assert Path(os.getcwd()) == ROOT and pips == []
    assert "Colab: False" in out


def test_required_files_are_what_the_notebook_imports_and_are_shipped(archive):
    needed = required_files(archive)
    for rel in ("helpers.py", "make_data.py", "reid/__init__.py", "reid/colab.py", "reid/data.py",
                "reid/model.py", "reid/train.py", "reid/evaluate.py", "reid/predict.py"):
        assert rel in needed
    assert all((archive / rel).is_file() for rel in needed)
    assert not any(rel.startswith(("tests/", "bench/")) for rel in needed)
    assert check_project(archive) == archive


# --------------------------------------------------------------------------- a whole session
def code_cell(marker: str) -> str:
    """The source of the notebook's code cell holding `marker`, IPython magics left out."""
    nb = json.loads((ROOT / "assignment.ipynb").read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code" and marker in "".join(c["source"])]
    assert len(cells) == 1, f"expected one code cell with {marker!r}, found {len(cells)}"
    return "\n".join(line for line in cells[0].splitlines() if not line.startswith("%"))


def test_fresh_runtime_session_keeps_everything_in_drive(runtime, tiny_layout, monkeypatch):
    """First cell, settings cell and submission cell of the notebook, run as on Colab."""
    zip_layout(tiny_layout, runtime.project / "PA2 data (1).zip", "pa2_data/")
    with project_modules():
        ns, _ = run_first_cell(runtime.drive)
        drive_copy = sys.modules["reid.colab"].Workspace                   # what the cells use
        detect = drive_copy.detect.__func__
        monkeypatch.setattr(drive_copy, "detect", classmethod(
            lambda cls, quick=False: detect(cls, quick, local=runtime.local)))   # /content → tmp
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code_cell("USE_SYNTHETIC_DATA ="), "settings cell", "exec"), ns)
        info, ws = ns["info"], ns["ws"]
        assert ws.colab and ws.project == runtime.project
        assert info.root == runtime.local / "reid_data" / "pa2_data" and info.source == "course"
        assert info.fingerprint == DataInfo(tiny_layout, "course").fingerprint
        assert ns["RUNS"] == runtime.project / "runs" / "full" / f"course-{info.fingerprint}"
        assert ns["FIGURES"] == runtime.project / "figures"
        assert "✓ data: the course's data — PA2 data (1).zip, unpacked in" in out.getvalue()
        pred = info.root / "test" / "pred.csv"
        pred.write_text("query,gallery\ntest/query/7001.jpg,test/gallery/0.jpg\ntest/query/7000.jpg,test/gallery/2.jpg\n")
        ns["pred_path"] = pred
        with contextlib.redirect_stdout(out):
            exec(compile(code_cell("ws.submit("), "submission cell", "exec"), ns)
    sub = ns["submission"]
    assert sub == runtime.project / "runs" / "full" / SUBMISSION_NAME
    assert runtime.calls.downloads == [str(sub)]
    assert (runtime.project / "pred.csv").read_bytes() == pred.read_bytes()
    with zipfile.ZipFile(sub) as zf:
        names = zf.namelist()
    assert names[:2] == ["assignment.ipynb", "pred.csv"]
    figures = sorted(f"figures/{p.name}" for p in (runtime.project / "figures").glob("*.png"))
    assert sorted(names[2:]) == figures and len(figures) > 0


def test_cells_off_colab_as_make_test_runs_them(tmp_path, tiny_layout, monkeypatch):
    """First, settings and submission cells with make test's settings: nothing mounted, REID_* honoured."""
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(ROOT)
    for var, value in (("REID_QUICK", "1"), ("REID_DATA", str(tiny_layout)), ("REID_RUNS", str(tmp_path / "runs"))):
        monkeypatch.setenv(var, value)
    out = io.StringIO()
    with project_modules():
        ns, _ = run_first_cell()
        with contextlib.redirect_stdout(out):
            exec(compile(code_cell("USE_SYNTHETIC_DATA ="), "settings cell", "exec"), ns)
            ns["pred_path"] = tiny_layout / "test" / "pred.csv"
            exec(compile(code_cell("ws.submit("), "submission cell", "exec"), ns)
    info = ns["info"]
    assert info.root == tiny_layout and not ns["ws"].colab
    assert ns["RUNS"] == tmp_path / "runs" / "quick" / f"course-{info.fingerprint}"
    assert ns["FIGURES"] == tmp_path / "runs" / "quick" / "figures"
    assert f"✓ data: the course's data — REID_DATA={tiny_layout}" in out.getvalue()
    assert ns["submission"] == tmp_path / "runs" / "quick" / SUBMISSION_NAME
    assert not (ROOT / "pred.csv").exists()                               # off Colab nothing is copied


# --------------------------------------------------------------------------- finding the course's zip
@pytest.mark.parametrize("inside", ["", "pa2_data/"])
def test_layout_zip_flat_or_in_one_folder(tmp_path, tiny_layout, inside, capsys):
    project = tmp_path / "project"
    zip_layout(tiny_layout, project / "anything.zip", inside)
    info = colab_ws(project, tmp_path / "content").find_data()
    assert info.root == tmp_path / "content" / "reid_data" / inside.rstrip("/")
    assert len(RetrievalDataset(info.root, "val")) == 4
    assert "✓ data: the course's data — anything.zip, unpacked in" in capsys.readouterr().out


def test_layout_prefix_reads_the_names_not_the_file_name():
    marks = ["train_idloss.csv", "train_random_triplet.csv", "val_idloss.csv", "val/gt.csv", "test/pred.csv"]
    assert layout_prefix(marks) == ""
    assert layout_prefix(["pa2_data/" + m for m in marks] + ["__MACOSX/pa2_data/._val"]) == "pa2_data/"
    assert layout_prefix(marks[:-1]) is None                                  # test/pred.csv missing
    assert layout_prefix(["a/b/" + m for m in marks]) is None                 # two folders deep


def test_submission_and_other_zips_are_never_the_data(tmp_path, tiny_layout):
    project = tmp_path / "project"
    project.mkdir()
    (project / "assignment.ipynb").write_text(json.dumps({"cells": []}))
    pred = tiny_layout / "test" / "pred.csv"
    sub = Workspace(project, quick=True).submit(pred)                      # a real submission zip ...
    shutil.copy(sub, project / "pa2_data.zip")                             # ... even named like the data
    (project / "broken.zip").write_bytes(b"PK\x03\x04 cut short")
    ws = colab_ws(project, tmp_path / "content")
    with pytest.raises(DataLayoutError) as err:
        ws.find_data()
    assert "pa2_data.zip (not the data)" in str(err.value) and "broken.zip (unreadable" in str(err.value)
    zip_layout(tiny_layout, project / "course.zip")
    assert layout_zips(project)[0] == [project / "course.zip"]
    assert ws.find_data().root == tmp_path / "content" / "reid_data"


def test_two_layout_zips_is_an_error_naming_both(tmp_path, tiny_layout):
    project = tmp_path / "project"
    zip_layout(tiny_layout, project / "pa2_data.zip")
    zip_layout(tiny_layout, project / "pa2_data (1).zip", "pa2_data/")
    with pytest.raises(DataLayoutError, match=re.escape("2 zips hold the assignment's data (pa2_data (1).zip, pa2_data.zip)")):
        colab_ws(project, tmp_path / "content").find_data()


def test_rerun_reuses_the_unpacked_copy_and_a_changed_zip_is_unpacked_again(tmp_path, tiny_layout, capsys):
    project, local = tmp_path / "project", tmp_path / "content"
    course = zip_layout(tiny_layout, project / "pa2_data.zip")
    first = colab_ws(project, local).find_data()
    stamp = (first.root / "val" / "gt.csv").stat().st_mtime_ns
    capsys.readouterr()
    again = colab_ws(project, local).find_data()                           # a later run, same runtime
    assert again.root == first.root and "reused the copy unpacked" in capsys.readouterr().out
    assert (again.root / "val" / "gt.csv").stat().st_mtime_ns == stamp
    (tiny_layout / "val" / "gt.csv").write_text("query,gallery\nval/query/5001.jpg,val/gallery/3.jpg\n")
    zip_layout(tiny_layout, course)                                        # the student replaces the zip
    os.utime(course, ns=(stamp + 10**9, stamp + 10**9))
    changed = colab_ws(project, local).find_data()
    assert "unpacked in" in capsys.readouterr().out
    assert len(RetrievalDataset(changed.root, "val")) == 1
    assert json.loads((local / "reid_data" / UNPACK_MARKER).read_text())["zip"] == "pa2_data.zip"


def test_unpacking_never_overwrites_a_folder_it_did_not_fill(tmp_path, tiny_layout):
    course = zip_layout(tiny_layout, tmp_path / "pa2_data.zip")
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=f"{dest}: not empty"):
        unpack_layout_zip(course, dest)
    assert (dest / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------- missing data, synthetic data
def test_missing_data_on_colab_says_where_to_put_the_zip(tmp_path):
    project = tmp_path / "drive" / "MyDrive" / "reid_pa2"
    project.mkdir(parents=True)
    with pytest.raises(DataLayoutError) as err:
        colab_ws(project, tmp_path / "content").find_data()
    text = str(err.value)
    assert f"into {project}" in text and "the folder reid_pa2 of your Google Drive" in text
    assert "USE_SYNTHETIC_DATA = True" in text
    assert not (tmp_path / "content").exists()                             # nothing built behind the student's back


def test_synthetic_on_colab_only_when_asked(tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    project.mkdir()
    small = dict(train_ids=3, val_ids=2, test_ids=2, per_id=4)
    info = colab_ws(project, tmp_path / "content").find_data(synthetic=True, **small)
    assert info.source == "synthetic" and info.root == tmp_path / "content" / "reid_synthetic"
    assert "! data: the SYNTHETIC data set — asked for" in capsys.readouterr().out
    monkeypatch.setenv("REID_DATA", "synthetic")
    assert colab_ws(project, tmp_path / "content").find_data().root == info.root   # built once, reused


def test_data_folder_in_drive_is_used_in_place(tmp_path, tiny_layout):
    project = tmp_path / "project"
    shutil.copytree(tiny_layout, project / "data" / "pa2_data")
    info = colab_ws(project, tmp_path / "content").find_data()
    assert info.root == project / "data" / "pa2_data" and not (tmp_path / "content").exists()


def test_off_colab_defaults_stay(tmp_path, tiny_layout, monkeypatch, capsys):
    monkeypatch.delenv("REID_DATA", raising=False)
    project = tmp_path / "project"
    project.mkdir()
    ws = Workspace(project, quick=True, runs_root=Path("elsewhere-runs"))
    assert ws.runs == project / "elsewhere-runs" / "quick" and ws.figures == ws.runs / "figures"
    assert ws.keep(tiny_layout / "test" / "pred.csv") == tiny_layout / "test" / "pred.csv"   # nothing moves
    info = ws.find_data(train_ids=3, val_ids=2, test_ids=2, per_id=4)     # nothing there: synthetic in data/
    assert info.root == project / "data" and info.source == "synthetic"
    assert f"(no course data: put its zip in {project})" in capsys.readouterr().out
    monkeypatch.setenv("REID_DATA", str(tiny_layout))
    assert ws.find_data().root == tiny_layout                              # REID_DATA honoured


def test_off_colab_a_course_zip_is_unpacked_into_data(tmp_path, tiny_layout, monkeypatch):
    monkeypatch.delenv("REID_DATA", raising=False)
    project = tmp_path / "project"
    zip_layout(tiny_layout, project / "pa2_data.zip", "pa2_data/")
    info = Workspace(project).find_data()
    assert info.root == project / "data" / "pa2_data"


def test_workspace_detect_honours_reid_runs(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv("REID_RUNS", "runs")
    ws = Workspace.detect(quick=True, project=tmp_path)
    assert not ws.colab and ws.runs == tmp_path / "runs" / "quick"
    assert ws.submission_zip == tmp_path / "runs" / "quick" / SUBMISSION_NAME
    assert Workspace.detect(project=tmp_path).figures == tmp_path / "figures"


# --------------------------------------------------------------------------- keep, submit, C6 line
def test_keep_copies_into_the_drive_folder_only_from_outside(tmp_path):
    project, outside = tmp_path / "project", tmp_path / "content" / "pred.csv"
    project.mkdir()
    outside.parent.mkdir()
    outside.write_text("query,gallery\n")
    ws = colab_ws(project, tmp_path / "content")
    assert ws.keep(outside) == project / "pred.csv"
    assert (project / "pred.csv").read_text() == "query,gallery\n"
    assert ws.keep(project / "pred.csv") == project / "pred.csv"
    assert [p.name for p in project.iterdir()] == ["pred.csv"]             # no temporary file left


def test_submit_needs_the_saved_notebook_and_warns_when_it_was_not_run(tmp_path, tiny_layout, capsys):
    project = tmp_path / "project"
    project.mkdir()
    ws = Workspace(project)
    pred = tiny_layout / "test" / "pred.csv"
    with pytest.raises(FileNotFoundError, match="File → Open notebook → Google Drive → project"):
        ws.submit(pred)
    (project / "assignment.ipynb").write_text(json.dumps({"cells": [
        {"cell_type": "code", "execution_count": None, "source": "1"}]}))
    first = ws.submit(pred)
    assert "has no executed cell: save the notebook" in capsys.readouterr().out
    second = ws.submit(pred)                                               # fixed name, replaced
    assert first == second and sorted(p.name for p in second.parent.iterdir()) == [SUBMISSION_NAME]
    with pytest.raises(FileNotFoundError, match="no predictions"):
        ws.submit(tmp_path / "missing.csv")


def test_weights_line():
    assert weights_check(True, True) == "✓ ImageNet weights loaded into the backbone"
    assert weights_check(False, True).startswith("✗ ImageNet weights not loaded") and "run this cell again" in weights_check(False, True)
    assert "run this cell again" not in weights_check(False, False)


# --------------------------------------------------------------------------- RetrievalDataset one level up
def test_retrieval_dataset_points_at_the_layout_one_level_down(tiny_layout):
    with pytest.raises(DataLayoutError, match=re.escape(f"found the layout in {tiny_layout} — pass that")):
        RetrievalDataset(tiny_layout.parent, "val")
