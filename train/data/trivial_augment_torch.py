"""TrivialAugmentWide as the authors apply it, in torch on a whole batch: one operation per sample, no DALI.

The DALI suite's twin (``trivial_augment.py``): the same host draws (operation, magnitude bin, sign per
sample, ``draws.AugmentDraws``), the same magnitudes (``trivial_augment_space.py``), and torchvision v2's
formulas on ``ToTensor`` floats in [0, 1], as the authors' ``TrivialAugmentWide()`` (``custom_transforms.py:354,
412``; ``experiments/data.py:161, 194``). Unlike the DALI suite it keeps every result in float, as
torchvision does, and builds torchvision's own sampling grids, so it has neither of the DALI suite's
deviations (rounding to uint8, rotate's ties at 45 and 135 degrees).

A batch costs a few kernels per operation present, not per sample: the samples are sorted by
operation (one gather), each operation runs once on its block with per-sample parameters looked up
in tables made once (five geometric operations: one ``grid_sample`` with a matrix per sample), and one
``index_copy_`` puts them back in order. Nothing waits for the device: the blocks' sizes are known on
the host, from the draws.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from fastnst.resident import to_device
from fastnst.train.data.draws import TA_NUM_MAGNITUDE_BINS, TA_NUM_OPS
from fastnst.train.data.trivial_augment_space import (ENHANCE, GREY_WEIGHTS, OPERATIONS, POSTERIZE_BITS,
                                                      ROTATE_DEGREES, SHEAR, SIGNED, SOLARIZE, TRANSLATE_PIXELS)

GEOMETRIC = 5  # operations 0-4 (translate x / y, shear x / y, rotate) are one affine warp each
_OP = {name: index for index, name in enumerate(OPERATIONS)}


def _inverse_affine_matrix(center, angle: float, translate, shear) -> list[float]:
    """torchvision's ``_get_inverse_affine_matrix`` at scale 1 (``transforms/v2/functional/_geometry.py:707-760``,
    0.29): the output-to-input map, in pixels about the image centre."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    (cx, cy), (tx, ty) = center, translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -(a * math.tan(sx) + math.sin(rot))
    c = math.sin(rot - sy) / math.cos(sy)
    d = math.cos(rot) - c * math.tan(sx)
    matrix = [d, -b, 0.0, -c, a, 0.0]
    matrix[2] += cx - matrix[0] * (cx + tx) - matrix[1] * (cy + ty)
    matrix[5] += cy - matrix[3] * (cx + tx) - matrix[4] * (cy + ty)
    return matrix


