"""The official common-corruption sets: CIFAR-10-C / CIFAR-100-C (.npy) and TinyImageNet-C (JPEG
folders), and the C-bar sets of Mintun et al. (facebookresearch/augmentation-corruption).

CIFAR-C: ``<root>/<corruption>.npy`` is (50000, 32, 32, 3) uint8, severities 1..5 stacked in blocks
of 10000 rows; ``<root>/labels.npy`` repeats the test labels 5 times. Both are memory-mapped, so
reading one severity touches 30 MB, not 150. The archives hold the 15 benchmark corruptions and
the 4 extra ones (speckle_noise, gaussian_blur, spatter, saturate).
TinyImageNet-C: ``<root>/<corruption>/<severity>/<wnid>/*.JPEG``, 64x64; the published archive
holds the 15 benchmark corruptions only. The same folder layout, ``<corruption>/<severity>/<class>/<image>``,
is ImageNet-C's and what ``python -m train.corruptions.generate`` writes: an image folder's -C set
(``load_folder_c``; by default ``DATA_ROOT/val-c``, or any folder named by ``--corrupted-root``).

CIFAR-10-C-Bar: what augmentation-corruption's ``imagenet_c_bar/make_cifar10_c_bar.py`` writes,
``<root>/<corruption>.npy`` (50000, 32, 32, 3) uint8, one block of 10000 rows per severity value of
its csv row, in the row's order, and ``labels.npy``. Nobody publishes the files; that script (or
the authors' copy of them) makes them. CIFAR-100-C-bar: the same layout (the authors read
``CIFAR100-c-bar/<corruption>.npy``, experiments/data.py:597). Tiny-ImageNet C-bar has no official
set (augmentation-corruption issue 5); one generated in ImageNet-C-bar's folder layout is read.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fastnst.train.data import manifest
from fastnst.train.data.errors import DataFormatError, MissingDataError
from fastnst.train.data.generic_input import class_folder_names, list_labelled_files
from fastnst.train.data.jpeg import decode_files

CORRUPTED_FOLDERS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C", "tinyimagenet": "Tiny-ImageNet-C"}
# [ours] Where an image folder's -C set is looked for under its --data-root (the corrupted copies of val/).
IMAGEFOLDER_C = "val-c"
# Data sets whose -C sets are folders of images, <corruption>/<severity>/<class>/<image>; the others' are .npy files.
FOLDER_LAYOUT = ("tinyimagenet", "imagefolder")
GENERATED_META = "fastnst-c.json"  # what python -m train.corruptions.generate made a folder from
# The manifest's items "<dataset>-c" (Tiny-ImageNet-C: the fixed copy, see the manifest's note).
DOWNLOAD_URLS = {dataset: manifest.primary_url(f"{dataset}-c") for dataset in CORRUPTED_FOLDERS}
# The 15 benchmark corruptions (Hendrycks & Dietterich 2019); train.corruptions owns the canonical list.
_BENCHMARK_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression")

# C-bar: folder names tried in order (the generator's own name first, then the authors',
# experiments/data.py:597 and :620, which read <data>/<dataset>-c-bar/).
C_BAR_FOLDERS = {
    "cifar10": ("CIFAR-10-C-Bar", "CIFAR-10-C-bar", "CIFAR10-c-bar"),
    "cifar100": ("CIFAR-100-C-Bar", "CIFAR-100-C-bar", "CIFAR100-c-bar"),
    "tinyimagenet": ("Tiny-ImageNet-C-Bar", "Tiny-ImageNet-C-bar", "TinyImageNet-c-bar"),
}
# The 10 C-bar corruptions -> their 5 severity values, block by block in each file: the authors'
# data/cifar_c_bar.csv:1-10 (the same rows as augmentation-corruption's imagenet_c_bar/cifar10_c_bar.csv,
# in another order) and data/imagenet_c_bar.csv:1-10 for TinyImageNet. The file name is the csv's
# first column; the authors' result tables print blue_noise_sample as "blue_noise" (data/c-bar-labels-cifar.txt:1).
CIFAR_C_BAR = {
    "blue_noise_sample": (0.7, 1.4, 2.1, 3.5, 4.2),
    "brownish_noise": (2.5, 4.0, 5.5, 6.5, 7.0),
    "checkerboard_cutout": (1.0, 2.0, 3.0, 4.0, 5.0),
    "circular_motion_blur": (2.8, 3.6, 4.4, 5.2, 6.0),
    "inverse_sparkles": (1.0, 1.5, 2.5, 4.5, 5.0),
    "lines": (0.5, 1.0, 1.5, 2.0, 2.5),
    "pinch_and_twirl": (5.5, 6.0, 6.5, 8.5, 10.0),
    "ripple": (5.5, 6.0, 6.5, 7.5, 8.0),
    "sparkles": (0.7, 3.5, 5.6, 6.3, 7.0),
    "transverse_chromatic_abberation": (1.0, 2.0, 5.0, 9.0, 10.0),
}
IMAGENET_C_BAR = {
    "blue_noise_sample": (0.8, 1.6, 2.4, 4.0, 5.6),
    "brownish_noise": (1.0, 2.0, 3.0, 4.0, 5.0),
    "caustic_refraction": (2.35, 3.2, 4.9, 6.6, 9.15),
    "checkerboard_cutout": (2.0, 3.0, 4.0, 5.0, 6.0),
    "cocentric_sine_waves": (3.0, 5.0, 8.0, 9.0, 10.0),
    "inverse_sparkles": (1.0, 2.0, 4.0, 9.0, 10.0),
    "perlin_noise": (4.6, 5.2, 5.8, 7.6, 8.8),
    "plasma_noise": (4.75, 7.0, 8.5, 9.25, 10.0),
    "single_frequency_greyscale": (1.0, 1.5, 2.0, 4.5, 5.0),
    "sparkles": (1.0, 2.0, 3.0, 5.0, 6.0),
}
C_BAR_CORRUPTIONS = {"cifar10": tuple(CIFAR_C_BAR), "cifar100": tuple(CIFAR_C_BAR), "tinyimagenet": tuple(IMAGENET_C_BAR)}


def corrupted_root(dataset: str, data_root: str | Path) -> Path:
    """Where the extracted official corruption archive of ``dataset`` is expected (an image folder's: val-c)."""
    if dataset == "imagefolder":
        return Path(data_root) / IMAGEFOLDER_C
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


def official_file(dataset: str, root: str | Path, corruption: str) -> Path:
    """The file (CIFAR) or folder of its highest severity (Tiny-ImageNet) that must exist for ``corruption``."""
    root = Path(root)
    return root / corruption / "5" if dataset in FOLDER_LAYOUT else root / f"{corruption}.npy"


def missing_official_files(dataset: str, root: str | Path, corruptions) -> dict[str, Path]:
    """corruption -> the missing file that keeps it from being read from ``root`` (empty when all are there).
    A CIFAR-C folder without labels.npy lacks every set (the labels tie the rows to the test set)."""
    root = Path(root)
    if dataset not in FOLDER_LAYOUT and not (root / "labels.npy").is_file():
        return {name: root / "labels.npy" for name in corruptions}
    missing = {}
    for name in corruptions:
        path = official_file(dataset, root, name)
        if not (path.is_dir() if dataset in FOLDER_LAYOUT else path.is_file()):
            missing[name] = path
    return missing


def c_bar_root(dataset: str, data_root: str | Path) -> Path | None:
    """The C-bar folder of ``dataset`` under ``data_root`` (first of C_BAR_FOLDERS that exists), else None."""
    for name in C_BAR_FOLDERS.get(dataset, ()):
        if (Path(data_root) / name).is_dir():
            return Path(data_root) / name
    return None


def missing_c_bar_files(dataset: str, root: Path, corruptions) -> dict[str, Path]:
    """Like missing_official_files for a C-bar folder, where labels.npy is optional (the authors take
    the labels from the clean test set, experiments/custom_datasets.py:163)."""
    missing = {}
    for name in corruptions:
        path = official_file(dataset, root, name)
        if not (path.is_dir() if dataset == "tinyimagenet" else path.is_file()):
            missing[name] = path
    return missing


def _check_severity(severity: int) -> None:
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"corruption severity must be 1..5, got {severity}")


