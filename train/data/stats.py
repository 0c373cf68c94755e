"""Per-data-set facts shared by the loaders, the trainer and the evaluator."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]  # per channel, on the [0, 1] scale
    std: tuple[float, float, float]


# The authors' normalization constants (experiments/data.py:29-37 of Georgsiedel/model-based-data-augmentation
# at 07e47c1): TinyImageNet takes ImageNet's, as theirs does.
DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(10, 32, (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
    "cifar100": DatasetInfo(100, 32, (0.50707516, 0.48654887, 0.44091784), (0.26733429, 0.25643846, 0.27615047)),
    "tinyimagenet": DatasetInfo(200, 64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # The built-in demo: a small generated data set in the CIFAR-10 on-disk format.
    "demo": DatasetInfo(10, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown --dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name]
