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
                        find_weights_once, layout_prefix, layout_zips, required_files, unpack_layout_zip,
                        weights_check)
from reid.data import DataLayoutError, RetrievalDataset
from conftest import ALLOW_CPU_LINE, MOUNT_LINE, first_cell, fits_the_width, foldername, zip_layout
from reid.layout import DataInfo
from reid.text import unwrap  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- helpers and fixtures
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
    downloads = offline(monkeypatch, tmp_path)
    return types.SimpleNamespace(drive=drive, project=project, local=tmp_path / "content",
                                 calls=fake_colab, pips=pips, downloads=downloads)


def offline(monkeypatch, tmp_path: Path) -> list[str]:
    """No network: torch's hub cache is an empty folder and a download raises URLError (recorded)."""
    import urllib.error

    calls: list[str] = []

    def no_network(url: str, dst: str, *args, **kwargs) -> None:
        calls.append(url)
        raise urllib.error.URLError("no network here")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.delenv("REID_IMAGENET_WEIGHTS", raising=False)
    return calls


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


def run_first_cell(drive: Path | None = None, allow_cpu: bool = True) -> tuple[dict, str]:
    """Execute the notebook's first code cell; `drive` replaces its mount point, `allow_cpu` its ALLOW_CPU
    (this machine has no GPU). Returns (namespace, stdout)."""
    source = first_cell()
    assert source.count(ALLOW_CPU_LINE) == 1, f"the first cell must set {ALLOW_CPU_LINE} once"
    source = source.replace(ALLOW_CPU_LINE, f"ALLOW_CPU = {allow_cpu}")
    if drive is not None:
        assert source.count(MOUNT_LINE) == 1, f"the first cell must set {MOUNT_LINE} once"
        source = source.replace(MOUNT_LINE, f"DRIVE = {str(drive)!r}")
    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "first cell", "exec"), ns)
    return ns, unwrap(out.getvalue())


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
    assert "✗ no GPU (ALLOW_CPU = True): training runs on the CPU. Runtime → Change runtime type → T4 GPU" in out
    assert "CPU: " in out and "in hardware" in out   # the machine the timings come from


@pytest.mark.reliability
def test_first_cell_stops_on_a_colab_runtime_without_a_gpu(runtime):
    """ALLOW_CPU = False (the default) and no GPU on Colab: the notebook stops with the steps to get one,
    instead of training for an hour on two slow CPUs."""
    with project_modules(), pytest.raises(RuntimeError, match=r"no GPU\. Runtime → Change runtime type → T4 GPU.*"
                                                             r"set ALLOW_CPU = True") as err:
        run_first_cell(runtime.drive, allow_cpu=False)
    assert type(err.value).__name__ == "NoGPUError"   # the Drive copy's class


def test_off_colab_the_cpu_is_a_normal_choice():
    from reid.colab import gpu_check

    line = unwrap(gpu_check(False, allow_cpu=False))
    assert line.startswith("! no GPU: training runs on the CPU. CPU: ")


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
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (7, 5))
    with project_modules():
        _, out = run_first_cell(runtime.drive, allow_cpu=False)
    assert "✓ GPU: Tesla T4 (compute capability 7.5)" in out and "Change runtime type" not in out


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


def test_first_cell_off_colab_mounts_nothing_and_stays_put(monkeypatch, tmp_path):
    offline(monkeypatch, tmp_path)
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


