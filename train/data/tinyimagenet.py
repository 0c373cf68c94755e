"""TinyImageNet as distributed (``tiny-imagenet-200/``): lists of JPEG files and their labels.

Class index = position of the wnid in sorted order (``wnids.txt`` gives the set), as torchvision's
ImageFolder and the TinyImageNet-C evaluation code do, so train, val and -C labels agree.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fastnst.train.data import manifest
from fastnst.train.data.errors import DataFormatError, MissingDataError

FOLDER = manifest.remote_file("tinyimagenet").target  # tiny-imagenet-200
DOWNLOAD_URL = manifest.primary_url("tinyimagenet")
_JPEG_SUFFIXES = (".jpeg", ".jpg", ".JPEG", ".JPG")


def tinyimagenet_folder(data_root: str | Path) -> Path:
    folder = Path(data_root) / FOLDER
    if not (folder / "wnids.txt").is_file():
        raise MissingDataError(
            f"tinyimagenet: {folder / 'wnids.txt'} not found. Fetch it with "
            f"`{manifest.download_command('tinyimagenet', data_root=data_root)}` (or pass --download), or download "
            f"{DOWNLOAD_URL} and extract it into {Path(data_root)} yourself.")
    return folder


def read_wnids(folder: Path, num_classes: int) -> list[str]:
    """Sorted class ids from ``wnids.txt``; their count must be ``num_classes``."""
    wnids = sorted({line.strip() for line in (folder / "wnids.txt").read_text().splitlines() if line.strip()})
    if len(wnids) != num_classes:
        raise DataFormatError(f"{folder / 'wnids.txt'}: {len(wnids)} classes, expected {num_classes}")
    return wnids


def _jpegs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in _JPEG_SUFFIXES) if folder.is_dir() else []


def list_train_files(data_root: str | Path, num_classes: int) -> tuple[list[Path], np.ndarray]:
    """``train/<wnid>/images/*.JPEG`` -> (paths, int64 labels); a class without images is an error."""
    folder = tinyimagenet_folder(data_root)
    paths, labels = [], []
    for label, wnid in enumerate(read_wnids(folder, num_classes)):
        files = _jpegs(folder / "train" / wnid / "images")
        if not files:
            raise DataFormatError(f"{folder / 'train' / wnid / 'images'}: class {wnid} has no JPEG images")
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def list_val_files(data_root: str | Path, num_classes: int) -> tuple[list[Path], np.ndarray]:
    """``val/images/*.JPEG`` labelled by ``val/val_annotations.txt`` (file, wnid, box) -> (paths, labels)."""
    folder = tinyimagenet_folder(data_root)
    label_of = {wnid: i for i, wnid in enumerate(read_wnids(folder, num_classes))}
    annotations = folder / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise MissingDataError(f"tinyimagenet: {annotations} not found; re-extract {DOWNLOAD_URL}")
    paths, labels = [], []
    for line_number, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label_of:
            raise DataFormatError(f"{annotations}:{line_number}: expected '<file>\\t<wnid>...', with a wnid from "
                                  f"wnids.txt, got {line!r}")
        paths.append(folder / "val" / "images" / fields[0])
        labels.append(label_of[fields[1]])
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataFormatError(f"{annotations}: {len(missing)} listed images are missing, e.g. {missing[0]}")
    return paths, np.asarray(labels, dtype=np.int64)
