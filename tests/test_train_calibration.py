"""train.calibration: the authors' RMSCE, i.e. torchmetrics' MulticlassCalibrationError(n_bins=15), batch by batch."""
from __future__ import annotations

import math

import pytest
import torch

from fastnst.train.calibration import CalibrationBins


def test_calibration_error_by_hand():
    """Four predictions: confidences 0.9 (right), 0.9 (wrong), 0.5 (right) and exactly 1 (right, the 16th bin)."""
    probabilities = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
    logits = probabilities.log()  # softmax(log p) = p
    labels = torch.tensor([0, 1, 0, 0])
    bins = CalibrationBins()
    bins.update(logits[:2], labels[:2])
    bins.update(logits[2:], labels[2:])
    # bins: [0.8667, 0.9333) holds 0.9, 0.9 with accuracy 0.5; [0.4667, 0.5333) holds 0.5 right; 1.0 alone
    gaps = [(0.5 - 0.9, 0.5), (1.0 - 0.5, 0.25), (1.0 - 1.0, 0.25)]
    assert bins.error("l1") == pytest.approx(sum(abs(gap) * share for gap, share in gaps), abs=1e-6)
    assert bins.error("l2") == pytest.approx(math.sqrt(sum(gap ** 2 * share for gap, share in gaps)), abs=1e-6)
    assert CalibrationBins().error() is None
    with pytest.raises(ValueError, match="norm"):
        bins.error("max")


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_calibration_error_equals_torchmetrics(norm):
    """As the authors call it (experiments/eval.py:76, 100-107): the logits of a whole set at once, float targets."""
    torchmetrics = pytest.importorskip("torchmetrics")
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3000, 10, generator=generator) * torch.linspace(0.1, 30, 3000).view(-1, 1)  # some at 1.0
    labels = torch.randint(10, (3000,), generator=generator)
    labels = torch.where(torch.rand(3000, generator=generator) < 0.6, logits.argmax(dim=1), labels)
    bins = CalibrationBins()
    for part in torch.arange(3000).split(700):  # batch by batch, as the evaluator feeds it
        bins.update(logits[part], labels[part])
    metric = torchmetrics.classification.MulticlassCalibrationError(num_classes=10, n_bins=15, norm=norm)
    theirs = float(metric(logits, labels.float()))
    assert bins.error(norm) == pytest.approx(theirs, abs=1e-6)
    assert 0.01 < theirs < 0.9
