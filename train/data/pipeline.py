"""The DALI graphs of the training pipeline, as two stages around the Stylizer.

Design note -- the order and the cut:
The authors stylize the raw image, then flip and crop it (zero padding), then apply
TrivialAugmentWide (unless the sample was chosen for style transfer and its source's strategy is
"TAorStyle") and Random Erasing, then normalize (``experiments/custom_datasets.py:431-447``,
``experiments/data.py:162-174, 202-205``). The Stylizer (VGG encoder, fused AdaIN, decoder) is a
torch module, and a torch module cannot run inside a DALI graph efficiently
(``fn.torch_python_function`` runs per batch under the GIL, without torch.compile, on DALI's
stream), so the graph is cut at the Stylizer:

    stage 1            source rows; JPEG files decoded by DALI          uint8 NHWC, uncropped
                       (``decode_pipeline``; pixel arrays are gathered in torch, no DALI)
    Stylizer (torch)   on the (N, 3, H, W) channels_last view of that memory; reports per sample
                       which rows it chose (``StylePlan.chosen``)        uint8
    stage 2 (DALI)     flip + zero-padded crop -> TrivialAugmentWide      float, normalized
                       (identity for a skipped sample) -> Random Erasing (value 0, before
                       normalizing) -> normalize  (``augment_pipeline``)

An image folder trained with random-resized crops (ImageNet-style, images of any size) cuts them in stage 1
(``decode_pipeline`` with ``crop_size``; ``crop_resize_pipeline`` for pixel arrays), since the Stylizer
needs a batch of one size; stage 2's crop is then the identity and only the flip is drawn.

Tensors cross the cut through ``external_source`` / ``feed_input`` as dense batches; on a GPU they
stay on the device (DALI GPU buffers <-> torch CUDA tensors, ordered on the loader's side stream),
and NHWC memory viewed as NCHW channels_last costs nothing. Everything random is per sample and
drawn on the host (``draws.py``): stage 2 holds no random operator, it is fed the crop offsets,
flips, TrivialAugment operations and magnitudes and erasing boxes through ``external_source``.
So both graphs are built once per run (building the TrivialAugment graph costs about 2 s on a
2-core CPU; it used to be rebuilt every epoch to reseed it), and an epoch's augmentations are a
function of (seed, epoch, rank, step): a resumed run replays them exactly. TrivialAugmentWide
is torchvision v2's, rebuilt from DALI operators (``trivial_augment.py``) and applied with
``auto_aug.core.select``, one operation per sample (torchvision v2 / kornia would pick one per
batch call).

Why ``external_source`` and not ``fn.readers.file`` for JPEG sets: the batch composition (real
and synthetic rows at a fixed ratio, this rank's shard, a function of (seed, epoch)) is decided
in Python by ``sampler.MixedSampler`` for every source alike; feeding the encoded bytes ourselves
also lets a bad file be reported by its path (DALI's decoder error names none). The decoding
itself is still DALI's (``fn.decoders.image``, "mixed" = nvJPEG on a GPU). Bad files: every
training JPEG is decode-checked once before training (``jpeg_check``), because DALI's decoder
turns some corrupt files into noise without an error and fails whole batches on others; a
decode pipeline that raised anyway is dropped at once and rebuilt (``train_loader``).
"""
from __future__ import annotations

import os

import nvidia.dali.fn as fn
import nvidia.dali.types as types
from nvidia.dali import pipeline_def

from fastnst.train.data.trivial_augment import apply_trivial_augment


def pipeline_options(batch_size: int, device: str, seed: int = 0) -> dict:
    """Common ``pipeline_def`` arguments: CPU operators only (device_id=None) unless on CUDA.

    ``seed`` only matters to DALI operators that draw, and these graphs have none (see the design note).
    """
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index
        device_id = torch.cuda.current_device() if index is None else index
    else:
        device_id = None
    num_threads = max(1, min(8, os.cpu_count() or 1))
    return dict(batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=seed % 2**31,
                prefetch_queue_depth=1, exec_dynamic=True)


