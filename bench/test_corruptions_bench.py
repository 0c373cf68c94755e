"""Corruption generation throughput: images/s of ``train.corruptions.corrupt`` per corruption,
the time to generate a whole CIFAR-10-C (15 corruptions x 5 severities x 10000 images), and the
evaluator's classifier throughput per memory layout (NCHW vs channels_last, float32, inference
mode, as train.evaluate runs it), which decides train.evaluate.EVAL_MEMORY_FORMAT.

cpu mode: small batches (64 images at 32 px, 16 at 64 px) and 64 images for the full-set
estimate (extrapolated to 750k images, recorded as ``cifar10_c_seconds_extrapolated``).
full mode (a GPU): 10000 images at 32 px (a CIFAR test set), 2000 at 64 px, and the real
CIFAR-10-C generation (goal: under 60 s on an H100; the official numpy scripts take hours).
Inputs are random uint8 images: the cost of every corruption is independent of the content.
Frost uses the official textures when $FASTNST_FROST_DIR points at them (recorded in extra_info).
Evaluator: WRN-16-2 and WRN-28-4 on 32 px batches (cpu mode 64 / 16 images, full mode 500, the
evaluator's default batch), random weights (the cost does not depend on them).
"""
from __future__ import annotations

import warnings

import pytest
import torch

from fastnst.train.corruptions import ALL_CORRUPTIONS, CORRUPTIONS, SEVERITIES, corrupt, frost_source
from fastnst.train.models import create_model

BATCH = {"cpu": {32: 64, 64: 16}, "full": {32: 10000, 64: 2000}}
FULL_SET_IMAGES = {"cpu": 64, "full": 10000}


def _images(count: int, size: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator).to(device)


def _info(benchmark, **facts) -> None:
    benchmark.extra_info.update(dtype="uint8", frost=frost_source(), **facts)


@pytest.mark.filterwarnings("ignore:frost")
@pytest.mark.parametrize("image_size", [32, 64], ids=["32px", "64px"])
@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_corruption_throughput(benchmark, name, image_size, bench_mode, bench_device, cuda_sync):
    images = _images(BATCH[bench_mode][image_size], image_size, bench_device)
    generator = torch.Generator(device=bench_device).manual_seed(0)

    def run():
        out = corrupt(images, name, 3, generator=generator)
        cuda_sync()
        return out

    out = benchmark(run)
    assert out.shape == images.shape and out.dtype == torch.uint8
    if not benchmark.stats:  # --benchmark-disable: ran once, untimed
        return
    median = benchmark.stats.stats.median
    _info(benchmark, corruption=name, severity=3, shape=list(images.shape), images_per_second=len(images) / median)


@pytest.mark.filterwarnings("ignore:frost")
def test_cifar10_c_generation(benchmark, bench_mode, bench_device, cuda_sync):
    images = _images(FULL_SET_IMAGES[bench_mode], 32, bench_device)
    generator = torch.Generator(device=bench_device).manual_seed(0)

    def run():
        for name in CORRUPTIONS:
            for severity in SEVERITIES:
                corrupt(images, name, severity, generator=generator)
        cuda_sync()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark.pedantic(run, rounds=3 if bench_mode == "full" else 1, iterations=1, warmup_rounds=1)
    if not benchmark.stats:  # --benchmark-disable: ran once, untimed
        return
    median = benchmark.stats.stats.median
    _info(benchmark, shape=list(images.shape), sets=len(CORRUPTIONS) * len(SEVERITIES),
          images_per_second=len(images) * 75 / median, cifar10_c_seconds_extrapolated=median * 10000 / len(images))


EVAL_BATCH = {"cpu": {"wrn16_2": 64, "wrn28_4": 16}, "full": {"wrn16_2": 500, "wrn28_4": 500}}
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("model_name", ["wrn16_2", "wrn28_4"])
def test_eval_throughput(benchmark, model_name, layout, bench_mode, bench_device, cuda_sync):
    """One evaluation batch through the classifier, float32, model and input in ``layout``."""
    memory_format = LAYOUTS[layout]
    torch.manual_seed(0)
    model = create_model(model_name, 10).to(bench_device, memory_format=memory_format).eval()
    batch = torch.randn(EVAL_BATCH[bench_mode][model_name], 3, 32, 32, device=bench_device)
    batch = batch.contiguous(memory_format=memory_format)

    def run():
        with torch.inference_mode():
            out = model(batch)
        cuda_sync()
        return out

    out = benchmark(run)
    assert out.shape == (len(batch), 10)
    if not benchmark.stats:  # --benchmark-disable: ran once, untimed
        return
    benchmark.extra_info.update(model=model_name, layout=layout, dtype="float32", batch=len(batch),
                                images_per_second=len(batch) / benchmark.stats.stats.median)
