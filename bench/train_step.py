"""One training step with and without style transfer, as ``train.trainer`` runs it: the headline's workload.

Used by ``bench/test_train_step_bench.py`` (pytest-benchmark timing, also ``bench/gpu_run.py``'s headline),
``bench/gpu_parts.py`` (the profiler tables and the bucket timing) and the tests.

One step = (Stylizer on the batch) + normalize + forward/backward/SGD step of the classifier, run as
``train.run`` runs it at the preset's settings (``train.step_settings.StepSettings``: channels_last; bf16
autocast and torch.compile, batch dimension dynamic, on CUDA). The batch mixes real and synthetic
images and the Stylizer draws as the ``cifar10`` preset says (the authors' config549: synthetic
ratio 0.5, λs = 0.5, λo = 0.1, αs ~ U(0.1, 1), αo = 1, nst_probability 0.95), so about 28 % of
each batch is stylized; the optimizer's settings and the full mode's batch come from the same
preset. All variants read the same ready uint8 batches, so the differences between them are the
style transfer alone. Style-transfer weights are random: the
cost does not depend on them. The ``cache`` variant draws the same samples but takes each stylized
one from a ``fastnst.CachedStylizer`` (random stored variants, K = 4, resident on the GPU as a
real run's would be when it fits): the cost of ``train.run --stylize-cache``.

Nothing in a timed round waits for the device except the final synchronize:
``TrainStepCase.mean_stylized_per_batch`` and ``last_call_rows`` count the stylized rows afterwards,
from the host-side draws and plans alone.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from bench.stylizers import random_weight_stylizer
from fastnst.stylizer import StylePlan, Stylizer, bucketed_count
from fastnst.train.config import DEFAULTS, load_preset
from fastnst.train.data import normalize
from fastnst.train.models import create_model
from fastnst.train.step_settings import StepSettings
from fastnst.train.trainer import make_optimizer

RECIPE = load_preset("cifar10")  # the workload follows the preset, so a recipe change moves the figures
SYNTHETIC_RATIO, PROB_SYNTHETIC, PROB_REAL = (RECIPE[key] for key in
                                              ("synthetic_ratio", "prob_synthetic", "prob_real"))
SIZES = {  # bench mode -> (model, batch, steps per timed round)
    "full": (RECIPE["model"], RECIPE["batch_size"], 20),
    "cpu": ("wrn10_1", 32, 2),
}
# variant -> Stylizer resolution: native size, intermediate sides (about 4x and 12x native's work at 32 px),
# the authors' 224 px (49x).
# "cache": stored variants instead of the networks (no resolution of its own).
VARIANTS = {"plain": None, "native": None, "res64": 64, "res112": 112, "paper224": 224, "cache": None}
CACHE_SIZES = {"full": (50_000, 200_000), "cpu": (1_000, 1_000)}  # bench mode -> cached (real, synthetic) images
CACHE_VARIANTS = 4
NUM_READY_BATCHES = 4


def step_settings(device: torch.device) -> StepSettings:
    """How ``train.run --dataset cifar10`` runs its step on ``device`` (compile, amp, layout): the bench's too."""
    return StepSettings.resolve({**DEFAULTS, **RECIPE}, device)


def ready_batches(count: int, batch: int, device: torch.device, image_size: int = 32,
                  num_real: int = 1_000, num_synthetic: int = 1_000):
    """Ready uint8 (N, 3, S, S) channels_last batches, half synthetic, with labels and each sample's index
    in its source (is_synthetic and the indices kept on the CPU, as the loader hands them over)."""
    generator = torch.Generator().manual_seed(1)
    out = []
    for _ in range(count):
        images = torch.randint(0, 256, (batch, 3, image_size, image_size), dtype=torch.uint8, generator=generator)
        is_synthetic = torch.randperm(batch, generator=generator) < int(SYNTHETIC_RATIO * batch)
        labels = torch.randint(0, 10, (batch,), generator=generator)
        source_index = torch.where(is_synthetic, torch.randint(num_synthetic, (batch,), generator=generator),
                                   torch.randint(num_real, (batch,), generator=generator))
        out.append((images.to(device).contiguous(memory_format=torch.channels_last), is_synthetic, labels.to(device),
                    source_index))
    return out


def random_cached_stylizer(device: torch.device, num_real: int, num_synthetic: int, image_size: int = 32):
    """A ``fastnst.CachedStylizer`` over random stored variants, at the bench's probabilities."""
    from fastnst import CachedStylizer
    from fastnst.cache_format import StylizedDataset

    rng = np.random.default_rng(0)

    def cache(source: str, count: int) -> StylizedDataset:
        return StylizedDataset(
            path=f"<random {source} cache>",
            images=rng.integers(0, 256, (count, CACHE_VARIANTS, image_size, image_size, 3), dtype=np.uint8),
            style_index=rng.integers(0, 64, (count, CACHE_VARIANTS)).astype(np.int32),
            alpha=rng.random((count, CACHE_VARIANTS)).astype(np.float32), labels=np.zeros(count, np.int64),
            meta={"settings": {"source": source, "num_styles": 64, "variants": CACHE_VARIANTS}})

    return CachedStylizer({"real": cache("real", num_real), "synthetic": cache("synthetic", num_synthetic)},
                          prob_synthetic=PROB_SYNTHETIC, prob_real=PROB_REAL,
                          nst_probability=RECIPE["nst_probability"], device=device)