def saved_notebook(path: Path, first: str, predictions: str | None) -> Path:
    """A saved notebook whose first code cell printed ``first`` and a later one ``predictions``."""
    cell = lambda source, out: {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": source,  # noqa: E731
                                "outputs": [{"output_type": "stream", "name": "stdout", "text": out}]}
    cells = [cell("start_run()", first)] + ([cell("record_predictions(...)", predictions)] if predictions else [])
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_fresh_runtime_session_keeps_everything_in_drive(runtime, tiny_layout, monkeypatch):
    """First cell, settings cell and submission cell of the notebook, run as on Colab (the prediction
    cell's part simulated by record_predictions and a saved copy holding this run's token)."""
    zip_layout(tiny_layout, runtime.project / "PA2 data (1).zip", "pa2_data/")
    with project_modules():
        ns, first_out = run_first_cell(runtime.drive)
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
        assert ns["RUNS"] == runtime.local / "reid_runs" / "full" / f"course-{info.fingerprint}"   # local disk
        assert ns["MIRROR"].drive_dir(ns["RUNS"]) == runtime.project / "runs" / "full" / f"course-{info.fingerprint}"
        assert ns["FIGURES"] == runtime.project / "figures"
        assert "✓ data: the course's data — PA2 data (1).zip, unpacked in" in unwrap(out.getvalue())
        pred = info.root / "test" / "pred.csv"
        pred.write_text("query,gallery\ntest/query/7001.jpg,test/gallery/0.jpg\ntest/query/7000.jpg,test/gallery/2.jpg\n")
        with contextlib.redirect_stdout(out):
            line = ns["record_predictions"](ws, pred)
        token = sys.modules["reid.submission"].run_token()
        assert token in first_out and token in line
        saved_notebook(runtime.project / "assignment.ipynb", first_out, line)   # saved after the prediction cell
        with contextlib.redirect_stdout(out):
            exec(compile(code_cell("submit_this_run()"), "submission cell", "exec"), ns)
    sub = ns["submission"]
    assert sub == runtime.project / "runs" / "full" / SUBMISSION_NAME
    assert runtime.calls.downloads == [str(sub)]
    assert (runtime.project / "pred.csv").read_bytes() == pred.read_bytes()
    with zipfile.ZipFile(sub) as zf:
        names = zf.namelist()
    assert names[:2] == ["assignment.ipynb", "pred.csv"]
    figures = sorted(f"figures/{p.name}" for p in (runtime.project / "figures").glob("*.png"))
    assert sorted(names[2:]) == figures


def test_cells_off_colab_as_make_test_runs_them(tmp_path, tiny_layout, monkeypatch):
    """First, settings and submission cells with make test's settings: nothing mounted, REID_* honoured;
    the saved notebook (this checkout's) is an earlier run's, so nothing is packed, and nothing raises."""
    offline(monkeypatch, tmp_path)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(ROOT)
    for var, value in (("REID_QUICK", "1"), ("REID_DATA", str(tiny_layout)), ("REID_RUNS", str(tmp_path / "runs"))):
        monkeypatch.setenv(var, value)
    out = io.StringIO()
    with project_modules():
        ns, _ = run_first_cell()
        with contextlib.redirect_stdout(out):
            exec(compile(code_cell("USE_SYNTHETIC_DATA ="), "settings cell", "exec"), ns)
            ns["record_predictions"](ns["ws"], tiny_layout / "test" / "pred.csv")
            exec(compile(code_cell("submit_this_run()"), "submission cell", "exec"), ns)
        first_try = ns["submission"]
        monkeypatch.setenv("REID_PACKED_AFTER", "1")                    # as `make run` runs it: it says who packs
        made_by_make_run = io.StringIO()
        with contextlib.redirect_stdout(made_by_make_run):
            exec(compile(code_cell("submit_this_run()"), "submission cell", "exec"), ns)
    assert ns["submission"] is None and unwrap(made_by_make_run.getvalue()).startswith("! not packed by this cell: `make run`")
    ns["submission"] = first_try
    info = ns["info"]
    assert info.root == tiny_layout and not ns["ws"].colab and ns["MIRROR"] is None
    assert ns["RUNS"] == tmp_path / "runs" / "quick" / f"course-{info.fingerprint}"
    assert ns["FIGURES"] == tmp_path / "runs" / "quick" / "figures"
    assert f"✓ data: the course's data — REID_DATA={tiny_layout}" in unwrap(out.getvalue())
    assert ns["submission"] is None and "✗ nothing packed" in unwrap(out.getvalue())
    assert not (tmp_path / "runs" / "quick" / SUBMISSION_NAME).exists()
    assert not (ROOT / "pred.csv").exists()                               # off Colab nothing is copied


