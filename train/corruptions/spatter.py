"""Spatter, the extra weather corruption: water drops (severities 1-3) or mud (4-5).

The scripts (make_cifar_c.py / make_tinyimagenet_c.py, ``spatter``) draw a normal
"liquid" layer per image, blur it (skimage gaussian) and zero it below a threshold.
Water: OpenCV turns the layer into a shading map (Canny edges, 5x5 chamfer distance
to the edges, truncated at 20, box blur, histogram equalization, an emboss
``filter2D``, box blur), which tints the image pale turquoise where the liquid is.
Mud: the thresholded layer, blurred again, replaces the image with mud brown where it
is above 0.8. Every OpenCV call is reproduced below for a whole batch, with OpenCV's
integer and float32 arithmetic, so the same liquid layer gives the same pixels
(tested against a sequential transcription of the OpenCV code; measured against
OpenCV itself in bench/corruption_fidelity.py).
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from fastnst.train.corruptions import _ops

# OpenCV's Canny (imgproc/src/canny.cpp): tan(22.5 deg) in Q15, L1 magnitude thresholds
_CANNY_SHIFT = 15
_TG22 = int(0.4142135623730950488016887242097 * (1 << _CANNY_SHIFT) + 0.5)
_WATER = (175, 238, 238)  # pale turquoise, in the images' channel order (the scripts' "BGR" is our RGB)
_MUD = (63, 42, 20)


def canny(images: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """cv2.Canny(uint8 (N, H, W), low, high) with aperture 3 and the L1 gradient: bool edges.

    Sobel with BORDER_REPLICATE, non-maximum suppression with OpenCV's Q15 sector test
    and zero magnitude outside the image, hysteresis over 8-neighbours (iterated dilation
    of the strong pixels inside the candidates, which reaches the same set as OpenCV's stack).
    """
    pixels = images.to(torch.int32)
    padded = F.pad(pixels.unsqueeze(1).float(), (1, 1, 1, 1), mode="replicate").squeeze(1).to(torch.int32)
    height, width = pixels.shape[-2:]

    def shifted(tensor, row, col):  # tensor padded by 1: the neighbour at (row, col) of every pixel
        return tensor[:, 1 + row : 1 + row + height, 1 + col : 1 + col + width]

    dx = (shifted(padded, -1, 1) + 2 * shifted(padded, 0, 1) + shifted(padded, 1, 1)
          - shifted(padded, -1, -1) - 2 * shifted(padded, 0, -1) - shifted(padded, 1, -1))
    dy = (shifted(padded, 1, -1) + 2 * shifted(padded, 1, 0) + shifted(padded, 1, 1)
          - shifted(padded, -1, -1) - 2 * shifted(padded, -1, 0) - shifted(padded, -1, 1))
    magnitude = dx.abs() + dy.abs()
    around = F.pad(magnitude, (1, 1, 1, 1))  # zero magnitude outside the image

    x = dx.abs().to(torch.int64)
    y = dy.abs().to(torch.int64) << _CANNY_SHIFT
    tg22x = x * _TG22
    tg67x = tg22x + (x << (_CANNY_SHIFT + 1))
    horizontal = (magnitude > shifted(around, 0, -1)) & (magnitude >= shifted(around, 0, 1))
    vertical = (magnitude > shifted(around, -1, 0)) & (magnitude >= shifted(around, 1, 0))
    same_sign = (dx ^ dy) >= 0  # OpenCV: s = (xs ^ ys) < 0 ? -1 : 1
    diagonal = torch.where(
        same_sign,
        (magnitude > shifted(around, -1, -1)) & (magnitude > shifted(around, 1, 1)),
        (magnitude > shifted(around, -1, 1)) & (magnitude > shifted(around, 1, -1)),
    )
    is_maximum = torch.where(y < tg22x, horizontal, torch.where(y > tg67x, vertical, diagonal))
    candidate = is_maximum & (magnitude > low)
    edges = candidate & (magnitude > high)
    while True:
        grown = F.max_pool2d(edges.unsqueeze(1).float(), 3, stride=1, padding=1).squeeze(1).bool() & candidate
        if torch.equal(grown, edges):
            return edges
        edges = grown


@lru_cache(maxsize=8)
def _wavefronts(height: int, width: int, frame: int, device: torch.device) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """Flat positions (in the framed buffer) of the forward pass's wavefronts 3 * row + col = t.

    A pixel reads its left neighbour and five neighbours in each of the two rows above,
    the latest of which, (row - 1, col + 2), lies on wavefront t - 1: so all pixels of one
    wavefront are independent, and visiting the wavefronts in order does exactly the
    raster scan's additions and minima (3 (H - 1) + W steps instead of H * W)."""
    stride = width + 2 * frame
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    front = (3 * rows + cols).flatten()
    framed = ((rows + frame) * stride + cols + frame).flatten()
    image = (rows * width + cols).flatten()
    return tuple((framed[front == t].to(device), image[front == t].to(device)) for t in range(int(front.max()) + 1))


def _chamfer_pass(temp: torch.Tensor, zero: torch.Tensor | None, height: int, width: int, frame: int,
                  steps: tuple[tuple[int, int, torch.Tensor], ...]) -> None:
    """One raster pass over the framed (N, (H + 2F) * (W + 2F)) float32 buffer, in place."""
    stride = width + 2 * frame
    offsets = [row * stride + col for row, col, _ in steps]
    for framed, image in _wavefronts(height, width, frame, temp.device):
        best = temp[:, framed] if zero is None else None
        for offset, (_, _, weight) in zip(offsets, steps):
            candidate = temp[:, framed + offset] + weight
            best = candidate if best is None else torch.minimum(best, candidate)
        if zero is not None:
            best = torch.where(zero[:, image], 0.0, best)
        temp[:, framed] = best


def distance_to_zero(features: torch.Tensor) -> torch.Tensor:
    """cv2.distanceTransform(uint8 (N, H, W), cv2.DIST_L2, 5) -> float32 distance of every pixel to
    the nearest zero pixel: the two raster passes of the 5x5 chamfer mask (1, 1.4f, 2.1969f) with
    float32 additions, which is what OpenCV's build (IPP) returns, bit for bit (measured)."""
    n, height, width = features.shape
    frame = 2
    device = features.device
    hv, diagonal, knight = (torch.tensor(v, dtype=torch.float32, device=device) for v in (1.0, 1.4, 2.1969))
    temp = torch.full((n, (height + 2 * frame) * (width + 2 * frame)), 1e20, dtype=torch.float32, device=device)
    forward = ((-2, -1, knight), (-2, 1, knight), (-1, -2, knight), (-1, -1, diagonal), (-1, 0, hv),
               (-1, 1, diagonal), (-1, 2, knight), (0, -1, hv))
    _chamfer_pass(temp, features.reshape(n, -1) == 0, height, width, frame, forward)
    # the backward pass is the forward pass of the image turned by 180 degrees
    temp = temp.flip(1).contiguous()
    _chamfer_pass(temp, None, height, width, frame, forward)
    temp = temp.flip(1)
    stride = width + 2 * frame
    return temp.view(n, height + 2 * frame, stride)[:, frame : frame + height, frame : frame + width].contiguous()


def box_blur3(x: torch.Tensor) -> torch.Tensor:
    """cv2.blur(x, (3, 3)) on float32 (N, H, W): sums in float64 (OpenCV's sum type for float
    input), times 1/9, rounded to float32; BORDER_REFLECT_101."""
    padded = _ops._pad(x.double().unsqueeze(1), 1, 1, "reflect101")
    total = F.avg_pool2d(padded, 3, stride=1, divisor_override=1).squeeze(1)
    return (total * (1.0 / 9.0)).to(torch.float32)


def box_blur3_uint8(x: torch.Tensor) -> torch.Tensor:
    """cv2.blur(x, (3, 3)) on uint8 (N, H, W): integer sum, divided by 9 and rounded to nearest."""
    padded = _ops._pad(x.double().unsqueeze(1), 1, 1, "reflect101")
    total = F.avg_pool2d(padded, 3, stride=1, divisor_override=1).squeeze(1).round().to(torch.int64)
    return torch.div(2 * total + 9, 18, rounding_mode="floor").to(torch.uint8)  # round(total / 9), never a tie


def equalize_hist(x: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist on uint8 (N, H, W): per image, lut[v] = round(float32(#pixels in
    (lowest present level, v]) * float32(255 / (total - #lowest))); a constant image stays as is."""
    n = x.shape[0]
    flat = x.reshape(n, -1).to(torch.int64)
    total = flat.shape[1]
    histogram = torch.zeros(n, 256, dtype=torch.int64, device=x.device).scatter_add_(1, flat, torch.ones_like(flat))
    lowest = (histogram > 0).to(torch.int8).argmax(dim=1, keepdim=True)
    lowest_count = histogram.gather(1, lowest)
    above_lowest = histogram.cumsum(1) - lowest_count
    scale = torch.tensor(255.0, dtype=torch.float32, device=x.device) / (total - lowest_count).clamp(min=1).to(torch.float32)
    lut = torch.round(above_lowest.to(torch.float32) * scale).clamp(0, 255)
    mapped = lut.gather(1, flat).to(torch.uint8)
    constant = lowest_count == total
    return torch.where(constant, flat.to(torch.uint8), mapped).view_as(x)


def emboss_uint8(x: torch.Tensor) -> torch.Tensor:
    """cv2.filter2D(x, cv2.CV_8U, [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]) on uint8 (N, H, W):
    correlation, BORDER_REFLECT_101, exact integer sum saturated to 0..255."""
    kernel = torch.tensor([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64, device=x.device)
    filtered = _ops.filter2d(x.double().unsqueeze(1), kernel, mode="reflect101").squeeze(1)
    return filtered.round().clamp(0, 255).to(torch.uint8)


def _liquid_to_uint8(liquid: torch.Tensor) -> torch.Tensor:
    """numpy's (liquid * 255).astype(np.uint8): truncation, and values past 255 wrap (x86)."""
    return torch.remainder(torch.floor(liquid * 255).to(torch.int64), 256).to(torch.uint8)


def water_shading(liquid: torch.Tensor) -> torch.Tensor:
    """The water branch's OpenCV chain on the thresholded liquid layer (N, H, W) float64 ->
    float32 liquid_uint8 * shading, before the per-image normalization."""
    liquid_u8 = _liquid_to_uint8(liquid)
    distance = distance_to_zero(torch.where(canny(liquid_u8, 50, 150), 0, 255).to(torch.uint8))
    distance = distance.clamp(max=20.0)  # cv2.threshold(dist, 20, 20, THRESH_TRUNC)
    shading = box_blur3(distance).to(torch.uint8)  # .astype(np.uint8): truncation (values 0..20)
    shading = box_blur3_uint8(emboss_uint8(equalize_hist(shading))).to(torch.float32)
    return liquid_u8.to(torch.float32) * shading


def spatter(images: torch.Tensor, mean, std, liquid_sigma, threshold, strength, mud, generator=None) -> torch.Tensor:
    n, _, height, width = images.shape
    liquid = mean + std * torch.randn(n, height, width, generator=generator, device=images.device, dtype=torch.float64)
    return spatter_with_liquid(images, liquid, liquid_sigma, threshold, strength, mud)


def spatter_with_liquid(images: torch.Tensor, liquid: torch.Tensor, liquid_sigma, threshold, strength, mud) -> torch.Tensor:
    """Spatter with a given normal liquid layer (N, H, W) float64 (the random part)."""
    liquid = _ops.gaussian_blur(liquid.unsqueeze(1), liquid_sigma).squeeze(1)
    liquid = torch.where(liquid < threshold, 0.0, liquid)
    unit = images.to(torch.float32) / 255.0
    if not mud:
        layer = water_shading(liquid)
        peak = layer.amax(dim=(1, 2), keepdim=True)
        layer = (layer / peak * strength).unsqueeze(1)  # float32, as the script's m
        colour = (torch.tensor(_WATER, dtype=torch.float64, device=images.device) / 255.0).float().view(1, 3, 1, 1)
        out = ((unit + layer * colour).clamp(0.0, 1.0) * 255).to(torch.uint8)
        # the script divides by a zero peak when no liquid shading is left: NaN, which np.uint8 makes 0
        return torch.where(peak.unsqueeze(1) > 0, out, torch.zeros_like(out))
    stain = _ops.gaussian_blur((liquid > threshold).to(torch.float32).unsqueeze(1), strength)
    stain = torch.where(stain < 0.8, 0.0, stain)
    colour = (torch.tensor(_MUD, dtype=torch.float64, device=images.device) / 255.0).float().view(1, 3, 1, 1)
    return ((unit * (1 - stain) + colour * stain).clamp(0.0, 1.0) * 255).to(torch.uint8)
