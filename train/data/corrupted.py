"""The official common-corruption sets: CIFAR-10-C / CIFAR-100-C (.npy) and TinyImageNet-C (JPEG folders).

CIFAR-C: ``<root>/<corruption>.npy`` is (50000, 32, 32, 3) uint8, severities 1..5 stacked in blocks
of 10000 rows; ``<root>/labels.npy`` repeats the test labels 5 times. Both are memory-mapped, so
reading one severity touches 30 MB, not 150.
TinyImageNet-C: ``<root>/<corruption>/<severity>/<wnid>/*.JPEG``, 64x64.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fastnst.train.data import manifest
from fastnst.train.data.errors import DataFormatError, MissingDataError
from fastnst.train.data.jpeg import decode_files
from fastnst.train.data.tinyimagenet import list_class_folders

CORRUPTED_FOLDERS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C", "tinyimagenet": "Tiny-ImageNet-C"}
# The manifest's items "<dataset>-c" (Tiny-ImageNet-C: the fixed copy, see the manifest's note).
DOWNLOAD_URLS = {dataset: manifest.primary_url(f"{dataset}-c") for dataset in CORRUPTED_FOLDERS}
# The 15 benchmark corruptions (Hendrycks & Dietterich 2019); train.corruptions owns the canonical list.
_BENCHMARK_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression")


def corrupted_root(dataset: str, data_root: str | Path) -> Path:
    """Where the extracted official corruption archive of ``dataset`` is expected."""
    if dataset not in CORRUPTED_FOLDERS:
        raise ValueError(f"--dataset {dataset!r} has no official corruption set; expected one of "
                         f"{', '.join(CORRUPTED_FOLDERS)}")
    return Path(data_root) / CORRUPTED_FOLDERS[dataset]


def has_official_corruptions(dataset: str, data_root: str | Path) -> bool:
    """True when every benchmark corruption of ``dataset`` is on disk under ``data_root``."""
    if dataset not in CORRUPTED_FOLDERS:
        return False
    root = corrupted_root(dataset, data_root)
    if dataset == "tinyimagenet":
        return all((root / name / "5").is_dir() for name in _BENCHMARK_CORRUPTIONS)
    return (root / "labels.npy").is_file() and all((root / f"{name}.npy").is_file() for name in _BENCHMARK_CORRUPTIONS)


def _check_severity(severity: int) -> None:
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"corruption severity must be 1..5, got {severity}")


def _missing(root: Path, what: Path) -> MissingDataError:
    dataset = next((d for d, folder in CORRUPTED_FOLDERS.items() if folder == root.name), None)
    where = f"Download {DOWNLOAD_URLS[dataset]} and extract it into {root.parent}" if dataset else \
        "Download the official corruption set (Hendrycks & Dietterich 2019) and extract it there"
    return MissingDataError(f"{what} not found. {where} (so that {root} exists), or pass --download.")


def _mmap_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except ValueError as error:  # numpy reports bad headers and short files as ValueError
        raise DataFormatError(f"{path}: not a readable .npy file ({error})") from error


def load_cifar_c(root: str | Path, corruption: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of one severity of ``<root>/<corruption>.npy`` -> (uint8 NHWC memmap view, int64 labels)."""
    _check_severity(severity)
    root = Path(root)
    images_path, labels_path = root / f"{corruption}.npy", root / "labels.npy"
    for path in (images_path, labels_path):
        if not path.is_file():
            raise _missing(root, path)
    images, labels = _mmap_npy(images_path), _mmap_npy(labels_path)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise DataFormatError(f"{images_path}: expected uint8 (N, 32, 32, 3), got {images.dtype} {images.shape}")
    if len(images) % 5 or len(labels) != len(images):
        raise DataFormatError(f"{images_path}: {len(images)} rows and {len(labels)} labels; expected 5 equal "
                              f"severity blocks with one label per row")
    rows_per_severity = len(images) // 5  # 10000 in the official files
    rows = slice((severity - 1) * rows_per_severity, severity * rows_per_severity)
    return images[rows], np.asarray(labels[rows], dtype=np.int64)


def load_tinyimagenet_c(root: str | Path, corruption: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """``<root>/<corruption>/<severity>/<wnid>/*.JPEG`` decoded -> (uint8 NHWC, int64 labels by sorted wnid)."""
    _check_severity(severity)
    root = Path(root)
    folder = root / corruption / str(severity)
    if not folder.is_dir():
        raise _missing(root, folder)
    wnids = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if len(wnids) != 200:
        raise DataFormatError(f"{folder}: {len(wnids)} class folders, expected 200")
    paths, labels = list_class_folders(folder, wnids)
    return decode_files(paths, 64, f"{corruption}-{severity}"), labels
