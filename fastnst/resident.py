"""Host arrays onto the GPU: a pixel array once, when it fits comfortably (as airbench keeps its data set;
the training loader's arrays and the stylized caches), or a batch at a time without a host wait."""
from __future__ import annotations

import numpy as np
import torch

RESIDENT_FRACTION = 0.25  # an array goes to the GPU when it takes at most this share of its memory
_COPY_BYTES = 256 << 20   # per copy: a memory-mapped file is paged in once, never held twice in RAM


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array as a tensor on ``device``; on a GPU a pinned, asynchronous copy (no host wait)."""
    tensor = torch.from_numpy(np.require(array, requirements=["C", "W"]))  # a read-only memmap is copied
    return tensor.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else tensor


def maybe_resident(images: np.ndarray, device: str | torch.device) -> np.ndarray | torch.Tensor:
    """``images`` as a tensor on ``device`` if that is a GPU with room for it, else ``images`` itself."""
    device = torch.device(device)
    if device.type != "cuda" or images.nbytes > RESIDENT_FRACTION * torch.cuda.get_device_properties(device).total_memory:
        return images
    resident = torch.empty(images.shape, dtype=torch.uint8, device=device)
    rows = max(1, _COPY_BYTES // max(1, images.nbytes // max(1, len(images))))
    for start in range(0, len(images), rows):
        resident[start:start + rows].copy_(torch.from_numpy(np.ascontiguousarray(images[start:start + rows])))
    return resident
