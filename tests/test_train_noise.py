"""train.noise against the authors' functions run verbatim (tests/authors_code.py) on the very same random numbers.

fastnst draws every number of a batch at once (``draw``) and applies them in a few tensor ops (``apply``);
the authors draw them one at a time in a loop. ``replay.Replay`` feeds fastnst's draws to the authors' code in
the order it asks for them, so both must produce the same images. The draws themselves (the distributions)
are checked separately against the definitions.
"""
from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import torch

from torch import nn

from authors_code import DATA_SOURCE, EVAL_SOURCE, NOISE_SOURCE, TEST_CORRUPTIONS_SOURCE
from fastnst.train import evaluate as evaluate_module
from fastnst.train.noise import EVALUATION_NOISE, FeatureNoise, NoiseCondition, PnormNoise, evaluation_noise, noise_kind
from replay import Replay

# experiments/configs/config549.py:5-9 and config551.py:5-9 (uniform, sphere False)
CIFAR_EPS = {"uniform-linf": 0.1, "uniform-l0.5": 400000.0, "uniform-l1": 200.0, "uniform-l2": 5.0,
             "uniform-l0-impulse": 0.2}
TIN_EPS = {"uniform-linf": 0.2, "uniform-l0.5": 12000000.0, "uniform-l1": 1500.0, "uniform-l2": 20.0,
           "uniform-l0-impulse": 0.4}
# experiments/data.py:29-37 (the values normalization_values returns for these data sets)
STATS = {"CIFAR10": ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
         "TinyImageNet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}


def authors_namespace(replay: Replay) -> dict:
    data = {"torch": torch, "device": "cpu"}
    exec(DATA_SOURCE, data)
    namespace = {"re": re, "math": math, "chain": itertools.chain, "device": "cpu",
                 "normalization_values": data["normalization_values"], "torch": replay.torch_module(),
                 "np": replay.numpy_module(), "random": replay.random_module(), "dist": replay.distributions_module()}
    exec(NOISE_SOURCE, namespace)
    return namespace


def half_exact(t: torch.Tensor) -> torch.Tensor:
    """The nearest float16 value, as float32: the authors draw these uniforms in float16."""
    return t.half().float()


def away_from(uniform: torch.Tensor, threshold: torch.Tensor, margin: float = 2e-3) -> torch.Tensor:
    """Move draws that sit within ``margin`` of the threshold they are compared with (float16 vs float32 rounding)."""
    close = (uniform - threshold).abs() < margin
    return torch.where(close, (threshold + 2 * margin) % 1.0, uniform)


def normalized_images(batch, size, dataset, seed=0):
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in STATS[dataset])
    pixels = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    pixels[:, :, :2] = 0.0  # some pixels at the range's ends: the clamp matters there
    pixels[:, :, -2:] = 1.0
    return (pixels - mean) / std


def prepared_draw(noise: PnormNoise, shape, kinds, seed):
    torch.manual_seed(seed)
    draw = noise.draw(shape, "cpu")
    groups = len(draw.kind)
    draw.kind = torch.tensor([kinds[g % len(kinds)] for g in range(groups)])
    draw.eps_fraction[1] = 0.0  # the authors replace an exact 0 by 1 (noise.py:215-216)
    draw.sparsity = half_exact(draw.sparsity)
    group = torch.arange(shape[0]) // noise.group_size
    threshold = draw.sparsity[group].view(-1, 1, 1, 1)
    draw.sparse_uniform = half_exact(away_from(draw.sparse_uniform, threshold))
    draw.linf_uniform = half_exact(draw.linf_uniform)
    draw.impulse_value = half_exact(draw.impulse_value)
    return draw


