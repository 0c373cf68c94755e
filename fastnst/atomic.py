"""Atomic file writes: a reader, or a crash mid-write, sees the old file or the new one, never half of one."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)  # a file or a folder
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename ``source`` over ``target``; after a crash ``target`` is the old one or all of the new one:
    the data reaches the disk before the name, the rename before the return. (A folder's own entries
    are synced, not the files in it: write those durably first.)"""
    _fsync(source)
    os.replace(source, target)
    _fsync(Path(target).parent)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """``with atomic_write(path) as f``: write to a temporary file beside ``path``, renamed over it when
    the block succeeds; an error removes it and leaves ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; weights, checkpoints and records are meant to be shared
        with os.fdopen(fd, mode) as f:
            yield f
        replace_durably(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(state, path: str | os.PathLike) -> None:
    """``torch.save(state, path)``, atomically."""
    with atomic_write(path) as f:
        torch.save(state, f)


def write_json_atomic(path: str | os.PathLike, value, **dump_options) -> None:
    """``json.dump(value)`` to ``path``, atomically (``dump_options`` go to ``json.dump``)."""
    with atomic_write(path, "w") as f:
        json.dump(value, f, **dump_options)
        f.write("\n")
