"""Per-data-set facts shared by the loaders, the trainer and the evaluator."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]  # per channel, on the [0, 1] scale
    std: tuple[float, float, float]


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(10, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo(100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": DatasetInfo(200, 64, (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    # The built-in demo: a small generated data set in the CIFAR-10 on-disk format.
    "demo": DatasetInfo(10, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown --dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name]
