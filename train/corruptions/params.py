"""Official per-resolution severity parameters of the 15 benchmark corruptions and the 4 extra ones.

Copied value for value from Hendrycks & Dietterich's generation scripts
(github.com/hendrycks/robustness, folder ImageNet-C/create_c/):

- 32 px (CIFAR-10-C, CIFAR-100-C): ``make_cifar_c.py``
- 64 px (Tiny-ImageNet-C):         ``make_tinyimagenet_c.py``
- 224 px (ImageNet-C):             ``make_imagenet_c.py``

Any other image size uses the table of the nearest of these sizes by ratio (``table_size``: up to 45 px
the 32 px table, 46-119 px the 64 px one, from 120 px ImageNet's), values as they are, except the
three things the scripts themselves tie to the image side, which follow it (``severity_params``,
``frost_texture_scale``; fog's map size is ``_ops.plasma_size``): elastic's displacement and affine
jitter (written as multiples of IMSIZE, 32, 64, 244), frost's texture scale, fog's map (the next power
of two, cropped: 32, 64, 256 for 224 px, 512 for make_imagenet_c_inception.py's 299 px). Why not rescale
every pixel-unit parameter (blur radii, sigmas) or interpolate between tables: the tables are the only
official values, and a rescaled or interpolated one would be ours; the nearest table keeps every value
official and within a factor of 1.9 of the resolution it was set for. docs/corruptions.md says the same.

Each entry lists the five severities in order; the tuple layout of each
corruption is written next to its name. Nothing here is tuned by us.

The last four entries of each table (speckle_noise, gaussian_blur, spatter,
saturate) are the scripts' four extra "validation" corruptions, which ship in
CIFAR-10-C / CIFAR-100-C and which the paper's authors add to the 15 for their
``Acc_C-all-19`` score. Line numbers are those of the scripts at commit 8190fe3.
"""
from __future__ import annotations

import math

# name -> five severities, for 32 px images (source: make_cifar_c.py)
PARAMS_32: dict[str, list] = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],  # noise std on the [0, 1] scale
    "shot_noise": [500, 250, 100, 75, 50],  # Poisson photons per unit intensity
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],  # salt-and-pepper fraction of values
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],  # (disk radius, alias blur sigma)
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],  # (sigma, max delta, iterations)
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],  # (radius, sigma) of the ImageMagick kernel
    "zoom_blur": [(1.0, 1.06, 0.01), (1.0, 1.11, 0.01), (1.0, 1.16, 0.01), (1.0, 1.21, 0.01), (1.0, 1.26, 0.01)],  # np.arange(start, stop, step) of zoom factors
    "snow": [  # (mean, std, zoom, threshold, blur radius, blur sigma, image weight)
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ],
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],  # (image weight, frost weight)
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],  # (fog strength, plasma wibble decay)
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],  # added to HSV value
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],  # factor on the deviation from the channel mean
    "elastic_transform": [  # (displacement alpha, displacement sigma, affine jitter), all times IMSIZE = 32
        (32 * 0, 32 * 0, 32 * 0.08),
        (32 * 0.05, 32 * 0.2, 32 * 0.07),
        (32 * 0.08, 32 * 0.06, 32 * 0.06),
        (32 * 0.1, 32 * 0.04, 32 * 0.05),
        (32 * 0.1, 32 * 0.03, 32 * 0.03),
    ],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],  # downscale factor (PIL box filter both ways)
    "jpeg_compression": [80, 65, 58, 50, 40],  # JPEG quality
    # the four extra corruptions (make_cifar_c.py:152, :159, :279-283, :353)
    "speckle_noise": [0.06, 0.1, 0.12, 0.16, 0.2],  # std of the multiplicative noise x + x * N(0, c)
    "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1],  # skimage gaussian sigma
    "spatter": [  # (liquid mean, liquid std, liquid blur sigma, threshold, strength (water) or mud blur sigma, mud?)
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ],
    "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],  # HSV saturation * c0 + c1
}

