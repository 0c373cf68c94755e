"""Training-pipeline throughput: images/s out of ``create_train_loader`` at 32 px and 64 px, with and
without the Stylizer (paper probabilities: synthetic ratio 0.5, λs = 0.4, λo = 0.1).

32 px: CIFAR-10 layout (pixels in memory; resident on the GPU when there is one).
64 px: TinyImageNet layout (JPEG files, decoded by DALI: "mixed" on a GPU) + 64 px synthetic pixels.
Both with TrivialAugmentWide and Random Erasing (p = 0.3), in the authors' order (Stylizer on the
raw image, then crop/flip, TA, RE). Steady state: the pipelines are built and one batch drawn before
each timed round. Goal on a GPU: at least 3x the images/s the trainer consumes (compare
``images_per_second`` with the trainer's bench). Style-transfer weights are random: the cost does
not depend on them.

``test_epoch_start`` times what a new epoch costs before its first batch, and records the seconds
spent building DALI pipelines per epoch (``build_seconds_per_epoch``; the graphs used to be rebuilt
every epoch to reseed them, about 2 s on 2 cores, and are now built once: ``first_build_seconds``).

``test_backend_throughput`` sets the two libraries of the loader's stage 2 side by side
(``--augment-backend dali|torch``: the DALI graph, or batched torch on the same draws), 32 px, batch
256 (cpu mode) or 512, TrivialAugmentWide and Random Erasing on, no Stylizer. Where DALI is not
installed its case is skipped and the other cases run on the torch backend.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.stylizers import random_weight_stylizer
from tests import data_formats
from fastnst.train.data import create_train_loader, make_demo_dataset
from fastnst.train.data.backend import dali_available
from fastnst.train.config import Augmentation

# Per bench mode: batch, timed steps per round (plain, stylized), rounds, data set sizes.
SIZES = {
    "cpu": dict(batch=64, steps=3, stylized_steps=1, rounds=3,  # VGG + decoder on a 2-core CPU: ~2 s a batch
                num_32px=1000, jpegs_per_class=2, num_64px_synthetic=400, backend_batch=256, backend_steps=2),
    "full": dict(batch=512, steps=20, stylized_steps=20, rounds=10,
                 num_32px=20000, jpegs_per_class=50, num_64px_synthetic=10000, backend_batch=512, backend_steps=20),
}


@pytest.fixture(scope="module")
def sizes(bench_mode):
    return SIZES[bench_mode]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, sizes):
    root = tmp_path_factory.mktemp("pipeline_bench")
    make_demo_dataset(root, num_train=sizes["num_32px"], num_test=100, num_synthetic=sizes["num_32px"])
    data_formats.write_tinyimagenet(root, per_class=sizes["jpegs_per_class"], num_val=10)
    data_formats.write_synthetic_npz(root / "edm64.npz", count=sizes["num_64px_synthetic"], size=64, num_classes=200)
    return root


def _loader(data_root, image_size: int, batch: int, stylizer, device: torch.device, backend: str = "auto"):
    dataset, synthetic = ("demo", data_root / "demo" / "synthetic.npz") if image_size == 32 else \
        ("tinyimagenet", data_root / "edm64.npz")
    loader = create_train_loader(dataset, data_root, batch, synthetic_path=synthetic, synthetic_ratio=0.5,
                                 stylizer=stylizer, device=str(device),
                                 augmentation=Augmentation(random_erasing_prob=0.3, ta_or_style_synthetic=True,
                                                           augment_backend=backend))
    return loader, dataset


def _time_batches(benchmark, loader, steps: int, rounds: int, cuda_sync):
    """Rounds of ``steps`` batches, each round in a new iterator whose first batch is not timed."""
    assert len(loader) > steps, "data set too small for a timed round"

    def setup():
        batches = iter(loader)
        next(batches)  # builds the pipelines: not part of the steady state
        return (batches,), {}

    def run(batches):
        for _ in range(steps):
            images, labels, _ = next(batches)
        cuda_sync()
        return images

    return benchmark.pedantic(run, setup=setup, rounds=rounds, iterations=1)


def _stylizer(device: torch.device):
    # Native size: the pipeline's own throughput; 224 px style transfer is timed in test_train_step_bench.
    return random_weight_stylizer(device, prob_synthetic=0.4, prob_real=0.1, resolution=None)


@pytest.mark.parametrize("stylize", [False, True], ids=["plain", "stylized"])
@pytest.mark.parametrize("image_size", [32, 64], ids=["32px", "64px"])
def test_pipeline_throughput(benchmark, data_root, sizes, image_size, stylize, bench_device, cuda_sync):
    batch = sizes["batch"]
    stylizer = _stylizer(bench_device) if stylize else None
    loader, dataset = _loader(data_root, image_size, batch, stylizer, bench_device)
    steps = sizes["stylized_steps"] if stylize else sizes["steps"]
    images = _time_batches(benchmark, loader, steps, sizes["rounds"], cuda_sync)
    assert images.shape == (batch, 3, image_size, image_size) and torch.isfinite(images).all()
    if not benchmark.stats:  # --benchmark-disable: ran once, untimed
        return
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        dtype="uint8 in, float32 out", shape=[batch, 3, image_size, image_size], source=dataset,
        synthetic_ratio=0.5, stylizer="fastnst.Stylizer(0.4, 0.1)" if stylize else None,
        steps_per_round=steps, images_per_second=batch * steps / median,
        numpy=np.__version__, augment_backend=loader.backend)


@pytest.mark.parametrize("backend", ["dali", "torch"])
def test_backend_throughput(benchmark, data_root, sizes, backend, bench_device, cuda_sync):
    if backend == "dali" and not dali_available():
        pytest.skip("DALI is not installed")
    batch, steps = sizes["backend_batch"], sizes["backend_steps"]
    loader, dataset = _loader(data_root, 32, batch, None, bench_device, backend)
    images = _time_batches(benchmark, loader, steps, sizes["rounds"], cuda_sync)
    assert images.shape == (batch, 3, 32, 32) and torch.isfinite(images).all()
    if not benchmark.stats:
        return
    benchmark.extra_info.update(dtype="uint8 in, float32 out", shape=[batch, 3, 32, 32], source=dataset,
                                augment_backend=backend, steps_per_round=steps,
                                images_per_second=batch * steps / benchmark.stats.stats.median)


@pytest.mark.parametrize("image_size", [32, 64], ids=["32px", "64px"])
def test_epoch_start(benchmark, data_root, sizes, image_size, bench_device, cuda_sync):
    loader, dataset = _loader(data_root, image_size, sizes["batch"], None, bench_device)
    loader.set_epoch(0)
    next(iter(loader))  # the first epoch builds the pipelines
    first_build_seconds = loader.build_seconds
    epochs = iter(range(1, 1000))

    def run():
        loader.set_epoch(next(epochs))
        images, *_ = next(iter(loader))
        cuda_sync()
        return images

    rounds = sizes["rounds"]
    images = benchmark.pedantic(run, rounds=rounds, iterations=1)
    assert images.shape[1:] == (3, image_size, image_size)
    if not benchmark.stats:
        return
    benchmark.extra_info.update(
        source=dataset, first_build_seconds=first_build_seconds,
        build_seconds_per_epoch=(loader.build_seconds - first_build_seconds) / rounds)
