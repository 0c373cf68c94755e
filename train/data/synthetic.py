"""EDM synthetic sets (.npz with ``image`` uint8 NHWC and ``label``), memory-mapped.

The published 1M-image files ("Better Diffusion Models Further Improve Adversarial Training",
github.com/wzekai99/DM-Improves-AT) are 3 GB (CIFAR) to 12 GB (64 px). ``np.load`` on an .npz would
inflate the member into RAM; when the member is stored uncompressed (``np.savez``) its bytes sit
contiguously in the zip, so we map them straight from the file: the pages are read once, by the
gather of each batch, and never copied twice.

Where ``train.run`` looks for them under a data root when ``--synthetic`` is not given: the
manifest's target (``synthetic/<dataset>_edm_1m.npz``, where ``python -m train.data.download``
puts them), then the paper authors' name for the same file, ``<DATASET>-add-1m-dm.npz`` (e.g.
``CIFAR10-add-1m-dm.npz``): ``manifest.candidate_paths(synthetic_item(dataset), data_root)``.
"""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from fastnst.train.data.errors import DataFormatError, MissingDataError

log = logging.getLogger(__name__)

_LOCAL_HEADER_SIZE = 30  # fixed part of a zip local file header


def _member_offset(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """Byte offset of the member's data in the zip file (after its local header)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(_LOCAL_HEADER_SIZE)
        if header[:4] != b"PK\x03\x04":
            raise DataFormatError(f"{path}: bad zip local header for {info.filename}")
        name_length = int.from_bytes(header[26:28], "little")
        extra_length = int.from_bytes(header[28:30], "little")
    return info.header_offset + _LOCAL_HEADER_SIZE + name_length + extra_length


def mmap_npz_member(path: str | Path, key: str) -> np.ndarray:
    """The array ``key`` of an .npz, memory-mapped read-only if stored uncompressed, else loaded once."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(f"{key}.npy")
            if info.compress_type != zipfile.ZIP_STORED:
                log.warning("%s: member %s is compressed, so it cannot be memory-mapped; "
                            "decompressing it into RAM (re-save with np.savez to avoid this)", path, key)
                with archive.open(info) as member:
                    return npy_format.read_array(member)
            offset = _member_offset(path, archive, info)
    except KeyError:
        raise DataFormatError(f"{path}: no array {key!r} in this .npz") from None
    except zipfile.BadZipFile as error:
        raise DataFormatError(f"{path}: not a valid .npz (zip) file: {error}") from error
    with open(path, "rb") as f:
        f.seek(offset)
        version = npy_format.read_magic(f)
        read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        data_offset = f.tell()
    if fortran_order:
        raise DataFormatError(f"{path}: array {key!r} is Fortran-ordered; expected C order")
    expected_end = data_offset + int(np.prod(shape)) * dtype.itemsize
    if expected_end > path.stat().st_size:
        raise DataFormatError(f"{path}: array {key!r} is truncated (needs {expected_end} bytes, "
                              f"file has {path.stat().st_size})")
    return np.memmap(path, dtype=dtype, mode="r", offset=data_offset, shape=shape)


def synthetic_item(dataset: str) -> str:
    """The manifest item of ``dataset``'s EDM set, e.g. "edm-cifar10"."""
    return f"edm-{dataset}"


def load_synthetic(path: str | Path, image_size: int | None, num_classes: int,
                   class_names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An EDM-style synthetic set (or, for an image folder, a folder of class subfolders named as its
    ``class_names``) -> (uint8 NHWC, int64 labels), checked against the real set: ``image_size`` square
    images (None: any one size, for random-resized crops)."""
    path = Path(path)
    if path.is_dir() and class_names is not None:
        from fastnst.train.data.generic_input import read_image_folder  # it imports this module

        images, labels = read_image_folder(path, flag="--synthetic", class_names=class_names)
    elif not path.is_file():
        raise MissingDataError(
            f"--synthetic {path} does not exist. Fetch the 1M-image EDM set with "
            f"`python -m train.data.download edm-<dataset> --data-root DIR` (it lands in DIR/synthetic/), "
            f"or set --synthetic-ratio 0.")
    else:
        images = mmap_npz_member(path, "image")
        labels = np.asarray(mmap_npz_member(path, "label")).astype(np.int64).reshape(-1)
    size = images.shape[1:3] if image_size is None else (image_size, image_size)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (*size, 3):
        raise DataFormatError(f"{path}: 'image' must be uint8 (N, {size[0]}, {size[1]}, 3), "
                              f"got {images.dtype} {images.shape}")
    if len(labels) != len(images):
        raise DataFormatError(f"{path}: {len(images)} images but {len(labels)} labels")
    from fastnst.train.data.cifar import check_labels
    check_labels(labels, num_classes, path, require_all=False)
    return images, labels
