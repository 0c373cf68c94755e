"""Blur corruptions: defocus, glass, motion, zoom, and the extra gaussian blur."""
from __future__ import annotations

import numpy as np
import torch

from fastnst.train.corruptions import _ops
from fastnst.train.corruptions._ops import to_uint8, to_unit


def disk_kernel(radius: float, alias_blur: float, device) -> torch.Tensor:
    """The scripts' disk(): an aliased disk on a 17x17 grid (radius <= 8), normalized,
    then cv2.GaussianBlur(ksize=3 (5 above radius 8), sigma=alias_blur) to antialias."""
    half = 8 if radius <= 8 else int(radius)
    ksize = 3 if radius <= 8 else 5
    positions = torch.arange(-half, half + 1, dtype=torch.float32)
    yy, xx = torch.meshgrid(positions, positions, indexing="ij")
    disk = ((xx**2 + yy**2) <= radius**2).float()
    disk = disk / disk.sum()
    # cv2.getGaussianKernel for sigma > 0: exp(-x^2 / (2 sigma^2)), normalized
    offsets = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    taps = torch.exp(-(offsets**2) / (2 * alias_blur**2))
    taps = (taps / taps.sum()).float()
    smoothed = _ops.filter2d(disk.view(1, 1, *disk.shape), torch.outer(taps, taps), mode="reflect101")[0, 0]
    # the 17x17 grid is mostly zeros at the radii in use: drop the all-zero border rings (same result, fewer taps)
    ring = 0
    while ring < half and smoothed[ring].abs().sum() == 0 and smoothed[:, ring].abs().sum() == 0:
        ring += 1
    return smoothed[ring : smoothed.shape[0] - ring, ring : smoothed.shape[1] - ring].to(device)


def defocus_blur(images: torch.Tensor, radius: float, alias_blur: float) -> torch.Tensor:
    kernel = disk_kernel(radius, alias_blur, images.device)
    return to_uint8(_ops.filter2d(to_unit(images), kernel, mode="reflect101"))


def _shuffle_pixels(pixels: torch.Tensor, max_delta: int, iterations: int, generator) -> torch.Tensor:
    """The scripts' local pixel "swap", for every image and every position at once.

    Officially each image visits the positions (h, w) from bottom-right to
    top-left and runs ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with
    (h', w') = (h + dy, w + dx), dx, dy uniform in [-max_delta, max_delta).
    On a numpy HxWx3 array the right-hand side holds views, so that line is a
    copy, not a swap: x[h, w] takes the value x[h', w'] has at that moment.
    That value is the original one unless (h', w') was visited before (h, w),
    in which case it is what (h', w') copied, and so on: a chain. We follow all
    chains in parallel by pointer doubling, which gives the official result
    for the same random offsets (verified against the sequential loop in tests).
    """
    n, channels, height, width = pixels.shape
    device = pixels.device
    rows = torch.arange(height, device=device).view(height, 1).expand(height, width)
    cols = torch.arange(width, device=device).view(1, width).expand(height, width)
    visited = (rows > max_delta) & (rows <= height - max_delta) & (cols > max_delta) & (cols <= width - max_delta)
    visited = visited.reshape(-1)
    here = torch.arange(height * width, device=device).expand(n, -1)
    flat = pixels.reshape(n, channels, height * width)
    for _ in range(iterations):
        offsets = torch.randint(-max_delta, max_delta, (n, 2, height, width), generator=generator, device=device)
        source = ((rows + offsets[:, 1]) * width + (cols + offsets[:, 0])).reshape(n, -1)
        source = torch.where(visited, source, here)  # unvisited positions keep their pixel
        # visiting order is decreasing flat index: a larger visited source was already overwritten
        follows_chain = visited & visited[source] & (source > here)
        jump = torch.where(follows_chain, source, here)
        for _ in range(max(1, (height * width).bit_length())):
            jump = jump.gather(1, jump)
        origin = torch.where(visited, source.gather(1, jump), here)
        flat = flat.gather(2, origin.unsqueeze(1).expand(-1, channels, -1))
    return flat.reshape(pixels.shape)


def glass_blur(images: torch.Tensor, sigma: float, max_delta: int, iterations: int, generator=None) -> torch.Tensor:
    blurred = _ops.gaussian_blur(to_unit(images), sigma)
    shuffled = _shuffle_pixels(to_uint8(blurred), int(max_delta), int(iterations), generator)
    return to_uint8(_ops.gaussian_blur(to_unit(shuffled), sigma))


def motion_blur(images: torch.Tensor, radius: float, sigma: float, generator=None) -> torch.Tensor:
    angles = torch.rand(images.shape[0], generator=generator, device=images.device, dtype=torch.float64) * 90 - 45
    return _ops.to_uint8_like_imagemagick(_ops.motion_blur(images.float(), radius, sigma, angles))


def zoom_factors(start: float, stop: float, step: float) -> list[float]:
    """The scripts' np.arange(start, stop, step), with numpy's own rounding of the steps
    (the values differ from start + i * step in the last bit, which moves scipy's rounded
    output size for some factors)."""
    return np.arange(start, stop, step).tolist()


def zoom_blur(images: torch.Tensor, start: float, stop: float, step: float) -> torch.Tensor:
    unit = to_unit(images)
    size = unit.shape[-1]
    total = unit.clone()
    for factor in zoom_factors(start, stop, step):
        matrix = _ops.clipped_zoom_matrix(size, factor, unit.device)
        total += matrix @ unit @ matrix.T
    return to_uint8(total / (len(zoom_factors(start, stop, step)) + 1))



def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """skimage.filters.gaussian(x / 255, sigma, multichannel=True): mode 'nearest', truncate 4,
    in float64 like the scripts, so only values a float epsilon from a level boundary can differ."""
    return to_uint8(_ops.gaussian_blur(images.double() / 255.0, sigma))
