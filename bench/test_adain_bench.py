"""Fused AdaIN vs eager PyTorch on VGG-19 relu4_1 shapes (512 channels, 1/8 of the image side).

Each shape is timed twice in one run, ``fused`` (``kernels.adain``) and ``eager`` (what a user
writes without the op: mean/std, normalize, blend); the fused case records
``speedup_vs_eager`` from the two medians. Bytes moved are counted at the op's floor (content
read once, output written once). On a GPU the fused case also records ``fraction_of_copy``:
the op and a device-to-device copy of the same bytes, both timed by ``triton.testing.do_bench``
(median, L2 flushed before every call; ``bench/adain_bandwidth.py``), so neither side gets a
warm L2 or pays host dispatch the other does not. Goals on an H100: >= 0.85 of the copy rate on
the large shapes and >= 3x eager. ``bench/adain_bandwidth.py`` measures every VGG layer, and
the backward, the same way.

On the CPU ``kernels.adain`` runs the PyTorch reference (no Triton), so there the two cases
are two PyTorch formulations and the figures only keep the bench alive.
"""
from __future__ import annotations

import torch

from bench import adain_bandwidth
from fastnst import kernels

SIZES = {  # bench mode -> (batch, image sides, dtypes)
    "full": (256, [32, 64, 224], [torch.bfloat16, torch.float32]),
    "cpu": (8, [32, 64], [torch.float32]),
}
_medians: dict[tuple, float] = {}  # (image size, dtype, layout, impl) -> median seconds


def _eager_adain(content, style_mean, style_std, alpha, eps=1e-5):
    n, c = content.shape[:2]
    flat = content.reshape(n, c, -1).float()
    mean = flat.mean(dim=2).view(n, c, 1, 1)
    std = (flat.var(dim=2) + eps).sqrt().view(n, c, 1, 1)
    stylized = (content.float() - mean) / std * style_std.view(n, c, 1, 1) + style_mean.view(n, c, 1, 1)
    a = alpha.view(n, 1, 1, 1)
    return (a * stylized + (1 - a) * content.float()).to(content.dtype)


IMPLEMENTATIONS = {"eager": _eager_adain, "fused": kernels.adain}


def _inputs(batch, image_size, dtype, channels_last, device):
    generator = torch.Generator().manual_seed(image_size)
    side = image_size // 8
    content = (torch.randn(batch, 512, side, side, generator=generator) + 0.5).to(device, dtype)
    if channels_last:
        content = content.contiguous(memory_format=torch.channels_last)
    style_mean = torch.randn(batch, 512, generator=generator).to(device)
    style_std = (torch.rand(batch, 512, generator=generator) + 0.5).to(device)
    alpha = torch.rand(batch, generator=generator).to(device)
    return content, style_mean, style_std, alpha


def pytest_generate_tests(metafunc):
    """Cases of the session's bench mode only (sizes differ between modes)."""
    if "adain_case" not in metafunc.fixturenames:
        return
    from bench.conftest import resolve_bench_mode

    mode = resolve_bench_mode(metafunc.config.getoption("--bench-mode"), torch.cuda.is_available())
    _, image_sizes, dtypes = SIZES[mode]
    cases = [(image_size, dtype, layout, impl)
             for image_size in image_sizes for dtype in dtypes for layout in ("nchw", "channels_last")
             for impl in IMPLEMENTATIONS]  # eager before fused: the fused case reads eager's median
    metafunc.parametrize("adain_case", cases, ids=[f"{s}px-{str(d)[6:]}-{l}-{i}" for s, d, l, i in cases])


def test_adain_forward(benchmark, adain_case, bench_mode, bench_device, cuda_sync):
    image_size, dtype, layout, impl = adain_case
    batch = SIZES[bench_mode][0]
    inputs = _inputs(batch, image_size, dtype, layout == "channels_last", bench_device)
    function = IMPLEMENTATIONS[impl]

    def run():
        out = function(*inputs)
        cuda_sync()
        return out

    out = benchmark(run)
    assert out.shape == inputs[0].shape and out.dtype == dtype
    content = inputs[0]
    bytes_moved = 2 * content.numel() * content.element_size()
    benchmark.extra_info.update(dtype=str(dtype), shape=list(content.shape), layout=layout, impl=impl)
    if not benchmark.stats:  # --benchmark-disable: the call ran once, untimed
        return
    median = benchmark.stats.stats.median
    _medians[(image_size, dtype, layout, impl)] = median
    benchmark.extra_info["gb_per_s"] = bytes_moved / median / 1e9
    eager = _medians.get((image_size, dtype, layout, "eager"))
    if impl == "fused" and eager is not None:
        benchmark.extra_info["speedup_vs_eager"] = eager / median
    if impl == "fused" and bench_device.type == "cuda":
        # Both sides timed alike (do_bench, L2 flushed); the benchmark's own median above includes
        # a synchronize per call and a warm L2, so it is not compared with the copy.
        source = torch.empty(content.numel() * content.element_size(), dtype=torch.uint8, device=bench_device)
        target = torch.empty_like(source)
        copy_seconds = adain_bandwidth.time_seconds(lambda: target.copy_(source), bench_device)
        fused_seconds = adain_bandwidth.time_seconds(lambda: function(*inputs), bench_device)
        benchmark.extra_info.update(
            kernel_gb_per_s=bytes_moved / fused_seconds / 1e9,
            copy_gb_per_s=bytes_moved / copy_seconds / 1e9,
            fraction_of_copy=copy_seconds / fused_seconds,
        )


def test_adain_forward_backward(benchmark, bench_mode, bench_device, cuda_sync):
    batch, image_sizes, dtypes = SIZES[bench_mode]
    content, style_mean, style_std, alpha = _inputs(batch, image_sizes[-1], dtypes[0], True, bench_device)
    leaves = [content.requires_grad_(), style_mean.requires_grad_(), style_std.requires_grad_()]
    grad = torch.randn_like(content)

    def run():
        out = kernels.adain(content, style_mean, style_std, alpha)
        torch.autograd.grad(out, leaves, grad)
        cuda_sync()

    benchmark(run)
    benchmark.extra_info.update(dtype=str(dtypes[0]), shape=list(content.shape), layout="channels_last")
