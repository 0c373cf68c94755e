"""Decode-check every training image file once, before DALI sees any; remember the verdicts (and sizes).

Why (measurements in docs/data.md, "Corrupt training JPEGs"; DALI 2.4 / nvImageCodec 0.9): DALI's
decoder names no file, fails the whole batch, and its pipeline must then be dropped; and a file
whose headers are valid but whose entropy-coded data is random bytes usually decodes "fine" in
DALI (libjpeg-turbo warnings only), so it would be trained on as noise. So ``find_bad_files``
decodes each JPEG fully with libjpeg-turbo *with its warnings as errors* (torchvision's
``decode_jpeg``) and checks its size; in fuzzing (64x64, valid headers, random data) that rejected
every file DALI rejects and 99.7 % of those DALI accepts as noise. PIL, which ignores libjpeg's
warnings (82-93 % of those), is the fallback where torchvision's image extension is missing.
Random data that happens to be valid entropy-coded data is invisible to any decoder.
Other formats (an image folder's PNG files) are decoded fully by PIL, whose zlib stream check fails
a PNG with damaged pixel data (DALI fails the batch on it; torchvision's ``decode_png`` crashes the
process with SIGSEGV on such a file in 0.29, so it is not used).

Verdicts are cached per file by (size, mtime_ns) beside the images (or in the user's cache when
the data folder is read-only) with the decoder's version, and with each good image's height and width
(an image folder's random-resized crops are drawn on the host from them): later runs only ``stat`` each file.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL
import PIL.Image

from fastnst.atomic import write_json_atomic
from fastnst.train.data.errors import BadImageError
from fastnst.train.data.jpeg import check_jpeg_bytes

log = logging.getLogger(__name__)

CACHE_NAME = ".fastnst-jpeg-check.json"
_PROGRESS_FROM = 2000  # files to decode before a progress bar is worth showing


@functools.cache  # probed at the first check, not at import: importing train.data stays cheap
def _strict_decoder():
    """(torchvision's decode_jpeg: libjpeg-turbo with its warnings raised as errors, its version), or Nones."""
    try:
        import torch
        import torchvision
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        return None, None

    def decode(data: bytes) -> tuple[int, ...]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the deprecation notice of torchvision's image I/O (0.29)
            image = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        return tuple(image.shape)

    probe = io.BytesIO()
    PIL.Image.new("RGB", (8, 8)).save(probe, "JPEG")
    try:
        decode(probe.getvalue())  # torchvision without its image extension raises here
    except RuntimeError:
        return None, None
    return decode, torchvision.__version__


def checker() -> str:
    """The decoder behind the verdicts: a cache written by another one is not used."""
    strict, version = _strict_decoder()
    return f"torchvision {version}" if strict else f"Pillow {PIL.__version__}"


def check_file(path: Path | str, image_size: int | None) -> str | None:
    """None when ``path`` is an image that decodes cleanly (to ``image_size`` x ``image_size``; None: any
    size), else why not."""
    return inspect_file(path, image_size)[0]


def inspect_file(path: Path | str, image_size: int | None) -> tuple[str | None, tuple[int, int] | None]:
    """(why ``path`` is not a usable image or None, its decoded (height, width) or None)."""
    try:
        data = Path(path).read_bytes()
        if str(path).lower().endswith((".jpeg", ".jpg")) or data[:2] == b"\xff\xd8":
            check_jpeg_bytes(data, path)
            shape = _decoded_jpeg_shape(data)
        else:
            shape = _decoded_shape(data)
    except BadImageError as error:
        return str(error), None
    except OSError as error:  # PIL's "broken data stream" too
        return f"{path}: {error}", None
    except (RuntimeError, ValueError, SyntaxError) as error:  # e.g. "Image is incomplete or truncated"
        return f"{path}: cannot decode image ({str(error).split(', ', 2)[-1].strip()})", None
    why = _wrong_size(path, shape, image_size)
    return why, None if why else shape


def _wrong_size(path, shape, image_size: int | None) -> str | None:
    if image_size is None or tuple(shape) == (image_size, image_size):
        return None
    return f"{path}: expected {image_size}x{image_size} pixels, got {shape[1]}x{shape[0]}"


def _decoded_jpeg_shape(data: bytes) -> tuple[int, int]:
    strict, _ = _strict_decoder()
    if strict is None:
        return _decoded_shape(data)
    _, height, width = strict(data)
    return height, width


def _decoded_shape(data: bytes) -> tuple[int, int]:
    """PIL's full decode (not only the header): a damaged body raises."""
    with PIL.Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.height, image.width


def cache_locations(folder: Path) -> list[Path]:
    """Where verdicts are kept: beside the images, else (read-only data) in the user's cache."""
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastnst"
    digest = hashlib.sha1(str(Path(folder).resolve()).encode()).hexdigest()[:16]
    return [Path(folder) / CACHE_NAME, user_cache / f"jpeg-check-{digest}.json"]


def _load(locations: list[Path]) -> dict:
    for path in locations:
        try:
            cache = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(cache, dict) and cache.get("checker") == checker() and isinstance(cache.get("files"), dict):
            return cache["files"]
    return {}


def _save(locations: list[Path], files: dict) -> None:
    for path in locations:
        try:  # atomic: ranks checking at the same time never read half a file
            write_json_atomic(path, {"checker": checker(), "files": files}, separators=(",", ":"))
            return
        except OSError:
            continue
    log.warning("cannot write the JPEG check cache (%s); the files will be checked again next run", locations[0])


def find_bad_files(paths: list[Path], image_size: int | None, folder: Path,
                   description: str = "image files") -> dict[Path, str]:
    """{file: why} for the files of ``paths`` (all under ``folder``) that do not decode cleanly."""
    return check_files(paths, image_size, folder, description)[0]


def check_files(paths: list[Path], image_size: int | None, folder: Path,
                description: str = "image files") -> tuple[dict[Path, str], np.ndarray]:
    """({file: why} of the files that do not decode cleanly, int32 (N, 2) height and width of each file
    (-1 for a bad one)). ``image_size``: the side every image must have (None: any size).

    Only files that are new or changed since the last check are decoded, on a thread pool (the
    decoders release the GIL). The cache holds what each file is (its decoder's verdict and its size),
    so one check serves every ``image_size``.
    """
    from tqdm import tqdm

    locations = cache_locations(folder)
    cached = _load(locations)
    files, todo = {}, []
    for path in paths:
        key = os.path.relpath(path, folder)
        stat = os.stat(path)
        entry = cached.get(key)
        if isinstance(entry, list) and len(entry) == 5 and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            files[key] = entry
        else:
            files[key] = [stat.st_size, stat.st_mtime_ns, None, None, None]
            todo.append((Path(path), key))
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
            verdicts = pool.map(lambda item: inspect_file(item[0], None), todo)
            checked = tqdm(zip(todo, verdicts), total=len(todo), leave=False, desc=f"checking {description}",
                           disable=len(todo) < _PROGRESS_FROM)
            for (path, key), (verdict, shape) in checked:
                files[key][2:] = [verdict, *(shape or (None, None))]
        _save(locations, {**cached, **files})
    bad, shapes = {}, np.full((len(paths), 2), -1, dtype=np.int32)
    for index, path in enumerate(paths):
        verdict, *shape = files[os.path.relpath(path, folder)][2:]
        verdict = verdict or _wrong_size(path, shape, image_size)
        if verdict is not None:
            bad[Path(path)] = verdict
        else:
            shapes[index] = shape
    return bad, shapes
