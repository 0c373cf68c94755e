"""Digital corruptions: brightness, contrast, elastic transform, pixelate, JPEG, and the extra saturate."""
from __future__ import annotations

import warnings
from functools import lru_cache

import torch
import torchvision

from fastnst.train.corruptions import _ops
from fastnst.train.corruptions._ops import to_uint8, to_unit


def brightness(images: torch.Tensor, shift: float) -> torch.Tensor:
    # Officially rgb -> HSV, V += shift (clipped to 1), HSV -> rgb. With hue and saturation
    # fixed every channel is proportional to V, so this is a rescale (black stays grey: S = 0).
    unit = to_unit(images)
    value = unit.amax(dim=1, keepdim=True)
    new_value = (value + shift).clamp(max=1.0)
    scaled = unit * (new_value / value.clamp(min=1e-12))
    return to_uint8(torch.where(value > 0, scaled, new_value.expand_as(unit)))


def _rgb_to_hsv(unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """skimage.color.rgb2hsv on (N, 3, H, W) float64, operation for operation (hue 0 for greys;
    where channels tie for the maximum, blue wins over green over red, as skimage's assignments)."""
    red, green, blue = unit.unbind(1)
    value = unit.amax(dim=1)
    delta = value - unit.amin(dim=1)
    grey = delta == 0
    safe_delta = torch.where(grey, 1.0, delta)
    saturation = torch.where(grey, 0.0, delta / torch.where(value == 0, 1.0, value))
    hue = torch.where(blue == value, 4.0 + (red - green) / safe_delta,
                      torch.where(green == value, 2.0 + (blue - red) / safe_delta, (green - blue) / safe_delta))
    hue = torch.where(grey, 0.0, torch.remainder(hue / 6.0, 1.0))
    return hue, saturation, value


def _hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """skimage.color.hsv2rgb, operation for operation: (N, H, W) x 3 -> (N, 3, H, W)."""
    sector = torch.floor(hue * 6)
    fraction = hue * 6 - sector
    p = value * (1 - saturation)
    q = value * (1 - fraction * saturation)
    t = value * (1 - (1 - fraction) * saturation)
    # skimage's np.choose over the six sectors, as an index into (v, t, p, q) per output channel
    table = torch.tensor([[0, 1, 2], [3, 0, 2], [2, 0, 1], [2, 3, 0], [1, 2, 0], [0, 2, 3]], device=hue.device)
    pick = table[sector.to(torch.int64).remainder(6)].permute(0, 3, 1, 2)  # (N, 3, H, W)
    return torch.stack([value, t, p, q], dim=1).gather(1, pick)


def saturate(images: torch.Tensor, factor: float, offset: float) -> torch.Tensor:
    """rgb -> HSV, S = clip(S * factor + offset, 0, 1), HSV -> rgb, with skimage's formulas in
    float64 (greys have hue 0, so they turn reddish when offset > 0, as in the scripts)."""
    hue, saturation, value = _rgb_to_hsv(images.double() / 255.0)
    return to_uint8(_hsv_to_rgb(hue, (saturation * factor + offset).clamp(0.0, 1.0), value))


def contrast(images: torch.Tensor, factor: float) -> torch.Tensor:
    unit = to_unit(images)
    means = unit.mean(dim=(2, 3), keepdim=True)
    return to_uint8((unit - means) * factor + means)


def elastic_transform(images: torch.Tensor, alpha, sigma, affine_jitter, generator=None) -> torch.Tensor:
    """A random affine warp (cv2.warpAffine, BORDER_REFLECT_101) then a smooth random
    displacement field (scipy map_coordinates, order 1, mode 'reflect'), as the scripts."""
    unit = to_unit(images)
    n, _, size, _ = unit.shape
    device = unit.device
    centre, third = size // 2, size // 3
    # the three control points of the scripts, as (x, y)
    anchors = torch.tensor(
        [[centre + third, centre + third], [centre + third, centre - third], [centre - third, centre - third]],
        dtype=torch.float64,
        device=device,
    )
    jitter = (torch.rand(n, 3, 2, generator=generator, device=device, dtype=torch.float64) * 2 - 1) * affine_jitter
    moved = anchors + jitter
    # warpAffine samples the source at M^-1 (x, y): the affine map taking moved -> anchors
    moved_h = torch.cat([moved, torch.ones(n, 3, 1, dtype=torch.float64, device=device)], dim=2)
    inverse = torch.linalg.solve(moved_h, anchors.expand(n, -1, -1))  # (N, 3, 2): [x y 1] @ inverse
    grid_y, grid_x = torch.meshgrid(
        torch.arange(size, dtype=torch.float64, device=device), torch.arange(size, dtype=torch.float64, device=device), indexing="ij"
    )
    pixel_h = torch.stack([grid_x, grid_y, torch.ones_like(grid_x)], dim=-1).view(1, -1, 3)
    source = pixel_h @ inverse  # (N, H*W, 2) as (x, y)
    source_x = source[..., 0].view(n, size, size).float()
    source_y = source[..., 1].view(n, size, size).float()
    warped = _ops.bilinear_sample(unit, source_y, source_x, mode="reflect101")

    def displacement():
        field = torch.rand(n, 1, size, size, generator=generator, device=device) * 2 - 1
        return (_ops.gaussian_blur(field, sigma, mode="symmetric", truncate=3.0) * alpha)[:, 0]

    shift_x = displacement()
    shift_y = displacement()
    rows = grid_y.float().expand(n, -1, -1) + shift_y
    cols = grid_x.float().expand(n, -1, -1) + shift_x
    return to_uint8(_ops.bilinear_sample(warped, rows, cols, mode="symmetric"))


@lru_cache(maxsize=64)
def _pil_box_matrix_cpu(in_size: int, out_size: int) -> torch.Tensor:
    # Pillow's precompute_coeffs with its BOX filter (support 0.5, weight 1 where the
    # scaled distance lies in (-0.5, 0.5]); rows normalized.
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 0.5 * filter_scale
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    for out in range(out_size):
        centre = (out + 0.5) * scale
        low = max(int(centre - support + 0.5), 0)
        high = min(int(centre + support + 0.5), in_size)
        for source in range(low, high):
            distance = (source - centre + 0.5) / filter_scale
            if -0.5 < distance <= 0.5:
                matrix[out, source] = 1.0
        matrix[out] /= matrix[out].sum()
    return matrix.float()


def _pil_box_resize(pixels: torch.Tensor, out_size: int) -> torch.Tensor:
    """PIL Image.resize((s, s), BOX) on float 0..255 images: horizontal pass, 8-bit rounding, vertical pass."""
    in_size = pixels.shape[-1]
    matrix = _pil_box_matrix_cpu(in_size, out_size).to(pixels.device)
    horizontal = torch.floor(pixels @ matrix.T + 0.5).clamp(0, 255)
    return torch.floor(matrix @ horizontal + 0.5).clamp(0, 255)


def pixelate(images: torch.Tensor, factor: float) -> torch.Tensor:
    size = images.shape[-1]
    small = _pil_box_resize(images.float(), int(size * factor))
    return _pil_box_resize(small, size).to(torch.uint8)


def jpeg_compression(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode with libjpeg (CPU: the same library PIL uses, identical output) or
    nvJPEG (CUDA: same quality tables, small rounding differences), the batch as a list."""
    with warnings.catch_warnings():  # torchvision 0.29 flags its codecs as moving to TorchCodec
        warnings.simplefilter("ignore", DeprecationWarning)
        encoded = torchvision.io.encode_jpeg(list(images.contiguous().unbind(0)), quality=int(quality))
        # decode_jpeg takes the bytes on the host whatever the decoding device (a few KB per image)
        decoded = torchvision.io.decode_jpeg([data.cpu() for data in encoded], device=images.device)
    return torch.stack(decoded).to(images.device)
