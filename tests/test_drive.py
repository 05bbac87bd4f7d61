"""reid/drive.py: checkpoints written locally every epoch, copied to "Drive" (a folder) rarely, with a fake
clock and a counting copy; resuming from the Drive copy after the local disk is gone."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import run, tiny_model
from reid import drive as D
from reid.checkpoints import load_checkpoint, save_checkpoint
from reid.colab import Workspace
from reid.drive import DriveMirror, checkpoint_epoch
from reid.text import unwrap


class Clock:
    """A fake monotonic clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class CountingCopy:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, src: Path, dst: Path) -> None:
        self.calls.append((Path(dst).name, Path(src).stat().st_size))
        shutil.copyfile(src, dst)

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.calls)


@pytest.fixture
def roots(tmp_path):
    return tmp_path / "local", tmp_path / "drive"


def mirror(roots, step: float = 250.0, interval: float = 600.0) -> tuple[DriveMirror, CountingCopy]:
    copy = CountingCopy()
    return DriveMirror(roots[0], roots[1], interval, clock=Clock(step), copy=copy), copy


def _uploads(copy: CountingCopy) -> list[str]:
    return [name for name, _ in copy.calls if name.endswith(D.TMP_SUFFIX)]


def test_training_copies_at_most_once_per_interval_plus_the_end(data, roots):
    m, copy = mirror(roots)       # each epoch "takes" 250 s on the fake clock; interval 600 s
    folder = roots[0] / "course-x" / "random" / "id"
    h = run(data, "id", folder, epochs=6, sync=m)
    assert h.epochs_done == 6
    # pushes at 250 (starts the interval), 500, 750, 1000 (copy), 1250, 1500, then the end at 1750 (copy);
    # best.pt goes again only when it holds another epoch than the Drive copy
    uploads = _uploads(copy)
    assert uploads[:2] == ["last.pt.uploading", "best.pt.uploading"] and uploads.count("last.pt.uploading") == 2
    assert uploads.count("best.pt.uploading") == (2 if h.kept_epoch > 4 else 1)
    elapsed = 1750.0
    assert uploads.count("last.pt.uploading") <= elapsed // 600 + 1
    drive = roots[1] / "course-x" / "random" / "id"
    assert checkpoint_epoch(drive / "last.pt") == 6 and (drive / "best.pt").is_file()
    assert not list(drive.glob("*" + D.TMP_SUFFIX))
    assert copy.bytes == sum(size for _, size in copy.calls) and copy.bytes > 0


@pytest.mark.reliability
def test_resume_from_the_drive_copy_after_the_local_disk_is_gone(data, roots, capsys):
    m, _ = mirror(roots, step=1000.0)  # every epoch past the interval: Drive keeps up
    folder = roots[0] / "course-x" / "random" / "id"
    run(data, "id", folder, epochs=2, sync=m)
    shutil.rmtree(roots[0])           # a new Colab runtime: the local disk is empty
    m2, copy = mirror(roots)
    h = run(data, "id", folder, epochs=3, sync=m2, resume=True)
    out = unwrap(capsys.readouterr().out)
    assert "Continuing from the Drive copy" in out and "Resuming from" in out and "2 of at most 3 epochs done" in out
    assert h.epochs_done == 3
    assert [name for name, _ in copy.calls][:2] == ["last.pt", "best.pt"]   # copied down first


def test_local_copy_wins_when_it_is_as_new(roots):
    local, drive = roots[0] / "m", roots[1] / "m"
    save_checkpoint(local / "last.pt", {"format": 1, "epoch": 5})
    save_checkpoint(drive / "last.pt", {"format": 1, "epoch": 4})
    m, copy = mirror(roots)
    assert not m.pull(local) and copy.calls == []
    save_checkpoint(drive / "last.pt", {"format": 1, "epoch": 7})
    assert m.pull(local) and checkpoint_epoch(local / "last.pt") == 7
    assert not (local / "best.pt").exists()     # the Drive copy had none: no stale local best.pt either


