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


def decode_rgb(path: Path | str, image_size: int) -> np.ndarray:
    """Decode one image file to uint8 HWC RGB with PIL; errors name the file."""
    data = Path(path).read_bytes()
    if str(path).lower().endswith((".jpeg", ".jpg")):
        check_jpeg_bytes(data, path)
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("RGB"))
    except Exception as error:
        raise BadImageError(f"{path}: cannot decode image ({error})") from error
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


def decode_jpeg_batch(encoded: list[np.ndarray], image_size: int, device):
    """Stage 1 without DALI: ``torchvision.io.decode_jpeg`` of a batch of encoded files (``read_image_bytes``), with
    nvJPEG on a GPU -> uint8 NHWC, a tensor on a GPU, a host array on the CPU. A file that does not decode, or
    not to ``image_size`` pixels, raises RuntimeError as DALI's decoder would (the loader then finds it)."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.from_numpy(np.array(item)) for item in encoded]  # a writable copy of each file's bytes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29's notice on its image I/O
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    wrong = sum(tuple(image.shape) != (3, image_size, image_size) for image in images)
    if wrong:
        raise RuntimeError(f"{wrong} decoded images are not {image_size}x{image_size}x3")
    batch = torch.stack(images).permute(0, 2, 3, 1)
    return batch.contiguous() if batch.is_cuda else np.ascontiguousarray(batch.numpy())
