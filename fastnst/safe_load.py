"""Every ``.pt`` / ``.pth`` file fastnst reads goes through ``safe_torch_load``.

It is ``torch.load(weights_only=True)`` with errors of our own. When PyTorch's safe unpickler
refuses a file (it holds pickled Python objects or code, e.g. a ``posix.system`` call), PyTorch's
message advises re-running with ``weights_only=False``: for a file of unknown origin that is the
one thing never to do. The error here says instead that the file is not a plain tensor
checkpoint, that it was not loaded, and to use files from a trusted source only.
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path

import torch

from fastnst.cli import FileFormatError, MissingFileError

_REFUSED_GLOBAL = re.compile(r"GLOBAL (\S+)")


def refused_message(what: str, path: Path, reason: str) -> str:
    return (f"{what} {path} could not be read: it is not a plain tensor checkpoint ({reason}), so it was NOT "
            "loaded. Only use files from a trusted source.")


def safe_torch_load(path: str | os.PathLike, what: str, *, map_location="cpu",
                    error_type: type[FileFormatError] = FileFormatError, mmap: bool = False):
    """``torch.load(path, weights_only=True)``; errors name ``what`` and ``path`` on one line. ``mmap``: tensors
    are mapped from the file, not read, until they are used (a ``torch.save`` zip file; for its small entries).

    Raises ``MissingFileError`` when there is no such file, ``error_type`` (a FileFormatError)
    when it cannot be read or is refused as unsafe.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what} {path} does not exist or is not a file")
    try:
        with warnings.catch_warnings():
            # Raw pickles (not torch.save zip files) draw a protocol warning before the refusal below.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        if "weights only load failed" not in str(error).lower():
            raise error_type(f"{what} {path} could not be read: it is not a PyTorch file or it is truncated "
                             f"(UnpicklingError)") from error
        match = _REFUSED_GLOBAL.search(str(error))
        reason = (f"it holds pickled Python objects or code that PyTorch's safe loader refuses: {match.group(1)}"
                  if match else "PyTorch's safe loader met pickle data it does not accept: a damaged file, or not "
                  "a PyTorch file")
        raise error_type(refused_message(what, path, reason)) from error
    except Exception as error:  # truncated zip, a text file, a pickle cut short: formats vary, the advice does not
        detail = one_line_detail(error)
        raise error_type(f"{what} {path} could not be read as a PyTorch file ({detail}); it may be truncated or "
                         "of another format") from error


def one_line_detail(error: BaseException) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if "weights_only" in first or len(first) > 160:  # never repeat PyTorch's advice, never a wall of text
        first = ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
