"""Clean test batches for evaluation: no augmentation, in order, normalized like the training batches."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from fastnst.train.data.sources import load_test_set
from fastnst.train.data.stats import DatasetInfo, normalization


def normalize(images: torch.Tensor, dataset: str) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 normalized with the data set's mean and std (layout kept)."""
    mean, std = normalization(dataset)
    mean = torch.tensor(mean, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(std, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


class EvalLoader:
    """Clean test batches, in order: (float32 normalized (N, 3, H, W) channels_last, int64 labels)."""

    def __init__(self, dataset: str, images: np.ndarray, labels: np.ndarray, batch_size: int, device: str):
        self.dataset, self.images, self.labels = dataset, images, labels
        self.batch_size, self.device = batch_size, torch.device(device)

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.labels), self.batch_size):
            rows = slice(start, start + self.batch_size)
            pixels = torch.from_numpy(np.ascontiguousarray(self.images[rows])).to(self.device, non_blocking=True)
            images = normalize(pixels.permute(0, 3, 1, 2), self.dataset)  # channels_last view of NHWC
            yield images, torch.from_numpy(self.labels[rows]).to(self.device, non_blocking=True)


def create_eval_loader(dataset: str, data_root: str | Path, batch_size: int, device: str = "cpu",
                       info: DatasetInfo | None = None) -> EvalLoader:
    """Normalized clean test batches of ``dataset`` (no augmentation; an image folder's resized and centre-cropped,
    ``info``: its facts, ``dataset_info(dataset, config)``)."""
    images, labels = load_test_set(dataset, data_root, info)
    return EvalLoader(dataset, images, labels, batch_size, device)