@pytest.mark.reliability
def test_the_submission_cell_alone_in_a_fresh_kernel_says_what_to_do(capsys):
    from reid import submission

    submission._STATE.clear()
    cell = code_cell("submit_this_run()")
    ns: dict = {"submit_this_run": submission.submit_this_run}
    exec(compile(cell, "submission cell", "exec"), ns)                  # no NameError: no notebook variable
    assert ns["submission"] is None
    assert "Runtime → Run all, save, then run this cell" in unwrap(capsys.readouterr().out)


@pytest.mark.reliability
def test_saved_notebook_check(tmp_path):
    from reid.submission import PRED_LINE, TOKEN_LINE, check_saved

    a, b = "20261205T101010Z-abc123", "20261205T111111Z-def456"
    nb = saved_notebook(tmp_path / "n.ipynb", TOKEN_LINE.format(token=a), PRED_LINE.format(token=a) + ": pred.csv")
    assert check_saved(nb, a)[0]
    ok, line = check_saved(nb, b)                                          # an earlier run's outputs
    assert not ok and "an earlier run's outputs" in line and "Ctrl+S" in line
    saved_notebook(nb, TOKEN_LINE.format(token=b), PRED_LINE.format(token=a) + ": pred.csv")
    ok, line = check_saved(nb, b)                                          # saved before the prediction cell
    assert not ok and "saved before the prediction cell ran" in line
    assert not check_saved(tmp_path / "missing.ipynb", a)[0]


@pytest.mark.reliability
def test_make_run_packs_the_saved_run_from_the_command_line(tmp_path, tiny_layout):
    from reid.submission import PRED_LINE, RUN_RECORD, TOKEN_LINE, main

    project, runs, token = tmp_path / "project", tmp_path / "project" / "runs" / "full", "20261205T101010Z-abc123"
    runs.mkdir(parents=True)
    (project / "figures").mkdir()
    (project / "figures" / "a.png").write_bytes(b"png")
    pred = tiny_layout / "test" / "pred.csv"
    nb = saved_notebook(project / "assignment.ipynb", TOKEN_LINE.format(token=token), PRED_LINE.format(token=token))
    record = {"token": token, "pred": str(pred), "pred_beyond": None, "figures": str(project / "figures"),
              "notebook": str(nb)}
    (runs / RUN_RECORD).write_text(json.dumps(record))
    assert main(["submit", str(nb), str(runs)]) == 0
    with zipfile.ZipFile(runs / SUBMISSION_NAME) as zf:
        assert zf.namelist() == ["assignment.ipynb", "pred.csv", "figures/a.png"]
    (runs / RUN_RECORD).write_text(json.dumps({**record, "token": "20261205T000000Z-000000"}))
    assert main(["submit", str(nb), str(runs)]) == 1                        # another run's record: refused


# --------------------------------------------------------------------------- finding the course's zip
@pytest.mark.parametrize("inside", ["", "pa2_data/"])
def test_layout_zip_flat_or_in_one_folder(tmp_path, tiny_layout, inside, capsys):
    project = tmp_path / "project"
    zip_layout(tiny_layout, project / "anything.zip", inside)
    info = colab_ws(project, tmp_path / "content").find_data()
    assert info.root == tmp_path / "content" / "reid_data" / inside.rstrip("/")
    assert len(RetrievalDataset(info.root, "val")) == 4
    assert "✓ data: the course's data — anything.zip, unpacked in" in unwrap(capsys.readouterr().out)


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
    sub = Workspace(project, quick=True).pack(project / "assignment.ipynb", pred)   # a real submission zip ...
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
    assert again.root == first.root and "reused the copy unpacked" in unwrap(capsys.readouterr().out)
    assert (again.root / "val" / "gt.csv").stat().st_mtime_ns == stamp
    (tiny_layout / "val" / "gt.csv").write_text("query,gallery\nval/query/5001.jpg,val/gallery/3.jpg\n")
    zip_layout(tiny_layout, course)                                        # the student replaces the zip
    os.utime(course, ns=(stamp + 10**9, stamp + 10**9))
    changed = colab_ws(project, local).find_data()
    assert "unpacked in" in unwrap(capsys.readouterr().out)
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
    assert "! data: the SYNTHETIC data set — asked for" in unwrap(capsys.readouterr().out)
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
    assert f"(no course data: put its zip in {project})" in unwrap(capsys.readouterr().out)
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