def authors_order(noise: PnormNoise, draw, batch: int, dims: int) -> Replay:
    """The draw's numbers in the order apply_noise / sample_lp_corr_batch / random_erasing_style_mask take them."""
    replay = Replay(dims=dims)
    for g in range(len(draw.kind)):
        rows = slice(g * noise.group_size, min((g + 1) * noise.group_size, batch))
        k = int(draw.kind[g])
        kind, p = noise.kinds[k]
        replay.push("sample", [k])                                          # noise.py:201
        if not noise.fixed_eps[k]:                                          # 'max': eps itself (:209-210)
            replay.push("dist_uniform", draw.eps_fraction[g])               # :206
        replay.push("random", float(draw.sparsity[g]) / noise.sparsity if noise.sparsity else 0.5)  # :217
        if kind == "linf":
            replay.push("rand", draw.linf_uniform[rows])                    # :236
            replay.push("rand", draw.sparse_uniform[rows])                  # :287
        elif kind == "gaussian":
            replay.push("randn", draw.normal[rows])                         # :238
            replay.push("rand", draw.sparse_uniform[rows])                  # :287
        elif kind == "impulse":
            for row in range(rows.start, rows.stop):
                replay.push("randint_row", draw.impulse_index[row])         # :244
            replay.push("rand", draw.sparse_uniform[rows])                  # :248
            if noise.on_sphere[k]:                                          # :251-252: 0 or 1
                replay.push("randint_tensor", torch.floor(draw.impulse_value[rows] * 2))
            else:
                replay.push("rand", draw.impulse_value[rows])               # :254
        else:
            replay.push("gamma", (draw.gamma[g], 1 / p))                    # :270
            replay.push("rand", draw.sign_uniform[g])                       # :272
            if not noise.on_sphere[k]:                                      # :274-277
                replay.push("dist_uniform", draw.radius_uniform[g])
            replay.push("rand", draw.sparse_uniform[rows])                  # :287
        replay.push("empty_uniform", draw.patch_area[g])                    # :29
        replay.push("empty_uniform", draw.patch_log_ratio[g])               # :30
        replay.push("randint_uniform", draw.patch_top[g])                   # :41
        replay.push("randint_uniform", draw.patch_left[g])                  # :42
    return replay


def per_sample(noisy, clean, std):
    delta = (noisy - clean) * torch.tensor(std).view(1, 3, 1, 1)  # back in [0, 1] pixel units
    flat = delta.flatten(1)
    return flat.norm(dim=1), flat.abs().amax(dim=1), (flat != 0).float().mean(dim=1)


@pytest.mark.parametrize("dataset, size, eps, batch", [("CIFAR10", 32, CIFAR_EPS, 8 * 6 + 3),
                                                      ("TinyImageNet", 64, TIN_EPS, 8 * 5 + 5)])
def test_input_noise_equals_the_authors_on_the_same_draws(dataset, size, eps, batch):
    mean, std = STATS[dataset]
    noise = PnormNoise(eps, mean, std, group_size=8, sparsity=1.0, patch_scale=(0.2, 0.7))
    clean = normalized_images(batch, size, dataset)
    draw = prepared_draw(noise, clean.shape, kinds=[0, 1, 2, 3, 4, 4, 0], seed=size)
    ours = noise.apply(clean, draw)

    replay = authors_order(noise, draw, batch, dims=3 * size * size)
    authors = authors_namespace(replay)
    corruptions = np.array([{"noise_type": name, "epsilon": value, "sphere": False, "distribution": "uniform"}
                            for name, value in eps.items()])
    theirs = authors["apply_noise"](clean.clone(), 8, corruptions, 1, True, dataset, manifold=False, manifold_factor=1,
                                    noise_sparsity=1.0, noise_patch_lower_scale=0.2, noise_patch_upper_scale=0.7)
    replay.done()

    # Elementwise: the authors compute the L-inf noise in float16 (noise.py:236), hence the tolerance (a
    # thousandth of the normalized range; one 8-bit level is 0.016 here).
    torch.testing.assert_close(ours, theirs, atol=2e-3, rtol=0)
    for mine, authors_value in zip(per_sample(ours, clean, std), per_sample(theirs, clean, std)):
        torch.testing.assert_close(mine, authors_value, atol=2e-3, rtol=2e-3)
    changed = per_sample(ours, clean, std)[2]
    assert (changed > 0).all() and (changed < 0.7 + 0.05).all()  # every image got noise, only inside its patch


def test_evaluation_noise_is_the_authors_test_corruptions():
    namespace = {"np": np}
    exec(TEST_CORRUPTIONS_SOURCE, namespace)
    theirs = [dict(entry) for entry in namespace["test_corruptions"]]
    ours = [{"noise_type": c.noise_type, "epsilon": c.epsilon, "sphere": c.sphere, "distribution": c.distribution}
            for c in EVALUATION_NOISE]
    assert ours == theirs and len(ours) == 50


