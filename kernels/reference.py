"""Plain-PyTorch AdaIN: the CPU path of the ``fastnst`` ops and the test oracle.

Statistics follow the widely used PyTorch AdaIN port (naoto0804/pytorch-AdaIN,
``function.calc_mean_std``), as the authors' copy does (``experiments/adaIN/utils.py:1``
eps=1e-5, ``:6`` ``var(dim=2) + eps``): per (sample, channel) over H*W, *unbiased*
variance (divide by H*W - 1), and ``eps = 1e-5`` added to the variance before
the square root. The alpha blend is theirs too (``experiments/style_transfer.py:147``). For a 1x1 map the unbiased variance is undefined; we define
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
    flat = x.to(_accumulation_dtype(x.dtype)).reshape(n, c, x.shape[2] * x.shape[3])  # -1 fails for N or C == 0
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
    return adain_forward_reference(content, style_mean, style_std, alpha, eps)[0]


def adain_forward_reference(
    content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor, alpha: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``fastnst::adain_forward`` contract: (output, content mean, content std)."""
    compute_dtype = _accumulation_dtype(content.dtype)
    x = content.to(compute_dtype)
    mean, std = adain_stats_reference(x, eps)
    scale = style_std.to(compute_dtype) / std  # (N, C)
    stylized = (x - mean[:, :, None, None]) * scale[:, :, None, None] + style_mean.to(compute_dtype)[:, :, None, None]
    a = alpha.to(compute_dtype)[:, None, None, None]
    out = a * stylized + (1 - a) * x
    return out.to(content.dtype), mean, std


def adain_backward_reference(
    grad_output: torch.Tensor,
    content: torch.Tensor,
    style_mean: torch.Tensor,
    style_std: torch.Tensor,
    alpha: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form gradients of :func:`adain_reference` for content, style_mean, style_std and alpha.

    With x_hat = (x - mean) / std over M = H*W positions (unbiased variance):
        d content    = (1 - a) g + a * s_std / std * (g - sum(g) / M - x_hat * sum(g x_hat) / (M - 1))
        d style_mean = a * sum(g),   d style_std = a * sum(g x_hat)
        d alpha      = sum over (c, hw) of g * (stylized - x)
    """
    compute_dtype = _accumulation_dtype(content.dtype)
    g = grad_output.to(compute_dtype)
    x = content.to(compute_dtype)
    count = x.shape[2] * x.shape[3]
    mean4, std4 = mean.to(compute_dtype)[:, :, None, None], std.to(compute_dtype)[:, :, None, None]
    s_mean, s_std = style_mean.to(compute_dtype), style_std.to(compute_dtype)
    a = alpha.to(compute_dtype)
    x_hat = (x - mean4) / std4
    sum_g = g.sum(dim=(2, 3))
    sum_g_xhat = (g * x_hat).sum(dim=(2, 3))
    gain = (a[:, None] * s_std)[:, :, None, None] / std4
    grad_content = (1 - a)[:, None, None, None] * g + gain * (
        g - (sum_g / count)[:, :, None, None] - x_hat * (sum_g_xhat / max(count - 1, 1))[:, :, None, None]
    )
    grad_alpha = (s_std * sum_g_xhat + s_mean * sum_g - (g * x).sum(dim=(2, 3))).sum(dim=1)
    return (
        grad_content.to(content.dtype),
        (a[:, None] * sum_g).float(),
        (a[:, None] * sum_g_xhat).float(),
        grad_alpha.float(),
    )
