"""The DALI graphs of the training pipeline, as two stages around the Stylizer.

Design note -- why two DALI pipelines and not one:
The Stylizer (VGG encoder, fused AdaIN, decoder) is a torch module that must see the batch after
crop/flip and before TrivialAugmentWide, per the paper. A torch module cannot run inside a DALI
graph efficiently (``fn.torch_python_function`` runs per batch under the GIL, without
torch.compile, on DALI's stream), so the graph is cut at the Stylizer:

    stage 1 (DALI)  source -> [decode] -> pad-4 random crop + horizontal flip     uint8 NHWC
    Stylizer (torch) on the (N, 3, H, W) channels_last view of that memory        uint8
    stage 2 (DALI)  TrivialAugmentWide -> Random Erasing -> normalize              float

Tensors cross the cut through ``external_source`` / ``feed_input`` as dense batches; on a GPU they
stay on the device (DALI GPU buffers <-> torch CUDA tensors on the current stream), and NHWC
memory viewed as NCHW channels_last costs nothing. Everything random here is per sample:
DALI's random operators draw one value per sample, and ``trivial_augment_wide`` picks one
operation per sample (torchvision v2 / kornia would pick one per batch call).

Why ``external_source`` and not ``fn.readers.file`` for JPEG sets: the batch composition (real
and synthetic rows at a fixed ratio, this rank's shard, a function of (seed, epoch)) is decided
in Python by ``sampler.MixedSampler`` for every source alike; feeding the encoded bytes ourselves
also lets a bad file be reported by its path (DALI's decoder error names none). The decoding
itself is still DALI's (``fn.decoders.image``, "mixed" = nvJPEG on a GPU).

Determinism: DALI draws from per-operator generators seeded by the pipeline seed, so both
pipelines are rebuilt each epoch with a seed derived from (seed, epoch, rank). That costs about
a second per epoch on a 2-core CPU (tracing TrivialAugment's conditional graph), once per epoch.
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager

import numpy as np
import nvidia.dali.fn as fn
import nvidia.dali.math as dali_math
import nvidia.dali.types as types
from nvidia.dali import pipeline_def
from nvidia.dali.auto_aug import trivial_augment

CROP_PADDING = 4  # pixels of zero padding around the image before the random crop (as torchvision RandomCrop)
ERASING_SCALE = (0.02, 0.33)  # torchvision RandomErasing defaults: area fraction ...
ERASING_RATIO = (0.3, 3.3)    # ... aspect ratio range ...
ERASING_ATTEMPTS = 10         # ... and draws before giving up


@contextmanager
def _quiet_dali_alias_deprecations():
    """Drop DALI's "`fn.experimental.X` is now deprecated" warnings raised by its own auto_aug code.

    DALI forces a "default" filter around those warnings, so a plain filter cannot silence them and
    they would print at every (per-epoch) pipeline build; recording them here and re-emitting the
    rest keeps every other warning visible.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        text = str(warning.message)
        if issubclass(warning.category, DeprecationWarning) and "nvidia.dali.fn.experimental." in text:
            continue
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def pipeline_options(batch_size: int, device: str, seed: int) -> dict:
    """Common ``pipeline_def`` arguments: CPU operators only (device_id=None) unless on CUDA."""
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index
        device_id = torch.cuda.current_device() if index is None else index
    else:
        device_id = None
    num_threads = max(1, min(8, os.cpu_count() or 1))
    return dict(batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=seed % 2**31,
                prefetch_queue_depth=1, exec_dynamic=True)


def random_crop_flip(images, image_size: int):
    """Per sample: a random image_size crop of the zero-padded image (offset -4..4), then a coin-flip mirror."""
    offsets = fn.random.uniform(values=list(range(-CROP_PADDING, CROP_PADDING + 1)), shape=[2], dtype=types.INT32)
    images = fn.slice(images, start=offsets, shape=[image_size, image_size], axis_names="HW",
                      out_of_bounds_policy="pad", fill_values=0)
    return fn.flip(images, horizontal=fn.random.coin_flip())


