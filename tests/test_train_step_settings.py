"""One place for how the classifier's step runs (``train.step_settings``): compile auto, the bench's settings
equal ``train.run``'s, and the compiled step's graphs under manifold noise and a smaller last batch."""
from __future__ import annotations

import functools

import pytest
import torch
from torch._dynamo.testing import CompileCounter

from bench.train_step import build_case, step_settings
from fastnst.train.config import resolve_with_sources
from fastnst.train.models import create_model
from fastnst.train.step_settings import StepSettings
from fastnst.train.trainer import Perturbation, fit
from tests.test_train_trainer import make_tensors, tiny_config

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # resolving needs no GPU


def test_compile_auto_compiles_on_cuda_and_runs_eagerly_on_the_cpu():
    auto = {"compile": "auto", "amp": "auto"}
    assert StepSettings.resolve(auto, CUDA) == StepSettings(True, torch.bfloat16, True, True)
    assert StepSettings.resolve(auto, CPU) == StepSettings(False, None, True, False)
    assert StepSettings.resolve({"compile": True, "amp": "none"}, CPU).compiled
    assert not StepSettings.resolve({"compile": False, "amp": "auto"}, CUDA).compiled


@pytest.mark.parametrize("preset", ["cifar10", "cifar100", "tinyimagenet", "demo"])
def test_every_preset_compiles_on_cuda_only(preset):
    config = resolve_with_sources({"dataset": preset}, require_inputs=False)[0]
    assert config["compile"] == "auto"
    assert StepSettings.resolve(config, CUDA).compiled and not StepSettings.resolve(config, CPU).compiled


def test_the_bench_step_runs_as_train_run_does():
    """bench/train_step.py's workload and ``train.run --dataset cifar10`` resolve the same settings."""
    train_run = resolve_with_sources({"dataset": "cifar10"}, require_inputs=False)[0]
    for device in (CPU, CUDA):
        assert step_settings(device) == StepSettings.resolve(train_run, device)
    case = build_case("plain", "cpu", CPU, batch=4, steps=1)
    assert case.step_settings == StepSettings.resolve(train_run, CPU) and case.forward is case.model
    assert case.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)


class _Batches:
    """Batches of the given sizes (the authors' epoch ends with a smaller one), the same every epoch."""

    def __init__(self, sizes):
        images, labels = make_tensors(num_images=sum(sizes), size=32)
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self.batches = [(images[start:start + size].contiguous(memory_format=torch.channels_last),
                         labels[start:start + size]) for start, size in zip(starts, sizes)]

    def set_epoch(self, epoch):
        pass

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def test_compiled_step_has_one_graph_per_noise_site_and_none_for_the_smaller_last_batch(tmp_path, monkeypatch):
    """fit() with compile on, manifold noise at sites 0, 1, 2 at batch 8, then the same sites at the last
    batch of 5: Dynamo captures 3 graphs (one per site) and recompiles nothing."""
    counter = CompileCounter()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=counter))
    sites = iter([0, 1, 2, 0, 1, 2, 0, 1, 2])
    monkeypatch.setattr(Perturbation, "draw_site", lambda self: next(sites))
    torch._dynamo.reset()
    config = tiny_config(compile=True, epochs=1, swa=False, manifold_noise=True, input_noise={"uniform-linf": 0.1})
    torch.manual_seed(0)
    result = fit(config, create_model("wrn10_1", 10), _Batches([8] * 6 + [5] * 3), out_dir=tmp_path,
                 show_progress=False)
    assert result.history[0]["epoch"] == 1 and next(sites, None) is None  # every step ran, through the sites
    assert counter.frame_count == 3
