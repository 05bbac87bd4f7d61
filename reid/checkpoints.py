"""Checkpoints: atomic save, checked load, and the RNG states a resumed run needs.

``save_checkpoint`` writes a state dict atomically (temporary file, fsync, rename);
``load_checkpoint`` reads it back or raises ``CheckpointError`` naming the file.
``rng_state`` / ``set_rng_state`` capture and restore torch (CPU and CUDA), python and numpy
RNGs plus the training loop's generator, so a resumed CPU run repeats an uninterrupted one.
What goes into a training checkpoint (model, optimiser, history...) is decided in reid/train.py.
"""
from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "rng_state", "set_rng_state", "save_checkpoint",
           "load_checkpoint", "file_sha256"]

CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read back (truncated, corrupt, or another run's)."""


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state of this process plus ``generator``'s, as tensors and tuples torch.save can store."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "generator": generator.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python": random.getstate(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only where CUDA is available)."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically: a temporary file in the same folder, fsync, os.replace.
    A crash or Ctrl-C mid-write leaves the previous checkpoint as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; CheckpointError naming the file
    if it is truncated, corrupt or not one of ours. Tensors land on the CPU by default (RNG
    states must; load_state_dict copies weights and optimiser state to the model's device).
    ``mmap=True`` maps the tensors from the file instead of reading them, for a caller that
    only wants the small entries (the recorded config); where the mapped read fails (a file
    system that cannot map, or a damaged file) the file is read as usual, whose errors are the
    ones reported."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise
    except Exception as e:  # zip/pickle errors vary with how the file was damaged
        if mmap:
            return load_checkpoint(path, map_location)
        raise CheckpointError(f"{path}: unreadable checkpoint (truncated or corrupt?): {e}. "
                              f"Delete it to start over, or train without resume.") from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a train_model checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return state


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes (a weights file's identity: what a run started from)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