def random_erasing(images, probability: float, image_size: int, fill: list[float]):
    """torchvision RandomErasing per sample: with ``probability`` erase a random box to ``fill``.

    As torchvision: up to 10 (area, aspect) draws, the first box that fits strictly inside the image
    is used, none fitting means no erasing; the box position is uniform over where it fits.
    """
    area = fn.random.uniform(range=ERASING_SCALE, shape=[ERASING_ATTEMPTS]) * float(image_size * image_size)
    log_ratio = (float(np.log(ERASING_RATIO[0])), float(np.log(ERASING_RATIO[1])))
    aspect = dali_math.exp(fn.random.uniform(range=log_ratio, shape=[ERASING_ATTEMPTS]))
    heights = dali_math.floor(dali_math.sqrt(area * aspect) + 0.5)
    widths = dali_math.floor(dali_math.sqrt(area / aspect) + 0.5)
    fits = fn.cast((heights < image_size) & (widths < image_size), dtype=types.FLOAT)
    # Attempt i gets priority ATTEMPTS - i where it fits, 0 where not: the largest marks the first fit.
    priority = fits * types.Constant(np.arange(ERASING_ATTEMPTS, 0, -1, dtype=np.float32))
    best = fn.reductions.max(priority)
    first_fit = fn.cast(priority == best, dtype=types.FLOAT) * fits
    if fn.random.coin_flip(probability=probability, dtype=types.BOOL) & (best > 0):
        height, width = fn.reductions.sum(heights * first_fit), fn.reductions.sum(widths * first_fit)
        top = dali_math.floor(fn.random.uniform(range=(0.0, 1.0)) * (image_size - height + 1))
        left = dali_math.floor(fn.random.uniform(range=(0.0, 1.0)) * (image_size - width + 1))
        images = fn.erase(images, anchor=fn.stack(top, left), shape=fn.stack(height, width), axis_names="HW",
                          fill_value=fill)
    return images


@pipeline_def(enable_conditionals=False)
def array_crop_pipeline(image_size: int, source_device: str):
    """Stage 1 for pixel arrays (CIFAR, EDM .npz): fed dense uint8 NHWC batches ("images")."""
    images = fn.external_source(name="images", device=source_device, layout="HWC", dtype=types.UINT8, no_copy=False)
    return random_crop_flip(images, image_size)


@pipeline_def(enable_conditionals=True)
def jpeg_crop_pipeline(image_size: int, on_gpu: bool, mixed_with_pixels: bool):
    """Stage 1 for JPEG sets: "data" holds per sample the encoded file, or (when "is_synthetic") raw
    H*W*3 pixels of a synthetic image; only the encoded samples go through the decoder."""
    data = fn.external_source(name="data", device="cpu", dtype=types.UINT8)
    decoder_device = "mixed" if on_gpu else "cpu"
    if mixed_with_pixels:
        is_synthetic = fn.external_source(name="is_synthetic", device="cpu", dtype=types.BOOL)
        if is_synthetic:
            images = fn.reshape(data, shape=[image_size, image_size, 3], layout="HWC")
            if on_gpu:
                images = images.gpu()
        else:
            images = fn.decoders.image(data, device=decoder_device, output_type=types.RGB)
    else:
        images = fn.decoders.image(data, device=decoder_device, output_type=types.RGB)
    return random_crop_flip(images, image_size)


@pipeline_def(enable_conditionals=True)
def augment_normalize_pipeline(image_size: int, source_device: str, mean: tuple, std: tuple,
                               trivial_augment_wide: bool, random_erasing_prob: float):
    """Stage 2: TrivialAugmentWide and Random Erasing per sample, then normalize to float HWC.

    Matches torchvision's defaults: nearest-neighbour warps filled with 0, translations up to 32 px;
    erased boxes take the data set mean, i.e. 0 after normalization as RandomErasing(value=0) after
    Normalize.
    """
    images = fn.external_source(name="images", device=source_device, layout="HWC", dtype=types.UINT8, no_copy=False)
    if trivial_augment_wide:
        with _quiet_dali_alias_deprecations():
            images = trivial_augment.trivial_augment_wide(images, fill_value=0, interp_type=types.INTERP_NN)
    mean_255 = [255.0 * m for m in mean]
    if random_erasing_prob > 0:
        images = random_erasing(images, random_erasing_prob, image_size, fill=mean_255)
    return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="HWC", mean=mean_255,
                                    std=[255.0 * s for s in std])
