"""A uint8 pixel array kept on the GPU when it fits comfortably: uploaded once, gathered there every batch.

airbench keeps its whole data set on the GPU; the training loader's pixel arrays and the stylized
caches do the same when they take at most a quarter of the GPU's memory, else stay on the host.
"""
from __future__ import annotations

import numpy as np
import torch

RESIDENT_FRACTION = 0.25  # an array goes to the GPU when it takes at most this share of its memory
_COPY_BYTES = 256 << 20   # per copy: a memory-mapped file is paged in once, never held twice in RAM


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
