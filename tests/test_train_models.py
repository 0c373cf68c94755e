"""The WideResNet against the authors' (experiments/models/wideresnet.py + ct_model.py, run verbatim from
tests/authors_code.py): same modules, parameter count, initialisation, outputs, and the feature-noise site."""
from __future__ import annotations

import itertools
import math
import random
import re
import types

import numpy as np

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from authors_code import CT_MODEL_SOURCE, DATA_SOURCE, MIXUP_SOURCE, NOISE_SOURCE, WRN_SOURCE
from fastnst.train.models import create_model, first_stride_for, model_from_config
from fastnst.train.noise import FeatureNoise
from replay import Replay

# experiments/data.py:29-37
STATS = {"CIFAR10": ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
         "TinyImageNet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}


def authors_models(replay: Replay | None = None) -> dict:
    """The authors' model module namespace; with ``replay``, their noise / mixup draws come from it."""
    rng_torch = replay.torch_module() if replay else torch
    data = {"torch": torch, "device": "cpu"}
    exec(DATA_SOURCE, data)
    noise = {"re": re, "math": math, "chain": itertools.chain, "device": "cpu", "torch": rng_torch,
             "normalization_values": data["normalization_values"],
             "np": replay.numpy_module() if replay else np, "random": replay.random_module() if replay else random,
             "dist": replay.distributions_module() if replay else torch.distributions}
    exec(NOISE_SOURCE, noise)
    from torchvision.transforms import functional as TF
    from typing import Tuple
    mixup = {"torch": rng_torch, "F": TF, "np": noise["np"], "math": math, "Tensor": torch.Tensor, "Tuple": Tuple,
             "random": noise["random"], "device": "cpu"}
    exec(MIXUP_SOURCE, mixup)
    ct = {"nn": nn, "torch": rng_torch, "np": noise["np"],
          "mixup_process": mixup["mixup_process"], "apply_noise": noise["apply_noise"], "noise_up": noise["noise_up"],
          "normalization_values": data["normalization_values"], "N2N_DeepAugment": None, "plot_images": None}
    exec(CT_MODEL_SOURCE, ct)
    wrn = {"nn": nn, "init": nn.init, "F": F, "np": np, "ct_model": types.SimpleNamespace(CtModel=ct["CtModel"])}
    exec(WRN_SOURCE, wrn)
    return wrn


def theirs_and_ours(num_classes, dataset, dropout=0.2, seed=0, small=False):
    """Their WideResNet_28_4 (wideresnet.py:134-136) and ours; ``small``: WRN-16-2 of both, same code path."""
    factor = 2 if dataset == "TinyImageNet" else 1  # experiments/data.py:119-122
    options = dict(num_classes=num_classes, factor=factor, dataset=dataset, normalized=True, dropout_rate=dropout,
                   activation_function="silu")
    torch.manual_seed(seed)
    models = authors_models()
    theirs = models["WideResNet"](depth=16, widen_factor=2, **options) if small else models["WideResNet_28_4"](**options)
    torch.manual_seed(seed)
    ours = create_model("wrn16_2" if small else "wrn28_4", num_classes, dropout=dropout, activation="silu",
                        first_stride=factor)
    return theirs, ours


@pytest.mark.parametrize("num_classes, dataset, count", [(10, "CIFAR10", 5_853_098), (200, "TinyImageNet", 5_901_928)])
def test_same_modules_parameters_and_initialisation(num_classes, dataset, count):
    theirs, ours = theirs_and_ours(num_classes, dataset)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters()) == count
    their_state = {k: v for k, v in theirs.state_dict().items() if k not in ("mu", "sigma")}  # ct_model.py:26-27
    our_state = ours.state_dict()
    assert list(our_state) == list(their_state)
    for key, value in their_state.items():
        assert torch.equal(our_state[key], value), key  # PyTorch's default init, drawn in the same order
    assert ours.bn1.momentum == theirs.bn1.momentum == 0.9
    assert all(m.momentum == 0.1 for name, m in ours.named_modules() if isinstance(m, nn.BatchNorm2d) and name != "bn1")