@dataclass
class TrainStepCase:
    """A built workload: ``run_round()`` runs ``steps`` training steps and waits for the device."""

    variant: str
    model_name: str
    batch: int
    steps: int
    step_settings: StepSettings
    device: torch.device
    style_resolution: int | None
    model: nn.Module
    forward: Callable[..., torch.Tensor]  # the classifier, compiled or not (StepSettings.forward)
    optimizer: torch.optim.Optimizer
    stylizer: nn.Module | None
    batches: list
    label_regions: bool = False  # wrap stylize / classifier in profiler ranges (gpu_run's profile part)
    last_plan: StylePlan | None = None  # the last stylizer call's (host-side) plan
    _criterion: nn.Module = field(
        default_factory=lambda: nn.CrossEntropyLoss(label_smoothing=RECIPE["label_smoothing"]))

    def _region(self, name: str):
        return torch.profiler.record_function(name) if self.label_regions else nullcontext()

    def train_step(self, images, is_synthetic, labels, source_index) -> torch.Tensor:
        if self.stylizer is not None:
            with self._region("stylize"):
                images, self.last_plan = self.stylizer(images, is_synthetic, source_index=source_index)
        with self._region("classifier_forward"):
            inputs = normalize(images, "cifar10")
            amp_dtype = self.step_settings.amp_dtype
            with torch.autocast(self.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = self._criterion(self.forward(inputs), labels)
        with self._region("classifier_backward"):
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        with self._region("optimizer_step"):
            self.optimizer.step()
        return loss

    def run_round(self) -> torch.Tensor:
        for step in range(self.steps):
            loss = self.train_step(*self.batches[step % len(self.batches)])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return loss

    def mean_stylized_per_batch(self, num_batches: int = 100) -> float:
        """Mean stylized rows per batch, from host-side draws (no device wait); call after timing."""
        if self.stylizer is None:
            return 0.0
        counts = []
        for i in range(num_batches):
            _, is_synthetic, _, source_index = self.batches[i % len(self.batches)]
            plan = self.stylizer.draw(is_synthetic, source_index) if self.variant == "cache" else \
                self.stylizer.draw(is_synthetic)
            counts.append((plan[0] if isinstance(plan, tuple) else plan).rows.numel())
        return sum(counts) / len(counts)

    def last_call_rows(self) -> dict:
        """The last stylizer call's stylized rows and the rows its networks ran on (padded to the bucket;
        a CachedStylizer runs none); from its plan: call after timing."""
        rows = self.last_plan.rows.numel()
        bucket = self.stylizer.bucket_for(self.device) if isinstance(self.stylizer, Stylizer) else 1
        return {"stylized_rows_last_call": rows, "padded_to_last_call": bucketed_count(rows, bucket)}

    def settings(self) -> dict:
        """What a result needs to name: the figures' ``extra_info``."""
        return {
            "model": self.model_name,
            "style_resolution": "cache" if self.variant == "cache" else self.style_resolution or "native",
            "dtype": str(self.step_settings.amp_dtype or torch.float32), "shape": [self.batch, 3, 32, 32],
            "compiled": self.step_settings.compiled, "synthetic_ratio": SYNTHETIC_RATIO, "prob_synthetic": PROB_SYNTHETIC,
            "prob_real": PROB_REAL, "nst_probability": RECIPE["nst_probability"], "steps_per_round": self.steps,
        }


def build_case(variant: str, bench_mode: str, device: torch.device, *, model_name: str | None = None,
               batch: int | None = None, steps: int | None = None, style_resolution: int | None | str = "variant",
               label_regions: bool = False) -> TrainStepCase:
    """The workload of ``variant`` (a key of ``VARIANTS``) at ``bench_mode``'s sizes (each overridable), with
    ``train.run``'s step settings on ``device`` (``step_settings``).

    ``style_resolution`` replaces the variant's (e.g. 64 instead of 224 for a quick CPU run).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown train-step variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    default_model, default_batch, default_steps = SIZES[bench_mode]
    model_name, batch, steps = model_name or default_model, batch or default_batch, steps or default_steps
    settings = step_settings(device)
    resolution = VARIANTS[variant] if style_resolution == "variant" else style_resolution
    torch.manual_seed(0)
    model = settings.prepare(create_model(model_name, 10), device)
    stylizer = None
    num_real, num_synthetic = CACHE_SIZES[bench_mode]
    if variant == "cache":
        stylizer = random_cached_stylizer(device, num_real, num_synthetic)
    elif variant != "plain":
        stylizer = random_weight_stylizer(device, prob_synthetic=PROB_SYNTHETIC, prob_real=PROB_REAL,
                                          alpha_synthetic=tuple(RECIPE["alpha_synthetic"]),
                                          alpha_real=tuple(RECIPE["alpha_real"]),
                                          nst_probability=RECIPE["nst_probability"],
                                          resolution=resolution, compile=settings.compiled and device.type == "cuda")
    return TrainStepCase(
        variant=variant, model_name=model_name, batch=batch, steps=steps, step_settings=settings, device=device,
        style_resolution=resolution if variant not in ("plain", "cache") else None,
        model=model, forward=settings.forward(model), optimizer=make_optimizer(model, RECIPE),
        stylizer=stylizer, label_regions=label_regions,
        batches=ready_batches(NUM_READY_BATCHES, batch, device, num_real=num_real, num_synthetic=num_synthetic),
    )