def _per_sample(name: str, dtype):
    """A host-drawn per-sample value (``draws.AugmentDraws``), fed by name."""
    return fn.external_source(name=name, device="cpu", dtype=dtype)


@pipeline_def(enable_conditionals=True)
def decode_pipeline(on_gpu: bool, crop_size: int | None = None):
    """Stage 1 for image files: "data" holds one encoded file per sample (JPEG, PNG, ...); decoded RGB
    (a grey image as three equal channels), uncropped; or, with ``crop_size``, the host-drawn window
    ("crop_start", "crop_shape": (row, column) pixels, ``draws.draw_resized_crops``) decoded alone
    (nvJPEG decodes only that region) and resized to ``crop_size`` squares: torchvision's
    ``RandomResizedCrop``, with DALI's antialiased linear resize in place of torchvision's bilinear one."""
    data = fn.external_source(name="data", device="cpu", dtype=types.UINT8)
    device = "mixed" if on_gpu else "cpu"
    if crop_size is None:
        return fn.decoders.image(data, device=device, output_type=types.RGB)
    start, shape = _per_sample("crop_start", types.INT32), _per_sample("crop_shape", types.INT32)
    window = fn.decoders.image_slice(data, start, shape, device=device, output_type=types.RGB, normalized_anchor=False,
                                     normalized_shape=False, axis_names="HW")
    return fn.resize(window, size=[crop_size, crop_size], interp_type=types.INTERP_LINEAR, antialias=True)


@pipeline_def(enable_conditionals=True)
def crop_resize_pipeline(source_device: str, crop_size: int):
    """Stage 1's random-resized crops of pixel arrays (an image folder's synthetic images): the window of
    "images" given by "crop_start" and "crop_shape" ((row, column) pixels), resized as ``decode_pipeline``."""
    images = fn.external_source(name="images", device=source_device, layout="HWC", dtype=types.UINT8, no_copy=False)
    start, shape = _per_sample("crop_start", types.INT32), _per_sample("crop_shape", types.INT32)
    window = fn.slice(images, start=start, shape=shape, axis_names="HW")
    return fn.resize(window, size=[crop_size, crop_size], interp_type=types.INTERP_LINEAR, antialias=True)


@pipeline_def(enable_conditionals=True)
def augment_pipeline(image_size: int, source_device: str, mean: tuple, std: tuple, trivial_augment_wide: bool,
                     random_erasing: bool):
    """Stage 2: flip + zero-padded crop, TrivialAugmentWide, Random Erasing, normalize to float HWC.

    Every random choice comes in as a per-sample input (``draws.AugmentDraws.feed``). TA is torchvision
    v2's ``TrivialAugmentWide()`` as the authors apply it (``trivial_augment.py``); erased boxes are 0
    before normalization (black), as ``RandomErasing(value=0)`` applied to [0, 1] tensors.
    """
    images = fn.external_source(name="images", device=source_device, layout="HWC", dtype=types.UINT8, no_copy=False)
    images = fn.slice(images, start=_per_sample("crop_start", types.INT32), shape=[image_size, image_size],
                      axis_names="HW", out_of_bounds_policy="pad", fill_values=0)
    images = fn.flip(images, horizontal=_per_sample("flip", types.INT32))
    if trivial_augment_wide:
        images = apply_trivial_augment(images, _per_sample("ta_op", types.INT32), _per_sample("ta_bin", types.INT32),
                                       _per_sample("ta_negate", types.INT32), image_size)
    if random_erasing:
        anchor, shape = _per_sample("erase_anchor", types.FLOAT), _per_sample("erase_shape", types.FLOAT)
        if _per_sample("erase", types.BOOL):
            images = fn.erase(images, anchor=anchor, shape=shape, axis_names="HW", fill_value=0)
    return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="HWC", mean=[255.0 * m for m in mean],
                                    std=[255.0 * s for s in std])