@pytest.mark.reliability
def test_replacing_truncates_the_old_file_first_and_keeps_it_on_a_failed_copy(roots, monkeypatch):
    local, drive = roots[0] / "m", roots[1] / "m"
    save_checkpoint(local / "last.pt", {"format": 1, "epoch": 1, "pad": "x" * 10_000})
    m, _ = mirror(roots)
    m.push(local, final=True)
    old = (drive / "last.pt").read_bytes()
    save_checkpoint(local / "last.pt", {"format": 1, "epoch": 2, "pad": "y" * 10_000})
    sizes = []
    real = D.os.replace
    monkeypatch.setattr(D.os, "replace", lambda a, b: sizes.append(Path(b).stat().st_size) or real(a, b))
    m.push(local, final=True)
    assert sizes == [0]                                   # the replaced file was emptied before the rename
    assert checkpoint_epoch(drive / "last.pt") == 2

    def failing(src, dst):                                # the runtime drops mid-copy
        Path(dst).write_bytes(b"partial")
        raise OSError("connection lost")

    save_checkpoint(local / "last.pt", {"format": 1, "epoch": 3})
    broken = DriveMirror(roots[0], roots[1], copy=failing)
    assert not broken.push(local, final=True)                             # reported, not raised
    assert checkpoint_epoch(drive / "last.pt") == 2 and len(old) > 0   # the previous Drive copy is intact


@pytest.mark.reliability
def test_a_drop_after_truncation_leaves_the_complete_upload_which_pull_takes(roots):
    local, drive = roots[0] / "m", roots[1] / "m"
    save_checkpoint(drive / ("last.pt" + D.TMP_SUFFIX), {"format": 1, "epoch": 9})
    drive.joinpath("last.pt").write_bytes(b"")            # truncated, never renamed over
    m, _ = mirror(roots)
    assert m.pull(local) and checkpoint_epoch(local / "last.pt") == 9
    assert load_checkpoint(drive / "last.pt")["epoch"] == 9 and not (drive / ("last.pt" + D.TMP_SUFFIX)).exists()


@pytest.mark.reliability
def test_interrupt_copies_what_there_is(data, roots):
    m, copy = mirror(roots, step=1.0)  # the interval never passes by itself
    folder = roots[0] / "r" / "id"
    model = tiny_model(interrupt_at=4 * 2 + 2)  # 4 iterations an epoch: Ctrl-C in epoch 3
    h = run(data, "id", folder, model=model, epochs=5, sync=m)
    assert h.interrupted and h.epochs_done == 2
    assert checkpoint_epoch(roots[1] / "r" / "id" / "last.pt") == 2


def test_workspace_on_colab_writes_locally_and_keeps_in_drive(tmp_path):
    ws = Workspace(tmp_path / "project", colab=True, local=tmp_path / "content")
    assert ws.runs == tmp_path / "content" / "reid_runs" / "full"
    assert ws.kept == tmp_path / "project" / "runs" / "full" == ws.submission_zip.parent
    m = ws.mirror()
    assert isinstance(m, DriveMirror) and m.drive_dir(ws.runs / "a" / "id") == ws.kept / "a" / "id"
    off = Workspace(tmp_path / "project")
    assert off.runs == off.kept and off.mirror() is None


def test_a_copy_drive_holds_already_is_not_sent_again(roots):
    local = roots[0] / "m"
    save_checkpoint(local / "last.pt", {"format": 1, "epoch": 3})
    save_checkpoint(local / "best.pt", {"format": 1, "epoch": 2})
    m, copy = mirror(roots)
    assert m.push(local, final=True) and len(copy.calls) == 2
    assert m.push(local, final=True) and len(copy.calls) == 2          # nothing new: nothing sent


def test_a_failing_drive_does_not_stop_training(data, roots, capsys):
    def full(src, dst):
        raise OSError(122, "Disk quota exceeded")

    m = DriveMirror(roots[0], roots[1], 0.0, clock=Clock(1.0), copy=full)
    h = run(data, "id", roots[0] / "r" / "id", epochs=3, sync=m)
    assert h.epochs_done == 3 and "could not copy the checkpoint to Drive" in capsys.readouterr().out