class RedMeanClassifier(nn.Module):
    """Predicts the class whose grey level (10 + 25 k) is nearest to the normalised image's mean red value."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("centres", ((torch.arange(10) * 25.0 + 10) / 255 - mean[0]) / std[0])

    def forward(self, images):
        return -(images[:, 0].mean(dim=(1, 2))[:, None] - self.centres[None]).abs()


@pytest.mark.filterwarnings("ignore:CUDA is not available")  # their autocast("cuda"), on a CPU
def test_evaluation_noise_and_its_accuracy_equal_the_authors_on_the_same_draws(monkeypatch):
    """Their compute_p_corruptions (eval_corruptions.py:23-50), which calls apply_noise with their test settings
    (groups of 8, no sparsity, patch U(0.3, 1), pixels in [0, 1]), run verbatim on our draws: the same noisy
    images and the same accuracy as the evaluator's pass with ``evaluation_noise`` on normalised batches."""
    mean, std = STATS["CIFAR10"]
    noise = evaluation_noise(mean, std)
    count = 8 * 10 + 5  # 11 groups, the last one short
    generator = torch.Generator().manual_seed(5)
    labels = torch.randint(10, (count,), generator=generator)
    texture = torch.randint(-6, 7, (count, 3, 32, 32), generator=generator)
    images = ((labels * 25 + 10).view(-1, 1, 1, 1) + texture).clamp(0, 255).to(torch.uint8)
    # one condition of each of the 10 types, at various eps (indices into config549.py:56-107)
    draw = prepared_draw(noise, images.shape, kinds=[4, 7, 13, 19, 24, 29, 34, 38, 44, 49, 0], seed=9)
    draw.normal = half_exact(draw.normal)  # drawn in float16 by the authors (noise.py:238)
    draw.impulse_value.clamp_(max=1 - 2 ** -11)  # float16's largest below 1: a U[0, 1) draw never rounds up to 1

    model = RedMeanClassifier(mean, std)
    ours = []
    correct = {"model": 0}
    monkeypatch.setitem(evaluate_module.EVAL_FORWARD_BATCH, "cpu", count)  # one pass, as their one batch
    evaluate_module._count_correct({"model": model}, images, labels, "cifar10", count, correct,
                                   perturb=lambda batch: ours.append(noise.apply(batch, draw)) or ours[-1])

    replay = authors_order(noise, draw, count, dims=3 * 32 * 32)
    authors = authors_namespace(replay)
    exec(EVAL_SOURCE, authors)
    exec(TEST_CORRUPTIONS_SOURCE, authors)
    theirs = []

    class TheirModel(nn.Module):  # theirs normalises inside the model (ct_model.py:37-40)
        def forward(self, pixels):
            theirs.append(pixels.clone())
            return model((pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))

    loader = [(images.float() / 255, labels)]
    their_accuracy = authors["compute_p_corruptions"](loader, TheirModel(), authors["test_corruptions"], "CIFAR10")
    replay.done()

    ours_pixels = ours[0] * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    torch.testing.assert_close(ours_pixels, theirs[0], atol=2e-3, rtol=0)  # float16 draws there
    changed = (theirs[0] - images.float() / 255).abs().flatten(1).amax(dim=1) > 1e-3
    assert changed.all()  # every group got noise
    assert 100.0 * correct["model"] / count == their_accuracy
    assert 0 < their_accuracy < 100  # the noise moved some predictions, not all


def test_sphere_conditions_put_the_noise_on_the_norm_balls_surface():
    """sphere True: L-inf noise is +-eps, Lp noise has norm eps (noise.py:231-234, 274-275); 'max': eps itself."""
    conditions = [NoiseCondition("uniform-linf", 0.05, True, "max"), NoiseCondition("uniform-l2", 1.0, True, "max")]
    noise = PnormNoise(conditions, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), group_size=4, sparsity=0.0, patch_scale=(1.0, 1.0))
    clean = torch.full((16, 3, 16, 16), 0.5)
    torch.manual_seed(6)
    draw = noise.draw(clean.shape, "cpu")
    draw.kind = torch.tensor([0, 1, 0, 1])
    delta = (noise.apply(clean, draw) - clean).flatten(1)
    linf, l2 = delta.view(4, 4, -1)[0::2].flatten(0, 1), delta.view(4, 4, -1)[1::2].flatten(0, 1)
    torch.testing.assert_close(linf.abs(), torch.full_like(linf, 0.05))
    torch.testing.assert_close(l2.norm(dim=1), torch.ones(8))


