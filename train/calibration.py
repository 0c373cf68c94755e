"""Top-label calibration error as the paper's authors report it: their ``RMSCE`` (clean) and ``RMSCE_C``.

Their evaluation (github.com/Georgsiedel/model-based-data-augmentation at 07e47c1) concatenates the logits of a
whole set and calls torchmetrics' ``MulticlassCalibrationError(num_classes, n_bins=15, norm='l1')`` once: the
clean test set in ``experiments/eval.py:76, 100-107``, each -C and C-bar corruption over its five severities in
``experiments/eval_corruptions.py:100, 128-134``; ``RMSCE_C`` is the plain mean over the corruptions (:77).

Despite the name, HEAD computes the L1 norm (the expected calibration error): ``norm='l2'``, the root mean square
the name says, was theirs until commit 73839d5 (2025-08-15), and the run-0 column of their config549 results
(0.0393) was first committed in fe62b69, before that change. Which norm their HEAD tables hold cannot be told
from the repository, so both are kept: ``l1`` (HEAD's code) and ``l2``.

torchmetrics' computation (1.x, ``functional/classification/calibration_error.py``): a softmax of the logits,
confidence = the top probability, correct = its class is the label; 15 equal bins of [0, 1] by
``torch.bucketize(confidence, linspace(0, 1, 16), right=True) - 1`` (a 16th holds a confidence of exactly 1);
l1 = sum_b |acc_b - conf_b| * share_b, l2 = sqrt(sum_b (acc_b - conf_b)^2 * share_b). Here the per-bin sums are
accumulated batch by batch, in float64, so a set's logits are never held at once. (torchmetrics would take
outputs that all lie in [0, 1] as probabilities; a classifier's logits are always given here.)
"""
from __future__ import annotations

import math

import torch

N_BINS = 15                 # experiments/eval.py:76, experiments/eval_corruptions.py:100
NORMS = ("l1", "l2")        # l1: HEAD's code; l2: the name's root mean square (theirs before 73839d5)


class CalibrationBins:
    """Per-bin count, confidence sum and correct count of the predictions seen so far."""

    def __init__(self, n_bins: int = N_BINS):
        self.n_bins = n_bins
        self.count = torch.zeros(n_bins + 1, dtype=torch.float64)
        self.confidence = torch.zeros(n_bins + 1, dtype=torch.float64)
        self.correct = torch.zeros(n_bins + 1, dtype=torch.float64)

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        confidence, predicted = torch.softmax(logits.float(), dim=1).max(dim=1)
        boundaries = torch.linspace(0, 1, self.n_bins + 1, dtype=confidence.dtype, device=confidence.device)
        index = torch.bucketize(confidence, boundaries, right=True) - 1
        for total, values in ((self.count, torch.ones_like(confidence)), (self.confidence, confidence),
                              (self.correct, (predicted == labels).float())):
            sums = torch.zeros(self.n_bins + 1, dtype=torch.float64, device=confidence.device)
            total += sums.scatter_add_(0, index, values.double()).cpu()

    def error(self, norm: str = "l1") -> float | None:
        """The calibration error in [0, 1] (None before any update)."""
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        seen = self.count.sum()
        if seen == 0:
            return None
        filled = self.count > 0
        gap = torch.where(filled, (self.correct - self.confidence) / self.count.clamp(min=1), 0.0)
        share = self.count / seen
        if norm == "l1":
            return float((gap.abs() * share).sum())
        return math.sqrt(float((gap.square() * share).sum()))

    def errors(self) -> dict[str, float | None]:
        return {norm: self.error(norm) for norm in NORMS}
