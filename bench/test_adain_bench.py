"""Fused AdaIN vs eager PyTorch on VGG-19 relu4_1 shapes (512 channels, 1/8 of the image side).

On a GPU each case also records achieved GB/s (bytes read once + written once, the
op's memory floor) next to a measured device-to-device copy of the same bytes: the
goal is >= 85 % of the copy rate on the large shapes and >= 3x eager.
On the CPU the op *is* the eager reference, so the CPU figures only keep the bench alive.
"""
from __future__ import annotations

import pytest
import torch

import kernels

CUDA = torch.cuda.is_available()
BATCH = 256 if CUDA else 8
IMAGE_SIZES = [32, 64, 224] if CUDA else [32, 64]
DTYPES = [torch.bfloat16, torch.float32] if CUDA else [torch.float32]


def _eager_adain(content, style_mean, style_std, alpha, eps=1e-5):
    """What a user writes without the op: the AdaIN port's calc_mean_std, normalize, blend."""
    n, c = content.shape[:2]
    flat = content.reshape(n, c, -1).float()
    mean = flat.mean(dim=2).view(n, c, 1, 1)
    std = (flat.var(dim=2) + eps).sqrt().view(n, c, 1, 1)
    stylized = (content.float() - mean) / std * style_std.view(n, c, 1, 1) + style_mean.view(n, c, 1, 1)
    a = alpha.view(n, 1, 1, 1)
    return (a * stylized + (1 - a) * content.float()).to(content.dtype)


def _inputs(image_size, dtype, channels_last):
    device = "cuda" if CUDA else "cpu"
    side = image_size // 8
    content = torch.randn(BATCH, 512, side, side, device=device).to(dtype) + 0.5
    if channels_last:
        content = content.contiguous(memory_format=torch.channels_last)
    style_mean = torch.randn(BATCH, 512, device=device)
    style_std = torch.rand(BATCH, 512, device=device) + 0.5
    alpha = torch.rand(BATCH, device=device)
    return content, style_mean, style_std, alpha


def _time_ms(fn, *args) -> float:
    if CUDA:
        import triton.testing

        return triton.testing.do_bench(lambda: fn(*args), warmup=25, rep=200, return_mode="median")
    import time

    fn(*args)
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        fn(*args)
        samples.append((time.perf_counter() - start) * 1e3)
    return sorted(samples)[len(samples) // 2]


def _device_name() -> str:
    return torch.cuda.get_device_name() if CUDA else "cpu"


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("image_size", IMAGE_SIZES, ids=lambda s: f"{s}px")
def test_adain_forward(benchmark, image_size, dtype, channels_last):
    content, style_mean, style_std, alpha = _inputs(image_size, dtype, channels_last)

    def run():
        out = kernels.adain(content, style_mean, style_std, alpha)
        if CUDA:
            torch.cuda.synchronize()
        return out

    benchmark.pedantic(run, rounds=20 if CUDA else 5, iterations=10 if CUDA else 1, warmup_rounds=2)

    bytes_moved = 2 * content.numel() * content.element_size()  # read once, write once
    fused_ms = _time_ms(kernels.adain, content, style_mean, style_std, alpha)
    eager_ms = _time_ms(_eager_adain, content, style_mean, style_std, alpha)
    benchmark.extra_info.update(
        device=_device_name(),
        dtype=str(dtype),
        shape=list(content.shape),
        layout="channels_last" if channels_last else "nchw",
        fused_ms=fused_ms,
        eager_ms=eager_ms,
        speedup_vs_eager=eager_ms / fused_ms,
        fused_gb_per_s=bytes_moved / fused_ms / 1e6,
    )
    if CUDA:
        source = torch.empty(content.numel() * content.element_size(), dtype=torch.uint8, device="cuda")
        target = torch.empty_like(source)
        copy_ms = _time_ms(target.copy_, source)
        benchmark.extra_info.update(copy_gb_per_s=bytes_moved / copy_ms / 1e6, fraction_of_copy=copy_ms / fused_ms)


@pytest.mark.parametrize("image_size", IMAGE_SIZES[-1:], ids=lambda s: f"{s}px")
def test_adain_forward_backward(benchmark, image_size):
    dtype = torch.bfloat16 if CUDA else torch.float32
    content, style_mean, style_std, alpha = _inputs(image_size, dtype, channels_last=True)
    content.requires_grad_()
    style_mean.requires_grad_()
    style_std.requires_grad_()
    grad = torch.randn_like(content)

    def run():
        out = kernels.adain(content, style_mean, style_std, alpha)
        torch.autograd.grad(out, (content, style_mean, style_std), grad)
        if CUDA:
            torch.cuda.synchronize()

    benchmark.pedantic(run, rounds=20 if CUDA else 3, iterations=5 if CUDA else 1, warmup_rounds=2)
    benchmark.extra_info.update(device=_device_name(), dtype=str(dtype), shape=list(content.shape), layout="channels_last")