def test_noise_kinds_parse_like_the_authors_regex():
    assert noise_kind("uniform-linf") == ("linf", math.inf)
    assert noise_kind("uniform-l0-impulse") == ("impulse", 0.0)
    assert [noise_kind(f"uniform-l{p}")[1] for p in ("0.5", "1", "2", "3.5")] == [0.5, 1.0, 2.0, 3.5]
    assert noise_kind("gaussian") == ("gaussian", 0.0)  # noise.py:237-238, one of the test conditions
    with pytest.raises(ValueError, match="unknown input noise type 'uniform-l0-salt-pepper'"):
        noise_kind("uniform-l0-salt-pepper")


def _single(kind_name, eps, **options):
    mean, std = STATS["CIFAR10"]
    return PnormNoise({kind_name: eps}, mean, std, **options), mean, std


def test_lp_noise_is_one_vector_per_group_on_the_sphere_of_radius_eps_r():
    """Without sparsity or patch: images of a group share delta, ||delta||_p = eps * U^(1/d) (noise.py:266-279)."""
    noise, mean, std = _single("uniform-l2", 2.0, sparsity=0.0, patch_scale=(1.0, 1.0))
    clean = torch.zeros(16, 3, 32, 32) + ((0.5 - torch.tensor(mean)) / torch.tensor(std)).view(1, 3, 1, 1)
    torch.manual_seed(1)
    draw = noise.draw(clean.shape, "cpu")
    delta = ((noise.apply(clean, draw) - clean) * torch.tensor(std).view(1, 3, 1, 1)).flatten(1)
    eps = 2.0 * torch.where(draw.eps_fraction == 0, 1.0, draw.eps_fraction)
    radius = draw.radius_uniform ** (1 / delta.shape[1])
    expected = (eps * radius).repeat_interleave(8)
    torch.testing.assert_close(delta.norm(dim=1), expected, rtol=1e-4, atol=1e-6)
    assert torch.equal(delta[0], delta[7]) and not torch.equal(delta[7], delta[8])


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0])
def test_lp_draw_uses_gamma_of_shape_one_over_p(p):
    noise, _, _ = _single(f"uniform-l{p:g}", 1.0)
    torch.manual_seed(2)
    draw = noise.draw((64, 3, 32, 32), "cpu")
    samples = draw.gamma.flatten()  # 8 groups x 3072: mean and variance of Gamma(1/p, 1) are both 1/p
    assert samples.mean().item() == pytest.approx(1 / p, rel=0.03)
    assert samples.var().item() == pytest.approx(1 / p, rel=0.08)


def test_group_draws_are_uniform():
    mean, std = STATS["CIFAR10"]
    noise = PnormNoise(CIFAR_EPS, mean, std, sparsity=0.5)
    torch.manual_seed(3)
    draw = noise.draw((8 * 4000, 3, 4, 4), "cpu")
    counts = torch.bincount(draw.kind, minlength=5).float() / len(draw.kind)
    assert counts.sub(0.2).abs().max() < 0.02           # one of the 5 types, uniformly (noise.py:201)
    assert draw.eps_fraction.mean().item() == pytest.approx(0.5, abs=0.02)
    assert 0 <= draw.sparsity.min() and draw.sparsity.max() < 0.5
    assert draw.sparsity.mean().item() == pytest.approx(0.25, abs=0.01)  # U(0, 1) * 0.5 (noise.py:217)
    assert draw.patch_area.min() >= 0.2 and draw.patch_area.max() <= 0.7
    top, left, h, w = noise.patch_boxes(draw, 32, 32)
    assert (top >= 0).all() and (top + h <= 32).all() and (left >= 0).all() and (left + w <= 32).all()
    assert (h * w).float().div(1024).sub(draw.patch_area.double()).abs().max() < 0.1  # rounded sides


