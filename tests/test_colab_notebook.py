"""The whole notebook on a simulated Colab runtime, cell by cell, with nbclient (quick mode), every model
starting from a stand-in weights file that the first cell finds in torch's hub cache (the pretrained path).

A fake ``google.colab`` package sits on the kernel's path (``drive.mount`` does nothing, the "Drive" is a
temporary folder holding the project as ``git archive`` ships it and a course zip; ``files.download``
records its call), the runtime's local disk is another temporary folder (``REID_LOCAL``) and the network
is off (a download raises). Only the first cell's mount point is pointed at the fake Drive. Then:

* the submission cell run before saving packs nothing (the Drive copy is an earlier run's);
* a copy saved before the prediction cell ran: refused;
* saved after the prediction cell: packed, and the zip's notebook holds the first cell's token;
* checkpoints were written on the local disk and copied to Drive.
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ALLOW_CPU_LINE, MOUNT_LINE, foldername, zip_layout
from reid.config import start_folder

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

FAKE_COLAB = {
    "google/__init__.py": "",
    "google/colab/__init__.py": "from . import drive, files  # noqa: F401\n",
    "google/colab/drive.py": "def mount(mountpoint, **kwargs):\n    print(f'Mounted at {mountpoint}')\n",
    "google/colab/files.py": ("import os\n\ndef download(path):\n"
                              "    with open(os.environ['FAKE_COLAB_DOWNLOADS'], 'a') as f:\n"
                              "        f.write(str(path) + '\\n')\n"),
}
OFFLINE = ("import google.colab  # noqa: F401  (Colab's kernel imports it at start; the first cell looks for it)\n"
           "import urllib.error, torch\n"
           "def _no_network(url, dst, *a, **k):\n"
           "    raise urllib.error.URLError('no network in this simulation')\n"
           "torch.hub.download_url_to_file = _no_network\n")


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _errors(cell) -> list[str]:
    return [f"{o['ename']}: {o['evalue']}" for o in cell.get("outputs", []) if o.get("output_type") == "error"]


@pytest.fixture
def colab(tmp_path, archive, standin, monkeypatch):
    drive = tmp_path / "drive"
    project = drive / "MyDrive" / foldername()
    shutil.copytree(archive, project)
    zip_layout(standin["layout"], project / "course data.zip", "pa2_data/")
    hub = tmp_path / "torch" / "hub" / "checkpoints"   # where torch keeps a downloaded resnet18-5c106cde.pth
    hub.mkdir(parents=True)
    shutil.copy(standin["weights"], hub / "resnet18-5c106cde.pth")
    fake = tmp_path / "fake_colab"
    for rel, text in FAKE_COLAB.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(text)
    for var in ("REID_DATA", "REID_RUNS", "REID_EPOCHS", "REID_IMAGENET_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    env = {"REID_QUICK": "1", "REID_LOCAL": str(tmp_path / "content"), "TORCH_HOME": str(tmp_path / "torch"),
           "FAKE_COLAB_DOWNLOADS": str(tmp_path / "downloads.txt"), "MPLBACKEND": "Agg",
           "PYTHONPATH": str(fake), "REID_DRIVE_WAIT_S": "0.3"}   # its Drive is a local folder: no lag
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "elsewhere").mkdir()
    return type("Colab", (), {"drive": drive, "project": project, "local": tmp_path / "content",
                              "downloads": tmp_path / "downloads.txt", "cwd": tmp_path / "elsewhere",
                              "torch_home": tmp_path / "torch"})


def _check_the_pretrained_start(nb, code: list[int], sha: str) -> None:
    """The first cell found the weights in torch's hub cache, C6 loaded them, and each model's settings line
    names the file as its start (the settings measured for a pretrained start)."""
    first = " ".join(_stdout(nb.cells[code[0]]).split())
    assert "✓ ImageNet weights: " in first and "(torch hub cache); C6 loads this file" in first
    c6 = next(i for i in code if "load_imagenet_weights(backbone" in nb.cells[i].source)
    assert _stdout(nb.cells[c6]).startswith("✓ ImageNet weights loaded")
    for marker in ("TrainConfig.handout_id", "TrainConfig.handout_triplet", "TrainConfig.strong"):
        cell = next(nb.cells[i] for i in code if f"plan_training({marker}" in nb.cells[i].source)
        text = " ".join(_stdout(cell).split())
        assert f"Settings: start: resnet18-5c106cde.pth (sha256 {sha[:8]}…)" in text, text[:300]


def standin_sha(colab) -> str:
    from reid.checkpoints import file_sha256

    return file_sha256(colab.torch_home / "hub" / "checkpoints" / "resnet18-5c106cde.pth")


def test_colab_runtime_packs_only_the_saved_run(colab):
    nb = nbformat.read(Path(__file__).resolve().parent.parent / "assignment.ipynb", as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source.count(MOUNT_LINE) == 1
    # the runtime as Colab starts it, offline, put before the first cell's own lines (a cell executed on its
    # own with nbclient would take the place of the notebook's cell 0 in what is saved)
    assert first.source.count(ALLOW_CPU_LINE) == 1   # this machine has no GPU: go on knowingly
    first.source = OFFLINE + first.source.replace(MOUNT_LINE, f"DRIVE = {str(colab.drive)!r}").replace(
        ALLOW_CPU_LINE, "ALLOW_CPU = True")
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    predict = next(i for i in code if "write_predictions(" in nb.cells[i].source)
    submit = next(i for i in code if "submit_this_run()" in nb.cells[i].source)
    assert submit == code[-1]
    saved = colab.project / "assignment.ipynb"
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, shutdown_kernel="immediate",
                                     resources={"metadata": {"path": str(colab.cwd)}})
    with client.setup_kernel():
        before_predictions = None
        for i in code[:-1]:
            if i == predict:
                before_predictions = copy.deepcopy(nb)
            client.execute_cell(nb.cells[i], i)
            assert not _errors(nb.cells[i]), (i, _errors(nb.cells[i]), nb.cells[i].source[:200])
        token = re.search(r"Run token: (\S+)", _stdout(nb.cells[code[0]])).group(1)
        _check_the_pretrained_start(nb, code, standin_sha(colab))
        assert f"Predictions of run {token}" in _stdout(nb.cells[predict])
        zip_path = colab.project / "runs" / "quick" / "submission.zip"

        client.execute_cell(nb.cells[submit], submit)                  # not saved: the Drive copy is older
        assert "✗ nothing packed" in _stdout(nb.cells[submit]) and not zip_path.exists()
        nbformat.write(before_predictions, saved)                     # saved before the prediction cell
        client.execute_cell(nb.cells[submit], submit)
        out = " ".join(_stdout(nb.cells[submit]).split())
        assert "saved before the prediction cell ran" in out and not zip_path.exists()
        nbformat.write(nb, saved)                                     # saved after it: this run
        client.execute_cell(nb.cells[submit], submit)
        assert not _errors(nb.cells[submit])
        assert "✓ submission:" in _stdout(nb.cells[submit]) and zip_path.is_file()

    with zipfile.ZipFile(zip_path) as zf:
        packed = json.loads(zf.read("assignment.ipynb"))
        names = zf.namelist()
    packed_first = next(c for c in packed["cells"] if c["cell_type"] == "code")
    assert f"Run token: {token}" in "".join("".join(o.get("text", "")) for o in packed_first["outputs"])
    assert {"pred.csv", "pred_beyond.csv"} <= set(names) and any(n.startswith("figures/") for n in names)
    assert colab.downloads.read_text().split() == [str(zip_path)]
    # checkpoints: written on the runtime's disk, copied to Drive (the final copy of each model)
    local = sorted(p.relative_to(colab.local / "reid_runs" / "quick") for p in colab.local.rglob("last.pt"))
    kept = sorted(p.relative_to(colab.project / "runs" / "quick") for p in (colab.project / "runs").rglob("last.pt"))
    assert len(local) == 3 and local == kept
    sha = standin_sha(colab)
    assert all(p.parts[1] == start_folder(f"sha256:{sha}") for p in local)   # every model from the weights file
    assert sys.modules.get("google.colab") is None                    # the fake lived in the kernel only
