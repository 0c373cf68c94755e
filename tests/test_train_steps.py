"""The trainer's step as the authors take it: noise / mixing sites per batch, gradient clipping after unscaling,
the SWA BatchNorm pass without noise, (images, labels, is_synthetic) batches."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fastnst.train import trainer
from fastnst.distributed import DistInfo
from fastnst.train.models import create_model
from fastnst.train.trainer import Perturbation, _train_one_epoch
from test_train_trainer import TensorLoader, make_tensors, run_standin, tiny_config


def test_nothing_configured_means_no_perturbation():
    assert Perturbation.from_config(tiny_config(input_noise={}, manifold_noise=False)) is None


def test_sites_are_uniform_and_each_site_perturbs_where_the_authors_do():
    config = tiny_config(mixup_p=0.0, cutmix_p=0.0)  # the demo preset: input noise and manifold noise on
    perturbation = Perturbation.from_config(config)
    torch.manual_seed(0)
    sites = torch.tensor([perturbation.draw_site() for _ in range(3000)])
    assert torch.bincount(sites, minlength=3).div(3000).sub(1 / 3).abs().max() < 0.03  # ct_model.py:101

    model = create_model("wrn10_1", 10)
    images, labels = make_tensors(num_images=16)
    seen = {}
    for site in (0, 1, 2):
        perturbation.draw_site = lambda site=site: site
        out, targets, kwargs = perturbation(model, images, labels, None)
        assert targets is labels
        if site == 0:  # input noise on the input, nothing in the network (ct_model.py:105-122)
            assert kwargs == {} and not torch.equal(out, images)
            continue
        assert out is images and kwargs["perturb_stage"] == site
        features = torch.randn(16, 16 * site, 16 // site, 16 // site)  # wrn10_1: layer1 16 ch 16 px, layer2 32 ch 8 px
        seen[site] = kwargs["perturb"](features)
        assert seen[site].shape == features.shape and not torch.equal(seen[site], features)
        logits = model(images, **kwargs)
        assert logits.shape == (16, 10)


def test_mixing_at_a_feature_site_mixes_features_and_targets_alike():
    config = tiny_config(input_noise={}, manifold_noise=True, mixup_p=1.0, mixup_alpha=1.0)
    perturbation = Perturbation.from_config(config)
    perturbation.draw_site = lambda: 2
    perturbation.feature_noise = lambda h: h  # isolate the mixing
    draws = []
    draw = perturbation.mixing.draw
    perturbation.mixing.draw = lambda *args: draws.append(draw(*args)) or draws[-1]
    model = create_model("wrn10_1", 10)
    images, labels = make_tensors(num_images=8)
    is_synthetic = torch.tensor([True, False] * 4)
    torch.manual_seed(1)
    _, targets, kwargs = perturbation(model, images, labels, is_synthetic)
    (mix,) = draws
    assert mix.kind == "mixup" and not torch.equal(mix.partner, torch.arange(8))
    assert torch.equal(is_synthetic[mix.partner], is_synthetic)  # partners of the same source (mixup.py:68-79)
    features = torch.randn(8, 32, 8, 8)  # layer2's output of wrn10_1 at 16 px
    torch.testing.assert_close(kwargs["perturb"](features), mix.lam * features + (1 - mix.lam) * features[mix.partner])
    one_hot = torch.nn.functional.one_hot(labels, 10).float()
    torch.testing.assert_close(targets, mix.lam * one_hot + (1 - mix.lam) * one_hot[mix.partner])


def _step_setup(amp_dtype, clip):
    torch.manual_seed(2)
    model = create_model("wrn10_1", 10).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    images, labels = make_tensors(num_images=16)
    loader = TensorLoader(images, labels, 16)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, enabled=amp_dtype == torch.float16)
    return model, optimizer, loader, scaler


def _one_epoch(tmp_path, model, optimizer, loader, scaler, amp_dtype, clip):
    return _train_one_epoch(model, model, optimizer, scaler, nn.CrossEntropyLoss(label_smoothing=0.1), loader, epoch=0,
                            perturbation=None, grad_clip_norm=clip, amp_dtype=amp_dtype, dist_info=DistInfo(),
                            log_every=1, show_progress=False, checkpoint_path=tmp_path / "checkpoint.pt")


def test_gradients_are_clipped_after_unscaling(tmp_path, monkeypatch):
    """fp16 with a GradScaler: the clipped norm is the true gradients' (train.py:195-198), not 1024x it."""
    seen = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm):
        parameters = list(parameters)
        seen.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters])).item())
        return clip(parameters, max_norm)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    model, optimizer, loader, scaler = _step_setup(torch.float16, 1.0)
    reference = create_model("wrn10_1", 10)
    reference.load_state_dict(model.state_dict())
    images, labels = next(iter(loader))
    nn.CrossEntropyLoss(label_smoothing=0.1)(reference(images), labels).backward()
    true_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in reference.parameters()])).item()
    _one_epoch(tmp_path, model, optimizer, loader, scaler, torch.float16, 1.0)
    assert seen[0] == pytest.approx(true_norm, rel=0.05)


def test_clipping_bounds_every_update(tmp_path):
    moved = {}
    for clip in (None, 1e-6):
        model, optimizer, loader, scaler = _step_setup(None, clip)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        _one_epoch(tmp_path, model, optimizer, loader, scaler, None, clip)
        moved[clip] = (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm().item()
    # 6 steps of lr 0.05 with Nesterov momentum 0.9 and gradient norm <= 1e-6: well under 1e-5 in total.
    assert moved[1e-6] < 1e-5 < 1e-2 < moved[None]


class FlaggedLoader(TensorLoader):
    """Yields (images, labels, is_synthetic) like a loader that mixes real and synthetic images."""

    def __iter__(self):
        for images, labels in super().__iter__():
            yield images, labels, torch.arange(len(labels)) % 3 == 0


def test_flags_reach_the_mixing_and_the_swa_pass_has_no_noise(tmp_path, monkeypatch):
    masks, calls = [], []
    partners = trainer.MixupCutmix.draw

    def recording_draw(self, batch_size, height, width, is_synthetic, device):
        masks.append(is_synthetic)
        return partners(self, batch_size, height, width, is_synthetic, device)

    original_call = Perturbation.__call__

    def counting_call(self, *args):
        calls.append(1)
        return original_call(self, *args)

    monkeypatch.setattr(trainer.MixupCutmix, "draw", recording_draw)
    monkeypatch.setattr(Perturbation, "__call__", counting_call)
    monkeypatch.setattr("test_train_trainer.TensorLoader", FlaggedLoader)
    result = run_standin(tmp_path, epochs=2, mixup_p=0.5, cutmix_p=0.5)
    steps = 2 * (96 // 16)
    assert len(calls) == steps  # one per training step; none in the SWA BatchNorm pass (train.py:407)
    assert len(masks) == steps and all(torch.equal(m, torch.arange(16) % 3 == 0) for m in masks)
    assert result.swa_model is not None
