"""Decode-check every training JPEG once, before DALI sees any; remember the verdicts.

Why (measurements in docs/data.md, "Corrupt training JPEGs"; DALI 2.4 / nvImageCodec 0.9): DALI's
decoder names no file, fails the whole batch, and its pipeline must then be dropped; and a file
whose headers are valid but whose entropy-coded data is random bytes usually decodes "fine" in
DALI (libjpeg-turbo warnings only), so it would be trained on as noise. So ``find_bad_files``
decodes each file fully with libjpeg-turbo *with its warnings as errors* (torchvision's
``decode_jpeg``) and checks its size; in fuzzing (64x64, valid headers, random data) that rejected
every file DALI rejects and 99.7 % of those DALI accepts as noise. PIL, which ignores libjpeg's
warnings (82-93 % of those), is the fallback where torchvision's image extension is missing.
Random data that happens to be valid entropy-coded data is invisible to any decoder.

Verdicts are cached per file by (size, mtime_ns) beside the images (or in the user's cache when
the data folder is read-only) with the decoder's version: later runs only ``stat`` each file.
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

import PIL
import PIL.Image

from fastnst.atomic import write_json_atomic
from fastnst.train.data.errors import BadImageError
from fastnst.train.data.jpeg import check_jpeg_bytes, decode_rgb

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


def check_file(path: Path | str, image_size: int) -> str | None:
    """None when ``path`` is a JPEG that decodes cleanly to ``image_size`` x ``image_size``, else why not."""
    strict, _ = _strict_decoder()
    if strict is None:
        try:
            decode_rgb(path, image_size)
        except BadImageError as error:
            return str(error)
        except OSError as error:
            return f"{path}: {error}"
        return None
    try:
        data = Path(path).read_bytes()
        check_jpeg_bytes(data, path)
        shape = strict(data)
    except BadImageError as error:
        return str(error)
    except OSError as error:
        return f"{path}: {error}"
    except RuntimeError as error:  # e.g. "Image is incomplete or truncated", "Bogus marker length"
        return f"{path}: cannot decode image ({str(error).split(', ', 2)[-1].strip()})"
    if shape != (3, image_size, image_size):
        return f"{path}: expected {image_size}x{image_size} pixels, got {shape[2]}x{shape[1]}"
    return None


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


def find_bad_files(paths: list[Path], image_size: int, folder: Path, description: str = "JPEG files") -> dict[Path, str]:
    """{file: why} for the files of ``paths`` (all under ``folder``) that do not decode cleanly.

    Only files that are new or changed since the last check are decoded, on a thread pool (both
    decoders release the GIL).
    """
    from tqdm import tqdm

    locations = cache_locations(folder)
    cached = _load(locations)
    files, todo, bad = {}, [], {}
    for path in paths:
        key = os.path.relpath(path, folder)
        stat = os.stat(path)
        entry = cached.get(key)
        if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            files[key] = entry
            if entry[2] is not None:
                bad[Path(path)] = entry[2]
        else:
            files[key] = [stat.st_size, stat.st_mtime_ns, None]
            todo.append((Path(path), key))
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
            verdicts = pool.map(lambda item: check_file(item[0], image_size), todo)
            for (path, key), verdict in tqdm(zip(todo, verdicts), total=len(todo), desc=f"checking {description}",
                                             leave=False, disable=len(todo) < _PROGRESS_FROM):
                files[key][2] = verdict
                if verdict is not None:
                    bad[path] = verdict
        _save(locations, {**cached, **files})
    return bad
