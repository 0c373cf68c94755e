"""Reading image files safely: cheap JPEG integrity checks before a decoder sees the bytes, PIL decoding for eval sets,
torchvision decoding of a training batch where DALI is not installed."""
from __future__ import annotations

import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from fastnst.train.data.errors import BadImageError

_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"


def check_jpeg_bytes(data: bytes, path: Path | str) -> None:
    """Raise BadImageError for an empty, non-JPEG or truncated file (a cut file lacks the end marker).

    Trailing padding after the end marker is allowed, as in files written by some cameras.
    """
    if len(data) < 4 or data[:2] != _JPEG_START:
        raise BadImageError(f"{path}: not a JPEG file ({len(data)} bytes, no start-of-image marker)")
    if _JPEG_END not in data[-64:]:
        raise BadImageError(f"{path}: truncated JPEG (no end-of-image marker)")


def read_image_bytes(path: Path | str) -> np.ndarray:
    """The encoded bytes of an image file (a JPEG checked), as the 1-D uint8 array DALI's decoder takes."""
    data = Path(path).read_bytes()
    if str(path).lower().endswith((".jpeg", ".jpg")):
        check_jpeg_bytes(data, path)
    return np.frombuffer(data, dtype=np.uint8)


def open_rgb(path: Path | str) -> Image.Image:
    """One image file decoded by PIL to an RGB image in memory (a JPEG checked first); errors name the file."""
    data = Path(path).read_bytes()
    if str(path).lower().endswith((".jpeg", ".jpg")):
        check_jpeg_bytes(data, path)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except Exception as error:  # noqa: BLE001 - PIL raises many types for broken files
        raise BadImageError(f"{path}: cannot decode image ({error})") from error


def decode_rgb(path: Path | str, image_size: int) -> np.ndarray:
    """Decode one ``image_size`` square image file to uint8 HWC RGB with PIL; errors name the file."""
    pixels = np.asarray(open_rgb(path))
    if pixels.shape != (image_size, image_size, 3):
        raise BadImageError(f"{path}: expected {image_size}x{image_size} pixels, got {pixels.shape[1]}x{pixels.shape[0]}")
    return pixels


def decode_files(paths: list[Path], image_size: int, description: str,
                 decode: Callable[[Path], np.ndarray] | None = None) -> np.ndarray:
    """Decode a list of image files into one uint8 NHWC array, on a thread pool (PIL releases the GIL), with a
    progress bar for long lists. ``decode(path)``: one image, ``image_size`` square (default ``decode_rgb``)."""
    from tqdm import tqdm

    decode = decode or (lambda path: decode_rgb(path, image_size))
    images = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        for i, pixels in enumerate(tqdm(pool.map(decode, paths), total=len(paths), desc=description, leave=False,
                                        disable=len(paths) < 2000)):
            images[i] = pixels
    return images


def decode_images(encoded: list[np.ndarray], device) -> list:
    """Stage 1 without DALI: each encoded file (``read_image_bytes``) -> uint8 (3, H, W) RGB tensor on ``device`` (a
    grey image as three equal channels). JPEG files by ``torchvision.io.decode_jpeg``, the batch in one call, with
    nvJPEG on a GPU; other formats (PNG, BMP, WebP) by PIL on the host, then copied: torchvision 0.29's
    ``decode_png`` ends the process with SIGSEGV on a PNG whose pixel stream is damaged (a libpng error), where PIL
    raises. A file that does not decode raises RuntimeError, as DALI's decoder does (the loader then finds it)."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    is_jpeg = [bytes(item[:2]) == _JPEG_START for item in encoded]
    images: list = [None] * len(encoded)
    jpegs = [index for index, flag in enumerate(is_jpeg) if flag]
    if jpegs:
        data = [torch.from_numpy(np.array(encoded[index])) for index in jpegs]  # a writable copy of each file
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29's notice on its image I/O
            for index, image in zip(jpegs, decode_jpeg(data, mode=ImageReadMode.RGB, device=device)):
                images[index] = image
    others = [index for index, flag in enumerate(is_jpeg) if not flag]
    if others:  # PIL releases the GIL while it decodes
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1, len(others))) as pool:
            for index, pixels in zip(others, pool.map(lambda index: _pil_rgb(encoded[index]), others)):
                images[index] = torch.from_numpy(pixels).permute(2, 0, 1).to(device)
    return images


def _pil_rgb(data: np.ndarray) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data.tobytes())) as image:
            return np.array(image.convert("RGB"))
    except Exception as error:  # noqa: BLE001 - PIL raises many types for a broken file
        raise RuntimeError(f"cannot decode image ({error})") from error
