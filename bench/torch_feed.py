"""A torch-only stand-in for the DALI feed, for hosts without DALI (bench/gpu_run.py's ``feed`` part, bench/gpu_parts.py).

Batches come from a resident uint8 (N, H, W, C) tensor on the device, the CIFAR layout of
``train.data``: a random permutation per epoch, then per sample a random crop of the image padded
by 4 px (zeros, as torchvision's ``RandomCrop(32, padding=4)``) and a horizontal flip with
probability 0.5, all on the device in a few batched kernels, out as (B, 3, H, W) channels_last
uint8 (NHWC memory), the layout the Stylizer and the classifier read. TrivialAugmentWide and
Random Erasing are not done: the figure is the floor of a feed that only moves and crops pixels,
to be set against the trainer's images per second (the goal: the feed at least 3x the trainer).
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

CROP_PADDING = 4


class TorchFeed:
    """``next_batch()`` -> uint8 (B, 3, H, W) channels_last crops of resident images, on their device."""

    def __init__(self, images_nhwc: torch.Tensor, batch_size: int, seed: int = 0):
        if images_nhwc.dtype != torch.uint8 or images_nhwc.dim() != 4:
            raise ValueError(f"TorchFeed: images must be uint8 (N, H, W, C), got {images_nhwc.dtype} "
                             f"{tuple(images_nhwc.shape)}")
        self.images = images_nhwc
        self.batch_size = int(batch_size)
        self.device = images_nhwc.device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long, device=self.device)
        self._position = 0
        height, width = images_nhwc.shape[1:3]
        self._rows = torch.arange(height, device=self.device)
        self._cols = torch.arange(width, device=self.device)

    def _next_indices(self) -> torch.Tensor:
        if self._position + self.batch_size > self._order.numel():  # a new epoch: a fresh permutation
            self._order = torch.randperm(self.images.shape[0], generator=self.generator, device=self.device)
            self._position = 0
        indices = self._order[self._position:self._position + self.batch_size]
        self._position += self.batch_size
        return indices

    def crop_flip(self, batch_nhwc: torch.Tensor) -> torch.Tensor:
        """Per sample: a random (H, W) window of the zero-padded image, flipped left-right with p = 0.5."""
        count, height, width, _ = batch_nhwc.shape
        padded = F.pad(batch_nhwc, (0, 0, CROP_PADDING, CROP_PADDING, CROP_PADDING, CROP_PADDING))
        offsets = torch.randint(0, 2 * CROP_PADDING + 1, (2, count, 1), generator=self.generator, device=self.device)
        flip = torch.rand(count, 1, generator=self.generator, device=self.device) < 0.5
        rows = offsets[0] + self._rows                                                   # (B, H)
        cols = offsets[1] + torch.where(flip, self._cols.flip(0), self._cols)            # (B, W)
        sample = torch.arange(count, device=self.device).view(count, 1, 1)
        crops = padded[sample, rows.unsqueeze(2), cols.unsqueeze(1)]                     # (B, H, W, C)
        return crops.permute(0, 3, 1, 2)  # NHWC memory seen as NCHW: channels_last, no copy

    def next_batch(self) -> torch.Tensor:
        return self.crop_flip(self.images.index_select(0, self._next_indices()))


def measure_feed(images_nhwc: torch.Tensor, batch_size: int, num_batches: int, warmup: int = 3) -> dict:
    """Images per second of ``TorchFeed`` over ``num_batches`` batches (one device sync at the end)."""
    feed = TorchFeed(images_nhwc, batch_size)
    synchronize = torch.cuda.synchronize if feed.device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        feed.next_batch()
    synchronize()
    started = time.perf_counter()
    for _ in range(num_batches):
        batch = feed.next_batch()
    synchronize()
    seconds = time.perf_counter() - started
    return {
        "images_per_second": batch_size * num_batches / seconds, "seconds": seconds, "batch": batch_size,
        "num_batches": num_batches, "resident_images": images_nhwc.shape[0], "image_shape": list(batch.shape[1:]),
        "channels_last": batch.is_contiguous(memory_format=torch.channels_last), "device": str(feed.device),
    }