# name -> five severities, for 64 px images (source: make_tinyimagenet_c.py)
PARAMS_64: dict[str, list] = {
    "gaussian_noise": [0.04, 0.08, 0.12, 0.15, 0.18],
    "shot_noise": [250, 100, 50, 30, 15],
    "impulse_noise": [0.01, 0.02, 0.05, 0.08, 0.14],
    "defocus_blur": [(0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)],
    "glass_blur": [(0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)],
    "motion_blur": [(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)],
    "zoom_blur": [(1.0, 1.06, 0.01), (1.0, 1.11, 0.01), (1.0, 1.16, 0.01), (1.0, 1.21, 0.01), (1.0, 1.26, 0.01)],
    "snow": [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
    ],
    "frost": [(1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)],
    "fog": [(0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)],
    "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],
    "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
    "elastic_transform": [  # IMSIZE = 64
        (64 * 0, 64 * 0, 64 * 0.08),
        (64 * 0.05, 64 * 0.3, 64 * 0.06),
        (64 * 0.1, 64 * 0.08, 64 * 0.06),
        (64 * 0.1, 64 * 0.03, 64 * 0.03),
        (64 * 0.16, 64 * 0.03, 64 * 0.02),
    ],
    "pixelate": [0.9, 0.8, 0.7, 0.6, 0.5],
    "jpeg_compression": [65, 58, 50, 40, 25],
    # the four extra corruptions (make_tinyimagenet_c.py:270, :277, :397-401, :471)
    "speckle_noise": [0.15, 0.2, 0.25, 0.3, 0.35],
    "gaussian_blur": [0.5, 0.75, 1, 1.25, 1.5],
    "spatter": [
        (0.62, 0.1, 0.7, 0.7, 0.6, 0),
        (0.65, 0.1, 0.8, 0.7, 0.6, 0),
        (0.65, 0.3, 1, 0.69, 0.6, 0),
        (0.65, 0.1, 0.7, 0.68, 0.6, 1),
        (0.65, 0.1, 0.5, 0.67, 0.6, 1),
    ],
    "saturate": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)],
}

# name -> five severities, for 224 px images (source: make_imagenet_c.py, the lines of each ``c = [...]``)
PARAMS_224: dict[str, list] = {
    "gaussian_noise": [0.08, 0.12, 0.18, 0.26, 0.38],  # :250
    "shot_noise": [60, 25, 12, 5, 3],  # :257
    "impulse_noise": [0.03, 0.06, 0.09, 0.17, 0.27],  # :264
    "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],  # :315
    "glass_blur": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],  # :298
    "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],  # :329
    "zoom_blur": [(1.0, 1.11, 0.01), (1.0, 1.16, 0.01), (1.0, 1.21, 0.02), (1.0, 1.26, 0.02), (1.0, 1.31, 0.03)],  # :347-351
    "snow": [  # :407-411
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ],
    "frost": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],  # :391-395
    "fog": [(1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)],  # :382
    "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],  # :498
    "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],  # :490
    "elastic_transform": [  # :540-544, "244 should have been 224, but ultimately nothing is incorrect" (:540)
        (244 * 2, 244 * 0.7, 244 * 0.1),
        (244 * 2, 244 * 0.08, 244 * 0.2),
        (244 * 0.05, 244 * 0.01, 244 * 0.02),
        (244 * 0.07, 244 * 0.01, 244 * 0.02),
        (244 * 0.12, 244 * 0.01, 244 * 0.02),
    ],
    "pixelate": [0.6, 0.5, 0.4, 0.3, 0.25],  # :530
    "jpeg_compression": [25, 18, 15, 10, 7],  # :520
    "speckle_noise": [0.15, 0.2, 0.35, 0.45, 0.6],  # :271
    "gaussian_blur": [1, 2, 3, 4, 6],  # :290
    "spatter": [  # :435-439
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    ],
    "saturate": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)],  # :509
}

# How the frost texture is prepared: make_cifar_c.py / make_tinyimagenet_c.py shrink each texture by this
# factor (cv2.resize, bilinear) before taking a random crop of the image size; make_imagenet_c.py crops
# the texture as it is (:398-401).
FROST_TEXTURE_SCALE = {32: 0.2, 64: 0.3, 224: 1.0}

PARAMS = {32: PARAMS_32, 64: PARAMS_64, 224: PARAMS_224}
MIN_IMAGE_SIZE = 8  # smaller images have no room for the blurs' kernels


def table_size(image_size: int) -> int:
    """The official table ``image_size`` uses: its own, else the nearest by ratio (see the module doc)."""
    if int(image_size) < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be at least {MIN_IMAGE_SIZE} px, got {image_size}")
    return min(PARAMS, key=lambda size: abs(math.log(image_size / size)))


def severity_params(name: str, severity: int, image_size: int):
    table_side = table_size(image_size)
    table = PARAMS[table_side]
    if name not in table:
        raise ValueError(f"unknown corruption {name!r}; expected one of {', '.join(table)}")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    values = table[name][int(severity) - 1]
    if name == "elastic_transform" and image_size != table_side:  # IMSIZE multiples in the scripts
        values = tuple(value * image_size / table_side for value in values)
    return values


def frost_texture_scale(image_size: int) -> float:
    """The texture scale of ``image_size``'s table, times image_size / table size (a crop then covers the
    same share of the texture as at the table's size)."""
    table_side = table_size(image_size)
    return FROST_TEXTURE_SCALE[table_side] * image_size / table_side
