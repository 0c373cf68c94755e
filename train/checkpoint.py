"""Checkpoint files: written atomically, read with ``weights_only=True``.

A checkpoint is a dict saved by ``torch.save`` with at least

    "config":     the resolved run configuration (dict; has "dataset", "model", "num_classes")
    "model":      the classifier's state_dict (unwrapped: no DDP / torch.compile prefixes)
    "swa_model":  the SWA-averaged classifier's state_dict (BN statistics recomputed), or None

and whatever else the trainer needs to resume (optimizer, scheduler, scaler, RNG states, epoch).
"""
from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from fastnst.atomic import save_atomic  # re-exported: the trainer writes checkpoints through it
from fastnst.cli import FileFormatError
from fastnst.safe_load import safe_torch_load
from fastnst.train.models import model_from_config

__all__ = ["load_checkpoint", "model_from_checkpoint", "save_atomic"]


def load_checkpoint(path: str | os.PathLike, map_location="cpu", *, mmap: bool = False) -> dict:
    """``mmap``: the tensors stay in the file until used (to read the config alone)."""
    path = Path(path)
    state = safe_torch_load(path, "checkpoint", map_location=map_location, mmap=mmap)
    missing = [key for key in ("config", "model") if not isinstance(state, dict) or key not in state]
    if missing:
        raise FileFormatError(f"checkpoint {path} lacks {', '.join(missing)}: not a checkpoint written by "
                              "python -m train.run")
    return state


def model_from_checkpoint(path: str | os.PathLike, which: str = "model", map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild the classifier stored in a checkpoint; ``which`` is "model" or "swa_model"."""
    state = load_checkpoint(path, map_location)
    if which not in ("model", "swa_model"):
        raise ValueError(f"which must be 'model' or 'swa_model', got {which!r}")
    if state.get(which) is None:
        raise FileFormatError(f"checkpoint {path} holds no {which}")
    config = state["config"]
    model = model_from_config(config)  # activation, stride placement: as the run was configured
    model.load_state_dict(state[which])
    return model, config
