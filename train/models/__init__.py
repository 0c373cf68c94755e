"""Classifier models by name: ``create_model("wrn28_4", num_classes=10)``, ``create_model("torchvision:resnet18",
num_classes=10)``, or ``model_from_config(config)``."""
from __future__ import annotations

from torch import nn

from fastnst.train.models.external import create_external_model, split_name
from fastnst.train.models.wrn import ACTIVATIONS, WideResNet

# name -> (depth, widen factor)
_WRN_VARIANTS = {
    "wrn28_4": (28, 4),   # the paper's default
    "wrn28_10": (28, 10),
    "wrn16_2": (16, 2),   # small: the built-in demo and CPU tests
    "wrn10_1": (10, 1),   # tiny: unit tests
}

MODEL_NAMES = tuple(_WRN_VARIANTS)


def is_model_name(name) -> bool:
    """One of ``MODEL_NAMES`` or a ``torchvision:<name>`` / ``timm:<name>`` (whether it exists is checked apart)."""
    return name in _WRN_VARIANTS or split_name(name) is not None


def has_layer_hooks(name: str) -> bool:
    """Whether the model takes the authors' feature noise (``stage_output_size``, ``perturb_stage``): the WRNs."""
    return name in _WRN_VARIANTS


def create_model(name: str, num_classes: int, dropout: float = 0.0, activation: str = "silu",
                 first_stride: int = 1) -> nn.Module:
    """Build a classifier by name (one of ``MODEL_NAMES``, or ``torchvision:<name>`` / ``timm:<name>``: see
    ``external``, which take only ``num_classes``); see ``WideResNet`` for the arguments."""
    if split_name(name) is not None:
        return create_external_model(name, num_classes)
    if name not in _WRN_VARIANTS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}, torchvision:<name> "
                         "or timm:<name>")
    depth, widen = _WRN_VARIANTS[name]
    return WideResNet(depth, widen, num_classes, dropout, activation=activation, first_stride=first_stride)


def first_stride_for(image_size: int) -> int:
    """Stride of layer1's first block: the authors' ``factor`` (CIFAR 1, TinyImageNet 2; ``data.py:119-126``),
    i.e. the one that brings every supported image size to the same 32 px grid after layer1."""
    return max(1, image_size // 32)


def model_from_config(config: dict) -> nn.Module:
    """The classifier a resolved run configuration describes (also used to rebuild it from a checkpoint)."""
    return create_model(config["model"], config["num_classes"], dropout=config.get("dropout", 0.0),
                        activation=config.get("activation", "silu"),
                        first_stride=first_stride_for(config.get("image_size", 32)))


__all__ = ["ACTIVATIONS", "MODEL_NAMES", "WideResNet", "create_model", "first_stride_for", "has_layer_hooks",
           "is_model_name", "model_from_config"]