def _warp_matrix(op: int, magnitude: float, image_size: int) -> list[float]:
    """The matrix torchvision's TrivialAugmentWide builds for a geometric operation (``_auto_augment.py:102-153``)."""
    corner = [-image_size * 0.5, -image_size * 0.5]  # center=[0, 0] in pixels, as the shears pass it
    if op == _OP["TranslateX"]:
        return _inverse_affine_matrix([0.0, 0.0], 0.0, [float(int(magnitude)), 0.0], [0.0, 0.0])
    if op == _OP["TranslateY"]:
        return _inverse_affine_matrix([0.0, 0.0], 0.0, [0.0, float(int(magnitude))], [0.0, 0.0])
    if op == _OP["ShearX"]:
        return _inverse_affine_matrix(corner, 0.0, [0.0, 0.0], [math.degrees(math.atan(magnitude)), 0.0])
    if op == _OP["ShearY"]:
        return _inverse_affine_matrix(corner, 0.0, [0.0, 0.0], [0.0, math.degrees(math.atan(magnitude))])
    angle = magnitude % 360  # rotate_image: its rot90 fast paths are this matrix with exact 0 and 1 entries
    if angle % 90 == 0:
        quarter = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)][int(angle) // 90]
        return [quarter[0], -quarter[1], 0.0, quarter[1], quarter[0], 0.0]
    return _inverse_affine_matrix([0.0, 0.0], -angle, [0.0, 0.0], [0.0, 0.0])


def parameter_tables(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(warp float32 (14, 31, 2, 6), value float32 (14, 31, 2)) per operation, bin and sign: the geometric
    operations' matrix as ``_affine_grid`` scales it, ``theta.transpose(1, 2) / [w / 2, h / 2]`` in float32
    (``_geometry.py:935``; identity for the other operations), and the colour factor 1 + m, posterize's
    levels 2 ** bits or solarize's threshold."""
    magnitudes = {"TranslateX": TRANSLATE_PIXELS, "TranslateY": TRANSLATE_PIXELS, "ShearX": SHEAR, "ShearY": SHEAR,
                  "Rotate": ROTATE_DEGREES, "Brightness": ENHANCE, "Contrast": ENHANCE, "Color": ENHANCE,
                  "Sharpness": ENHANCE}
    identity = np.array([[1, 0, 0], [0, 1, 0]], np.float32).T / np.float32(0.5 * image_size)
    matrix = np.tile(identity.reshape(6), (TA_NUM_OPS, TA_NUM_MAGNITUDE_BINS, 2, 1))
    value = np.zeros((TA_NUM_OPS, TA_NUM_MAGNITUDE_BINS, 2), np.float32)
    for op, name in enumerate(OPERATIONS):
        for magnitude_bin in range(TA_NUM_MAGNITUDE_BINS):
            for negate in (0, 1):
                if name in magnitudes:
                    magnitude = float(magnitudes[name][magnitude_bin]) * (-1 if negate and op in SIGNED else 1)
                    if op < GEOMETRIC:
                        theta = np.array(_warp_matrix(op, magnitude, image_size), np.float32).reshape(2, 3)
                        matrix[op, magnitude_bin, negate] = (theta.T / np.float32(0.5 * image_size)).reshape(6)
                    else:
                        value[op, magnitude_bin, negate] = 1.0 + magnitude
                elif name == "Posterize":
                    value[op, magnitude_bin, negate] = 2.0 ** int(POSTERIZE_BITS[magnitude_bin])
                elif name == "Solarize":
                    value[op, magnitude_bin, negate] = SOLARIZE[magnitude_bin]
    return matrix, value


# ----------------------------------------------------------------------------- the operations, batched
# Each takes its block of samples as floats in [0, 1] and each sample's parameters (B, 7): the warp's
# scaled (3, 2) matrix, then the value; it returns floats in [0, 1], as torchvision's. No constant is
# copied from the host: a copy from pageable memory makes the host wait for a GPU.

def warp(x: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
    """Affine warps, nearest pixel, 0 outside: torchvision's ``_affine_grid`` (``_geometry.py:913-939``) with a
    matrix per sample, and ``grid_sample`` as its ``_apply_grid_transform`` with fill None."""
    count, _, height, width = x.shape
    base = torch.empty(1, height, width, 3, dtype=x.dtype, device=x.device)
    base[..., 0].copy_(torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, steps=width, device=x.device))
    base[..., 1].copy_(torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, steps=height,
                                      device=x.device).unsqueeze_(-1))
    base[..., 2].fill_(1)
    scaled = parameters[:, :6].reshape(count, 3, 2)
    grid = base.view(1, height * width, 3).expand(count, -1, -1).bmm(scaled).view(count, height, width, 2)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _factor(parameters: torch.Tensor) -> torch.Tensor:
    return parameters[:, 6].view(-1, 1, 1, 1)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_rgb_to_grayscale_image`` (``_color.py:31-54``), (B, 1, H, W)."""
    red, green, blue = x.unbind(dim=-3)
    return red.mul(GREY_WEIGHTS[0]).add_(green, alpha=GREY_WEIGHTS[1]).add_(blue, alpha=GREY_WEIGHTS[2]).unsqueeze(-3)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend`` (``_color.py:92-97``) with a factor per sample."""
    return (x * factor + other * (1.0 - factor)).clamp_(0, 1)


def brightness(x, parameters):
    return (x * _factor(parameters)).clamp_(0, 1)  # adjust_brightness_image


def contrast(x, parameters):
    return _blend(x, _grey(x).mean(dim=(-3, -2, -1), keepdim=True), _factor(parameters))  # adjust_contrast_image


def color(x, parameters):
    return _blend(x, _grey(x), _factor(parameters))  # adjust_saturation_image


def sharpness(x, parameters):
    """``adjust_sharpness_image`` (``_color.py:229-275``): the 3x3 smoothing blend inside, the 1-px border kept."""
    channels = x.shape[1]
    kernel = torch.full((channels, 1, 3, 3), 1.0 / 13.0, dtype=x.dtype, device=x.device)
    kernel[..., 1, 1] = 5.0 / 13.0
    blurred = F.conv2d(x, kernel, groups=channels)
    out = x.clone()
    inside = out[..., 1:-1, 1:-1]
    inside.add_((blurred - inside) * (1.0 - _factor(parameters)))
    return out.clamp_(0, 1)


def posterize(x, parameters):
    levels = _factor(parameters)  # posterize_image on floats: floor(x * 2**bits) / 2**bits, the top step clamped
    return torch.minimum(torch.floor(x * levels), levels - 1) * (1.0 / levels)


def solarize(x, parameters):
    return torch.where(x >= _factor(parameters), 1.0 - x, x)  # solarize_image


def autocontrast(x, parameters):
    """``autocontrast_image`` (``_color.py:525-555``) per sample and channel, with ``where`` for its masked
    assignments (a boolean-mask write can make the host wait for a GPU)."""
    low, high = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
    flat = high == low
    scale = torch.where(flat, 1.0, high - low)
    return (x - torch.where(flat, 0.0, low)).div_(scale).clamp_(0, 1)


def identity(x, parameters):
    return x


# Operation index -> function of (float block, uint8 block, parameters); equalize is torchvision's own
# (per sample and channel histograms by scatter_add, PIL's table), on the uint8 pixels ToTensor came from.
OPERATION_FUNCTIONS = {
    _OP["Brightness"]: brightness, _OP["Contrast"]: contrast, _OP["Color"]: color, _OP["Sharpness"]: sharpness,
    _OP["Posterize"]: posterize, _OP["Solarize"]: solarize, _OP["AutoContrast"]: autocontrast,
    _OP["Identity"]: identity,
}


class TrivialAugmentTorch:
    """``augment(images uint8 (B, 3, S, S), op, bin, negate) -> float32 (B, 3, S, S) in [0, 1]``: the draws are
    host arrays (``AugmentDraws.ta_op``, ``ta_bin``, ``ta_negate``), the images on any device."""

    def __init__(self, image_size: int):
        matrix, value = parameter_tables(image_size)
        self.parameters = np.concatenate([matrix, value[..., None]], axis=-1)  # (14, 31, 2, 7)
        self.image_size = image_size

    def __call__(self, images: torch.Tensor, op: np.ndarray, magnitude_bin: np.ndarray,
                 negate: np.ndarray) -> torch.Tensor:
        op = np.asarray(op, dtype=np.int64)
        order = np.argsort(op, kind="stable")
        ends = np.cumsum(np.bincount(op, minlength=TA_NUM_OPS))
        parameters = self.parameters[op, magnitude_bin, negate][order]
        order_on_device = to_device(order, images.device)
        parameters = to_device(parameters, images.device)
        pixels = images.index_select(0, order_on_device)
        x = pixels.float().div_(255)  # ToTensor
        blocks = []
        for first, last, start, end in self._blocks(ends):
            block, block_parameters = x[start:end], parameters[start:end]
            if first == 0:  # the five geometric operations: one warp
                blocks.append(warp(block, block_parameters))
            elif first == _OP["Equalize"]:
                blocks.append(TF.equalize(pixels[start:end]).float().div_(255))
            else:
                blocks.append(OPERATION_FUNCTIONS[first](block, block_parameters))
        out = torch.empty_like(x)
        return out.index_copy_(0, order_on_device, torch.cat(blocks))

    @staticmethod
    def _blocks(ends: np.ndarray):
        """(first op, last op, start, end) of each non-empty block of the sorted batch; ops 0-4 are one block."""
        starts = np.concatenate([[0], ends[:-1]])
        spans = [(0, GEOMETRIC - 1, 0, int(ends[GEOMETRIC - 1]))]
        spans += [(op, op, int(starts[op]), int(ends[op])) for op in range(GEOMETRIC, TA_NUM_OPS)]
        return [span for span in spans if span[3] > span[2]]
