"""Plain-PyTorch AdaIN: the CPU path of the ``fastnst`` ops and the test oracle.

Statistics follow the widely used PyTorch AdaIN port (naoto0804/pytorch-AdaIN,
``function.calc_mean_std``): per (sample, channel) over H*W, *unbiased*
variance (divide by H*W - 1), and ``eps = 1e-5`` added to the variance before
the square root. For a 1x1 map the unbiased variance is undefined; we define
it as 0 there (so std = sqrt(eps)), where the port would return NaN.

    adain(x, s)  = style_std * (x - mean(x)) / std(x) + style_mean
    output       = alpha * adain(x, s) + (1 - alpha) * x      (alpha per sample)

Statistics are accumulated in float32 (float64 for float64 inputs); the
output has the input's dtype.
"""
from __future__ import annotations

import torch

DEFAULT_EPS = 1e-5


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def adain_stats_reference(x: torch.Tensor, eps: float = DEFAULT_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(n, c) mean and std of an (N, C, H, W) tensor, in float32 (float64 for float64 input)."""
    n, c = x.shape[:2]
    flat = x.to(_accumulation_dtype(x.dtype)).reshape(n, c, -1)
    mean = flat.mean(dim=2)
    count = flat.shape[2]
    centered = flat - mean.unsqueeze(2)
    var = (centered * centered).sum(dim=2) / max(count - 1, 1)
    return mean, torch.sqrt(var + eps)


def adain_reference(
    content: torch.Tensor,
    style_mean: torch.Tensor,
    style_std: torch.Tensor,
    alpha: torch.Tensor,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Fused-AdaIN semantics in plain PyTorch; ``alpha`` is an (N,) tensor."""
    compute_dtype = _accumulation_dtype(content.dtype)
    x = content.to(compute_dtype)
    mean, std = adain_stats_reference(x, eps)
    scale = style_std.to(compute_dtype) / std  # (N, C)
    stylized = (x - mean[:, :, None, None]) * scale[:, :, None, None] + style_mean.to(compute_dtype)[:, :, None, None]
    a = alpha.to(compute_dtype)[:, None, None, None]
    out = a * stylized + (1 - a) * x
    return out.to(content.dtype)
