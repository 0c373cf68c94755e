"""train.mixup against the authors' mixup_process run verbatim (tests/authors_code.py) on the same random numbers,
and its own draws against the definitions (one choice per batch, renormalised p, partners within a source)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import functional as TF

from authors_code import MIXUP_SOURCE
from fastnst.train.mixup import MixDraw, MixupCutmix, cutmix_box, same_source_partners
from replay import Replay

NUM_CLASSES = 10


def authors_mixup_process(replay: Replay):
    from typing import Tuple

    namespace = {"torch": replay.torch_module(), "F": TF, "np": replay.numpy_module(), "math": math,
                 "Tensor": torch.Tensor, "Tuple": Tuple, "random": replay.random_module(), "device": "cpu"}
    exec(MIXUP_SOURCE, namespace)
    return namespace["mixup_process"]


def _batch(batch=12, channels=3, size=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, size, size, generator=generator), torch.randint(NUM_CLASSES, (batch,), generator=generator)


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
@pytest.mark.parametrize("generated_ratio, size, lam", [(0.5, 8, 0.37), (0.25, 16, 0.05), (0.0, 8, 0.05)])
def test_mixing_equals_the_authors_on_the_same_draws(kind, generated_ratio, size, lam):
    images, labels = _batch(size=size)
    batch = len(labels)
    synthetic = int(batch * generated_ratio)           # mixup.py:70-72: the last int(q * ratio) rows are synthetic
    real = batch - synthetic
    generator = torch.Generator().manual_seed(1)
    index_real, index_synthetic = torch.randperm(real, generator=generator), torch.randperm(synthetic, generator=generator)
    partner = torch.cat([index_real, real + index_synthetic])

    replay = Replay()
    replay.push("uniform", 0.1 if kind == "cutmix" else 0.9)   # mixup.py:205, cutmix_p 0.5 / mixup_p 0.5
    replay.push("rand", torch.tensor([0.25]))                   # :63 / :147, p = 1.0 inside
    replay.push("beta", lam)                                    # :66 / :151
    if kind == "cutmix":
        centre_x, centre_y = 1, size - 3
        replay.push("randint_uniform", (centre_x + 0.5) / size)  # :154
        replay.push("randint_uniform", (centre_y + 0.5) / size)  # :155
        box, mixed_lam = cutmix_box(lam, centre_x, centre_y, size, size)
        ours_draw = MixDraw("cutmix", mixed_lam, partner, box)
    else:
        ours_draw = MixDraw("mixup", lam, partner)
    replay.push("randperm", index_synthetic)                    # :73 / :172
    replay.push("randperm", index_real)                         # :74 / :173
    theirs_images, theirs_targets = authors_mixup_process(replay)(
        images.clone(), labels.clone(), 0, NUM_CLASSES, 1.0, 0.5, 1.0, 0.5, generated_ratio, manifold=False, inplace=False)
    replay.done()

    mixing = MixupCutmix(NUM_CLASSES, mixup_alpha=1.0, mixup_p=0.5, cutmix_alpha=1.0, cutmix_p=0.5)
    torch.testing.assert_close(MixupCutmix.apply(images, ours_draw), theirs_images, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(mixing.targets(labels, ours_draw), theirs_targets, rtol=1e-6, atol=1e-7)


def test_no_mixing_leaves_integer_labels_like_the_authors():
    images, labels = _batch()
    replay = Replay([("uniform", 0.95)])
    out, targets = authors_mixup_process(replay)(images.clone(), labels.clone(), 0, NUM_CLASSES, 0.2, 0.4, 1.0, 0.5, 0.5,
                                                 manifold=False, inplace=False)
    replay.done()
    mixing = MixupCutmix(NUM_CLASSES, 0.2, 0.4, 1.0, 0.5)
    assert torch.equal(out, images) and torch.equal(targets, labels)
    assert MixupCutmix.apply(images, None) is images and mixing.targets(labels, None) is labels


def test_choice_per_batch_with_renormalised_probabilities():
    torch.manual_seed(0)
    mixing = MixupCutmix(NUM_CLASSES, mixup_alpha=0.2, mixup_p=0.8, cutmix_alpha=1.0, cutmix_p=0.6)  # sum 1.4
    kinds = [getattr(mixing.draw(16, 8, 8, None, "cpu"), "kind", None) for _ in range(4000)]
    assert kinds.count(None) == 0                                    # mixup.py:200-203: p / 1.4, summing to 1
    assert kinds.count("cutmix") / 4000 == pytest.approx(0.6 / 1.4, abs=0.025)
    half = MixupCutmix(NUM_CLASSES, mixup_p=0.25, cutmix_p=0.25)
    none = sum(half.draw(16, 8, 8, None, "cpu") is None for _ in range(4000)) / 4000
    assert none == pytest.approx(0.5, abs=0.03)
    assert not MixupCutmix(NUM_CLASSES).enabled


def test_lambda_is_beta_alpha_alpha_and_cutmix_lambda_is_the_box_share():
    torch.manual_seed(1)
    mixup = MixupCutmix(NUM_CLASSES, mixup_alpha=0.2, mixup_p=1.0)
    lams = torch.tensor([mixup.draw(8, 8, 8, None, "cpu").lam for _ in range(4000)])
    assert lams.mean().item() == pytest.approx(0.5, abs=0.02)
    assert lams.var().item() == pytest.approx(1 / (4 * 1.4), rel=0.1)  # Beta(0.2, 0.2): variance 1 / (4 (2a + 1))
    cutmix = MixupCutmix(NUM_CLASSES, cutmix_alpha=1.0, cutmix_p=1.0)
    for _ in range(200):
        draw = cutmix.draw(8, 16, 12, None, "cpu")
        y1, y2, x1, x2 = draw.box
        assert 0 <= y1 <= y2 <= 16 and 0 <= x1 <= x2 <= 12
        assert draw.lam == pytest.approx(1 - (y2 - y1) * (x2 - x1) / (16 * 12))


def test_partners_stay_within_their_source_and_are_uniform():
    torch.manual_seed(2)
    is_synthetic = torch.tensor([False, True] * 3 + [True] * 4)
    hits = torch.zeros(10, 10)
    for _ in range(3000):
        partner = same_source_partners(is_synthetic)
        assert torch.equal(is_synthetic[partner], is_synthetic)
        assert sorted(partner.tolist()) == list(range(10))
        hits[torch.arange(10), partner] += 1
    synthetic_rows = torch.nonzero(is_synthetic).flatten()
    block = hits[synthetic_rows][:, synthetic_rows] / 3000  # 7 synthetic: each partner about 1/7
    assert block.sub(1 / 7).abs().max() < 0.03


def test_soft_targets_with_label_smoothing_are_the_expected_cross_entropy():
    logits = torch.randn(6, NUM_CLASSES, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    draw = MixDraw("mixup", 0.3, torch.tensor([1, 0, 3, 2, 5, 4]))
    targets = MixupCutmix(NUM_CLASSES).targets(labels, draw)
    loss = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(logits, targets)
    smoothed = 0.9 * targets + 0.1 / NUM_CLASSES  # losses.py:24 / torch: the smoothing mixes in the uniform
    expected = -(smoothed * F.log_softmax(logits, dim=1)).sum(1).mean()
    torch.testing.assert_close(loss, expected)
    no_mix = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    torch.testing.assert_close(no_mix(logits, labels), no_mix(logits, F.one_hot(labels, NUM_CLASSES).float()))