def test_noise_stays_in_one_rectangle_per_group_and_sparsity_drops_elements():
    noise, mean, std = _single("uniform-linf", 0.05, sparsity=1.0)
    clean = torch.zeros(64, 3, 32, 32) + ((0.5 - torch.tensor(mean)) / torch.tensor(std)).view(1, 3, 1, 1)
    torch.manual_seed(4)
    draw = noise.draw(clean.shape, "cpu")
    changed = (noise.apply(clean, draw) != clean)
    top, left, h, w = noise.patch_boxes(draw, 32, 32)
    for image in range(64):
        g = image // 8
        inside = torch.zeros(32, 32, dtype=torch.bool)
        inside[top[g]:top[g] + h[g], left[g]:left[g] + w[g]] = True
        assert not changed[image][:, ~inside].any()
        kept = changed[image][:, inside].float().mean().item()
        assert kept == pytest.approx(1 - draw.sparsity[g].item(), abs=0.12)


def test_impulse_noise_replaces_about_one_minus_exp_minus_eps_of_the_elements():
    noise, _, std = _single("uniform-l0-impulse", 0.4, sparsity=0.0, patch_scale=(1.0, 1.0))
    clean = torch.full((64, 3, 32, 32), 10.0)  # outside the image range: every replaced element shows
    torch.manual_seed(5)
    draw = noise.draw(clean.shape, "cpu")
    out = noise.apply(clean, draw)
    eps = 0.4 * torch.where(draw.eps_fraction == 0, 1.0, draw.eps_fraction)
    replaced = (out != clean).flatten(1).float().mean(1).view(8, 8).mean(1)
    # int(d * eps) positions with replacement hit 1 - (1 - 1/d)^(d eps) ~ 1 - exp(-eps) of the d elements.
    torch.testing.assert_close(replaced, 1 - torch.exp(-eps), atol=0.02, rtol=0)
    assert out[out != clean].min() >= (0 - 0.4914) / 0.247 - 1e-6  # U[0, 1) values, normalized


# ----------------------------------------------------------------------------- feature noise

def test_feature_noise_equals_the_authors_noise_up_on_the_same_draws():
    noise = FeatureNoise()
    features = torch.randn(16, 8, 6, 6, generator=torch.Generator().manual_seed(6))
    torch.manual_seed(7)
    draw = noise.draw(features.shape, "cpu")
    draw.sparsity = half_exact(draw.sparsity)
    for name in ("add_drop", "mult_drop"):
        setattr(draw, name, half_exact(away_from(getattr(draw, name), draw.sparsity)))
    draw.normal, draw.mult_uniform = half_exact(draw.normal), half_exact(draw.mult_uniform)
    ours = noise.apply(features, draw)

    replay = Replay()
    replay.push("random", float(draw.sparsity) / 0.65)  # noise.py:106
    replay.push("beta", float(draw.add_beta))          # :86
    replay.push("randn", draw.normal)                  # :86
    replay.push("rand", draw.add_drop)                 # :88
    replay.push("random", 0.9)                         # :91, unused with l0_level 0
    replay.push("beta", float(draw.mult_beta))         # :97
    replay.push("rand", draw.mult_uniform)             # :97
    replay.push("rand", draw.mult_drop)                # :98
    authors = authors_namespace(replay)
    # ct_model.py:159-166
    theirs = authors["noise_up"](features.clone(), robust_samples=0, add_noise_level=0.5, mult_noise_level=0.5,
                                 sparse_level=0.65, l0_level=0.0)
    replay.done()
    torch.testing.assert_close(ours, theirs, atol=5e-3, rtol=5e-3)  # the authors multiply in float16


def test_feature_noise_draws():
    noise = FeatureNoise()
    torch.manual_seed(8)
    draws = [noise.draw((4, 4), "cpu") for _ in range(4000)]
    sparsity = torch.stack([d.sparsity for d in draws])
    betas = torch.stack([d.add_beta for d in draws] + [d.mult_beta for d in draws])
    assert 0 <= sparsity.min() and sparsity.max() < 0.65 and sparsity.mean().item() == pytest.approx(0.325, abs=0.01)
    assert betas.mean().item() == pytest.approx(2 / 7, abs=0.005)  # Beta(2, 5)
    h = torch.ones(4000, 4, 4)
    big = noise.draw(h.shape, "cpu")
    out = noise.apply(h, big)
    assert (out - 1).abs().max() <= 0.5 * big.mult_beta + 0.5 * big.add_beta * big.normal.abs().max() + 1e-6
