"""Frost textures: the official images when the user has them, a labelled stand-in otherwise.

The official corruption blends a random crop of one of the frost photographs
``frost1.png, frost2.png, frost3.png, frost4.jpg, frost5.jpg`` (``frost6.jpg``
ships too, but the scripts draw ``randint(5)`` and never pick it). They are
in the hendrycks/robustness repository (``ImageNet-C/create_c/``) and in the
``imagecorruptions`` wheel on PyPI (folder ``imagecorruptions/frost/``); we do
not redistribute them. ``python -m train.data.download frost`` fetches them into
``DATA_ROOT/frost/``, where the evaluation looks by default; ``FASTNST_FROST_DIR``
(or ``--frost-dir``) points at another folder holding them.

Without them, frost uses a procedural stand-in (bright, blue-white crystalline
texture from plasma noise and streaks). Its numbers are *not* comparable to
published Frost accuracies; every result produced with it says so.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fastnst.train.corruptions import _ops

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
FROST_DIR_ENV = "FASTNST_FROST_DIR"


def frost_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The folder with the official textures: ``explicit`` or $FASTNST_FROST_DIR; None if unset."""
    folder = explicit if explicit is not None else os.environ.get(FROST_DIR_ENV)
    if not folder:
        return None
    folder = Path(folder)
    missing = [name for name in FROST_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"frost texture folder {folder} lacks {', '.join(missing)}; get them from "
            "github.com/hendrycks/robustness (ImageNet-C/create_c/) or the imagecorruptions wheel (imagecorruptions/frost/)"
        )
    return folder


def default_frost_dir(data_root: str | os.PathLike | None) -> Path | None:
    """Where the evaluation of ``data_root`` reads textures when no folder is named: None when
    $FASTNST_FROST_DIR is set (``frost_dir`` reads it), else ``DATA_ROOT/frost`` if the download put all
    five there, else None (the stand-in)."""
    if os.environ.get(FROST_DIR_ENV) or data_root is None:
        return None
    folder = Path(data_root) / "frost"
    return folder if all((folder / name).is_file() for name in FROST_FILES) else None


def frost_source(explicit: str | os.PathLike | None = None) -> str:
    """What frost uses, for result files: 'official:<folder>' or 'procedural stand-in'."""
    folder = frost_dir(explicit)
    return f"official:{folder}" if folder is not None else "procedural stand-in"


def _cv2_linear_matrix(in_size: int, out_size: int, scale: float) -> torch.Tensor:
    """(out, in) weights of cv2.resize(fx=scale, INTER_LINEAR) along one axis: source position
    (i + 0.5) / scale - 0.5 (float32, as OpenCV), clamped to the edge, weights in steps of 1/2048."""
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    for out in range(out_size):
        position = float(np.float32((out + 0.5) * (1.0 / scale) - 0.5))
        low = int(np.floor(position))
        frac = position - low
        if low < 0:
            low, frac = 0, 0.0
        if low >= in_size - 1:
            low, frac = in_size - 1, 0.0
        frac = round(frac * 2048) / 2048
        matrix[out, low] += 1 - frac
        if frac:
            matrix[out, low + 1] += frac
    return matrix


@lru_cache(maxsize=8)
def _load_textures_cpu(folder: str, scale: float) -> tuple[torch.Tensor, ...]:
    textures = []
    for name in FROST_FILES:
        with Image.open(Path(folder) / name) as image:
            pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).double()
        height, width = pixels.shape[1:]
        # cv2.resize(frost, (0, 0), fx=scale, fy=scale): output size rounded, bilinear, no antialiasing
        rows = _cv2_linear_matrix(height, int(round(height * scale)), scale)
        cols = _cv2_linear_matrix(width, int(round(width * scale)), scale)
        textures.append((rows @ pixels @ cols.T).round().clamp(0, 255).float())
    return tuple(textures)


def official_frost_crops(n: int, size: int, scale: float, folder: Path, generator, device) -> torch.Tensor:
    """(N, 3, size, size) float 0..255: per sample a random texture and a random crop, as the scripts do."""
    textures = [t.to(device) for t in _load_textures_cpu(str(folder), scale)]
    choice = torch.randint(0, len(textures), (n,), generator=generator, device=device)
    crops = torch.empty(n, 3, size, size, device=device)
    span = torch.arange(size, device=device)
    for index, texture in enumerate(textures):
        members = (choice == index).nonzero().flatten()
        if members.numel() == 0:
            continue
        height, width = texture.shape[1:]
        if min(height, width) <= size:
            raise ValueError(f"frost texture {FROST_FILES[index]} in {folder} is {width}x{height} px after scaling by "
                             f"{scale:g}, not larger than the {size} px images (the official ones are 560x315 px and up)")
        # np.random.randint(0, dim - size): upper bound exclusive
        top = torch.randint(0, height - size, (members.numel(),), generator=generator, device=device)
        left = torch.randint(0, width - size, (members.numel(),), generator=generator, device=device)
        rows = (top[:, None] + span)[:, :, None]
        cols = (left[:, None] + span)[:, None, :]
        crops[members] = texture[:, rows, cols].permute(1, 0, 2, 3)
    return crops


def procedural_frost(n: int, size: int, generator, device) -> torch.Tensor:
    """Stand-in texture (N, 3, size, size) float 0..255: not the official frost."""
    base = _ops.plasma_fractal(n, _ops.plasma_size(size), 1.6, generator, device)[:, :size, :size] ** 2
    sparkle = (torch.rand(n, 1, size, size, generator=generator, device=device) < 0.08).float()
    angles = torch.rand(n, generator=generator, device=device, dtype=torch.float64) * 180
    streaks = _ops.motion_blur(sparkle, max(2, size // 10), 2.0, angles) * 4
    brightness = (0.7 * base.unsqueeze(1) + streaks).clamp(0, 1)
    tint = torch.tensor([0.85, 0.93, 1.0], device=device).view(1, 3, 1, 1)
    return 255.0 * brightness * tint


_warned = False
# Set while a caller (train.evaluate) reports the stand-in itself, with what it feeds.
_stand_in_warning_quiet = contextvars.ContextVar("fastnst_frost_stand_in_quiet", default=False)


@contextlib.contextmanager
def stand_in_warning_suppressed():
    """Within this block the stand-in texture is used without its generic warning (and without
    using up the one-time warning for later direct calls)."""
    token = _stand_in_warning_quiet.set(True)
    try:
        yield
    finally:
        _stand_in_warning_quiet.reset(token)


def frost_layers(n: int, size: int, scale: float, folder: str | os.PathLike | None, generator, device) -> torch.Tensor:
    global _warned
    resolved = frost_dir(folder)
    if resolved is not None:
        return official_frost_crops(n, size, scale, resolved, generator, device)
    if not _warned and not _stand_in_warning_quiet.get():
        warnings.warn(
            f"frost: official textures not found (python -m train.data.download frost, or set {FROST_DIR_ENV} or "
            "--frost-dir); using a procedural "
            "stand-in, so Frost numbers are NOT comparable to published ones",
            stacklevel=3,
        )
        _warned = True
    return procedural_frost(n, size, generator, device)
