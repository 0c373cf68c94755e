"""The stylized cache's folder: its files, what it records of its input, and opening it.

A finished cache (``fastnst.stylize_dataset``) is a folder of plain .npy files, memory-mappable
with ``np.load(mmap_mode="r")`` (``open_stylized_dataset`` does it and checks the folder):

    images.npy        uint8 (N, K, H, W, 3): variant k of image i
    style_index.npy   int32 (N, K): row of the style bank used
    alpha.npy         float32 (N, K): stylization strength used
    labels.npy        int64 (N,): the input's labels
    meta.json         settings, counts, sha256 of the weight files and the style bank, labels hash,
                      a fingerprint of the input pixels, timing
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastnst.cli import UsageError

FORMAT_VERSION = 1
IMAGES_FILE, STYLE_INDEX_FILE, ALPHA_FILE, LABELS_FILE = "images.npy", "style_index.npy", "alpha.npy", "labels.npy"
META_FILE = "meta.json"
PARTIAL_SUFFIX = ".partial"  # the folder a cache is made in, renamed to its final name when complete
SOURCES = ("synthetic", "real")
FINGERPRINT_IMAGES = 256    # images hashed to tell one pixel set from another (cheap, order-sensitive)


class StylizeDatasetError(UsageError):
    """Bad input or settings for stylize_dataset, or a folder that is not a cache; the message names it."""


def partial_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def labels_sha256(labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(labels, dtype="<i8").tobytes()).hexdigest()


def pixels_fingerprint(images: np.ndarray) -> str:
    """sha256 of up to 256 images spread over the set, with their indices: tells sets and orders apart."""
    count = len(images)
    picks = np.unique(np.linspace(0, count - 1, min(count, FINGERPRINT_IMAGES)).round().astype(np.int64))
    digest = hashlib.sha256(picks.astype("<i8").tobytes())
    for index in picks:
        digest.update(np.ascontiguousarray(images[int(index)]).tobytes())
    return digest.hexdigest()


def dataset_identity(images: np.ndarray, labels: np.ndarray) -> dict:
    """What a cache records of the images it was made from, to be matched against a data set later."""
    return {"count": int(len(images)), "image_shape": [int(v) for v in images.shape[1:]],
            "labels_sha256": labels_sha256(labels), "pixels_sha256": pixels_fingerprint(images)}


@dataclass
class StylizedDataset:
    """A finished ``stylize_dataset`` folder, memory-mapped read-only."""

    path: Path
    images: np.ndarray       # uint8 (N, K, H, W, 3)
    style_index: np.ndarray  # int32 (N, K)
    alpha: np.ndarray        # float32 (N, K)
    labels: np.ndarray       # int64 (N,)
    meta: dict

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def variants(self) -> int:
        return int(self.images.shape[1])

    def mismatches(self, images: np.ndarray, labels: np.ndarray) -> list[str]:
        """How this cache differs from the data set ``images``/``labels`` (count, size, labels, pixels)."""
        recorded = self.meta["dataset"]
        differences = []
        if recorded["count"] != len(images):
            differences.append(f"count: cache {recorded['count']} images, data set {len(images)}")
        elif list(images.shape[1:]) != recorded["image_shape"]:
            differences.append(f"image size: cache {recorded['image_shape']}, data set {list(images.shape[1:])}")
        else:
            if labels_sha256(labels) != recorded["labels_sha256"]:
                differing = int((np.asarray(self.labels) != np.asarray(labels)).sum())
                differences.append(f"labels: {differing} of {len(labels)} differ")
            if pixels_fingerprint(images) != recorded["pixels_sha256"]:
                differences.append("pixels: the images (or their order) are not the ones the cache was made from")
        return differences


def open_stylized_dataset(path: str | os.PathLike) -> StylizedDataset:
    """Open a finished cache folder; a clear error for a missing, incomplete or foreign folder."""
    path = Path(path)
    if not path.is_dir():
        if partial_path(path).is_dir():
            raise StylizeDatasetError(f"stylized data set {path} is incomplete ({partial_path(path)} holds a "
                                      "stopped run): run the same stylize_cache command again to finish it")
        raise StylizeDatasetError(f"stylized data set {path} does not exist (make one with python -m "
                                  "train.stylize_cache)")
    names = (META_FILE, IMAGES_FILE, STYLE_INDEX_FILE, ALPHA_FILE, LABELS_FILE)
    missing = [name for name in names if not (path / name).is_file()]
    if missing:
        raise StylizeDatasetError(f"{path} lacks {', '.join(missing)}: not a stylized data set")
    try:
        meta = json.loads((path / META_FILE).read_text())
        images = np.load(path / IMAGES_FILE, mmap_mode="r")
        style_index = np.load(path / STYLE_INDEX_FILE)
        alpha = np.load(path / ALPHA_FILE)
        labels = np.load(path / LABELS_FILE)
    except (ValueError, OSError) as error:
        raise StylizeDatasetError(f"{path}: could not be read ({error})") from error
    if meta.get("format_version") != FORMAT_VERSION:
        raise StylizeDatasetError(f"{path}: format version {meta.get('format_version')}, this fastnst reads "
                                  f"{FORMAT_VERSION}")
    count, variants = len(labels), int(meta["settings"]["variants"])
    if images.dtype != np.uint8 or images.ndim != 5 or images.shape[:2] != (count, variants) \
            or style_index.shape != (count, variants) or alpha.shape != (count, variants):
        raise StylizeDatasetError(f"{path}: inconsistent files (images {images.dtype} {images.shape}, style_index "
                                  f"{style_index.shape}, alpha {alpha.shape}, {count} labels, {variants} variants)")
    return StylizedDataset(path, images, style_index, alpha, labels, meta)
