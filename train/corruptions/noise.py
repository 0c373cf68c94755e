"""Noise corruptions: gaussian, shot (Poisson), impulse (salt and pepper), and the extra speckle."""
from __future__ import annotations

import torch

from fastnst.train.corruptions._ops import to_uint8, to_unit


def gaussian_noise(images: torch.Tensor, std: float, generator=None) -> torch.Tensor:
    unit = to_unit(images)
    noise = torch.randn(unit.shape, generator=generator, device=unit.device)
    return to_uint8(unit + std * noise)


def shot_noise(images: torch.Tensor, photons: float, generator=None) -> torch.Tensor:
    unit = to_unit(images)
    return to_uint8(torch.poisson(unit * photons, generator=generator) / photons)


def impulse_noise(images: torch.Tensor, amount: float, generator=None) -> torch.Tensor:
    # skimage.util.random_noise(mode='s&p', salt_vs_pepper=0.5): each value (per channel)
    # is hit with probability `amount`, then set to 1 or 0 with equal odds.
    unit = to_unit(images)
    hit = torch.rand(unit.shape, generator=generator, device=unit.device) <= amount
    salt = torch.rand(unit.shape, generator=generator, device=unit.device) <= 0.5
    unit = torch.where(hit & salt, 1.0, torch.where(hit, 0.0, unit))
    return to_uint8(unit)


def speckle_noise(images: torch.Tensor, std: float, generator=None) -> torch.Tensor:
    # the scripts' x + x * N(0, std): multiplicative noise, so dark pixels barely change
    unit = to_unit(images)
    noise = torch.randn(unit.shape, generator=generator, device=unit.device)
    return to_uint8(unit + unit * (std * noise))
