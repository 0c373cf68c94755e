"""Every random draw of the augmentation stage, made on the host from a generator seeded per step.

The DALI graph (``pipeline.augment_pipeline``) holds no random operator: it is fed these draws
through ``external_source``. So the augmentation of a batch is a function of (seed, epoch, rank,
step) alone, the graph is built once per run instead of once per epoch, and a resumed run replays
an epoch exactly. One draw per sample for everything (no draw per batch), as torchvision's
transforms applied per image do:

- crop: an offset in [-padding, padding] per axis into the zero-padded image (``RandomCrop``);
- flip: a fair coin (``RandomHorizontalFlip``);
- TrivialAugmentWide: an operation out of the 14, a magnitude bin out of 31 and a sign
  (``TrivialAugmentWide``); a sample whose TA is skipped gets the identity operation;
- Random Erasing: torchvision's ``RandomErasing.get_params`` (coin with probability p, then up to 10
  (area, log-aspect) draws, the first box strictly inside the image, its position uniform).

An image folder's random-resized crops (``draw_resized_crops``, torchvision's ``RandomResizedCrop.get_params``)
are drawn per source image before stage 1 (they decide what is decoded), from their own generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# torchvision's TrivialAugmentWide in DALI operators (trivial_augment.trivial_augment_suite): 14 operations,
# the last one the identity, 31 magnitude bins, a sign for the signed ones.
TA_NUM_OPS = 14
TA_IDENTITY_OP = 13
TA_EQUALIZE_OP = 11  # with random-resized crops applied by torchvision itself, before stage 2 (train_loader)
TA_NUM_MAGNITUDE_BINS = 31
ERASING_RATIO = (0.3, 3.3)  # torchvision RandomErasing's default aspect-ratio range (the authors keep it)
ERASING_ATTEMPTS = 10       # ... and its number of tries before giving up
RESIZED_CROP_RATIO = (3 / 4, 4 / 3)  # torchvision RandomResizedCrop's default aspect-ratio range
RESIZED_CROP_ATTEMPTS = 10            # ... and its number of tries before the centre-crop fallback


@dataclass
class AugmentDraws:
    """One batch's draws, as the arrays ``external_source`` is fed (one row per sample)."""

    crop_start: np.ndarray    # int32 (B, 2): top, left of the crop in image coordinates, in [-pad, pad]
    flip: np.ndarray          # int32 (B,): 1 mirrors the crop
    ta_op: np.ndarray         # int32 (B,): index into the TrivialAugmentWide suite
    ta_bin: np.ndarray        # int32 (B,): magnitude bin
    ta_negate: np.ndarray     # int32 (B,): 1 negates the magnitude (for the signed operations)
    erase: np.ndarray         # bool (B,): erase a box
    erase_anchor: np.ndarray  # float32 (B, 2): top, left of the box
    erase_shape: np.ndarray   # float32 (B, 2): height, width of the box

    def feed(self, trivial_augment: bool, random_erasing: bool) -> dict[str, np.ndarray]:
        """The ``external_source`` inputs of a graph with or without TA and erasing."""
        inputs = {"crop_start": self.crop_start, "flip": self.flip}
        if trivial_augment:
            inputs.update(ta_op=self.ta_op, ta_bin=self.ta_bin, ta_negate=self.ta_negate)
        if random_erasing:
            inputs.update(erase=self.erase, erase_anchor=self.erase_anchor, erase_shape=self.erase_shape)
        return inputs


def step_generator(seed: int, epoch: int, rank: int, step: int) -> np.random.Generator:
    """The generator of one step's augmentation draws (tag 4 keeps it apart from the sampler's streams)."""
    return np.random.default_rng([seed, 4, epoch, rank, step])


def crop_generator(seed: int, epoch: int, rank: int, step: int, source: int) -> np.random.Generator:
    """The generator of one step's random-resized crops of one source (0 real, 1 synthetic; tags 5 and 6)."""
    return np.random.default_rng([seed, 5 + source, epoch, rank, step])


