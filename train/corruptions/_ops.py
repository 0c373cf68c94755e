"""Batched image operators the corruptions are built from.

Each one reproduces the library call the official scripts make (scipy /
skimage / OpenCV / ImageMagick / PIL), for a whole batch at once, on the
input's device. Images are float32 (N, C, H, W) unless stated otherwise.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N,3,H,W) -> float32 on the [0, 1] scale."""
    return images.float() / 255.0


def to_uint8(unit: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> uint8, truncating like the scripts' ``np.uint8(np.clip(x, 0, 1) * 255)``."""
    return (unit.clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def fold_index(index: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Map out-of-range integer positions back into [0, size) the way a border mode does.

    ``nearest``: edge pixel repeated (scipy 'nearest', ImageMagick 'edge');
    ``reflect101``: mirror without repeating the edge (OpenCV BORDER_REFLECT_101);
    ``symmetric``: mirror repeating the edge (scipy / skimage 'reflect').
    """
    if mode == "nearest":
        return index.clamp(0, size - 1)
    if size == 1:
        return torch.zeros_like(index)
    if mode == "reflect101":
        period = 2 * (size - 1)
        index = index.remainder(period)
        return torch.where(index >= size, period - index, index)
    if mode == "symmetric":
        period = 2 * size
        index = index.remainder(period)
        return torch.where(index >= size, period - 1 - index, index)
    raise ValueError(f"unknown border mode {mode!r}")


def _pad(x: torch.Tensor, pad_h: int, pad_w: int, mode: str) -> torch.Tensor:
    """Pad the last two dims by any amount (even beyond the image size) in a border mode."""
    height, width = x.shape[-2:]
    rows = fold_index(torch.arange(-pad_h, height + pad_h, device=x.device), height, mode)
    cols = fold_index(torch.arange(-pad_w, width + pad_w, device=x.device), width, mode)
    return x.index_select(-2, rows).index_select(-1, cols)


def gaussian_kernel1d(sigma: float, truncate: float, device, dtype=torch.float32) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter1d's taps: radius int(truncate * sigma + 0.5), normalized."""
    radius = int(truncate * float(sigma) + 0.5)
    if sigma <= 0 or radius == 0:
        return torch.ones(1, device=device, dtype=dtype)
    positions = torch.arange(-radius, radius + 1, device=device, dtype=torch.float64)
    taps = torch.exp(-0.5 * (positions / float(sigma)) ** 2)
    return (taps / taps.sum()).to(dtype)


def gaussian_blur(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """skimage.filters.gaussian per channel (defaults: mode='nearest', truncate=4), in x's float dtype."""
    taps = gaussian_kernel1d(sigma, truncate, x.device, x.dtype)
    radius = taps.numel() // 2
    if radius == 0:
        return x
    channels = x.shape[1]
    padded = _pad(x, radius, radius, mode)
    horizontal = taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    return F.conv2d(F.conv2d(padded, horizontal, groups=channels), vertical, groups=channels)


def filter2d(x: torch.Tensor, kernel: torch.Tensor, mode: str = "reflect101") -> torch.Tensor:
    """cv2.filter2D (correlation, anchor at the centre, BORDER_REFLECT_101 by default) per channel."""
    kernel_h, kernel_w = kernel.shape
    channels = x.shape[1]
    padded = _pad(x, kernel_h // 2, kernel_w // 2, mode)
    weight = kernel.to(x.device, x.dtype).view(1, 1, kernel_h, kernel_w).expand(channels, 1, -1, -1)
    return F.conv2d(padded, weight, groups=channels)


@lru_cache(maxsize=256)
def _clipped_zoom_matrix_cpu(size: int, zoom_factor: float) -> torch.Tensor:
    # The scripts' clipped_zoom: crop the centre ceil(size / z) pixels, scipy.ndimage.zoom
    # them by z with order=1 (output length round(crop * z), corners aligned), keep the centre.
    crop = int(math.ceil(size / zoom_factor))
    top = (size - crop) // 2
    zoomed = int(round(crop * zoom_factor))
    trim = (zoomed - size) // 2
    matrix = torch.zeros(size, size, dtype=torch.float64)
    for out in range(size):
        source = (out + trim) * (crop - 1) / (zoomed - 1) if zoomed > 1 else 0.0
        low = min(int(math.floor(source)), crop - 1)
        frac = source - low
        matrix[out, top + low] += 1.0 - frac
        if frac > 0:
            matrix[out, top + low + 1] += frac
    return matrix.float()


def clipped_zoom_matrix(size: int, zoom_factor: float, device) -> torch.Tensor:
    """(size, size) matrix A so that A @ img @ A.T is the scripts' clipped_zoom of a square image."""
    return _clipped_zoom_matrix_cpu(size, float(zoom_factor)).to(device)


def motion_blur(x: torch.Tensor, radius: float, sigma: float, angle_degrees: torch.Tensor) -> torch.Tensor:
    """ImageMagick's MotionBlurImage with a per-sample angle; edge pixels repeat.

    ImageMagick builds a one-sided Gaussian of width 2*ceil(radius)+1 and sums
    the pixels at rounded offsets i * (cos, sin)(angle) for i = 0..width-1.
    """
    width = int(2 * math.ceil(radius) + 1)
    positions = torch.arange(width, dtype=torch.float64)
    taps = torch.exp(-(positions**2) / (2 * sigma * sigma))
    taps = (taps / taps.sum()).float().tolist()

    n, channels, height, width_px = x.shape
    radians = torch.deg2rad(angle_degrees.double())
    step_x, step_y = torch.cos(radians), torch.sin(radians)  # unit direction, hypot = 1
    rows = torch.arange(height, device=x.device).view(1, height, 1)
    cols = torch.arange(width_px, device=x.device).view(1, 1, width_px)
    flat = x.reshape(n, channels, height * width_px)
    out = torch.zeros_like(flat)
    for i, tap in enumerate(taps):
        offset_x = torch.ceil(i * step_x - 0.5).long().to(x.device).view(n, 1, 1)
        offset_y = torch.ceil(i * step_y - 0.5).long().to(x.device).view(n, 1, 1)
        source = (rows + offset_y).clamp(0, height - 1) * width_px + (cols + offset_x).clamp(0, width_px - 1)
        out += tap * flat.gather(2, source.view(n, 1, -1).expand(-1, channels, -1))
    return out.view_as(x)


def to_uint8_like_imagemagick(pixels: torch.Tensor) -> torch.Tensor:
    """0..255 float -> uint8 as ImageMagick 6 (Q16) writes the blurred 8-bit PNG: truncated.
    Measured against ImageMagick 6.9.11 through Wand; the 1e-3 absorbs float32 summation error."""
    return torch.floor(pixels + 1e-3).clamp(0, 255).to(torch.uint8)


def bilinear_sample(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, mode: str) -> torch.Tensor:
    """Sample x (N,C,H,W) at float positions rows/cols (N,H',W'); out-of-range corners fold by ``mode``."""
    n, channels, height, width = x.shape
    row0 = torch.floor(rows)
    col0 = torch.floor(cols)
    row_frac = (rows - row0).unsqueeze(1)
    col_frac = (cols - col0).unsqueeze(1)
    row0, col0 = row0.long(), col0.long()
    flat = x.reshape(n, channels, height * width)

    def corner(r, c):
        index = fold_index(r, height, mode) * width + fold_index(c, width, mode)
        return flat.gather(2, index.view(n, 1, -1).expand(-1, channels, -1)).view(n, channels, *rows.shape[1:])

    top = corner(row0, col0) * (1 - col_frac) + corner(row0, col0 + 1) * col_frac
    bottom = corner(row0 + 1, col0) * (1 - col_frac) + corner(row0 + 1, col0 + 1) * col_frac
    return top * (1 - row_frac) + bottom * row_frac


def plasma_size(image_size: int) -> int:
    """The side of the plasma map fog crops an image's haze from: the next power of two (the scripts' mapsize,
    32, 64, 256 for 224 px and 512 for 299 px, cropped ``[:size, :size]``)."""
    return 1 << (int(image_size) - 1).bit_length()


def plasma_fractal(n: int, mapsize: int, wibble_decay: float, generator, device) -> torch.Tensor:
    """Diamond-square height maps (N, mapsize, mapsize) in [0, 1], one independent map per sample.

    The algorithm of the scripts' plasma_fractal (after FLHerne/mapgen), with
    the batch as a leading dimension: corner 0, wibble starting at 100 and
    divided by ``wibble_decay`` each level, each new point the mean of its
    four neighbours (wrapping around) plus uniform noise in +-wibble**2.
    """
    assert mapsize & (mapsize - 1) == 0, "mapsize must be a power of two"
    heights = torch.zeros(n, mapsize, mapsize, dtype=torch.float64, device=device)
    step = mapsize
    wibble = 100.0

    def wibbled_mean(total):
        noise = torch.rand(total.shape, generator=generator, device=device, dtype=torch.float64)
        return total / 4 + wibble * (2 * noise - 1) * wibble

    while step >= 2:
        half = step // 2
        corners = heights[:, 0::step, 0::step]
        square_sum = corners + corners.roll(-1, dims=1)
        square_sum = square_sum + square_sum.roll(-1, dims=2)
        heights[:, half::step, half::step] = wibbled_mean(square_sum)
        centres = heights[:, half::step, half::step]
        corners = heights[:, 0::step, 0::step]
        top_sum = centres + centres.roll(1, dims=1) + corners + corners.roll(-1, dims=2)
        heights[:, 0::step, half::step] = wibbled_mean(top_sum)
        left_sum = centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1)
        heights[:, half::step, 0::step] = wibbled_mean(left_sum)
        step //= 2
        wibble /= wibble_decay

    heights = heights - heights.amin(dim=(1, 2), keepdim=True)
    return (heights / heights.amax(dim=(1, 2), keepdim=True)).float()


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """cv2.COLOR_RGB2GRAY weights (ITU-R BT.601), keeping a channel dim."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)
