"""Classifiers from other libraries by name: ``torchvision:<name>`` (e.g. ``torchvision:resnet18``) and, with the
optional ``timm`` extra (``pip install fastnst[timm]``), ``timm:<name>`` (e.g. ``timm:convnext_tiny``).

Built with the data set's class count and random weights: nothing is downloaded (``weights=None``,
``pretrained=False``). They have no layer hooks (``stage_output_size`` / ``perturb_stage``), so the
authors' feature-space ("manifold") noise needs a WideResNet; input noise works for every model.
"""
from __future__ import annotations

from torch import nn

PREFIXES = ("torchvision", "timm")


def split_name(name: str) -> tuple[str, str] | None:
    """("torchvision" | "timm", model name) for a prefixed name, else None."""
    library, _, model = str(name).partition(":")
    return (library, model) if library in PREFIXES and model else None


def unknown_model_reason(name: str) -> str | None:
    """Why ``name`` (a prefixed name) cannot be built here, or None: the library's own list decides."""
    library, model = split_name(name)
    if library == "torchvision":
        import torchvision

        known = torchvision.models.list_models(module=torchvision.models)  # classifiers, not detection etc.
        if model not in known:
            return f"torchvision has no classifier {model!r} (torchvision.models.list_models(module=torchvision.models))"
        return None
    try:
        import timm
    except ImportError:
        return "timm is not installed: pip install 'fastnst[timm]' (or pip install timm)"
    if not timm.is_model(model):
        return f"timm has no model {model!r} (timm.list_models())"
    return None


def constructor_source(name: str, num_classes: int) -> tuple[str, str]:
    """(the module to import, the call) that ``create_external_model`` makes, as source: train.export's model.py."""
    library, model = split_name(name)
    if library == "torchvision":
        return "torchvision.models", f"torchvision.models.get_model({model!r}, weights=None, num_classes={num_classes})"
    return "timm", f"timm.create_model({model!r}, pretrained=False, num_classes={num_classes})"


def create_external_model(name: str, num_classes: int) -> nn.Module:
    """A ``torchvision:`` or ``timm:`` classifier with ``num_classes`` outputs and random weights."""
    reason = unknown_model_reason(name)
    if reason is not None:
        raise ValueError(f"--model {name}: {reason}")
    library, model = split_name(name)
    if library == "torchvision":
        import torchvision

        return torchvision.models.get_model(model, weights=None, num_classes=num_classes)
    import timm

    return timm.create_model(model, pretrained=False, num_classes=num_classes)
