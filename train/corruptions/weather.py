"""Weather corruptions: snow, frost, fog."""
from __future__ import annotations

import torch

from fastnst.train.corruptions import _ops
from fastnst.train.corruptions.frost import frost_layers
from fastnst.train.corruptions._ops import to_uint8, to_unit


def snow(images: torch.Tensor, mean, std, zoom, threshold, blur_radius, blur_sigma, image_weight, generator=None) -> torch.Tensor:
    unit = to_unit(images)
    n, _, size, _ = unit.shape
    device = unit.device
    flakes = mean + std * torch.randn(n, 1, size, size, generator=generator, device=device)
    matrix = _ops.clipped_zoom_matrix(size, zoom, device)
    flakes = matrix @ flakes @ matrix.T
    flakes = torch.where(flakes < threshold, 0.0, flakes)
    # the scripts hand the layer to ImageMagick as an 8-bit PNG and read back 8 bits
    flakes = (flakes.clamp(0, 1) * 255).to(torch.uint8).float()
    angles = torch.rand(n, generator=generator, device=device, dtype=torch.float64) * 90 - 135
    flakes = _ops.to_uint8_like_imagemagick(_ops.motion_blur(flakes, blur_radius, blur_sigma, angles)).float() / 255.0
    whitened = torch.maximum(unit, _ops.rgb_to_gray(unit) * 1.5 + 0.5)
    unit = image_weight * unit + (1 - image_weight) * whitened
    return to_uint8(unit + flakes + flakes.flip(-1, -2))


def frost(images: torch.Tensor, image_weight, frost_weight, *, texture_scale, frost_dir=None, generator=None) -> torch.Tensor:
    n, _, size, _ = images.shape
    textures = frost_layers(n, size, texture_scale, frost_dir, generator, images.device)
    blended = image_weight * images.float() + frost_weight * textures
    return blended.clamp(0, 255).to(torch.uint8)


def fog(images: torch.Tensor, strength, wibble_decay, generator=None) -> torch.Tensor:
    unit = to_unit(images)
    n, _, size, _ = unit.shape
    max_value = unit.amax(dim=(1, 2, 3), keepdim=True)
    haze = _ops.plasma_fractal(n, _ops.plasma_size(size), wibble_decay, generator, unit.device)[:, :size, :size]
    haze = haze.unsqueeze(1)
    unit = unit + strength * haze
    return to_uint8(unit * max_value / (max_value + strength))
