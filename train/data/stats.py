"""Per-data-set facts shared by the loaders, the trainer and the evaluator."""
from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    num_classes: int
    image_size: int  # side of the square images the model sees
    mean: tuple[float, float, float]  # per channel, on the [0, 1] scale
    std: tuple[float, float, float]
    class_names: tuple[str, ...] | None = None  # an image folder's class folders, in label order
    # An image folder's evaluation transform: the shorter side resized to this, then the centre image_size
    # square (None: the test images are image_size squares as they are stored).
    eval_resize: int | None = None


# The authors' normalization constants (experiments/data.py:29-37 of Georgsiedel/model-based-data-augmentation
# at 07e47c1): TinyImageNet takes ImageNet's, as theirs does.
DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(10, 32, (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
    "cifar100": DatasetInfo(100, 32, (0.50707516, 0.48654887, 0.44091784), (0.26733429, 0.25643846, 0.27615047)),
    "tinyimagenet": DatasetInfo(200, 64, IMAGENET_MEAN, IMAGENET_STD),
    # The built-in demo: a small generated data set in the CIFAR-10 on-disk format.
    "demo": DatasetInfo(10, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
}
# Any image folder (train/data/imagefolder.py): its classes and image size come from the folder and the run's
# configuration. [ours] It is normalized with ImageNet's mean and std (not computed from the user's images),
# the usual choice for torchvision and timm classifiers.
IMAGEFOLDER = "imagefolder"
DATASET_NAMES = (*DATASETS, IMAGEFOLDER)
# [ours] The evaluation resize of an image folder trained with random-resized crops: the usual ImageNet
# ratio, 256 px for a 224 px centre crop (torchvision's reference recipes; make_imagenet_c.py's Resize(256)).
EVAL_RESIZE_RATIO = 256 / 224


def normalization(name: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) of ``name``'s images: known without a run configuration, for every data set."""
    if name == IMAGEFOLDER:
        return IMAGENET_MEAN, IMAGENET_STD
    info = dataset_info(name)
    return info.mean, info.std


def dataset_info(name: str, config: dict | None = None) -> DatasetInfo:
    """The facts of ``name``; an image folder's come from its run configuration (``config``: the resolved
    options, or a checkpoint's: ``image_size``, ``class_names`` and ``train_crop``)."""
    if name == IMAGEFOLDER:
        if config is None or not config.get("class_names"):
            raise ValueError("--dataset imagefolder: its classes and image size come from the run configuration")
        size = int(config["image_size"])
        resize = size if config.get("train_crop") == "pad" else round(size * EVAL_RESIZE_RATIO)
        return DatasetInfo(len(config["class_names"]), size, IMAGENET_MEAN, IMAGENET_STD,
                           tuple(config["class_names"]), resize)
    if name not in DATASETS:
        raise ValueError(f"unknown --dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}")
    return DATASETS[name]
