"""Fused AdaIN: Triton kernels and the ``fastnst::adain_forward`` / ``adain_backward`` / ``adain_stats`` ops.

Semantics (see ``kernels/reference.py``): per (n, c) mean and unbiased std over H*W
with eps on the variance, ``y = alpha * (style_std * (x - mean) / std + style_mean)
+ (1 - alpha) * x``, alpha per sample.

One program owns a (sample, block of channels) tile and every H*W position of it,
so the statistics never leave registers: when the map fits in one tile (up to 16384
positions in NCHW, 1024 in channels_last: 28 x 28 at relu4_1 for 224 px) the op reads
the input once and writes the output once (the memory floor). Larger maps loop over
H*W tiles with pipelined loads (cp.async), each lane of the tile running Welford's
update, and merge the lanes once after the loop; a second pass then streams the output,
last tile first, so that it starts on what L2 still holds. NCHW and channels_last share
the kernels: H and W are merged into one strided axis, and the block shape follows the
layout's contiguous axis (see :func:`block_shape`). ``bench/sm90_report.py`` compiles
every variant for sm_90 and reports registers and spills (``tests/test_adain_sm90.py``).

The public :func:`adain` and :func:`adain_stats` call the ops, which run the Triton kernels on
CUDA tensors (also under ``torch.compile(fullgraph=True)``) and the plain-PyTorch reference on
CPU tensors. The tests run the Triton code on the CPU too: with ``TRITON_INTERPRET=1`` set before
this module is imported, and ``cpu_ops_use_triton`` set (see ``_runs_triton``).
"""
from __future__ import annotations

import contextlib
import numbers
from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import nn
from torch._subclasses.fake_tensor import is_fake
from torch.library import triton_op, wrap_triton

from fastnst.kernels.reference import (
    DEFAULT_EPS,
    adain_backward_reference,
    adain_forward_reference,
    adain_stats_reference,
)

# Tiles, in elements of one (channels x positions) block; see block_shape for the layouts.
_SMALL_TILE = 4096  # the tile of small maps and of the loop path: 16 fp32 values a thread at 8 warps
_MAX_SINGLE_TILE = 16384  # the largest map held whole in registers: 32 fp32 values a thread at 16 warps
_SECTOR_BYTES = 32  # DRAM and L2 move 32-byte sectors: channels_last reads at least one whole sector a position
_LOOP_STAGES = 3  # loop path: two tiles in flight (cp.async into shared memory) while a third is used


# --------------------------------------------------------------------------- kernels