def _missing(root: Path, what: Path) -> MissingDataError:
    dataset = next((d for d, folder in CORRUPTED_FOLDERS.items() if folder == root.name), None)
    where = f"Download {DOWNLOAD_URLS[dataset]} and extract it into {root.parent}" if dataset else \
        ("Extract the official corruption set (Hendrycks & Dietterich 2019) there, or write one with "
         "python -m train.corruptions.generate --data DATA_ROOT --out FOLDER")
    return MissingDataError(f"{what} not found. {where} (so that {root} exists), or pass --download.")


def _mmap_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except ValueError as error:  # numpy reports bad headers and short files as ValueError
        raise DataFormatError(f"{path}: not a readable .npy file ({error})") from error


def load_cifar_c(root: str | Path, corruption: str, severity: int, *,
                 labels_optional: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of one severity of ``<root>/<corruption>.npy`` -> (uint8 NHWC memmap view, int64 labels).
    With ``labels_optional`` (C-bar) a missing labels.npy gives None labels."""
    _check_severity(severity)
    root = Path(root)
    images_path, labels_path = root / f"{corruption}.npy", root / "labels.npy"
    for path in (images_path, labels_path):
        if not path.is_file() and not (path == labels_path and labels_optional):
            raise _missing(root, path)
    images = _mmap_npy(images_path)
    labels = _mmap_npy(labels_path) if labels_path.is_file() else None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise DataFormatError(f"{images_path}: expected uint8 (N, 32, 32, 3), got {images.dtype} {images.shape}")
    if len(images) % 5 or (labels is not None and len(labels) != len(images)):
        raise DataFormatError(f"{images_path}: {len(images)} rows and {'no' if labels is None else len(labels)} labels; "
                              f"expected 5 equal severity blocks with one label per row")
    rows_per_severity = len(images) // 5  # 10000 in the official files
    rows = slice((severity - 1) * rows_per_severity, severity * rows_per_severity)
    return images[rows], None if labels is None else np.asarray(labels[rows], dtype=np.int64)


def _severity_folder(root: str | Path, corruption: str, severity: int) -> Path:
    _check_severity(severity)
    folder = Path(root) / corruption / str(severity)
    if not folder.is_dir():
        raise _missing(Path(root), folder)
    return folder


def load_folder_c(root: str | Path, corruption: str, severity: int, class_names: list[str],
                  image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``<root>/<corruption>/<severity>/<class>/<image>`` decoded -> (uint8 NHWC, int64 labels: positions in
    ``class_names``). Every class needs a folder with images; folders of other classes are left out (ImageNet-C
    for a model of an ImageNet subset). The images must be ``image_size`` squares, as the model's test images."""
    folder = _severity_folder(root, corruption, severity)
    lacking = [name for name in class_names if not (folder / name).is_dir()]
    if lacking:
        raise DataFormatError(f"{folder}: no folder for {len(lacking)} of the model's {len(class_names)} classes, "
                              f"e.g. {lacking[0]}: this -C set was made from another data set")
    paths, labels = list_labelled_files(folder, class_names)
    return decode_files(paths, image_size, f"{corruption}-{severity}"), labels


def check_generated_for(root: str | Path, image_size: int, eval_resize: int | None) -> None:
    """A folder written by ``train.corruptions.generate`` must show the test images as this model sees them."""
    meta = Path(root) / GENERATED_META
    if not meta.is_file():  # ImageNet-C or another official set: its images are checked one by one
        return
    made = json.loads(meta.read_text())
    if (made.get("image_size"), made.get("eval_resize")) != (image_size, eval_resize):
        raise DataFormatError(
            f"{root} was generated from test images of {made.get('image_size')} px (shorter side resized to "
            f"{made.get('eval_resize')}), but this model's are {image_size} px (resized to {eval_resize}): write one "
            f"for it with python -m train.corruptions.generate --image-size {image_size} and the run's --train-crop")


def load_tinyimagenet_c(root: str | Path, corruption: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """``<root>/<corruption>/<severity>/<wnid>/*.JPEG`` decoded -> (uint8 NHWC, int64 labels by sorted wnid)."""
    wnids = class_folder_names(_severity_folder(root, corruption, severity))
    if len(wnids) != 200:
        raise DataFormatError(f"{Path(root) / corruption / str(severity)}: {len(wnids)} class folders, expected 200")
    return load_folder_c(root, corruption, severity, wnids, 64)
