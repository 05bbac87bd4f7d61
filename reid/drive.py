"""Checkpoints on Colab: written to the runtime's own disk every epoch, copied to Google Drive rarely.

A checkpoint of ReIDNet with its Adam state is about 140 MB. Written into Drive every epoch, each
replaced file goes to Drive's trash, which counts against the student's quota (about 20 GB on a GPU
budget, against 15 GB free). So ``train_model`` writes ``last.pt`` / ``best.pt`` to the local disk
(``/content/reid_runs``), and :class:`DriveMirror` copies what resuming needs to the project folder in
Drive:

* at most once per ``interval_s`` (10 minutes by default), once at the end of each model's training,
  and on an interrupt (Ctrl-C) or an error, so a dropped runtime loses at most one interval of
  training, plus whatever Drive had not uploaded yet; a file whose Drive copy already holds the same
  epoch is not sent again; a copy that fails (Drive full or unreachable) is reported and training
  goes on;
* ``last.pt`` first, then ``best.pt``, so the Drive pair never has a best epoch after its last one;
  a drop between the two leaves a pair ``train_model`` mends on resume when the kept epoch is the last
  one, and otherwise keeps from the last epoch on (``History.keep_from``), never naming lost weights;
* each file atomically: copied to a temporary name beside it, the replaced file truncated to 0 bytes
  (so what goes to the trash is nearly empty), then the copy renamed into place; a drop before the
  rename leaves the previous Drive copy, a drop after the truncation leaves the complete temporary
  copy, which :meth:`DriveMirror.pull` takes.

On resume (:meth:`pull`), the local copy is used when its epoch count is at least the Drive copy's,
else the Drive copy is copied down. Off Colab there is no mirror: checkpoints stay in ``runs/``.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

__all__ = ["DriveMirror", "MIRRORED", "checkpoint_epoch"]

MIRRORED = ("last.pt", "best.pt")
"""What resuming needs, in the order copied (last before best)."""
TMP_SUFFIX = ".uploading"


def checkpoint_epoch(path: Path) -> int:
    """Epochs a checkpoint file records; -1 when it is missing or cannot be read (an empty or partial file)."""
    from .checkpoints import CheckpointError, load_checkpoint  # torch: imported when a file is read

    if not path.is_file() or path.stat().st_size == 0:
        return -1
    try:
        return int(load_checkpoint(path, mmap=True)["epoch"])
    except (CheckpointError, KeyError, OSError, RuntimeError):
        return -1


class DriveMirror:
    """Keeps the Drive copy of the checkpoint folders under ``local_root`` (see the module docstring).

    Args:
        local_root: where train_model writes (the runtime's disk); a checkpoint folder is a folder below it.
        drive_root: its counterpart in the Drive project folder.
        interval_s: the least time between two copies of a run's files (the last copy of a model's
            training and a copy on interrupt are made whatever the time).
        clock: seconds, monotonic (tests pass a fake one).
        copy: ``copy(src, dst)``, the byte copy (tests count its calls and bytes).
    """

    def __init__(self, local_root: str | os.PathLike, drive_root: str | os.PathLike, interval_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic,
                 copy: Callable[[Path, Path], object] = shutil.copyfile) -> None:
        self.local_root, self.drive_root = Path(local_root), Path(drive_root)
        self.interval_s, self.clock, self.copy = interval_s, clock, copy
        self._last_push: dict[Path, float] = {}

    def drive_dir(self, local_dir: str | os.PathLike) -> Path:
        """The Drive folder that mirrors ``local_dir`` (a folder under ``local_root``)."""
        return self.drive_root / Path(local_dir).relative_to(self.local_root)

    def pull(self, local_dir: str | os.PathLike) -> bool:
        """Before resuming: copy the Drive checkpoints down when they hold more epochs than the local ones
        (a new runtime has none). Returns whether it copied."""
        local_dir = Path(local_dir)
        drive_dir = self.drive_dir(local_dir)
        for name in MIRRORED:  # a drop after truncating a file left its complete upload beside it
            tmp = drive_dir / (name + TMP_SUFFIX)
            if tmp.is_file() and checkpoint_epoch(tmp) > checkpoint_epoch(drive_dir / name):
                os.replace(tmp, drive_dir / name)
        if checkpoint_epoch(local_dir / "last.pt") >= checkpoint_epoch(drive_dir / "last.pt"):
            return False
        local_dir.mkdir(parents=True, exist_ok=True)
        for name in MIRRORED:
            if (drive_dir / name).is_file():
                self.copy(drive_dir / name, local_dir / name)
            else:
                (local_dir / name).unlink(missing_ok=True)
        print(f"Continuing from the Drive copy of the checkpoint ({drive_dir}, epoch "
              f"{checkpoint_epoch(local_dir / 'last.pt')}).")
        return True

    def push(self, local_dir: str | os.PathLike, final: bool = False) -> bool:
        """After a checkpoint was written: copy it to Drive when ``interval_s`` has passed since the last
        copy of this folder, or when ``final``. Returns whether it copied."""
        local_dir = Path(local_dir)
        now = self.clock()
        last = self._last_push.get(local_dir)
        if not final and last is not None and now - last < self.interval_s:
            return False
        if last is None and not final:  # the first epoch of this process: start the interval now and
            self._last_push[local_dir] = now  # copy at its end (a drop loses at most one interval)
            return False
        drive_dir = self.drive_dir(local_dir)
        try:
            drive_dir.mkdir(parents=True, exist_ok=True)
            for name in MIRRORED:
                src = local_dir / name
                if src.is_file() and checkpoint_epoch(src) != checkpoint_epoch(drive_dir / name):
                    self._replace(src, drive_dir / name)   # (a copy Drive already holds is not sent again)
        except OSError as err:  # Drive full or unreachable: training goes on, the local copy stands
            print(f"! could not copy the checkpoint to Drive ({type(err).__name__}: {err}); training goes on "
                  f"from the runtime's disk, and the next copy tries again")
            return False
        self._last_push[local_dir] = now
        return True

    def _replace(self, src: Path, dst: Path) -> None:
        tmp = dst.with_name(dst.name + TMP_SUFFIX)
        self.copy(src, tmp)
        if dst.exists():
            with open(dst, "wb"):  # truncate: the version Drive keeps in the trash is nearly empty
                pass
        os.replace(tmp, dst)
