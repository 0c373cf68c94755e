"""Mixup and CutMix as the authors' ``experiments/mixup.py`` applies them (commit 07e47c1).

One draw per batch (``mixup_process``, ``mixup.py:193-218``): if ``cutmix_p + mixup_p > 1`` both are divided
by their sum; then with r ~ U(0, 1), r < cutmix_p gives CutMix, r < cutmix_p + mixup_p gives Mixup, anything
else leaves the batch and its integer labels alone. With both at 0.5 every batch gets exactly one of them.

- Mixup (``mixup.py:63-81``): lambda ~ Beta(alpha, alpha), one per batch; ``x = lambda x + (1 - lambda) x[j]``.
- CutMix (``mixup.py:150-180``): lambda ~ Beta(alpha, alpha), a box centred at a uniform pixel with half-sides
  ``int(0.5 sqrt(1 - lambda) * W)`` and ``... * H``, clipped to the image; the box is pasted from the partner
  and lambda becomes 1 - (box area / image area).
- The partner j of an image is drawn by a random permutation **within its source**: real images mix only with
  real ones and synthetic with synthetic (``mixup.py:68-79, 168-178``; the authors rely on their batches being
  [real | synthetic], here an ``is_synthetic`` mask says which is which, so any batch order works).
- Targets become ``lambda onehot(y) + (1 - lambda) onehot(y[j])``; the criterion is the same
  ``CrossEntropyLoss(label_smoothing=...)``, which takes such probability targets (``losses.py:38-40``).

Where it is applied (the trainer): on the input when the batch's noise site is k = 0 (before the input noise,
``ct_model.py:115-122``), and on the output of layer k when k is 1 or 2 ("manifold mixup",
``ct_model.py:145-158``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class MixDraw:
    kind: str                       # "mixup" or "cutmix"
    lam: float                      # weight of an image's own label in its target
    partner: torch.Tensor           # (B,) int64: the image each one is mixed with (same source)
    box: tuple[int, int, int, int] | None = None  # CutMix: rows y1:y2, columns x1:x2


def cutmix_box(lam: float, centre_x: int, centre_y: int, height: int, width: int):
    """((y1, y2, x1, x2), corrected lambda) of a CutMix box, as ``RandomCutmix`` computes them (``mixup.py:152-166``)."""
    half = 0.5 * math.sqrt(1.0 - lam)
    half_w, half_h = int(half * width), int(half * height)
    x1, y1 = max(centre_x - half_w, 0), max(centre_y - half_h, 0)
    x2, y2 = min(centre_x + half_w, width), min(centre_y + half_h, height)
    return (y1, y2, x1, x2), float(1.0 - (x2 - x1) * (y2 - y1) / (width * height))


def same_source_partners(is_synthetic: torch.Tensor) -> torch.Tensor:
    """A random partner for each sample: a uniform permutation within the real ones and within the synthetic ones."""
    is_synthetic = is_synthetic.cpu()  # host flags (the loader keeps them there): no device sync
    partner = torch.arange(len(is_synthetic))
    for chosen in (~is_synthetic, is_synthetic):
        members = torch.nonzero(chosen).flatten()
        partner[members] = members[torch.randperm(len(members))]
    return partner


class MixupCutmix:
    def __init__(self, num_classes: int, mixup_alpha: float = 0.2, mixup_p: float = 0.0, cutmix_alpha: float = 1.0,
                 cutmix_p: float = 0.0):
        for name, value in (("mixup_p", mixup_p), ("cutmix_p", cutmix_p), ("mixup_alpha", mixup_alpha),
                            ("cutmix_alpha", cutmix_alpha)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        total = mixup_p + cutmix_p
        if total > 1:  # mixup.py:200-203
            mixup_p, cutmix_p = mixup_p / total, cutmix_p / total
        self.num_classes = num_classes
        self.mixup_alpha, self.mixup_p, self.cutmix_alpha, self.cutmix_p = mixup_alpha, mixup_p, cutmix_alpha, cutmix_p

    @property
    def enabled(self) -> bool:
        return self.mixup_p > 0 or self.cutmix_p > 0

    def draw(self, batch_size: int, height: int, width: int, is_synthetic: torch.Tensor | None,
             device: torch.device | str) -> MixDraw | None:
        """This batch's mixing, or None (host-side scalar draws; the partner index goes to ``device``)."""
        r = torch.rand(()).item()
        if r < self.cutmix_p:
            kind, alpha = "cutmix", self.cutmix_alpha
        elif r < self.cutmix_p + self.mixup_p:
            kind, alpha = "mixup", self.mixup_alpha
        else:
            return None
        if alpha == 0.0:  # mixup.py:208-209, 213-214
            return None
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        if is_synthetic is None:
            is_synthetic = torch.zeros(batch_size, dtype=torch.bool)
        partner = same_source_partners(is_synthetic).to(device, non_blocking=True)
        if kind == "mixup":
            return MixDraw(kind, lam, partner)
        centre_x, centre_y = int(torch.randint(width, ())), int(torch.randint(height, ()))
        box, lam = cutmix_box(lam, centre_x, centre_y, height, width)
        return MixDraw(kind, lam, partner, box)

    @staticmethod
    def apply(x: torch.Tensor, draw: MixDraw | None) -> torch.Tensor:
        if draw is None:
            return x
        partner = x.index_select(0, draw.partner)
        if draw.kind == "mixup":
            return draw.lam * x + (1 - draw.lam) * partner
        y1, y2, x1, x2 = draw.box
        mixed = x.clone()
        mixed[:, :, y1:y2, x1:x2] = partner[:, :, y1:y2, x1:x2]
        return mixed

    def targets(self, labels: torch.Tensor, draw: MixDraw | None) -> torch.Tensor:
        """Integer labels when nothing was mixed, else the mixed one-hot probabilities (float32)."""
        if draw is None:
            return labels
        one_hot = F.one_hot(labels, self.num_classes).float()
        return draw.lam * one_hot + (1 - draw.lam) * one_hot.index_select(0, draw.partner)
