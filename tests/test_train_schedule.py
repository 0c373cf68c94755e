"""The learning-rate schedule of every preset, epoch by epoch, against the authors' schedule written out by hand.

The authors (experiments/train.py:314-323, 379-387 at 07e47c1) step CosineAnnealingWarmRestarts(T_0, T_mult)
once per epoch until SWA starts after the first epoch e with e + 1 > epochs * start_factor, then SWALR
(linear, 5 epochs) instead. Written out: within a cosine cycle of length T_i, at position t,
lr = lr0 (1 + cos(pi t / T_i)) / 2; from SWA epoch s on, lr = c + (swa_lr - c) min(1, (e - s) / 5) with
c the cosine's rate at epoch s. Their numbers (authors_recipe.md section 3, simulated with their schedulers):
0.1 at 0, 40, 120, 280; 0.00870 at 539, 0.00843 at 540, then 0.01074, 0.01306, 0.01537, 0.01769, 0.02.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from fastnst.train.config import parse_config
from fastnst.train.trainer import lr_per_epoch, swa_start_epoch

PRESETS_DIR = Path(__file__).resolve().parents[1] / "train" / "presets"


def closed_form(lr0, epochs, t0, t_mult, swa_start, swa_lr, anneal):
    rates, cycle_start, cycle_length = [], 0, t0
    for epoch in range(epochs):
        while epoch >= cycle_start + cycle_length:
            cycle_start, cycle_length = cycle_start + cycle_length, cycle_length * t_mult
        rates.append(lr0 * (1 + math.cos(math.pi * (epoch - cycle_start) / cycle_length)) / 2)
    start = rates[swa_start]
    for epoch in range(swa_start, epochs):
        rates[epoch] = start + (swa_lr - start) * min(1.0, (epoch - swa_start) / anneal)
    return rates


def _config(argv):
    # Every input named, so that nothing is looked up under a data root.
    return parse_config(argv + ["--synthetic", "edm.npz", "--styles", "s.pt", "--vgg", "v.pth", "--decoder", "d.pth"])


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "tinyimagenet"])
def test_paper_presets_restart_at_40_120_280_and_average_from_540(dataset):
    config = _config(["--dataset", dataset])
    rates = lr_per_epoch(config)
    assert swa_start_epoch(config) == 540
    expected = closed_form(0.1, 600, 40, 2, 540, 0.02, 5)
    assert rates == pytest.approx(expected, rel=1e-9, abs=1e-12)
    restarts = [e for e in range(1, 540) if rates[e] > rates[e - 1]]
    assert restarts == [40, 120, 280]
    assert all(rates[e] == 0.1 for e in (0, 40, 120, 280))
    # The authors' simulated values as printed, including the rise during SWA: equal to the last digit shown.
    table = {1: "0.09985", 39: "0.000154", 119: "3.9e-5", 279: "1.0e-5", 539: "0.00870", 540: "0.00843",
             541: "0.01074", 542: "0.01306", 543: "0.01537", 544: "0.01769", 545: "0.02", 599: "0.02"}
    for epoch, printed in table.items():
        mantissa, _, exponent = printed.partition("e")
        last_digit = 10.0 ** (-len(mantissa.partition(".")[2]) + int(exponent or 0))
        assert rates[epoch] == pytest.approx(float(printed), abs=last_digit / 2), epoch
    assert rates[545:] == [pytest.approx(0.02, rel=1e-12)] * 55


@pytest.mark.parametrize("overlay", ["cifar10_exp1_synthetic_ta.yaml", "cifar10_exp2_style.yaml",
                                     "cifar10_exp3_mixup.yaml"])
def test_first_experiments_restart_at_20_60_140_and_average_from_270(overlay):
    config = _config(["--config", str(PRESETS_DIR / overlay)])
    rates = lr_per_epoch(config)
    assert swa_start_epoch(config) == 270
    assert rates == pytest.approx(closed_form(0.1, 300, 20, 2, 270, 0.02, 5), rel=1e-9, abs=1e-12)
    assert [e for e in range(1, 270) if rates[e] > rates[e - 1]] == [20, 60, 140]


def test_paper_overlay_keeps_the_head_schedule():
    config = _config(["--config", str(PRESETS_DIR / "cifar10_paper.yaml")])
    assert lr_per_epoch(config) == lr_per_epoch(_config(["--dataset", "cifar10"]))


@pytest.mark.parametrize("epochs, fraction, first", [(600, 0.9, 540), (300, 0.9, 270), (10, 0.85, 8), (6, 0.5, 3),
                                                     (7, 0.5, 3), (4, 0.99, 3)])
def test_swa_starts_where_the_authors_test_first_holds(epochs, fraction, first):
    config = _config(["--dataset", "cifar10", "--epochs", str(epochs), "--swa-start", str(fraction)])
    assert swa_start_epoch(config) == first
    assert first == min(e for e in range(epochs) if e + 1 > epochs * fraction)  # experiments/train.py:379


def test_without_swa_the_cosine_runs_to_the_end():
    config = _config(["--dataset", "cifar10", "--no-swa"])
    rates = lr_per_epoch(config)
    assert swa_start_epoch(config) == 600
    assert rates == pytest.approx(closed_form(0.1, 600, 40, 2, 599, rates[599], 5), rel=1e-9, abs=1e-12)
    assert rates[-1] < 1e-5
