"""TrivialAugmentWide as the authors apply it, in DALI operators on uint8 images, one operation per sample.

Theirs is ``torchvision.transforms.v2.TrivialAugmentWide()`` with its defaults (31 magnitude bins,
nearest-neighbour sampling, fill 0: ``custom_transforms.py:354, 412``) on ``ToTensor`` float images
in [0, 1] (``experiments/data.py:161, 194``), after flip and crop (``custom_datasets.py:431-447``).
DALI's own suite (``nvidia.dali.auto_aug.trivial_augment.get_trivial_augment_wide_suite``) differs
from it bin for bin, so the suite is rebuilt here from DALI's operators with torchvision's
magnitudes and float formulas, so that only DALI's rounding to uint8 and rotate's tie-breaking remain:

- shear: torchvision's moves row y by -m * y, DALI's by +m * y; the sign is flipped here;
- translate: torchvision truncates the offset with ``int()`` (and its bin 15 is 15.999999 -> 15 px);
  DALI's nearest sampling of a float offset rounds it; integer offsets are fed here;
- brightness, contrast, colour, sharpness: factors 1 ± [0, 0.99] (DALI: 1 ± [0.01, 0.99], whose
  lowest bin is not the identity); contrast and colour with torchvision's grey weights
  (0.2989, 0.587, 0.114), colour as torchvision's blend with grey (DALI: ``fn.saturation``);
- sharpness leaves the 1-px border alone, as torchvision does (DALI filters it too);
- posterize: the float formula ``floor(x * 2**bits) / 2**bits`` (so 8 bits scales by 255/256),
  not the uint8 bit mask;
- solarize: ``x >= threshold`` inverted for x = v / 255 and thresholds 1 .. 0 (DALI: ``v < 256 .. 0``
  kept, so its bin 0 never inverts white);
- equalize: torchvision's (PIL's) look-up table, not DALI's (OpenCV's);
- left DALI's (docs/recipe.md, Deviations; measured by ``tests/test_trivial_augment_fidelity.py``): rotate's
  nearest sampling breaks exact half-pixel ties the other way (at 45 and 135 degrees), and every
  operation rounds its result to uint8 where torchvision's stays float.
"""
from __future__ import annotations

import numpy as np
import nvidia.dali.fn as fn
import nvidia.dali.math as dmath
import nvidia.dali.types as types
from nvidia.dali.auto_aug import augmentations as dali_ops
from nvidia.dali.auto_aug.core import augmentation, select, signed_bin

from fastnst.train.data.draws import TA_EQUALIZE_OP, TA_IDENTITY_OP, TA_NUM_MAGNITUDE_BINS, TA_NUM_OPS
from fastnst.train.data.trivial_augment_space import (ENHANCE, GREY_WEIGHTS, POSTERIZE_BITS, ROTATE_DEGREES, SHEAR,
                                                      SOLARIZE_UINT8, TRANSLATE_PIXELS)


def _negated_warp_x(magnitude):  # DALI's shear moves x by +m * y, torchvision's by -m * y
    return [-magnitude, 0]


def _negated_warp_y(magnitude):
    return [0, -magnitude]


def _posterize_levels(bits):
    return np.float32(2.0 ** bits)


def _grey(data):
    """torchvision's grey value of each pixel, float (H, W, 1)."""
    return fn.reductions.sum(data * types.Constant(np.array(GREY_WEIGHTS, dtype=np.float32)), axis_names="C",
                             keep_dims=True)


@augmentation(mag_range=ENHANCE, randomly_negate=True, mag_to_param=dali_ops.shift_enhance_range)
def contrast(data, factor):
    """torchvision's blend with the mean grey value of the image."""
    centre = fn.reductions.mean(_grey(data), axis_names="HWC", keep_dims=True)
    return fn.cast_like(centre + (data - centre) * factor, data)


@augmentation(mag_range=ENHANCE, randomly_negate=True, mag_to_param=dali_ops.shift_enhance_range)
def color(data, factor):
    """torchvision's ``adjust_saturation``: a blend with each pixel's grey value."""
    grey = _grey(data)
    return fn.cast_like(grey + (data - grey) * factor, data)


def _sharpness(image_size: int):
    """torchvision's ``adjust_sharpness``: the 3x3 smoothing blend inside, the 1-px border unchanged."""
    inside = np.zeros((image_size, image_size, 1), dtype=np.float32)
    inside[1:-1, 1:-1] = 1

    @augmentation(mag_range=ENHANCE, randomly_negate=True, mag_to_param=dali_ops.sharpness_kernel,
                  param_device="auto")
    def sharpness(data, kernel):
        blended = fn.filter(data, kernel, dtype=types.FLOAT)
        return fn.cast_like(data + (blended - data) * types.Constant(inside, device=data.device), data)

    return sharpness


