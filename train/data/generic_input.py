"""Images that are no training set, for ``python -m train.stylize_cache --input``: an .npz or an image folder.

An EDM-style .npz holds ``image`` uint8 (N, H, W, 3) and ``label`` (N,) (memory-mapped, as in
``synthetic.py``). An image folder holds one subfolder per class (labels in sorted folder order, files
found recursively; a TinyImageNet root is read through its ``train/``, in the training loader's
order), or only images (labels -1). The training sets in their own formats are ``sources.py``'s.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fastnst.train.data.errors import DataFormatError, MissingDataError
from fastnst.train.data.synthetic import mmap_npz_member

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _looks_like_cifar(folder: Path) -> bool:
    return (folder / "data_batch_1").is_file() or ((folder / "train").is_file() and (folder / "meta").is_file())


def image_files(folder: Path, recursive: bool = True) -> list[Path]:
    """The image files (by suffix, any case) in ``folder`` and, ``recursive``, below it, sorted."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_folder_names(folder: Path) -> list[str]:
    """The class subfolders of ``folder``, sorted: class i is the i-th (torchvision's ImageFolder order)."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def list_labelled_files(folder: Path, class_names, *, every_class: bool = True) -> tuple[list[Path], np.ndarray]:
    """``folder/<class>/**/<image>`` for the given classes -> (paths, int64 labels: the class's position).
    A class without images is an error, unless ``every_class`` is False (then it is simply absent)."""
    paths, labels = [], []
    for label, name in enumerate(class_names):
        files = image_files(folder / name) if (folder / name).is_dir() else []
        if not files and every_class:
            raise DataFormatError(f"{folder / name}: class {name} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def read_image_folder(folder: Path, progress: bool = True, flag: str = "--input",
                      class_names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One subfolder per class (sorted names -> labels 0..C-1, files found recursively), or a flat
    folder of images (labels -1). Every image must have the same size. Errors name ``flag``.
    ``class_names``: the labels are positions in this list (another set's classes), which must hold
    every class subfolder."""
    from PIL import Image

    if (folder / "wnids.txt").is_file() and (folder / "train").is_dir():
        folder = folder / "train"  # a TinyImageNet root: its training images
    classes = class_folder_names(folder)
    if class_names is not None:
        unknown = sorted(set(classes) - set(class_names))
        if unknown or not classes:
            raise DataFormatError(f"{flag} {folder}: expected class subfolders named as the training classes, "
                                  f"found {', '.join(unknown[:5]) or 'none'}{' ...' if len(unknown) > 5 else ''}")
        classes = list(class_names)
    if classes:
        files, labels = list_labelled_files(folder, classes, every_class=False)
        paths = list(zip(labels.tolist(), files))
    else:
        paths = [(-1, path) for path in image_files(folder, recursive=False)]
    if not paths:
        raise DataFormatError(f"{flag} {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    images, labels, first_size = None, np.empty(len(paths), dtype=np.int64), None
    for i, (label, path) in enumerate(tqdm(paths, desc="reading images", unit="img", leave=False,
                                           disable=not progress)):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except Exception as error:  # PIL raises many types for broken files
            raise DataFormatError(f"{flag}: cannot decode {path} ({error})") from error
        if images is None:
            first_size = pixels.shape
            images = np.empty((len(paths), *pixels.shape), dtype=np.uint8)
        elif pixels.shape != first_size:
            raise DataFormatError(f"{flag}: {path} is {pixels.shape[1]}x{pixels.shape[0]}, the first image "
                                  f"{first_size[1]}x{first_size[0]}; resize the folder to one size first")
        images[i], labels[i] = pixels, label
    return images, labels


def read_input(path: str | os.PathLike, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``--input``: an EDM-style .npz or an image folder -> (uint8 NHWC, int64 labels)."""
    path = Path(path)
    if not path.exists():
        raise MissingDataError(f"--input {path} does not exist")
    if path.is_file():
        if path.suffix != ".npz":
            raise DataFormatError(f"--input {path}: expected an .npz file or an image folder")
        images = mmap_npz_member(path, "image")
        return images, np.asarray(mmap_npz_member(path, "label")).astype(np.int64).reshape(-1)
    if _looks_like_cifar(path):
        raise DataFormatError(
            f"--input {path} is a CIFAR python-pickle folder: stylize it with --dataset cifar10|cifar100 "
            f"--data-root {path.parent} instead (read as the training loader reads it)")
    return read_image_folder(path, progress)