def draw_resized_crops(rng: np.random.Generator, heights: np.ndarray, widths: np.ndarray,
                       scale: tuple[float, float], ratio: tuple[float, float] = RESIZED_CROP_RATIO):
    """torchvision ``RandomResizedCrop.get_params`` per image of the given sizes -> (start int32 (B, 2),
    shape int32 (B, 2)), both (row, column): up to 10 (area, log-aspect) draws, the first box that fits
    taken at a uniform position; none fits: the centre crop clamped to ``ratio``. Python's ``round`` is
    numpy's ``rint`` (both round half to even)."""
    heights, widths = np.asarray(heights, dtype=np.float64), np.asarray(widths, dtype=np.float64)
    count = len(heights)
    area = (heights * widths)[:, None]
    target_area = area * rng.uniform(scale[0], scale[1], (count, RESIZED_CROP_ATTEMPTS))
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), (count, RESIZED_CROP_ATTEMPTS)))
    crop_widths = np.rint(np.sqrt(target_area * aspect))
    crop_heights = np.rint(np.sqrt(target_area / aspect))
    fits = ((crop_widths > 0) & (crop_widths <= widths[:, None])
            & (crop_heights > 0) & (crop_heights <= heights[:, None]))
    first = fits.argmax(axis=1)
    rows = np.arange(count)
    height, width = crop_heights[rows, first], crop_widths[rows, first]
    top = np.floor(rng.random(count) * (heights - height + 1))
    left = np.floor(rng.random(count) * (widths - width + 1))
    # torchvision's fallback: the whole image, narrowed to the extreme aspect ratio, centred
    in_ratio = widths / heights
    fallback_width = np.where(in_ratio > ratio[1], np.rint(heights * ratio[1]), widths)
    fallback_height = np.where(in_ratio < ratio[0], np.rint(widths / ratio[0]), heights)
    found = fits.any(axis=1)
    height, width = np.where(found, height, fallback_height), np.where(found, width, fallback_width)
    top = np.where(found, top, (heights - height) // 2)
    left = np.where(found, left, (widths - width) // 2)
    return (np.stack([top, left], axis=1).astype(np.int32), np.stack([height, width], axis=1).astype(np.int32))


def draw_erasing(rng: np.random.Generator, count: int, image_size: int, probability: float,
                 scale: tuple[float, float], ratio: tuple[float, float] = ERASING_RATIO):
    """torchvision ``RandomErasing`` per sample -> (erase bool (B,), anchor float32 (B, 2), shape float32 (B, 2)).

    Vectorised ``get_params``: its ``int(round(sqrt(...)))`` is numpy's ``rint`` (both round half
    to even); no fitting box in 10 tries means no erasing, as there.
    """
    area = image_size * image_size
    coin = rng.random(count) < probability
    target_area = rng.uniform(scale[0], scale[1], (count, ERASING_ATTEMPTS)) * area
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), (count, ERASING_ATTEMPTS)))
    heights = np.rint(np.sqrt(target_area * aspect))
    widths = np.rint(np.sqrt(target_area / aspect))
    fits = (heights < image_size) & (widths < image_size)
    first = fits.argmax(axis=1)
    rows = np.arange(count)
    height, width = heights[rows, first], widths[rows, first]
    top = np.floor(rng.random(count) * (image_size - height + 1))
    left = np.floor(rng.random(count) * (image_size - width + 1))
    erase = coin & fits.any(axis=1)
    anchor = np.stack([top, left], axis=1).astype(np.float32)
    shape = np.stack([height, width], axis=1).astype(np.float32)
    return erase, anchor, shape


def draw_augmentations(rng: np.random.Generator, count: int, image_size: int, *, padding: int,
                       skip_trivial_augment: np.ndarray, erasing_probability: float,
                       erasing_scale: tuple[float, float]) -> AugmentDraws:
    """All draws of one batch of ``count`` samples; the amount drawn does not depend on the options."""
    crop_start = rng.integers(-padding, padding, size=(count, 2), endpoint=True, dtype=np.int32)
    flip = rng.integers(0, 2, size=count, dtype=np.int32)
    ta_op = rng.integers(0, TA_NUM_OPS, size=count, dtype=np.int32)
    ta_bin = rng.integers(0, TA_NUM_MAGNITUDE_BINS, size=count, dtype=np.int32)
    ta_negate = rng.integers(0, 2, size=count, dtype=np.int32)
    ta_op[np.asarray(skip_trivial_augment, dtype=bool)] = TA_IDENTITY_OP
    erase, anchor, shape = draw_erasing(rng, count, image_size, erasing_probability, erasing_scale)
    return AugmentDraws(crop_start, flip, ta_op, ta_bin, ta_negate, erase, anchor, shape)
