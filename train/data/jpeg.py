"""Reading JPEG files safely: cheap integrity checks before DALI sees the bytes, PIL decoding for eval sets."""
from __future__ import annotations

import io
from pathlib import Path

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


def read_jpeg_bytes(path: Path | str) -> np.ndarray:
    """The encoded bytes of a checked JPEG, as the 1-D uint8 array DALI's decoder takes."""
    data = Path(path).read_bytes()
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


def decode_files(paths: list[Path], image_size: int, description: str) -> np.ndarray:
    """Decode a list of image files into one uint8 NHWC array (with a progress bar for long lists)."""
    from tqdm import tqdm

    images = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    for i, path in enumerate(tqdm(paths, desc=description, leave=False, disable=len(paths) < 2000)):
        images[i] = decode_rgb(path, image_size)
    return images
