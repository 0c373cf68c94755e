"""Which library runs the loader's decoding and augmentation: DALI where it is installed, else torch."""
from __future__ import annotations

import importlib.util


def dali_available() -> bool:
    try:
        return importlib.util.find_spec("nvidia.dali") is not None
    except (ImportError, ValueError):  # no 'nvidia' namespace at all, or a broken one
        return False


def resolve_backend(name: str) -> str:
    """"dali" or "torch" for ``--augment-backend name`` (auto, dali or torch, checked by ``train.config.Augmentation``);
    auto: DALI when it can be imported."""
    if name == "auto":
        return "dali" if dali_available() else "torch"
    if name == "dali" and not dali_available():
        from fastnst.cli import UsageError

        raise UsageError("--augment-backend dali: DALI is not installed (pip install 'fastnst[train]'); "
                         "--augment-backend torch runs the same augmentations in torch")
    return name
