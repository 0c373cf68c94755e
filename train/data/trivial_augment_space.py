"""torchvision's TrivialAugmentWide augmentation space, shared by the DALI suite and the torch one.

The authors apply ``torchvision.transforms.v2.TrivialAugmentWide()`` with its defaults (31 magnitude bins,
nearest-neighbour sampling, fill 0: ``custom_transforms.py:354, 412``) on ``ToTensor`` float images in
[0, 1] (``experiments/data.py:161, 194``). Both of our suites (``trivial_augment.py`` in DALI operators,
``trivial_augment_torch.py`` in batched torch) take the operation, bin and sign each sample drew on the
host (``draws.py``) and apply these magnitudes, in this order of operations.
"""
from __future__ import annotations

import numpy as np
import torch

from fastnst.train.data.draws import TA_IDENTITY_OP, TA_NUM_MAGNITUDE_BINS, TA_NUM_OPS

# The suites' operations by torchvision's names, in the index order of ``AugmentDraws.ta_op``.
OPERATIONS = ("TranslateX", "TranslateY", "ShearX", "ShearY", "Rotate", "Brightness", "Contrast", "Color",
              "Sharpness", "Posterize", "Solarize", "Equalize", "AutoContrast", "Identity")
# The operations whose magnitude a sample's sign negates (torchvision's ``signed``).
SIGNED = frozenset(range(9))
assert len(OPERATIONS) == TA_NUM_OPS and OPERATIONS[TA_IDENTITY_OP] == "Identity"


def _linspace(start: float, end: float) -> np.ndarray:
    """torchvision's ``torch.linspace(start, end, 31)`` (float32), bit for bit: its bin 15 of 0..32 is 15.999999."""
    return torch.linspace(start, end, TA_NUM_MAGNITUDE_BINS).numpy()


# torchvision.transforms.v2.TrivialAugmentWide._AUGMENTATION_SPACE (torchvision/transforms/v2/_auto_augment.py:469-487)
SHEAR = _linspace(0.0, 0.99)           # torchvision: x' = x - m * y (shear atan(m) about the corner)
TRANSLATE_PIXELS = _linspace(0.0, 32.0)
ROTATE_DEGREES = _linspace(0.0, 135.0)
ENHANCE = _linspace(0.0, 0.99)         # brightness, colour, contrast, sharpness: factor 1 + m
POSTERIZE_BITS = (8 - (torch.arange(TA_NUM_MAGNITUDE_BINS) / ((TA_NUM_MAGNITUDE_BINS - 1) / 6))).round().int().numpy()
SOLARIZE = _linspace(1.0, 0.0)         # threshold on x in [0, 1]
GREY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale

# The first uint8 value v that torchvision inverts at each bin: float32(v) / 255 >= threshold (ToTensor's x).
SOLARIZE_UINT8 = (np.arange(256, dtype=np.float32)[None, :] / np.float32(255) < SOLARIZE[:, None]).sum(1)