@pytest.mark.parametrize("num_classes, dataset, size", [(10, "CIFAR10", 32), (200, "TinyImageNet", 64)])
def test_same_outputs_with_normalisation_outside_the_model(num_classes, dataset, size):
    theirs, ours = theirs_and_ours(num_classes, dataset, seed=1, small=True)
    pixels = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(2))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in STATS[dataset])
    theirs.train()  # batch statistics: exercises BN too; dropout off for a deterministic comparison
    ours.train()
    for module in itertools.chain(theirs.modules(), ours.modules()):
        if isinstance(module, nn.Dropout):
            module.eval()
    their_logits, _ = theirs(pixels, torch.zeros(4, dtype=torch.long))  # normalizes inside (ct_model.py:37-40)
    torch.testing.assert_close(ours((pixels - mean) / std), their_logits, rtol=1e-4, atol=1e-4)
    theirs.eval()
    ours.eval()
    torch.testing.assert_close(ours((pixels - mean) / std), theirs(pixels), rtol=1e-4, atol=1e-4)
    assert ours.stage_output_size(1, size) == 32 and ours.stage_output_size(3, size) == 8


@pytest.mark.parametrize("stage", [1, 2])
def test_feature_noise_lands_where_the_authors_k_puts_it(stage):
    """Their forward with manifold=True and k drawn as ``stage`` vs ours with perturb_stage=stage (ct_model.py:98-166)."""
    torch.manual_seed(3)
    ours = create_model("wrn16_2", 10, dropout=0.0, activation="silu")
    pixels = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in STATS["CIFAR10"])
    with torch.no_grad():
        features = ours.layer2(ours.layer1(ours.conv1((pixels - mean) / std)))
    site_shape = (4, 32, 32, 32) if stage == 1 else features.shape
    noise = FeatureNoise()
    torch.manual_seed(5)
    draw = noise.draw(site_shape, "cpu")
    for name in ("sparsity", "normal", "add_drop", "mult_uniform", "mult_drop"):
        setattr(draw, name, getattr(draw, name).half().float())
    for name in ("add_drop", "mult_drop"):  # keep clear of the float16 comparison threshold
        value = getattr(draw, name)
        setattr(draw, name, torch.where((value - draw.sparsity).abs() < 2e-3, (draw.sparsity + 4e-3) % 1, value))

    replay = Replay()
    replay.push("choice", [stage])                       # ct_model.py:101
    replay.push("rand", torch.tensor([0.5]))             # :128, unused without int_adain
    replay.push("uniform", 0.99)                         # mixup.py:205 at the feature site, p = 0: no mixing
    replay.push("random", float(draw.sparsity) / 0.65)   # noise.py:106
    replay.push("beta", float(draw.add_beta))
    replay.push("randn", draw.normal)
    replay.push("rand", draw.add_drop)
    replay.push("random", 0.9)
    replay.push("beta", float(draw.mult_beta))
    replay.push("rand", draw.mult_uniform)
    replay.push("rand", draw.mult_drop)
    namespace = authors_models(replay)
    theirs = namespace["WideResNet"](depth=16, widen_factor=2, dataset="CIFAR10", normalized=True, dropout_rate=0.0,
                                     num_classes=10, factor=1, activation_function="silu")
    theirs.load_state_dict(ours.state_dict(), strict=False)
    their_logits, _ = theirs(pixels, torch.zeros(4, dtype=torch.long), manifold=True)
    replay.done()
    our_logits = ours((pixels - mean) / std, perturb_stage=stage, perturb=lambda h: noise.apply(h, draw))
    torch.testing.assert_close(our_logits, their_logits, rtol=5e-3, atol=5e-3)
    assert not torch.allclose(our_logits, ours((pixels - mean) / std), atol=5e-3)  # the noise did something


def test_model_from_config_builds_the_run_s_architecture():
    tin = model_from_config({"model": "wrn10_1", "num_classes": 200, "image_size": 64, "activation": "relu",
                             "dropout": 0.3})
    assert tin.first_stride == 2 == first_stride_for(64) and first_stride_for(32) == 1
    assert tin.activation is F.relu and tin.layer1[0].dropout.p == 0.3
    assert tin.layer1[0].conv2.stride == (2, 2) and tin.conv1.stride == (1, 1)  # wideresnet.py:92-93
    assert tin(torch.zeros(2, 3, 64, 64)).shape == (2, 200)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        create_model("wrn10_1", 10, activation="gelu")
