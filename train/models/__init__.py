"""Classifier models by name: ``create_model("wrn28_4", num_classes=10)``."""
from __future__ import annotations

from torch import nn

from fastnst.train.models.wrn import WideResNet

# name -> (depth, widen factor)
_WRN_VARIANTS = {
    "wrn28_4": (28, 4),   # the paper's default
    "wrn28_10": (28, 10),
    "wrn16_2": (16, 2),   # small: the built-in demo and CPU tests
    "wrn10_1": (10, 1),   # tiny: unit tests
}

MODEL_NAMES = tuple(_WRN_VARIANTS)


def create_model(name: str, num_classes: int, dropout: float = 0.0) -> nn.Module:
    """Build a classifier by name (one of ``MODEL_NAMES``)."""
    if name not in _WRN_VARIANTS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    depth, widen = _WRN_VARIANTS[name]
    return WideResNet(depth, widen, num_classes, dropout)


__all__ = ["MODEL_NAMES", "WideResNet", "create_model"]
