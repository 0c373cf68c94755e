"""The 15 common corruptions of Hendrycks & Dietterich (ICLR 2019) and their 4 extra
("validation") corruptions, batched in PyTorch.

``corrupt(images, name, severity, generator=...)`` takes and returns uint8
(N, 3, H, W) square images of any size on any device; every operation runs on that
device. Parameters are the official per-resolution tables (``params.py``: 32, 64 and
224 px; another size takes the nearest table, ``table_size``);
where our batched version departs from the official scripts, the function's
docstring and docs/corruptions.md say how and by how much.
"""
from __future__ import annotations

import os

import torch

from fastnst.train.corruptions import blur, digital, noise, spatter, weather
from fastnst.train.corruptions.frost import FROST_DIR_ENV, frost_source
from fastnst.train.corruptions.params import PARAMS, frost_texture_scale, severity_params, table_size

# Official order (the benchmark's tables and the -C file listings use it).
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
# The scripts' four extra corruptions, in the order of their listings (make_cifar_c.py:439-442);
# they ship in CIFAR-10-C / CIFAR-100-C, and the authors' Acc_C-all-19 adds them to the 15.
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CORRUPTIONS: tuple[str, ...] = CORRUPTIONS + EXTRA_CORRUPTIONS
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

_RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog",
           "elastic_transform", "speckle_noise", "spatter"}
_FUNCTIONS = {
    "gaussian_noise": noise.gaussian_noise,
    "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise,
    "defocus_blur": blur.defocus_blur,
    "glass_blur": blur.glass_blur,
    "motion_blur": blur.motion_blur,
    "zoom_blur": blur.zoom_blur,
    "snow": weather.snow,
    "frost": weather.frost,
    "fog": weather.fog,
    "brightness": digital.brightness,
    "contrast": digital.contrast,
    "elastic_transform": digital.elastic_transform,
    "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
    "speckle_noise": noise.speckle_noise,
    "gaussian_blur": blur.gaussian_blur,
    "spatter": spatter.spatter,
    "saturate": digital.saturate,
}


def seeded_generator(seed: int, name: str, severity: int, device) -> torch.Generator:
    """The generator of one (corruption, severity) set of a generated -C set: ``train.evaluate``'s in memory and
    ``train.corruptions.generate``'s on disk draw the same numbers for the same seed and batch size."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed * 1_000_003 + ALL_CORRUPTIONS.index(name) * 10 + severity)
    return generator


def corrupt(
    images: torch.Tensor,
    name: str,
    severity: int,
    *,
    image_size: int | None = None,
    generator: torch.Generator | None = None,
    frost_dir: str | os.PathLike | None = None,
) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1..5) to uint8 images (N, 3, H, W).

    image_size: the images' side (defaults to their height; a check): it picks the
    table, 32 (CIFAR), 64 (TinyImageNet), 224 (ImageNet) or the nearest. generator: a torch.Generator on the images' device, for
    reproducible random corruptions (None uses the global RNG). frost_dir:
    folder with the official frost textures (else $FASTNST_FROST_DIR, else a
    procedural stand-in with a warning).
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a uint8 tensor of shape (N, 3, H, W), got {getattr(images, 'dtype', type(images))} {tuple(getattr(images, 'shape', ()))}")
    height, width = images.shape[-2:]
    if height != width:
        raise ValueError(f"corruptions need square images, got {height}x{width}")
    image_size = int(height) if image_size is None else int(image_size)
    if image_size != height:
        raise ValueError(f"image_size={image_size} but the images are {height}x{width}; the official tables are per resolution")
    if name not in _FUNCTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of {', '.join(ALL_CORRUPTIONS)}")
    if generator is not None and generator.device.type != images.device.type:
        raise ValueError(f"generator is on {generator.device} but images are on {images.device}")
    params = severity_params(name, severity, image_size)
    if images.shape[0] == 0:
        return images.clone()
    params = params if isinstance(params, tuple) else (params,)
    images = images.contiguous()
    keywords = {}
    if name in _RANDOM:
        keywords["generator"] = generator
    if name == "frost":
        keywords.update(texture_scale=frost_texture_scale(image_size), frost_dir=frost_dir)
    return _FUNCTIONS[name](images, *params, **keywords)


__all__ = ["CORRUPTIONS", "EXTRA_CORRUPTIONS", "ALL_CORRUPTIONS", "SEVERITIES", "PARAMS", "corrupt", "frost_source", "FROST_DIR_ENV",
           "seeded_generator", "table_size"]
