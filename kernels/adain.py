"""Fused AdaIN: Triton kernels and the ``fastnst::adain`` / ``fastnst::adain_stats`` ops.

Semantics (see ``kernels/reference.py``): per (n, c) mean and unbiased std over H*W
with eps on the variance, ``y = alpha * (style_std * (x - mean) / std + style_mean)
+ (1 - alpha) * x``, alpha per sample.

One program owns a (sample, block of channels) tile and every H*W position of it,
so the statistics never leave registers: when H*W fits in one tile the op reads the
input once and writes the output once (the memory floor). Larger maps loop over H*W
tiles, merging per-tile statistics with Chan's formula, then stream a second pass.
NCHW and channels_last share the kernels: H and W are merged into one strided axis,
and only the block shape changes with the layout (the contiguous axis gets the
long side of the tile, so loads are coalesced either way).

On CUDA the public :func:`adain` calls the Triton ops (also under
``torch.compile(fullgraph=True)``); on the CPU it runs the plain-PyTorch reference.
The ops' CPU kernels run Triton when ``TRITON_INTERPRET=1`` was set before this module
was imported (how the tests check the Triton code without a GPU), the reference otherwise.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import nn
from torch.library import triton_op, wrap_triton

from fastnst.kernels.reference import (
    DEFAULT_EPS,
    adain_backward_reference,
    adain_forward_reference,
    adain_reference,
    adain_stats_reference,
)

_TILE_ELEMENTS = 4096  # elements of one (channels x positions) tile held in registers


# --------------------------------------------------------------------------- kernels


@triton.jit
def _looped_stats(x_row_ptr, stride_c, stride_hw, c_offsets, c_mask, HW, BLOCK_HW: tl.constexpr):
    """Per-channel mean and sum of squared deviations (M2) over HW tiles, in float32.

    Chan et al.'s pairwise merge of tile statistics: stable where sum / sum-of-squares is not.
    """
    hw = tl.arange(0, BLOCK_HW)
    mean = tl.zeros_like(c_offsets.to(tl.float32))
    m2 = tl.zeros_like(mean)
    for start in range(0, HW, BLOCK_HW):
        positions = start + hw
        mask = c_mask[:, None] & (positions[None, :] < HW)
        x = tl.load(x_row_ptr + c_offsets[:, None] * stride_c + positions[None, :] * stride_hw, mask=mask, other=0.0).to(tl.float32)
        tile_count = tl.minimum(HW - start, BLOCK_HW).to(tl.float32)
        tile_mean = tl.sum(x, axis=1) / tile_count
        centered = tl.where(mask, x - tile_mean[:, None], 0.0)
        tile_m2 = tl.sum(centered * centered, axis=1)
        seen = start * 1.0  # float32 count of positions merged so far
        total = seen + tile_count
        delta = tile_mean - mean
        mean += delta * (tile_count / total)
        m2 += tile_m2 + delta * delta * (seen * tile_count / total)
    return mean, m2


@triton.jit
def _restyle(x, mean, stylized_gain, stylized_shift, alpha):
    # Centre before scaling: folding the mean into one shift cancels badly when std is tiny.
    return (x - mean[:, None]) * stylized_gain[:, None] + stylized_shift[:, None] + (1.0 - alpha) * x


@triton.jit
def _adain_fwd_kernel(
    x_ptr, stride_xn, stride_xc, stride_xhw,        # (N, C, HW) content, any float dtype
    y_ptr, stride_yn, stride_yc, stride_yhw,        # (N, C, HW) output, content's dtype and strides
    style_mean_ptr, stride_mn, stride_mc,            # (N, C) style statistics
    style_std_ptr, stride_sn, stride_sc,
    alpha_ptr,                                       # (N,) blend weight
    mean_ptr, std_ptr,                               # (N, C) float32 content statistics, written
    C, HW, inv_dof, eps,                             # inv_dof = 1 / max(HW - 1, 1): unbiased variance
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, SINGLE_TILE: tl.constexpr, WRITE_OUTPUT: tl.constexpr,
):
    num_c_blocks = tl.cdiv(C, BLOCK_C)
    pid = tl.program_id(0).to(tl.int64)
    n = pid // num_c_blocks
    c_offsets = (pid % num_c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c_offsets < C
    hw = tl.arange(0, BLOCK_HW)
    x_row_ptr = x_ptr + n * stride_xn

    if SINGLE_TILE:  # the whole map in registers: x is read once, for statistics and output alike
        tile_mask = c_mask[:, None] & (hw[None, :] < HW)
        x_tile = tl.load(x_row_ptr + c_offsets[:, None] * stride_xc + hw[None, :] * stride_xhw,
                         mask=tile_mask, other=0.0).to(tl.float32)
        mean = tl.sum(x_tile, axis=1) / HW
        centered = tl.where(tile_mask, x_tile - mean[:, None], 0.0)
        m2 = tl.sum(centered * centered, axis=1)
    else:
        mean, m2 = _looped_stats(x_row_ptr, stride_xc, stride_xhw, c_offsets, c_mask, HW, BLOCK_HW)
    std = tl.sqrt(m2 * inv_dof + eps)
    tl.store(mean_ptr + n * C + c_offsets, mean, mask=c_mask)
    tl.store(std_ptr + n * C + c_offsets, std, mask=c_mask)
    if WRITE_OUTPUT:
        style_mean = tl.load(style_mean_ptr + n * stride_mn + c_offsets * stride_mc, mask=c_mask, other=0.0).to(tl.float32)
        style_std = tl.load(style_std_ptr + n * stride_sn + c_offsets * stride_sc, mask=c_mask, other=1.0).to(tl.float32)
        alpha = tl.load(alpha_ptr + n).to(tl.float32)
        stylized_gain = alpha * style_std / std
        stylized_shift = alpha * style_mean
        y_row_ptr = y_ptr + n * stride_yn
        if SINGLE_TILE:
            y = _restyle(x_tile, mean, stylized_gain, stylized_shift, alpha)
            tl.store(y_row_ptr + c_offsets[:, None] * stride_yc + hw[None, :] * stride_yhw,
                     y.to(y_ptr.dtype.element_ty), mask=tile_mask)
        else:  # a second pass over x; the tiles just read for the statistics are likely still in L2
            for start in range(0, HW, BLOCK_HW):
                positions = start + hw
                mask = c_mask[:, None] & (positions[None, :] < HW)
                x = tl.load(x_row_ptr + c_offsets[:, None] * stride_xc + positions[None, :] * stride_xhw,
                            mask=mask, other=0.0).to(tl.float32)
                y = _restyle(x, mean, stylized_gain, stylized_shift, alpha)
                tl.store(y_row_ptr + c_offsets[:, None] * stride_yc + positions[None, :] * stride_yhw,
                         y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gradient_sums(g, x, mask, mean, std):
    """Per channel: sum(g), sum(g * x_hat) and sum(g * x) of one tile."""
    x_hat = tl.where(mask, (x - mean[:, None]) / std[:, None], 0.0)
    return tl.sum(g, axis=1), tl.sum(g * x_hat, axis=1), tl.sum(g * x, axis=1)


@triton.jit
def _grad_content(g, x, mean, std, alpha, gain, mean_g, proj):
    x_hat = (x - mean[:, None]) / std[:, None]
    return (1.0 - alpha) * g + gain[:, None] * (g - mean_g[:, None] - x_hat * proj[:, None])


@triton.jit
def _adain_bwd_kernel(
    grad_y_ptr, stride_gn, stride_gc, stride_ghw,    # (N, C, HW) incoming gradient
    x_ptr, stride_xn, stride_xc, stride_xhw,         # (N, C, HW) content
    grad_x_ptr, stride_dn, stride_dc, stride_dhw,    # (N, C, HW) written
    style_mean_ptr, stride_mn, stride_mc,             # (N, C)
    style_std_ptr, stride_sn, stride_sc,
    alpha_ptr,                                        # (N,)
    mean_ptr, std_ptr,                                # (N, C) float32 content statistics from the forward
    grad_style_mean_ptr, grad_style_std_ptr,          # (N, C) float32, written
    grad_alpha_partial_ptr,                           # (N, num_c_blocks) float32, written
    C, HW, inv_count, inv_dof,                        # 1 / HW and 1 / max(HW - 1, 1)
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, SINGLE_TILE: tl.constexpr,
):
    num_c_blocks = tl.cdiv(C, BLOCK_C)
    pid = tl.program_id(0).to(tl.int64)
    n = pid // num_c_blocks
    c_block = pid % num_c_blocks
    c_offsets = c_block * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c_offsets < C
    hw = tl.arange(0, BLOCK_HW)
    g_row_ptr = grad_y_ptr + n * stride_gn
    x_row_ptr = x_ptr + n * stride_xn

    mean = tl.load(mean_ptr + n * C + c_offsets, mask=c_mask, other=0.0)
    std = tl.load(std_ptr + n * C + c_offsets, mask=c_mask, other=1.0)
    style_mean = tl.load(style_mean_ptr + n * stride_mn + c_offsets * stride_mc, mask=c_mask, other=0.0).to(tl.float32)
    style_std = tl.load(style_std_ptr + n * stride_sn + c_offsets * stride_sc, mask=c_mask, other=0.0).to(tl.float32)
    alpha = tl.load(alpha_ptr + n).to(tl.float32)

    # Pass 1: sum(g), sum(g * x_hat) and sum(g * x) per channel.
    if SINGLE_TILE:  # g and x stay in registers for pass 2: each is read once
        tile_mask = c_mask[:, None] & (hw[None, :] < HW)
        g_tile = tl.load(g_row_ptr + c_offsets[:, None] * stride_gc + hw[None, :] * stride_ghw,
                         mask=tile_mask, other=0.0).to(tl.float32)
        x_tile = tl.load(x_row_ptr + c_offsets[:, None] * stride_xc + hw[None, :] * stride_xhw,
                         mask=tile_mask, other=0.0).to(tl.float32)
        sum_g, sum_g_xhat, sum_g_x = _gradient_sums(g_tile, x_tile, tile_mask, mean, std)
    else:
        sum_g = tl.zeros_like(mean)
        sum_g_xhat = tl.zeros_like(mean)
        sum_g_x = tl.zeros_like(mean)
        for start in range(0, HW, BLOCK_HW):
            positions = start + hw
            mask = c_mask[:, None] & (positions[None, :] < HW)
            g = tl.load(g_row_ptr + c_offsets[:, None] * stride_gc + positions[None, :] * stride_ghw, mask=mask, other=0.0).to(tl.float32)
            x = tl.load(x_row_ptr + c_offsets[:, None] * stride_xc + positions[None, :] * stride_xhw, mask=mask, other=0.0).to(tl.float32)
            tile_sum_g, tile_sum_g_xhat, tile_sum_g_x = _gradient_sums(g, x, mask, mean, std)
            sum_g += tile_sum_g
            sum_g_xhat += tile_sum_g_xhat
            sum_g_x += tile_sum_g_x

    tl.store(grad_style_mean_ptr + n * C + c_offsets, alpha * sum_g, mask=c_mask)
    tl.store(grad_style_std_ptr + n * C + c_offsets, alpha * sum_g_xhat, mask=c_mask)
    # d/d alpha of alpha * (stylized - x), summed over this tile's channels.
    grad_alpha = tl.sum(tl.where(c_mask, style_std * sum_g_xhat + style_mean * sum_g - sum_g_x, 0.0), axis=0)
    tl.store(grad_alpha_partial_ptr + n * num_c_blocks + c_block, grad_alpha)

    # Pass 2: dx = (1 - a) g + a * s_std / std * (g - sum(g)/M - x_hat * sum(g x_hat)/(M - 1)).
    gain = alpha * style_std / std
    mean_g = sum_g * inv_count
    proj = sum_g_xhat * inv_dof
    grad_x_row_ptr = grad_x_ptr + n * stride_dn
    if SINGLE_TILE:
        grad_x = _grad_content(g_tile, x_tile, mean, std, alpha, gain, mean_g, proj)
        tl.store(grad_x_row_ptr + c_offsets[:, None] * stride_dc + hw[None, :] * stride_dhw,
                 grad_x.to(grad_x_ptr.dtype.element_ty), mask=tile_mask)
    else:
        for start in range(0, HW, BLOCK_HW):
            positions = start + hw
            mask = c_mask[:, None] & (positions[None, :] < HW)
            g = tl.load(g_row_ptr + c_offsets[:, None] * stride_gc + positions[None, :] * stride_ghw, mask=mask, other=0.0).to(tl.float32)
            x = tl.load(x_row_ptr + c_offsets[:, None] * stride_xc + positions[None, :] * stride_xhw, mask=mask, other=0.0).to(tl.float32)
            grad_x = _grad_content(g, x, mean, std, alpha, gain, mean_g, proj)
            tl.store(grad_x_row_ptr + c_offsets[:, None] * stride_dc + positions[None, :] * stride_dhw,
                     grad_x.to(grad_x_ptr.dtype.element_ty), mask=mask)


# --------------------------------------------------------------------------- launchers


def _as_nchw_rows(t: torch.Tensor) -> torch.Tensor:
    """A (N, C, H, W) tensor whose H and W merge into one strided axis without a copy where possible."""
    if t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last):
        return t
    return t.contiguous()


def _memory_format(t: torch.Tensor) -> torch.memory_format:
    if not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _hw_stride(t: torch.Tensor) -> int:
    """Stride of the merged H*W axis. Contiguous NCHW and channels_last have stride(H) == W * stride(W);
    PyTorch ignores the stride of a size-1 dimension when it decides contiguity, so with W == 1 the
    step between positions is stride(H), whatever stride(W) says."""
    return t.stride(3) if t.shape[3] > 1 else t.stride(2)


def _inverse_degrees_of_freedom(positions: int) -> float:
    # Unbiased variance as in the AdaIN port; a 1x1 map has none, and gets variance 0.
    return 1.0 / max(positions - 1, 1)


def _block_shape(x: torch.Tensor) -> tuple[int, int]:
    channels, positions = x.shape[1], x.shape[2] * x.shape[3]
    channels_last = x.stride(1) == 1 and positions > 1
    if channels_last:
        # Channels are contiguous: a wide channel block keeps loads coalesced.
        block_c = min(triton.next_power_of_2(channels), 64)
        block_hw = min(triton.next_power_of_2(positions), max(_TILE_ELEMENTS // block_c, 1))
    else:
        block_hw = min(triton.next_power_of_2(positions), _TILE_ELEMENTS)
        block_c = min(triton.next_power_of_2(channels), max(_TILE_ELEMENTS // block_hw, 1))
    return block_c, block_hw


def _launch_forward(x, style_mean, style_std, alpha, eps, write_output: bool):
    x = _as_nchw_rows(x)
    n, c = x.shape[:2]
    positions = x.shape[2] * x.shape[3]
    y = torch.empty_like(x) if write_output else x  # x stands in as a never-written pointer
    mean = torch.empty((n, c), device=x.device, dtype=torch.float32)
    std = torch.empty((n, c), device=x.device, dtype=torch.float32)
    block_c, block_hw = _block_shape(x)
    grid = (n * triton.cdiv(c, block_c),)
    wrap_triton(_adain_fwd_kernel)[grid](
        x, x.stride(0), x.stride(1), _hw_stride(x),
        y, y.stride(0), y.stride(1), _hw_stride(y),
        style_mean, style_mean.stride(0), style_mean.stride(1),
        style_std, style_std.stride(0), style_std.stride(1),
        alpha,
        mean, std,
        c, positions, _inverse_degrees_of_freedom(positions), eps,
        BLOCK_C=block_c, BLOCK_HW=block_hw, SINGLE_TILE=block_hw >= positions, WRITE_OUTPUT=write_output,
        num_warps=4 if block_c * block_hw <= 2048 else 8,
    )
    return y, mean, std


def _launch_stats(x, eps):
    unused = torch.ones((1, 1), device=x.device, dtype=torch.float32)  # style/alpha pointers the kernel never reads
    _, mean, std = _launch_forward(x, unused, unused, unused, eps, write_output=False)
    return mean, std


def _launch_backward(grad_y, x, style_mean, style_std, alpha, mean, std):
    x = _as_nchw_rows(x)
    # The gradient takes x's layout so both are read along the same contiguous axis.
    grad_y = grad_y.contiguous(memory_format=_memory_format(x))
    n, c = x.shape[:2]
    positions = x.shape[2] * x.shape[3]
    block_c, block_hw = _block_shape(x)
    num_c_blocks = triton.cdiv(c, block_c)
    grad_x = torch.empty_like(x)
    grad_style_mean = torch.empty((n, c), device=x.device, dtype=torch.float32)
    grad_style_std = torch.empty((n, c), device=x.device, dtype=torch.float32)
    grad_alpha_partial = torch.empty((n, num_c_blocks), device=x.device, dtype=torch.float32)
    wrap_triton(_adain_bwd_kernel)[(n * num_c_blocks,)](
        grad_y, grad_y.stride(0), grad_y.stride(1), _hw_stride(grad_y),
        x, x.stride(0), x.stride(1), _hw_stride(x),
        grad_x, grad_x.stride(0), grad_x.stride(1), _hw_stride(grad_x),
        style_mean, style_mean.stride(0), style_mean.stride(1),
        style_std, style_std.stride(0), style_std.stride(1),
        alpha,
        mean, std,
        grad_style_mean, grad_style_std,
        grad_alpha_partial,
        c, positions, 1.0 / positions, _inverse_degrees_of_freedom(positions),
        BLOCK_C=block_c, BLOCK_HW=block_hw, SINGLE_TILE=block_hw >= positions,
        num_warps=4 if block_c * block_hw <= 2048 else 8,
    )
    return grad_x, grad_style_mean, grad_style_std, grad_alpha_partial.sum(dim=1)


# Triton decides at decoration time whether kernels are compiled or interpreted. Interpreted
# kernels run on CPU tensors, so the ops' CPU kernels then run the Triton code (the tests do
# this); tests may set this to False to check the reference CPU kernels instead.
cpu_ops_use_triton = not isinstance(_adain_fwd_kernel, triton.runtime.jit.JITFunction)


def _runs_triton(t: torch.Tensor) -> bool:
    return t.device.type == "cuda" or cpu_ops_use_triton


# --------------------------------------------------------------------------- ops


@triton_op("fastnst::adain_forward", mutates_args={})
def adain_forward(
    content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor, alpha: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output, content mean, content std); the statistics are kept for the backward."""
    return _launch_forward(content, style_mean, style_std, alpha, eps, write_output=True)