@triton.jit
def _looped_stats(x_block_ptr, channel_offsets, c_mask, stride_hw, HW,
                  BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, NUM_STAGES: tl.constexpr):
    """Per-channel mean and sum of squared deviations (M2) over HW tiles, in float32.

    Every lane of the (channel, position) tile runs Welford's update over the positions it meets
    (stable where sum / sum-of-squares is not); the lanes are merged once after the loop, with the
    parallel form of Chan et al.'s merge: M2 = sum(M2_lane + count_lane * (mean_lane - mean)^2).
    Reducing each tile inside the loop would cost a cross-warp reduction per tile (and loop-carried
    reduction results are what Triton's thread-locality pass could not compile for sm_90).
    """
    hw = tl.arange(0, BLOCK_HW)
    # Statistics of x - x[position 0]: lane means stay near 0, where float32 resolves the spread
    # finely even when the map sits on a large offset (x - origin is exact within a factor of 2).
    origin = tl.load(x_block_ptr + channel_offsets, mask=c_mask, other=0.0).to(tl.float32)
    mean = tl.zeros((BLOCK_C, BLOCK_HW), tl.float32)
    m2 = tl.zeros((BLOCK_C, BLOCK_HW), tl.float32)
    for tile in tl.range(0, tl.cdiv(HW, BLOCK_HW), num_stages=NUM_STAGES):
        positions = tile * BLOCK_HW + hw
        in_map = positions < HW
        x = tl.load(x_block_ptr + channel_offsets[:, None] + positions[None, :] * stride_hw,
                    mask=c_mask[:, None] & in_map[None, :], other=0.0).to(tl.float32) - origin[:, None]
        # Tiles before the last are full, so every lane inside the map has now seen tile + 1 values.
        delta = tl.where(in_map[None, :], x - mean, 0.0)
        mean += delta * (1.0 / (tile + 1.0))
        m2 += delta * (x - mean)
    # Lane j met positions j, j + BLOCK_HW, ... below HW; lanes past the map met none (mean 0, M2 0).
    lane_count = tl.where(hw < HW, (HW - 1 - hw) // BLOCK_HW + 1, 0).to(tl.float32)
    channel_mean = tl.sum(mean * lane_count[None, :], axis=1) / HW
    spread = mean - channel_mean[:, None]
    channel_m2 = tl.sum(m2 + lane_count[None, :] * spread * spread, axis=1)
    return channel_mean + origin, channel_m2


# Addressing, in both kernels: every (N, C, HW) map of one launch shares the strides (the launchers
# see to it), one program owns sample n and channels c_start .. c_start + BLOCK_C; its block base
# is a 64-bit scalar and the offsets inside it 32-bit (a sample has < 2**31 elements), which keeps
# the per-element address arithmetic out of 64-bit registers.


@triton.jit
def _adain_fwd_kernel(
    x_ptr, y_ptr,                                    # (N, C, HW) content (any float dtype) and output
    stride_n, stride_c, stride_hw,                   # of x and y alike
    style_mean_ptr, stride_mn, stride_mc,            # (N, C) style statistics
    style_std_ptr, stride_sn, stride_sc,
    alpha_ptr,                                       # (N,) blend weight
    mean_ptr, std_ptr,                               # (N, C) float32 content statistics, written
    C, HW, inv_dof, eps,                             # inv_dof = 1 / max(HW - 1, 1): unbiased variance
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, SINGLE_TILE: tl.constexpr, WRITE_OUTPUT: tl.constexpr,
    NUM_STAGES: tl.constexpr,
):
    num_c_blocks = tl.cdiv(C, BLOCK_C)
    pid = tl.program_id(0)
    n = pid // num_c_blocks
    c_start = (pid % num_c_blocks) * BLOCK_C
    channels = tl.arange(0, BLOCK_C)
    c_mask = c_start + channels < C
    channel_offsets = channels * stride_c
    hw = tl.arange(0, BLOCK_HW)
    block_offset = n.to(tl.int64) * stride_n + c_start * stride_c
    x_block_ptr = x_ptr + block_offset

    if SINGLE_TILE:  # the whole map in registers: x is read once, for statistics and output alike
        tile_mask = c_mask[:, None] & (hw[None, :] < HW)
        tile_offsets = channel_offsets[:, None] + hw[None, :] * stride_hw
        # Sums of x - x[position 0] (exact within a factor of 2), as in _looped_stats: a map on a large
        # offset keeps its spread. From here on only the centred tile is held.
        origin = tl.load(x_block_ptr + channel_offsets, mask=c_mask, other=0.0).to(tl.float32)
        x_tile = tl.load(x_block_ptr + tile_offsets, mask=tile_mask, other=0.0).to(tl.float32) - origin[:, None]
        shifted_mean = tl.sum(tl.where(tile_mask, x_tile, 0.0), axis=1) / HW
        centered = tl.where(tile_mask, x_tile - shifted_mean[:, None], 0.0)
        m2 = tl.sum(centered * centered, axis=1)
        mean = shifted_mean + origin
    else:
        mean, m2 = _looped_stats(x_block_ptr, channel_offsets, c_mask, stride_hw, HW, BLOCK_C, BLOCK_HW, NUM_STAGES)
    std = tl.sqrt(m2 * inv_dof + eps)
    stats_offsets = n * C + c_start + channels
    tl.store(mean_ptr + stats_offsets, mean, mask=c_mask)
    tl.store(std_ptr + stats_offsets, std, mask=c_mask)
    if WRITE_OUTPUT:
        c = c_start + channels
        style_mean = tl.load(style_mean_ptr + n * stride_mn + c * stride_mc, mask=c_mask, other=0.0).to(tl.float32)
        style_std = tl.load(style_std_ptr + n * stride_sn + c * stride_sc, mask=c_mask, other=1.0).to(tl.float32)
        alpha = tl.load(alpha_ptr + n).to(tl.float32)
        # y = alpha * (s_std (x - mean) / std + s_mean) + (1 - alpha) x, as one FMA on the centred x:
        # y = (x - mean) * gain + offset. Centring first keeps it exact where std is tiny (gain
        # huge), and only the centred tile stays live in registers.
        gain = alpha * style_std / std + (1.0 - alpha)
        offset = alpha * style_mean + (1.0 - alpha) * mean
        y_block_ptr = y_ptr + block_offset
        if SINGLE_TILE:
            y = centered * gain[:, None] + offset[:, None]
            tl.store(y_block_ptr + tile_offsets, y.to(y_ptr.dtype.element_ty), mask=tile_mask)
        else:
            # A second pass over x, last tile first: the tiles the statistics pass read last are the
            # likeliest to be still in L2.
            num_tiles = tl.cdiv(HW, BLOCK_HW)
            for step in tl.range(0, num_tiles, num_stages=NUM_STAGES):
                positions = (num_tiles - 1 - step) * BLOCK_HW + hw
                mask = c_mask[:, None] & (positions[None, :] < HW)
                offsets = channel_offsets[:, None] + positions[None, :] * stride_hw
                x = tl.load(x_block_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
                y = (x - mean[:, None]) * gain[:, None] + offset[:, None]
                tl.store(y_block_ptr + offsets, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _adain_bwd_kernel(
    grad_y_ptr, x_ptr, grad_x_ptr,                    # (N, C, HW): incoming gradient, content, written gradient
    stride_n, stride_c, stride_hw,                    # of all three alike
    style_mean_ptr, stride_mn, stride_mc,             # (N, C)
    style_std_ptr, stride_sn, stride_sc,
    alpha_ptr,                                        # (N,)
    mean_ptr, std_ptr,                                # (N, C) float32 content statistics from the forward
    grad_style_mean_ptr, grad_style_std_ptr,          # (N, C) float32, written
    grad_alpha_partial_ptr,                           # (N, num_c_blocks) float32, written
    C, HW, inv_count, inv_dof,                        # 1 / HW and 1 / max(HW - 1, 1)
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, SINGLE_TILE: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    num_c_blocks = tl.cdiv(C, BLOCK_C)
    pid = tl.program_id(0)
    n = pid // num_c_blocks
    c_block = pid % num_c_blocks
    c_start = c_block * BLOCK_C
    channels = tl.arange(0, BLOCK_C)
    c_mask = c_start + channels < C
    channel_offsets = channels * stride_c
    hw = tl.arange(0, BLOCK_HW)
    block_offset = n.to(tl.int64) * stride_n + c_start * stride_c
    g_block_ptr = grad_y_ptr + block_offset
    x_block_ptr = x_ptr + block_offset

    stats_offsets = n * C + c_start + channels
    mean = tl.load(mean_ptr + stats_offsets, mask=c_mask, other=0.0)
    std = tl.load(std_ptr + stats_offsets, mask=c_mask, other=1.0)
    c = c_start + channels
    style_mean = tl.load(style_mean_ptr + n * stride_mn + c * stride_mc, mask=c_mask, other=0.0).to(tl.float32)
    style_std = tl.load(style_std_ptr + n * stride_sn + c * stride_sc, mask=c_mask, other=0.0).to(tl.float32)
    alpha = tl.load(alpha_ptr + n).to(tl.float32)

    # Pass 1: sum(g) and sum(g * (x - mean)) per channel (masked lanes load g = 0 and add nothing).
    if SINGLE_TILE:  # g and x stay in registers for pass 2: each is read once
        tile_mask = c_mask[:, None] & (hw[None, :] < HW)
        tile_offsets = channel_offsets[:, None] + hw[None, :] * stride_hw
        g_tile = tl.load(g_block_ptr + tile_offsets, mask=tile_mask, other=0.0).to(tl.float32)
        # Held centred from here on (masked lanes: g = 0, so they add nothing to the sums).
        centered = tl.load(x_block_ptr + tile_offsets, mask=tile_mask, other=0.0).to(tl.float32) - mean[:, None]
        sum_g = tl.sum(g_tile, axis=1)
        sum_g_centered = tl.sum(g_tile * centered, axis=1)
    else:
        # Accumulate whole tiles and reduce once after the loop: no cross-warp reduction per tile
        # (and no loop-carried reduction results, which Triton's thread-locality pass could not
        # compile for sm_90 in float32).
        lanes_g = tl.zeros((BLOCK_C, BLOCK_HW), tl.float32)
        lanes_g_centered = tl.zeros((BLOCK_C, BLOCK_HW), tl.float32)
        for tile in tl.range(0, tl.cdiv(HW, BLOCK_HW), num_stages=NUM_STAGES):
            positions = tile * BLOCK_HW + hw
            mask = c_mask[:, None] & (positions[None, :] < HW)
            offsets = channel_offsets[:, None] + positions[None, :] * stride_hw
            g = tl.load(g_block_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
            x = tl.load(x_block_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
            lanes_g += g
            lanes_g_centered += g * (x - mean[:, None])
        sum_g = tl.sum(lanes_g, axis=1)
        sum_g_centered = tl.sum(lanes_g_centered, axis=1)
    sum_g_xhat = sum_g_centered / std

    tl.store(grad_style_mean_ptr + stats_offsets, alpha * sum_g, mask=c_mask)
    tl.store(grad_style_std_ptr + stats_offsets, alpha * sum_g_xhat, mask=c_mask)
    # d/d alpha of alpha * (stylized - x) = sum g * (s_std x_hat + s_mean - x) over this program's
    # channels, with x = (x - mean) + mean: no sum of g * x, which is large when the mean is.
    grad_alpha = tl.sum(tl.where(c_mask, style_std * sum_g_xhat + (style_mean - mean) * sum_g - sum_g_centered, 0.0), axis=0)
    tl.store(grad_alpha_partial_ptr + n * num_c_blocks + c_block, grad_alpha)

    # Pass 2: dx = (1 - a) g + a * s_std / std * (g - sum(g)/M - x_hat * sum(g x_hat)/(M - 1)),
    # with x_hat = (x - mean) / std: per channel, dx = g * g_gain + (x - mean) * x_gain + offset.
    gain = alpha * style_std / std
    g_gain = gain + (1.0 - alpha)
    x_gain = -gain * sum_g_xhat * inv_dof / std
    offset = -gain * sum_g * inv_count
    grad_x_block_ptr = grad_x_ptr + block_offset
    if SINGLE_TILE:
        grad_x = g_tile * g_gain[:, None] + centered * x_gain[:, None] + offset[:, None]
        tl.store(grad_x_block_ptr + tile_offsets, grad_x.to(grad_x_ptr.dtype.element_ty), mask=tile_mask)
    else:
        num_tiles = tl.cdiv(HW, BLOCK_HW)
        for step in tl.range(0, num_tiles, num_stages=NUM_STAGES):  # last tile first, as in the forward
            positions = (num_tiles - 1 - step) * BLOCK_HW + hw
            mask = c_mask[:, None] & (positions[None, :] < HW)
            offsets = channel_offsets[:, None] + positions[None, :] * stride_hw
            g = tl.load(g_block_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
            x = tl.load(x_block_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
            grad_x = g * g_gain[:, None] + (x - mean[:, None]) * x_gain[:, None] + offset[:, None]
            tl.store(grad_x_block_ptr + offsets, grad_x.to(grad_x_ptr.dtype.element_ty), mask=mask)


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


def _map_strides(t: torch.Tensor) -> tuple[int, int, int]:
    """(sample, channel, position) strides of the (N, C, H*W) view; one launch's maps all share them."""
    if t.shape[1] * t.shape[2] * t.shape[3] > 2**31 - 1:  # the kernels index inside a sample in int32
        raise ValueError(f"a sample of {tuple(t.shape)} has more than 2**31 - 1 elements")
    return t.stride(0), t.stride(1), _hw_stride(t)


def _is_channels_last(t: torch.Tensor) -> bool:
    """Channels are the contiguous axis (with one position, either layout reads the same memory)."""
    return t.stride(1) == 1 and t.shape[2] * t.shape[3] > 1


def _inverse_degrees_of_freedom(positions: int) -> float:
    # Unbiased variance as in the AdaIN port; a 1x1 map has none, and gets variance 0.
    return 1.0 / max(positions - 1, 1)


class BlockShape(NamedTuple):
    """How the kernels tile an (N, C, H*W) map: one program per (sample, block_c channels)."""

    block_c: int
    block_hw: int
    single_tile: bool  # the whole map in one tile: each input element is read once
    num_warps: int  # forward and statistics kernels
    backward_num_warps: int


def block_shape(channels: int, positions: int, channels_last: bool, element_size: int) -> BlockShape:
    """The tile for ``channels`` x ``positions`` maps of a layout and element size (bytes).

    The tile depends on the map's size class, the layout and 16-bit or not alone, so that the sm_90
    check (``bench/sm90_report.py``) can compile every variant in CI; bench/README.md holds each
    variant's registers, and those of the rejected tiles named below. Map sizes are rounded up to a
    power of 4, from 16: a square map's next_power_of_2(side)^2 is one (every image here is square,
    so no VGG map pays for it), and half the size classes of powers of 2 mean half the variants.
    Tiles are not shrunk to small C: every VGG-19 relu*_1 map has C * H*W >= 4096, so none idles a lane.
    """
    map_tile = 16
    while map_tile < positions:
        map_tile *= 4
    if channels_last:
        # Channels are contiguous, so the channel block is the coalesced axis (Triton lays threads
        # along it): 32 bytes of channels (8 in fp32, 16 in bf16/fp16) make each position's load
        # one whole DRAM sector. Maps up to 1024 positions are held whole, so 28 x 28 = 784 at
        # relu4_1 for 224 px is read once: 32 KB a program in either dtype, 1/32 of a 512-channel
        # sample. (16 fp32 channels fit one program an SM, where 8 fit two.) Larger maps loop over
        # 64 channels (>= 128 B a position) x 64 positions; the second pass re-reads what L2 still holds.
        min_block_c = _SECTOR_BYTES // min(max(element_size, 2), 4)
        if min_block_c * map_tile <= _MAX_SINGLE_TILE:
            block_c, block_hw, single_tile = max(_SMALL_TILE // map_tile, min_block_c), map_tile, True
        else:
            block_c, block_hw, single_tile = 64, _SMALL_TILE // 64, False
    else:
        # Positions are contiguous: a channel's whole map in one tile up to 16384 positions (128 x 128;
        # relu2_1 at 224 px has 12544), several channels a tile for small maps (a tile's rows are
        # adjacent in memory); larger maps loop over 4096 positions of one channel.
        if map_tile <= _MAX_SINGLE_TILE:
            block_c, block_hw, single_tile = max(_SMALL_TILE // map_tile, 1), map_tile, True
        else:
            block_c, block_hw, single_tile = 1, _SMALL_TILE, False
    elements = block_c * block_hw
    # Up to 16 fp32 values of the tile a thread (32 in a 16384-element tile, at the 16-warp maximum):
    # no spills. (The 16 x 1024 bf16 forward fits one program an SM; capped for two, it spills.)
    num_warps = min(max(elements // 512, 4), 16)
    # The backward holds two tiles (gradient and content), and channels_last keeps more per-channel
    # factors a thread: its large tiles get 8 warps. The 16 x 1024 bf16 tile spills at 16 (a
    # 512-thread program may use 128 registers a thread); 8 x 1024 fp32 fits two programs an SM
    # at 8 warps, one at 16.
    backward_num_warps = 8 if channels_last and elements >= 8192 else num_warps
    return BlockShape(block_c, block_hw, single_tile, num_warps, backward_num_warps)


POWER_OF_TWO_MAPS = [2**k for k in range(18)]  # map sizes that reach every tile (and the loop path) of block_shape


def all_block_shapes(element_size: int) -> set[tuple[bool, BlockShape]]:
    """Every (channels_last, BlockShape) :func:`block_shape` can return for an element size.

    :func:`block_shape` depends on H*W's size class (a power of 4), the layout and the element size
    alone, and is constant past the largest single tile, so powers of two up to 2**17 positions
    reach every shape. The sm_90 check compiles each of them."""
    return {(layout, block_shape(64, p, layout, element_size)) for layout in (False, True) for p in POWER_OF_TWO_MAPS}


# Triton decides when it decorates a kernel whether it is compiled or interpreted (TRITON_INTERPRET=1).
INTERPRETED = not isinstance(_adain_fwd_kernel, triton.runtime.jit.JITFunction)
# CPU tensors take the plain-PyTorch reference; the tests set this to run the interpreted Triton code on them.
cpu_ops_use_triton = False


def _runs_triton(t: torch.Tensor) -> bool:
    """The one device choice: Triton for CUDA tensors, the reference for CPU ones (unless the tests ask).

    torch.compile's AOT dispatch decomposes a triton_op through its Python body on fake tensors
    (whatever the device): CPU tensors must trace the reference there, since neither a compiled
    kernel nor the interpreter can run on them."""
    if t.device.type == "cuda":
        return True
    return cpu_ops_use_triton and not is_fake(t)


def _device_guard(device: torch.device):
    """Launch on the tensors' device, not the current one (a tensor on cuda:1 while cuda:0 is current)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _launch(kernel, grid: tuple[int], device: torch.device, *args, **meta) -> None:
    # Compiled kernels go through wrap_triton, which torch.compile traces (and the sm_90 check replaces).
    # Interpreted ones run eagerly on CPU tensors only, and torch 2.11's wrap_triton refuses them.
    launcher = kernel if INTERPRETED else wrap_triton(kernel)
    with _device_guard(device):
        launcher[grid](*args, **meta)


def _launch_forward(x, style_mean, style_std, alpha, eps, write_output: bool):
    """(output, mean, std) of ``x``, copied to contiguous first unless it is contiguous or channels_last."""
    x = _as_nchw_rows(x)
    n, c = x.shape[:2]
    positions = x.shape[2] * x.shape[3]
    y = torch.empty_like(x) if write_output else x  # x stands in as a never-written pointer
    mean = torch.empty((n, c), device=x.device, dtype=torch.float32)
    std = torch.empty((n, c), device=x.device, dtype=torch.float32)
    shape = block_shape(c, positions, _is_channels_last(x), x.element_size())
    _launch(
        _adain_fwd_kernel, (n * triton.cdiv(c, shape.block_c),), x.device,
        x, y, *_map_strides(x),
        style_mean, style_mean.stride(0), style_mean.stride(1),
        style_std, style_std.stride(0), style_std.stride(1),
        alpha,
        mean, std,
        c, positions, _inverse_degrees_of_freedom(positions), eps,
        BLOCK_C=shape.block_c, BLOCK_HW=shape.block_hw, SINGLE_TILE=shape.single_tile,
        WRITE_OUTPUT=write_output, NUM_STAGES=_LOOP_STAGES, num_warps=shape.num_warps,
    )
    return y, mean, std


def _launch_stats(x, eps):
    unused = torch.ones((1, 1), device=x.device, dtype=torch.float32)  # style/alpha pointers the kernel never reads
    _, mean, std = _launch_forward(x, unused, unused, unused, eps, write_output=False)
    return mean, std


def _launch_backward(grad_y, x, style_mean, style_std, alpha, mean, std):
    """(grad_x, grad_style_mean, grad_style_std, grad_alpha); the small gradients in float32."""
    x = _as_nchw_rows(x)
    # The gradient takes x's layout (and strides: the kernel reads both with one set of offsets).
    grad_y = grad_y.contiguous(memory_format=_memory_format(x))
    if _map_strides(grad_y) != _map_strides(x):  # only size-1 dimensions can differ here
        grad_y = torch.empty_like(x).copy_(grad_y)
    n, c = x.shape[:2]
    positions = x.shape[2] * x.shape[3]
    shape = block_shape(c, positions, _is_channels_last(x), x.element_size())
    num_c_blocks = triton.cdiv(c, shape.block_c)
    grad_x = torch.empty_like(x)
    grad_style_mean = torch.empty((n, c), device=x.device, dtype=torch.float32)
    grad_style_std = torch.empty((n, c), device=x.device, dtype=torch.float32)
    grad_alpha_partial = torch.empty((n, num_c_blocks), device=x.device, dtype=torch.float32)
    _launch(
        _adain_bwd_kernel, (n * num_c_blocks,), x.device,
        grad_y, x, grad_x, *_map_strides(x),
        style_mean, style_mean.stride(0), style_mean.stride(1),
        style_std, style_std.stride(0), style_std.stride(1),
        alpha,
        mean, std,
        grad_style_mean, grad_style_std,
        grad_alpha_partial,
        c, positions, 1.0 / positions, _inverse_degrees_of_freedom(positions),
        BLOCK_C=shape.block_c, BLOCK_HW=shape.block_hw, SINGLE_TILE=shape.single_tile,
        NUM_STAGES=_LOOP_STAGES, num_warps=shape.backward_num_warps,
    )
    return grad_x, grad_style_mean, grad_style_std, grad_alpha_partial.sum(dim=1)


# --------------------------------------------------------------------------- ops


# The bodies pick the implementation by device (_runs_triton), so eager calls and torch.compile's
# decomposition of the ops agree: Triton on CUDA, the plain-PyTorch reference on the CPU.
@triton_op("fastnst::adain_forward", mutates_args={})
def adain_forward(
    content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor, alpha: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output, content mean, content std); the statistics are kept for the backward."""
    if _runs_triton(content):
        return _launch_forward(content, style_mean, style_std, alpha, eps, write_output=True)
    return adain_forward_reference(content, style_mean, style_std, alpha, eps)


@triton_op("fastnst::adain_backward", mutates_args={})
def adain_backward(
    grad_output: torch.Tensor, content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
    alpha: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients for content, style_mean, style_std and alpha (float32 for the small ones)."""
    if _runs_triton(content):
        return _launch_backward(grad_output, content, style_mean, style_std, alpha, mean, std)
    return adain_backward_reference(grad_output, content, style_mean, style_std, alpha, mean, std)


@triton_op("fastnst::adain_stats", mutates_args={})
def adain_stats_op(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
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
    elif isinstance(alpha, numbers.Real):
        alpha = torch.full((n,), float(alpha), device=content.device, dtype=torch.float32)
    else:
        raise TypeError(f"alpha must be a float or a floating-point tensor, got {type(alpha).__name__}")
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
    return adain_forward(content, style_mean, style_std, alpha, eps)[0]


def adain_stats(x: torch.Tensor, eps: float = DEFAULT_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(sample, channel) mean and std of (N, C, H, W) features, float32 (N, C) each; differentiable."""
    _check_features(x, "x")
    return adain_stats_op(x, eps)


class AdaIN(nn.Module):
    """``nn.Module`` form of :func:`adain`: ``AdaIN()(content, style_mean, style_std, alpha)``."""

    def __init__(self, eps: float = DEFAULT_EPS):
        super().__init__()
        self.eps = eps

    def forward(self, content, style_mean, style_std, alpha: float | torch.Tensor = 1.0) -> torch.Tensor:
        return adain(content, style_mean, style_std, alpha, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
