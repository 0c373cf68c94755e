"""Stage 2 of the training pipeline in torch, for hosts without DALI: the DALI graph's twin, batched.

Same input, draws and output as ``pipeline.augment_pipeline``: uint8 NHWC images (after the Stylizer)
and the batch's host draws (``draws.AugmentDraws``) in, float32 normalized (N, 3, S, S) channels_last
out, in the authors' order: flip + zero-padded crop -> TrivialAugmentWide (``trivial_augment_torch.py``)
-> Random Erasing (0 before normalizing) -> normalize. Each step is one function of the images and its
own draws, a few kernels for the whole batch; the draws go to the device in a few small copies, and
nothing waits for the device. Where it differs from the DALI graph, it is closer to the authors'
torchvision: TrivialAugmentWide stays in float after its operation instead of rounding to uint8, and
rotate's half-pixel ties fall as torchvision's (``tests/test_augment_torch.py`` measures both).

A new per-sample transform is one more such function, fed by its own host draws, where the authors'
order puts it. An image folder's random-resized crops (``resized_crops``) come before the Stylizer, in
stage 1, as in the DALI graph (``pipeline.decode_pipeline``): the Stylizer needs one size per batch.
"""
from __future__ import annotations

import numpy as np
import torch

from fastnst.resident import to_device
from fastnst.train.data.draws import AugmentDraws
from fastnst.train.data.trivial_augment_torch import TrivialAugmentTorch


def crop_flip(images: torch.Tensor, crop_start: np.ndarray, flip: np.ndarray, size: int) -> torch.Tensor:
    """uint8 NHWC -> uint8 (N, 3, size, size) channels_last: per sample the size x size window at ``crop_start``
    (top, left; outside the image: 0, as DALI's ``slice`` with padding and torchvision's padded
    ``RandomCrop``), mirrored left-right where ``flip``. One gather for the batch."""
    count, height, width, _ = images.shape
    offsets = to_device(np.concatenate([crop_start, flip[:, None]], axis=1).astype(np.int64), images.device)
    steps = torch.arange(size, device=images.device)
    rows = offsets[:, :1] + steps                                                  # (N, size)
    cols = offsets[:, 1:2] + torch.where(offsets[:, 2:] == 1, steps.flip(0), steps)
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    sample = torch.arange(count, device=images.device).view(count, 1, 1)
    window = images[sample, rows.clamp(0, height - 1)[:, :, None], cols.clamp(0, width - 1)[:, None, :]]
    return (window * inside[..., None]).permute(0, 3, 1, 2)  # NHWC memory seen as NCHW: channels_last


def resized_crops(images: np.ndarray | torch.Tensor | list[torch.Tensor], crop_start: np.ndarray,
                  crop_shape: np.ndarray, size: int) -> torch.Tensor:
    """torchvision's ``RandomResizedCrop`` on host-drawn windows (``draws.draw_resized_crops``): per sample the
    window at ``crop_start`` (top, left) of ``crop_shape`` (height, width), resized to size x size, bilinear and
    antialiased (torchvision's ``resized_crop``, as ``RandomResizedCrop`` on tensors). ``images``: uint8 (3, H, W)
    tensors of any sizes (decoded files) or a uint8 NHWC batch -> uint8 (N, size, size, 3) on their device. One
    resize per sample (the windows differ in size); the draws are host integers, so nothing waits for a GPU."""
    from torchvision.transforms.v2.functional import resized_crop

    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    planes = [image.permute(2, 0, 1) for image in images] if isinstance(images, torch.Tensor) else images
    out = torch.empty((len(planes), size, size, 3), dtype=torch.uint8, device=planes[0].device)
    for index, ((top, left), (height, width)) in enumerate(zip(crop_start.tolist(), crop_shape.tolist())):
        out[index] = resized_crop(planes[index], top, left, height, width, [size, size], antialias=True).permute(1, 2, 0)
    return out


def erase(x: torch.Tensor, erased: np.ndarray, anchor: np.ndarray, shape: np.ndarray) -> torch.Tensor:
    """Random Erasing with value 0 (``RandomErasing(value=0)`` on [0, 1] tensors; DALI's ``fn.erase``): the
    box at ``anchor`` (top, left) of ``shape`` (height, width) is zeroed where ``erased``."""
    _, _, height, width = x.shape
    box = to_device(np.concatenate([anchor, shape, erased[:, None]], axis=1).astype(np.float32), x.device)
    top, left, box_height, box_width, on = (column.view(-1, 1, 1, 1) for column in box.unbind(1))
    rows = torch.arange(height, device=x.device, dtype=x.dtype).view(1, 1, -1, 1)
    cols = torch.arange(width, device=x.device, dtype=x.dtype).view(1, 1, 1, -1)
    inside = (rows >= top) & (rows < top + box_height) & (cols >= left) & (cols < left + box_width) & (on > 0)
    return torch.where(inside, 0.0, x)


class TorchAugment:
    """``augment(images uint8 (N, H, W, 3), draws) -> float32 (N, 3, S, S)`` channels_last, on the images' device
    (a host array is taken as a CPU tensor)."""

    def __init__(self, image_size: int, mean: tuple, std: tuple, trivial_augment_wide: bool, random_erasing: bool):
        self.image_size, self.random_erasing = image_size, random_erasing
        self.trivial_augment = TrivialAugmentTorch(image_size) if trivial_augment_wide else None
        # normalize as one multiply-add: (x - mean) / std = x * (1 / std) - mean / std
        self.scale = 1.0 / torch.tensor(std).view(1, 3, 1, 1)
        self.shift = -torch.tensor(mean).view(1, 3, 1, 1) * self.scale

    def __call__(self, images: np.ndarray | torch.Tensor, draws: AugmentDraws) -> torch.Tensor:
        images = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
        pixels = crop_flip(images, draws.crop_start, draws.flip, self.image_size)
        if self.trivial_augment is not None:
            x = self.trivial_augment(pixels, draws.ta_op, draws.ta_bin, draws.ta_negate)
        else:
            x = pixels.float().div_(255)  # ToTensor
        if self.random_erasing:
            x = erase(x, draws.erase, draws.erase_anchor, draws.erase_shape)
        if self.scale.device != x.device:  # once: a copy from the host makes it wait for a GPU
            self.scale, self.shift = self.scale.to(x.device), self.shift.to(x.device)
        return torch.addcmul(self.shift, x, self.scale).contiguous(memory_format=torch.channels_last)