@triton_op("fastnst::adain_backward", mutates_args={})
def adain_backward(
    grad_output: torch.Tensor, content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
    alpha: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients for content, style_mean, style_std and alpha (float32 for the small ones)."""
    return _launch_backward(grad_output, content, style_mean, style_std, alpha, mean, std)


@triton_op("fastnst::adain_stats", mutates_args={})
def adain_stats_op(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return _launch_stats(x, eps)


@adain_forward.register_kernel("cpu")
def _adain_forward_cpu(content, style_mean, style_std, alpha, eps):
    if _runs_triton(content):
        return _launch_forward(content, style_mean, style_std, alpha, eps, write_output=True)
    return adain_forward_reference(content, style_mean, style_std, alpha, eps)


@adain_backward.register_kernel("cpu")
def _adain_backward_cpu(grad_output, content, style_mean, style_std, alpha, mean, std):
    if _runs_triton(content):
        return _launch_backward(grad_output, content, style_mean, style_std, alpha, mean, std)
    return adain_backward_reference(grad_output, content, style_mean, style_std, alpha, mean, std)


@adain_stats_op.register_kernel("cpu")
def _adain_stats_cpu(x, eps):
    if _runs_triton(x):
        return _launch_stats(x, eps)
    return adain_stats_reference(x, eps)


# Shapes only, for FakeTensor tracing (torch.compile, opcheck): the launchers must not run there,
# and under the Triton interpreter they would try to read the fake tensors' memory.
@adain_forward.register_fake
def _adain_forward_fake(content, style_mean, style_std, alpha, eps):
    n, c = content.shape[:2]
    stat = content.new_empty((n, c), dtype=torch.float32)
    return torch.empty_like(_as_nchw_rows(content)), stat, stat.clone()


@adain_backward.register_fake
def _adain_backward_fake(grad_output, content, style_mean, style_std, alpha, mean, std):
    n, c = content.shape[:2]
    return (
        torch.empty_like(_as_nchw_rows(content)),
        content.new_empty((n, c), dtype=torch.float32),
        content.new_empty((n, c), dtype=torch.float32),
        content.new_empty((n,), dtype=torch.float32),
    )


@adain_stats_op.register_fake
def _adain_stats_fake(x, eps):
    stat = x.new_empty(x.shape[:2], dtype=torch.float32)
    return stat, stat.clone()


def _forward_setup_context(ctx, inputs, output):
    content, style_mean, style_std, alpha, _ = inputs
    _, mean, std = output
    ctx.save_for_backward(content, style_mean, style_std, alpha, mean, std)
    ctx.input_dtypes = (style_mean.dtype, style_std.dtype, alpha.dtype)


def _forward_backward(ctx, grad_output, _grad_mean, _grad_std):
    # Gradients through the returned content statistics are not supported (they are internal).
    content, style_mean, style_std, alpha, mean, std = ctx.saved_tensors
    grad_content, grad_style_mean, grad_style_std, grad_alpha = adain_backward(
        grad_output, content, style_mean, style_std, alpha, mean, std
    )
    mean_dtype, std_dtype, alpha_dtype = ctx.input_dtypes
    return grad_content, grad_style_mean.to(mean_dtype), grad_style_std.to(std_dtype), grad_alpha.to(alpha_dtype), None


adain_forward.register_autograd(_forward_backward, setup_context=_forward_setup_context)


def _stats_setup_context(ctx, inputs, output):
    x, _ = inputs
    mean, std = output
    ctx.save_for_backward(x, mean, std)


def _stats_backward(ctx, grad_mean, grad_std):
    # Elementwise with per-(n, c) coefficients: plain tensor ops, which torch.compile fuses.
    x, mean, std = ctx.saved_tensors
    count = x.shape[2] * x.shape[3]
    centered = x.float() - mean[:, :, None, None]
    grad_x = grad_mean[:, :, None, None] / count
    grad_x = grad_x + centered * (grad_std / (std * max(count - 1, 1)))[:, :, None, None]
    return grad_x.to(x.dtype), None


adain_stats_op.register_autograd(_stats_backward, setup_context=_stats_setup_context)


# --------------------------------------------------------------------------- public API


def _check_features(x: torch.Tensor, name: str) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must be (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"{name} has an empty spatial map {tuple(x.shape)}")


def _checked_style_and_alpha(content, style_mean, style_std, alpha):
    n, c = content.shape[:2]
    for name, stat in (("style_mean", style_mean), ("style_std", style_std)):
        if not torch.is_tensor(stat) or not stat.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor")
        if tuple(stat.shape) != (n, c):
            raise ValueError(f"{name} must have shape (N, C) = {(n, c)} to match content, got {tuple(stat.shape)}")
        if stat.device != content.device:
            raise ValueError(f"{name} is on {stat.device} but content is on {content.device}")
    if torch.is_tensor(alpha):
        if not alpha.is_floating_point():
            raise TypeError(f"alpha must be a float or a floating-point tensor, got {alpha.dtype}")
        if alpha.dim() == 0:
            alpha = alpha.expand(n)
        if tuple(alpha.shape) != (n,):
            raise ValueError(f"alpha must be a float or have shape (N,) = ({n},), got {tuple(alpha.shape)}")
        alpha = alpha.to(content.device).contiguous()
    else:
        alpha = torch.full((n,), float(alpha), device=content.device, dtype=torch.float32)
    return alpha


def adain(
    content: torch.Tensor,
    style_mean: torch.Tensor,
    style_std: torch.Tensor,
    alpha: float | torch.Tensor = 1.0,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Adaptive instance normalisation of ``content`` to the given style statistics, blended by ``alpha``.

    Args:
        content: (N, C, H, W) float32/bfloat16/float16 features, NCHW or channels_last.
        style_mean, style_std: (N, C) target statistics (e.g. from :func:`adain_stats` or a style bank).
        alpha: blend weight, a float or an (N,) tensor; 1 is full stylization, 0 returns ``content``.
        eps: added to the content variance before the square root.

    Returns:
        A tensor of ``content``'s shape, dtype and memory layout. Differentiable with respect to
        ``content``, ``style_mean``, ``style_std`` and ``alpha``.
    """
    _check_features(content, "content")
    alpha = _checked_style_and_alpha(content, style_mean, style_std, alpha)
    if content.device.type == "cuda":
        return adain_forward(content, style_mean, style_std, alpha, eps)[0]
    return adain_reference(content, style_mean, style_std, alpha, eps)


def adain_stats(x: torch.Tensor, eps: float = DEFAULT_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(sample, channel) mean and std of (N, C, H, W) features, float32 (N, C) each; differentiable."""
    _check_features(x, "x")
    if x.device.type == "cuda":
        return adain_stats_op(x, eps)
    return adain_stats_reference(x, eps)


class AdaIN(nn.Module):
    """``nn.Module`` form of :func:`adain`: ``AdaIN()(content, style_mean, style_std, alpha)``."""

    def __init__(self, eps: float = DEFAULT_EPS):
        super().__init__()
        self.eps = eps

    def forward(self, content, style_mean, style_std, alpha: float | torch.Tensor = 1.0) -> torch.Tensor:
        return adain(content, style_mean, style_std, alpha, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
