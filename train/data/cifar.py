"""CIFAR-10 / CIFAR-100 as distributed: the python-pickle batches, read with a restricted unpickler.

The official files are Python 2 pickles of dicts holding a (N, 3072) uint8 array in planar
(R, G, B) order and a list of labels. Only numpy's array reconstruction is allowed to run, so a
tampered file cannot execute code.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from fastnst.train.data import manifest
from fastnst.train.data.errors import DataFormatError, MissingDataError

CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_TRAIN_FILES = {"cifar10": [f"data_batch_{i}" for i in range(1, 6)], "cifar100": ["train"]}
_TEST_FILES = {"cifar10": ["test_batch"], "cifar100": ["test"]}
_LABEL_KEYS = {"cifar10": b"labels", "cifar100": b"fine_labels"}
_DOWNLOAD_URLS = {dataset: manifest.primary_url(dataset) for dataset in CIFAR_FOLDERS}  # item name = data set

# (module, name) pairs a numpy array pickle needs; numpy 2 moved numpy.core to numpy._core.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # protocol-2 pickles of bytes written by Python 3
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def read_cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (uint8 NHWC images, int64 labels)."""
    try:
        with open(path, "rb") as f:
            batch = _RestrictedUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise
    except Exception as error:  # truncated files raise EOFError, garbage raises UnpicklingError, ...
        raise DataFormatError(f"{path}: not a readable CIFAR python batch ({type(error).__name__}: {error})") from error
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise DataFormatError(f"{path}: expected a dict with keys b'data' and {label_key!r}")
    data, labels = batch[b"data"], np.asarray(batch[label_key], dtype=np.int64)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFormatError(f"{path}: b'data' must be a uint8 array of shape (N, 3072), got "
                              f"{getattr(data, 'dtype', type(data))} {getattr(data, 'shape', '')}")
    if len(labels) != len(data):
        raise DataFormatError(f"{path}: {len(data)} images but {len(labels)} labels")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planar CHW -> NHWC
    return np.ascontiguousarray(images), labels


def cifar_folder(dataset: str, data_root: str | Path) -> Path:
    """Where the extracted archive of ``dataset`` lives; raises MissingDataError if it is not there."""
    folder = Path(data_root) / CIFAR_FOLDERS[dataset]
    missing = [name for name in _TRAIN_FILES[dataset] + _TEST_FILES[dataset] if not (folder / name).is_file()]
    if missing:
        raise MissingDataError(
            f"{dataset}: {folder} lacks {', '.join(missing)}. Fetch it with "
            f"`{manifest.download_command(dataset, data_root=data_root)}` (or pass --download), or download "
            f"{_DOWNLOAD_URLS[dataset]} and extract it into {Path(data_root)} yourself.")
    return folder


def load_cifar(dataset: str, data_root: str | Path, split: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``"train"`` or ``"test"`` split of CIFAR-10/100 -> (uint8 NHWC, int64 labels), labels checked."""
    folder = cifar_folder(dataset, data_root)
    names = _TRAIN_FILES[dataset] if split == "train" else _TEST_FILES[dataset]
    parts = [read_cifar_batch(folder / name, _LABEL_KEYS[dataset]) for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    check_labels(labels, num_classes, folder, require_all=(split == "train"))
    return images, labels


def check_labels(labels: np.ndarray, num_classes: int, where: Path | str, require_all: bool) -> None:
    """Labels out of [0, num_classes) are errors; so is a class with no sample (when ``require_all``)."""
    if len(labels) == 0:
        raise DataFormatError(f"{where}: no samples")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise DataFormatError(f"{where}: {int(bad.sum())} labels outside [0, {num_classes}), "
                              f"e.g. {int(labels[bad][0])}")
    if require_all:
        empty = np.flatnonzero(np.bincount(labels, minlength=num_classes) == 0)
        if len(empty):
            raise DataFormatError(f"{where}: classes {empty[:10].tolist()} have no samples "
                                  f"({len(empty)} empty of {num_classes})")
