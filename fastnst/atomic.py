"""Atomic ``torch.save``: a reader, or a crash mid-write, never sees a half-written file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def save_atomic(state, path: str | os.PathLike) -> None:
    """``torch.save(state)`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; weights and checkpoints are meant to be shared
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
