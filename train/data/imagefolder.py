"""Any image-folder data set, ``--dataset imagefolder --data-root DIR``: torchvision's ImageFolder layout.

    DIR/train/<class>/<image>     training images, any size, JPEG or PNG (or another format PIL and DALI read)
    DIR/val/<class>/<image>       the clean test set, the same class folder names (a class may be absent)

Class i is the i-th class folder of ``DIR/train`` in sorted order (torchvision's ``ImageFolder``); files are
found recursively. The training images are decoded by DALI (``train_loader``); the test images by PIL, then
resized and centre-cropped as ImageNet's evaluation and ``make_imagenet_c.py`` do (``Resize(256)``,
``CenterCrop(224)`` at 224 px: ``eval_image``).

Two training crops (``--train-crop``): ``random-resized``, torchvision's ``RandomResizedCrop`` to
``--image-size`` (ImageNet-style, any image size); ``pad``, the authors' zero-padded random crop of images
that all have one size (CIFAR-style). ``auto`` looks at a sample of the training images: ``pad`` when they
share one square side of at most ``AUTO_PAD_MAX_SIDE``, else ``random-resized``.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from fastnst.train.data.errors import DataFormatError, MissingDataError
from fastnst.train.data.generic_input import IMAGE_SUFFIXES, class_folder_names, list_labelled_files
from fastnst.train.data.jpeg import open_rgb

LAYOUT = "DIR/train/<class>/<image> and DIR/val/<class>/<image>"
# [ours] The largest square side auto trains with the padded crop: the paper's data sets' (CIFAR 32, TinyImageNet
# 64 px); larger images get random-resized crops, as ImageNet.
AUTO_PAD_MAX_SIDE = 64
AUTO_SAMPLE = 64  # training images whose headers auto reads, spread over the classes
# [ours] The side of random-resized crops when --image-size is not given: ImageNet's, where the Stylizer runs at
# the authors' stylization size (224) with no resampling.
DEFAULT_IMAGE_SIZE = 224


def split_folder(data_root: str | Path, split: str) -> Path:
    folder = Path(data_root) / split
    if not folder.is_dir():
        raise MissingDataError(f"--dataset imagefolder: {folder} not found; --data-root DIR must hold {LAYOUT}")
    return folder


def class_names(data_root: str | Path) -> list[str]:
    """The class folders of ``DIR/train``, sorted: class i is the i-th."""
    folder = split_folder(data_root, "train")
    names = class_folder_names(folder)
    if not names:
        raise DataFormatError(f"--dataset imagefolder: {folder} has no class folders; expected {LAYOUT}")
    return names


def list_train_files(data_root: str | Path, names: list[str]) -> tuple[list[Path], np.ndarray]:
    """``DIR/train/<class>/**`` -> (paths, int64 labels); a class without images is an error."""
    return list_labelled_files(split_folder(data_root, "train"), names)


def list_val_files(data_root: str | Path, names: list[str]) -> tuple[list[Path], np.ndarray]:
    """``DIR/val/<class>/**`` labelled by the training classes ``names``; a class folder that is not one of them
    is an error (its images would be scored against a class the model never saw)."""
    folder = split_folder(data_root, "val")
    unknown = sorted(set(class_folder_names(folder)) - set(names))
    if unknown:
        raise DataFormatError(f"{folder}: class folders {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} "
                              f"are not among the {len(names)} training classes of {folder.parent / 'train'}")
    paths, labels = list_labelled_files(folder, names, every_class=False)
    if not paths:
        raise DataFormatError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders")
    return paths, labels


def resolve_train_crop(train_crop: str, image_size: int | None, data_root: str | Path,
                       names: list[str]) -> tuple[str, int, str]:
    """(crop, image size, why) for ``--train-crop`` and ``--image-size`` (None: not given) on this folder."""
    if train_crop == "random-resized":
        return train_crop, image_size or DEFAULT_IMAGE_SIZE, "given"
    sample = _sample_files(split_folder(data_root, "train"), names)
    sizes = {size for size in map(_header_size, sample) if size is not None}
    side = next(iter(sizes))[0] if len(sizes) == 1 and len(set(next(iter(sizes)))) == 1 else None
    if train_crop == "pad":
        if image_size is None and side is None:
            raise DataFormatError(f"--train-crop pad needs training images of one square size; {len(sample)} of "
                                  f"{split_folder(data_root, 'train')} have {len(sizes)} sizes, e.g. "
                                  f"{', '.join(f'{w}x{h}' for w, h in sorted(sizes)[:3])}: pass --image-size, "
                                  "or --train-crop random-resized")
        return train_crop, image_size or side, "given"
    if side is not None and side <= AUTO_PAD_MAX_SIDE and image_size in (None, side):
        return "pad", side, f"auto: the {len(sample)} sampled training images are all {side}x{side} px"
    if side is None:
        why = f"auto: the {len(sample)} sampled training images have {len(sizes)} sizes"
    elif side > AUTO_PAD_MAX_SIDE:
        why = f"auto: the sampled training images are {side}x{side} px, above {AUTO_PAD_MAX_SIDE}"
    else:
        why = f"auto: --image-size {image_size} differs from the images' {side} px"
    return "random-resized", image_size or DEFAULT_IMAGE_SIZE, why


def _sample_files(folder: Path, names: list[str]) -> list[Path]:
    """Up to ``AUTO_SAMPLE`` training files spread over the classes, without listing every file (ImageNet has
    1.28 M): the first images of evenly spaced classes, several per class when there are few classes."""
    classes = [names[i] for i in np.unique(np.linspace(0, len(names) - 1, min(len(names), AUTO_SAMPLE)).astype(int))]
    per_class = -(-AUTO_SAMPLE // len(classes))
    sample = []
    for name in classes:
        found = (entry for entry in os.scandir(folder / name) if entry.is_file()
                 and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES) if (folder / name).is_dir() else ()
        sample += sorted(Path(entry.path) for entry in itertools.islice(found, per_class))
    return sample


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header (not decoded); None for a file PIL cannot open."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # noqa: BLE001 - a broken file is the pre-training check's to report
        return None


def eval_image(path: str | Path, image_size: int, resize: int) -> np.ndarray:
    """One test image as the model sees it: uint8 HWC RGB, the shorter side resized to ``resize`` (PIL
    bilinear, as torchvision's ``Resize`` on PIL images), then the centre ``image_size`` square
    (``CenterCrop``): ``make_imagenet_c.py``'s ``Resize(256), CenterCrop(224)`` at 224 px."""
    return centre_view(open_rgb(path), image_size, resize)


def centre_view(image, image_size: int, resize: int) -> np.ndarray:
    """``eval_image``'s view of a PIL RGB image in memory (a synthetic image of another size, for a figure)."""
    import warnings

    from torchvision.transforms.v2 import functional as F

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's antialias notice for PIL inputs
        image = F.center_crop(F.resize(image, [resize]), [image_size, image_size])
    return np.array(image)  # writable: torch.from_numpy takes it without a warning