def test_weights_line_from_c6():
    assert weights_check(True, True) == "✓ ImageNet weights loaded into the backbone"
    assert weights_check(False, True).startswith("✗ ImageNet weights not loaded") and "run the first cell again" in weights_check(False, True)
    assert fits_the_width(weights_check(False, True))
    assert "first cell again" not in weights_check(False, False)


def test_first_cell_looks_for_the_weights_once_in_order(monkeypatch, tmp_path):
    """$REID_IMAGENET_WEIGHTS, then torch's hub cache, then one download; once per kernel; ✓ says where
    from, ✗ why and how to fix it, in lines of at most 110 characters; C6 then makes no second attempt."""
    from reid import colab
    from reid.model import RESNET18_URL, build_model, load_imagenet_weights

    calls = offline(monkeypatch, tmp_path)
    colab._WEIGHTS.clear()
    missing = find_weights_once()
    assert missing.path is None and calls == [RESNET18_URL]
    line = weights_check(missing, True)
    assert line.startswith("✗ ImageNet weights not found.") and "Runtime → Restart session" in " ".join(line.split())
    assert "REID_IMAGENET_WEIGHTS" in " ".join(line.split()) and fits_the_width(line)
    assert find_weights_once() is missing and len(calls) == 1               # once per kernel
    report = load_imagenet_weights(build_model(), source=missing)         # C6: no second network attempt
    assert not report.ok and len(calls) == 1

    weights = tmp_path / "w.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, weights)
    colab._WEIGHTS.clear()
    cached = Path(torch.hub.get_dir()) / "checkpoints" / "resnet18-5c106cde.pth"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(weights.read_bytes())
    found = find_weights_once()
    assert found.path == cached and found.how == "torch hub cache" and len(calls) == 1
    assert weights_check(found, True).startswith("✓ ImageNet weights:")
    monkeypatch.setenv("REID_IMAGENET_WEIGHTS", str(weights))               # the variable comes first
    colab._WEIGHTS.clear()
    assert find_weights_once().path == weights and "$REID_IMAGENET_WEIGHTS" in weights_check(find_weights_once(), False)
    monkeypatch.setenv("REID_IMAGENET_WEIGHTS", str(tmp_path / "nowhere.pth"))
    colab._WEIGHTS.clear()
    assert "is not a file" in " ".join(weights_check(find_weights_once(), False).split())


# --------------------------------------------------------------------------- RetrievalDataset one level up
def test_retrieval_dataset_points_at_the_layout_one_level_down(tiny_layout):
    with pytest.raises(DataLayoutError, match=re.escape(f"found the layout in {tiny_layout} — pass that")):
        RetrievalDataset(tiny_layout.parent, "val")


def test_the_colab_submission_cell_waits_a_moment_for_drive_to_show_the_save(monkeypatch, tmp_path):
    """On Colab a notebook saved just now may reach Drive a few seconds later: the cell checks three times
    over REID_DRIVE_WAIT_S seconds and packs once the save shows; off Colab it checks once."""
    from reid import submission

    calls: list[Path] = []

    def shows_on_third_look(notebook, token):
        calls.append(notebook)
        return len(calls) >= 3, "✗ nothing packed: not saved yet"

    class Space:
        project, colab = tmp_path, True

        def pack(self, notebook, pred, beyond):
            return tmp_path / "submission.zip"

    monkeypatch.setattr(submission, "check_saved", shows_on_third_look)
    monkeypatch.setenv(submission.DRIVE_WAIT, "0.03")
    monkeypatch.delenv(submission.PACKED_AFTER, raising=False)
    space = Space()
    for key, value in (("token", "t"), ("workspace", space), ("pred", None)):
        monkeypatch.setitem(submission._STATE, key, value)
    assert submission.submit_this_run() == tmp_path / "submission.zip" and len(calls) == 3
    calls.clear()
    space.colab = False
    assert submission.submit_this_run() is None and len(calls) == 1