@augmentation(mag_range=POSTERIZE_BITS.astype(np.float32), mag_to_param=_posterize_levels, param_device="auto")
def posterize(data, levels):
    """torchvision's float ``posterize``: floor(x * levels) / levels, x = v / 255, the top step clamped."""
    steps = dmath.min(dmath.floor(data / 255.0 * levels), levels - 1)
    return fn.cast_like(steps / levels * 255.0, data)


@augmentation
def equalize(data, _):
    """torchvision's (PIL's) ``equalize`` per channel, not DALI's (OpenCV's): ``lut[v] = (n(< v) + step // 2)
    // step``, ``step = n(< channel maximum) // 255``; a channel whose ``step`` is 0 is left alone.

    The counts n(< v) come from comparing every pixel with the 256 levels: 3 M comparisons for a 64 px image,
    38 M and a (H, W, C, 256) intermediate at 224 px (DALI has no histogram or gather operator). So with
    random-resized crops (an image folder, ImageNet sizes) the loader applies torchvision's own histogram-based
    equalize to these samples before stage 2 instead (``train_loader.equalize_chosen``) and this one is their
    identity; the padded crop of the paper's 32 and 64 px sets keeps this one.
    """
    levels = types.Constant(np.arange(256, dtype=np.int32))
    pixels = fn.expand_dims(data, axes=[3])                                                  # (H, W, C, 1)
    # float counts (exact below 2**24): DALI sums uint8 only into uint64 or float
    below = fn.reductions.sum(fn.cast(pixels < levels, dtype=types.UINT8), axes=[0, 1], dtype=types.FLOAT)  # (C, 256)
    top = fn.expand_dims(fn.reductions.max(data, axis_names="HW"), axes=[1])                 # (C, 1)
    step = dmath.floor(fn.reductions.sum(below * (levels == top), axes=[1]) / 255)          # (C,)
    per_level = fn.expand_dims(step, axes=[1])
    lut = dmath.min(dmath.floor((below + dmath.floor(per_level / 2)) / dmath.max(per_level, 1)), 255)
    equalized = fn.reductions.sum((pixels == levels) * lut, axes=[3])                        # lut[v], (H, W, C)
    keep = step == 0
    return fn.cast_like(equalized * (keep ^ True) + data * keep, data)


def trivial_augment_suite(image_size: int) -> list:
    """The 14 operations of torchvision's TrivialAugmentWide for ``image_size`` square images, identity last."""
    suite = [
        dali_ops.translate_x_no_shape.augmentation(mag_range=np.trunc(TRANSLATE_PIXELS), randomly_negate=True),
        dali_ops.translate_y_no_shape.augmentation(mag_range=np.trunc(TRANSLATE_PIXELS), randomly_negate=True),
        dali_ops.shear_x.augmentation(mag_range=SHEAR, randomly_negate=True, mag_to_param=_negated_warp_x),
        dali_ops.shear_y.augmentation(mag_range=SHEAR, randomly_negate=True, mag_to_param=_negated_warp_y),
        dali_ops.rotate.augmentation(mag_range=ROTATE_DEGREES, randomly_negate=True),
        dali_ops.brightness.augmentation(mag_range=ENHANCE, randomly_negate=True),
        contrast,
        color,
        _sharpness(image_size),
        posterize,
        dali_ops.solarize.augmentation(mag_range=SOLARIZE_UINT8.astype(np.float32)),
        equalize,
        dali_ops.auto_contrast,
        dali_ops.identity,
    ]
    assert len(suite) == TA_NUM_OPS and suite[TA_IDENTITY_OP].name == "identity" and suite[TA_EQUALIZE_OP].name == "equalize"
    return suite


def apply_trivial_augment(images, op, magnitude_bin, negate, image_size: int):
    """One operation of the suite per sample, chosen by the host draws (``draws.AugmentDraws``: ``ta_op``,
    ``ta_bin``, ``ta_negate``); warps sample the nearest pixel and fill with 0, as torchvision's defaults."""
    return select(trivial_augment_suite(image_size), op, data=images,
                  magnitude_bin=signed_bin(magnitude_bin, random_sign=negate),
                  num_magnitude_bins=TA_NUM_MAGNITUDE_BINS, fill_value=0, interp_type=types.INTERP_NN)
