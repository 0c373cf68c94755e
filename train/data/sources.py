"""Data set name + data root -> the training samples and the clean test set, in one place.

A training source is either pixels in memory (CIFAR, demo, the EDM synthetic sets: uint8 NHWC,
possibly memory-mapped) or a list of encoded image files (TinyImageNet's JPEGs, an image folder's JPEG
and PNG files), which the pipeline decodes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastnst.train.data.cifar import CIFAR_FOLDERS, load_cifar
from fastnst.train.data.errors import MissingDataError
from fastnst.train.data.jpeg import decode_files
from fastnst.train.data import imagefolder
from fastnst.train.data.stats import IMAGEFOLDER, DatasetInfo, dataset_info
from fastnst.train.data.tinyimagenet import list_train_files, list_val_files, tinyimagenet_folder

DEMO_FOLDER = "demo"  # make_demo_dataset(root) writes root/demo/cifar-10-batches-py and root/demo/synthetic.npz


@dataclass
class ArraySource:
    images: np.ndarray  # uint8 (N, H, W, 3); may be a read-only memmap
    labels: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class FileSource:
    paths: list[Path]
    labels: np.ndarray  # int64 (N,)
    folder: Path  # holds every file of ``paths`` (and the cache of jpeg_check.check_files)
    # int32 (N, 2) height and width of each decoded file, for random-resized crops (jpeg_check.check_files)
    sizes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


def _cifar_layout(dataset: str, data_root: str | Path) -> tuple[str, Path]:
    """The demo set is stored in the CIFAR-10 layout one folder down."""
    if dataset == "demo":
        root = Path(data_root) / DEMO_FOLDER
        if not (root / CIFAR_FOLDERS["cifar10"]).is_dir():
            raise MissingDataError(f"demo: {root / CIFAR_FOLDERS['cifar10']} not found. The demo set is generated, not "
                                   "downloaded: pass the --data-root of the demo run that wrote it (its OUT/demo_data), "
                                   f"or write it there with `python -m train.data.demo --data-root {data_root}`")
        return "cifar10", root
    return dataset, Path(data_root)


def load_train_source(dataset: str, data_root: str | Path, info: DatasetInfo | None = None) -> ArraySource | FileSource:
    """``info``: the data set's facts (an image folder's: ``dataset_info(dataset, config)``)."""
    info = info or dataset_info(dataset)
    if dataset == "tinyimagenet":
        paths, labels = list_train_files(data_root, info.num_classes)
        return FileSource(paths, labels, tinyimagenet_folder(data_root))
    if dataset == IMAGEFOLDER:
        paths, labels = imagefolder.list_train_files(data_root, list(info.class_names))
        return FileSource(paths, labels, imagefolder.split_folder(data_root, "train"))
    layout, root = _cifar_layout(dataset, data_root)
    return ArraySource(*load_cifar(layout, root, "train", info.num_classes))


def load_test_set(dataset: str, data_root: str | Path,
                  info: DatasetInfo | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The clean test split -> (uint8 NHWC, int64 labels). TinyImageNet's is its labelled val split; an
    image folder's is ``val/``, resized and centre-cropped (``imagefolder.eval_image``)."""
    info = info or dataset_info(dataset)
    if dataset == IMAGEFOLDER:
        paths, labels = imagefolder.list_val_files(data_root, list(info.class_names))
        return decode_files(paths, info.image_size, "imagefolder val", decode=lambda path: imagefolder.eval_image(
            path, info.image_size, info.eval_resize)), labels
    if dataset == "tinyimagenet":
        paths, labels = list_val_files(data_root, info.num_classes)
        return decode_files(paths, info.image_size, "tinyimagenet val"), labels
    layout, root = _cifar_layout(dataset, data_root)
    images, labels = load_cifar(layout, root, "test", info.num_classes)
    return images, labels


def default_synthetic_path(dataset: str, data_root: str | Path) -> Path | None:
    """The synthetic set that ships with a data set: only the generated demo has one."""
    return Path(data_root) / DEMO_FOLDER / "synthetic.npz" if dataset == "demo" else None


__all__ = ["ArraySource", "FileSource", "default_synthetic_path", "load_test_set",
           "load_train_source"]
