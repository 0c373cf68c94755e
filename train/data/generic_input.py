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


def read_image_folder(folder: Path, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One subfolder per class (sorted names -> labels 0..C-1, files found recursively), or a flat
    folder of images (labels -1). Every image must have the same size."""
    from PIL import Image

    if (folder / "wnids.txt").is_file() and (folder / "train").is_dir():
        folder = folder / "train"  # a TinyImageNet root: its training images
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if classes:
        groups = [(label, sorted(p for p in c.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
                  for label, c in enumerate(classes)]
    else:
        groups = [(-1, sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))]
    paths = [(label, path) for label, files in groups for path in files]
    if not paths:
        raise DataFormatError(f"--input {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    images, labels, first_size = None, np.empty(len(paths), dtype=np.int64), None
    for i, (label, path) in enumerate(tqdm(paths, desc="reading images", unit="img", leave=False,
                                           disable=not progress)):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except Exception as error:  # PIL raises many types for broken files
            raise DataFormatError(f"--input: cannot decode {path} ({error})") from error
        if images is None:
            first_size = pixels.shape
            images = np.empty((len(paths), *pixels.shape), dtype=np.uint8)
        elif pixels.shape != first_size:
            raise DataFormatError(f"--input: {path} is {pixels.shape[1]}x{pixels.shape[0]}, the first image "
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
