"""The fused AdaIN op against a float64 PyTorch reference.

Without CUDA, ``tests/conftest.py`` sets ``TRITON_INTERPRET=1`` before anything imports
Triton, so the tests can run the Triton code on CPU tensors through the interpreter; with
CUDA the kernels are compiled and the same cases run on the GPU (``kernel_devices``).
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
import triton

from bench import adain_bandwidth
from fastnst import kernels
from fastnst.kernels.adain import adain_backward, adain_forward, adain_stats_op
from fastnst.kernels.reference import adain_reference, adain_stats_reference

adain_module = importlib.import_module("fastnst.kernels.adain")  # the package re-exports a function of the same name
REPO_ROOT = Path(__file__).resolve().parents[1]

# Between them these reach every block shape of both layouts, single-tile and looped (checked below).
SHAPES = [
    (2, 3, 5, 7),      # odd everything
    (3, 5, 1, 1),      # 1x1 spatial: unbiased variance undefined, defined as 0
    (2, 4, 13, 11),    # prime H and W
    (1, 3, 67, 67),    # H*W = 4489: channels_last loops (64 x 64 tiles, partial last); NCHW holds it whole
    (2, 70, 4, 4),     # C not a multiple of the channel block (relu4_1-like 4x4 map)
    (1, 130, 3, 1),    # many channel blocks, H*W = 3, one column
    (3, 3000, 1, 2),   # N*C = 9000 rows: several programs per sample, each a 256-channel block
    (2, 24, 28, 28),   # relu4_1 at 224 px: 784 positions held whole in channels_last too (8/16 x 1024 tile)
    (1, 20, 40, 25),   # 1000 positions: the largest channels_last class held whole; 20 = 2.5 blocks of 8
    (1, 3, 41, 50),    # 2050 positions: NCHW 4096-position tile
]
# 17030 positions: the NCHW loop (4096 a step, partial last tile). NCHW only: in channels_last it
# is 267 interpreted loop steps of 64 positions, a path (1, 3, 67, 67) already takes.
LARGE_NCHW_SHAPE = (1, 2, 130, 131)
LAYOUT_CASES = [(shape, layout) for shape in SHAPES for layout in (False, True)] + [(LARGE_NCHW_SHAPE, False)]


def _case_id(case) -> str:
    shape, channels_last = case
    return "x".join(map(str, shape)) + ("-channels_last" if channels_last else "-nchw")

# Contiguous by PyTorch's rules, yet with odd strides on a size-1 dimension: (shape, permutation).
SIZE_ONE_STRIDE_CASES = [
    ((2, 3, 1, 6), (0, 1, 3, 2)),  # W == 1 with stride(W) == 6: the H*W step is stride(H)
    ((2, 3, 5, 1), (0, 1, 3, 2)),  # H == 1 with stride(H) == 1
]

DTYPE_TOLERANCES = [  # relative L2 error vs float64
    (torch.float32, 1e-5),
    (torch.bfloat16, 2e-2),
    (torch.float16, 3e-3),
]

COMPILED = "Triton kernels were compiled, not interpreted: run without CUDA or with TRITON_INTERPRET=1"


def kernel_devices() -> list:
    """Where the Triton kernels can run here: CUDA whenever present (compiled), the CPU when interpreted."""
    cpu = pytest.param("cpu", marks=pytest.mark.skipif(not adain_module.INTERPRETED, reason=COMPILED))
    return [cpu] + ([pytest.param("cuda", marks=pytest.mark.cuda)] if torch.cuda.is_available() else [])


@pytest.fixture
def kernel_device(request, monkeypatch) -> str:
    """The device a test's tensors go to; on the CPU the ops run the interpreted Triton code, not the reference."""
    if request.param == "cpu":
        monkeypatch.setattr(adain_module, "cpu_ops_use_triton", True)
    return request.param


on_kernel_devices = pytest.mark.parametrize("kernel_device", kernel_devices(), indirect=True)


@pytest.fixture
def triton_interpreter(monkeypatch):
    """The ops' CPU kernels run the (interpreted) Triton code, not the reference."""
    if not adain_module.INTERPRETED:
        pytest.skip(COMPILED)
    monkeypatch.setattr(adain_module, "cpu_ops_use_triton", True)


def _random_inputs(shape, dtype, channels_last, device, generator):
    n, c, _, _ = shape
    # Offset and scale away from zero: zeros hide unwritten outputs and wrong indexing.
    content = (torch.randn(shape, generator=generator) * 2 + 0.5).to(dtype)
    if channels_last:
        content = content.contiguous(memory_format=torch.channels_last)
    style_mean = torch.randn(n, c, generator=generator)
    style_std = torch.rand(n, c, generator=generator) + 0.5
    alpha = torch.rand(n, generator=generator) * 0.9 + 0.05
    return [t.to(device) for t in (content, style_mean, style_std, alpha)]


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    expected = expected.double().cpu()
    scale = expected.norm().clamp_min(1e-12)
    return ((actual.double().cpu() - expected).norm() / scale).item()


def _gradient_tolerance(forward_tolerance: float) -> float:
    # A normalisation's input gradient is a difference of nearly equal terms (it sums to zero over
    # H*W; with H*W = 2 it nearly vanishes), so float32 rounding of those terms shows up to ~1e-4
    # relative to the small result; bf16/fp16 inputs carry their rounding into sums of g * x_hat.
    return max(2 * forward_tolerance, 1e-4)


def _float64_reference_with_grads(content, style_mean, style_std, alpha, grad_output):
    leaves = [t.detach().double().cpu().requires_grad_() for t in (content, style_mean, style_std, alpha)]
    out = adain_reference(*leaves)
    grads = torch.autograd.grad(out, leaves, grad_output.double().cpu())
    return out, grads


def _block_shape_of(shape, dtype, channels_last) -> tuple[bool, adain_module.BlockShape]:
    n, c, h, w = shape
    is_channels_last = channels_last and h * w > 1  # one position: both layouts read the same memory
    return is_channels_last, adain_module.block_shape(c, h * w, is_channels_last, dtype.itemsize)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["4-byte", "2-byte"])
def test_correctness_shapes_reach_every_block_shape(dtype):
    """SHAPES (run in every dtype and layout below) cover each tile the kernels can be launched with."""
    reached = {_block_shape_of(shape, dtype, layout) for shape, layout in LAYOUT_CASES}
    assert reached == adain_module.all_block_shapes(dtype.itemsize)


@pytest.mark.parametrize("element_size", [4, 2])
@pytest.mark.parametrize("side", [4, 7, 8, 14, 16, 28, 32])
def test_channels_last_maps_up_to_1024_positions_are_read_once(side, element_size):
    """relu4_1 at 224 px (28 x 28) and smaller maps: one tile holds the whole map, >= 32 B a position."""
    shape = adain_module.block_shape(512, side * side, True, element_size)
    assert shape.single_tile and shape.block_hw >= side * side
    assert shape.block_c * element_size >= 32  # a whole DRAM sector a position
    assert adain_module.block_shape(512, 2000, True, element_size).single_tile is False


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("positions", [1, 2, 15, 16, 17, 784, 1024, 1025, 4096, 12544, 16384, 16385, 50176, 10**6])
def test_block_shapes_come_from_the_compiled_set(positions, channels_last):
    """Any map gets one of all_block_shapes(), the set the sm_90 check compiles; tiles cover single maps."""
    for element_size in (4, 2, 8):
        shape = adain_module.block_shape(64, positions, channels_last, element_size)
        assert (channels_last, shape) in adain_module.all_block_shapes(min(element_size, 4))
        assert shape.single_tile == (shape.block_hw >= positions)
        assert 4 <= shape.backward_num_warps <= shape.num_warps <= 16


@on_kernel_devices
@pytest.mark.parametrize("dtype, tolerance", DTYPE_TOLERANCES, ids=lambda v: str(v).replace("torch.", ""))
@pytest.mark.parametrize("shape, channels_last", LAYOUT_CASES, ids=[_case_id(c) for c in LAYOUT_CASES])
# Masked lanes of a tile hold values that are never stored (in fp16 they can overflow for a map
# whose std is tiny); the interpreter warns about the cast. Stored values are checked below.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_forward_and_gradients_match_float64_reference(shape, dtype, tolerance, channels_last, kernel_device):
    device = kernel_device
    # zlib.crc32, not hash(): str hashes change per process (PYTHONHASHSEED), and so would the inputs.
    generator = torch.Generator().manual_seed(zlib.crc32(repr((shape, str(dtype), channels_last)).encode()))
    content, style_mean, style_std, alpha = _random_inputs(shape, dtype, channels_last, device, generator)
    inputs = [t.clone().requires_grad_() for t in (content, style_mean, style_std, alpha)]

    out, _, _ = adain_forward(*inputs, 1e-5)
    grad_output = torch.randn(out.shape, generator=generator).to(device=device, dtype=dtype) + 0.1
    grads = torch.autograd.grad(out, inputs, grad_output)
    expected, expected_grads = _float64_reference_with_grads(content, style_mean, style_std, alpha, grad_output)

    assert out.dtype == dtype and out.shape == content.shape
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert torch.isfinite(out).all()
    assert _relative_error(out, expected) < tolerance
    names = ("content", "style_mean", "style_std", "alpha")
    for name, leaf, grad, expected_grad in zip(names, inputs, grads, expected_grads):
        assert grad.dtype == leaf.dtype, name
        if expected_grad.abs().max() == 0:  # e.g. d/d style_std on a 1x1 map, where x_hat == 0
            assert grad.abs().max() == 0, name
        else:
            assert _relative_error(grad, expected_grad) < _gradient_tolerance(tolerance), name


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_reference_cpu_kernels_match_float64_autograd(shape):
    """The ops' CPU kernels without Triton: closed-form backward vs autograd through the reference."""
    generator = torch.Generator().manual_seed(13)
    content, style_mean, style_std, alpha = _random_inputs(shape, torch.float32, True, "cpu", generator)
    inputs = [t.clone().requires_grad_() for t in (content, style_mean, style_std, alpha)]
    out = adain_forward(*inputs, 1e-5)[0]
    grad_output = torch.randn(out.shape, generator=generator) + 0.1
    grads = torch.autograd.grad(out, inputs, grad_output)
    expected, expected_grads = _float64_reference_with_grads(content, style_mean, style_std, alpha, grad_output)
    assert _relative_error(out, expected) < 1e-5
    for grad, expected_grad in zip(grads, expected_grads):
        if expected_grad.abs().max() == 0:
            assert grad.abs().max() == 0
        else:
            assert _relative_error(grad, expected_grad) < _gradient_tolerance(1e-5)


STATS_CASES = [(shape, layout) for shape in [(2, 3, 5, 7), (1, 3, 67, 67), (2, 70, 4, 4), (2, 24, 28, 28)]
               for layout in (False, True)] + [(LARGE_NCHW_SHAPE, False)]


@on_kernel_devices
@pytest.mark.parametrize("dtype, tolerance", DTYPE_TOLERANCES, ids=lambda v: str(v).replace("torch.", ""))
@pytest.mark.parametrize("shape, channels_last", STATS_CASES, ids=[_case_id(c) for c in STATS_CASES])
def test_stats_and_their_gradient_match_float64_reference(shape, channels_last, dtype, tolerance, kernel_device):
    """float32 statistics of any input dtype (summed in float32: as exact as for a float32 input);
    the gradient comes back in the input's dtype, so it carries that dtype's rounding."""
    generator = torch.Generator().manual_seed(7)
    x = (torch.randn(shape, generator=generator) * 3 + 1).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.to(kernel_device).requires_grad_()
    mean, std = adain_stats_op(x, 1e-5)
    grad_mean, grad_std = torch.randn(mean.shape, generator=generator), torch.randn(std.shape, generator=generator)
    grad_x = torch.autograd.grad((mean, std), x, (grad_mean.to(kernel_device), grad_std.to(kernel_device)))[0]

    x64 = x.detach().double().cpu().requires_grad_()
    mean64, std64 = adain_stats_reference(x64)
    expected_grad = torch.autograd.grad((mean64, std64), x64, (grad_mean.double(), grad_std.double()))[0]
    assert mean.dtype == std.dtype == torch.float32 and grad_x.dtype == dtype
    assert _relative_error(mean, mean64) < 1e-5
    assert _relative_error(std, std64) < 1e-5
    assert _relative_error(grad_x, expected_grad) < max(tolerance, 1e-5)


@pytest.mark.parametrize(
    "shape, channels_last",
    [((1, 2, 80, 80), False), ((1, 2, 28, 28), True), ((1, 2, 80, 80), True), ((1, 2, 130, 131), False)],
    ids=["nchw-single-tile", "channels_last-single-tile", "channels_last-looped", "nchw-looped"],
)
@on_kernel_devices
def test_stats_are_stable_for_a_large_offset(shape, channels_last, kernel_device):
    """A big common offset destroys sum/sum-of-squares statistics, and float32 sums of it lose the
    spread (ulp(1000) = 6e-5); statistics of x - x[0] keep float32's precision on every path."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(23)) * 0.01 + 1000.0
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    mean, std = adain_stats_op(x.to(kernel_device), 1e-5)
    mean64, std64 = adain_stats_reference(x.double())
    assert _relative_error(mean, mean64) < 1e-7
    assert _relative_error(std, std64) < 1e-6


@on_kernel_devices
@pytest.mark.parametrize("alpha_value", [0.0, 1.0])
def test_alpha_edges(alpha_value, kernel_device):
    generator = torch.Generator().manual_seed(3)
    content, style_mean, style_std, _ = _random_inputs((2, 6, 5, 3), torch.float32, False, kernel_device, generator)
    alpha = torch.full((2,), alpha_value, device=kernel_device)
    out = adain_forward(content, style_mean, style_std, alpha, 1e-5)[0]
    if alpha_value == 0.0:
        torch.testing.assert_close(out, content, rtol=0, atol=1e-6)
    else:
        mean, std = adain_stats_reference(out)
        torch.testing.assert_close(mean, style_mean, rtol=1e-5, atol=1e-5)
        # Equal up to eps: var_out = style_std^2 * var / (var + eps), and std adds eps again.
        torch.testing.assert_close(std, style_std, rtol=1e-3, atol=0)


def test_public_function_runs_the_op(triton_interpreter, monkeypatch):
    """adain() and AdaIN make no device choice of their own: the op's (here: interpreted Triton) runs."""
    launches = []
    launch = adain_module._launch
    monkeypatch.setattr(adain_module, "_launch", lambda kernel, *args, **meta: (launches.append(kernel), launch(kernel, *args, **meta)))
    generator = torch.Generator().manual_seed(11)
    content, style_mean, style_std, alpha = _random_inputs((3, 4, 6, 5), torch.float32, True, "cpu", generator)
    expected = adain_reference(content, style_mean, style_std, alpha)
    torch.testing.assert_close(kernels.adain(content, style_mean, style_std, alpha), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kernels.AdaIN()(content, style_mean, style_std, alpha), expected, rtol=1e-5, atol=1e-5)
    # A scalar alpha means the same alpha for every sample.
    torch.testing.assert_close(
        kernels.adain(content, style_mean, style_std, 0.3),
        kernels.adain(content, style_mean, style_std, torch.full((3,), 0.3)),
    )
    assert len(launches) == 4


def test_public_stats_match_reference():
    x = torch.randn(2, 5, 7, 3) + 2
    mean, std = kernels.adain_stats(x)
    mean64, std64 = adain_stats_reference(x.double())
    assert _relative_error(mean, mean64) < 1e-6 and _relative_error(std, std64) < 1e-6


@pytest.mark.parametrize("cpu_kernel_runs_triton", [False, True], ids=["reference_cpu_kernel", "triton_cpu_kernel"])
def test_opcheck_on_cpu(cpu_kernel_runs_triton, monkeypatch):
    """Every opcheck utility, AOT dispatch included (it decomposes each op through its Python body)."""
    if cpu_kernel_runs_triton and not adain_module.INTERPRETED:
        pytest.skip("Triton kernels are compiled, not interpreted")
    monkeypatch.setattr(adain_module, "cpu_ops_use_triton", cpu_kernel_runs_triton)
    generator = torch.Generator().manual_seed(5)
    content, style_mean, style_std, alpha = _random_inputs((2, 3, 4, 5), torch.float32, False, "cpu", generator)
    args = (content.requires_grad_(), style_mean.requires_grad_(), style_std.requires_grad_(), alpha.requires_grad_(), 1e-5)
    torch.library.opcheck(adain_forward, args)
    torch.library.opcheck(adain_stats_op, (content.detach().requires_grad_(), 1e-5))
    mean, std = adain_stats_op(content.detach(), 1e-5)
    grad_output = torch.randn(content.shape, generator=generator) + 0.1
    torch.library.opcheck(adain_backward, (grad_output, *(t.detach() for t in args[:4]), mean, std))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_opcheck_on_cuda(channels_last):
    generator = torch.Generator().manual_seed(5)
    content, style_mean, style_std, alpha = _random_inputs((2, 3, 4, 5), torch.float32, channels_last, "cuda", generator)
    args = (content.requires_grad_(), style_mean.requires_grad_(), style_std.requires_grad_(), alpha.requires_grad_(), 1e-5)
    torch.library.opcheck(adain_forward, args)
    torch.library.opcheck(adain_stats_op, (content.detach().requires_grad_(), 1e-5))


def test_public_function_compiles_fullgraph_on_cpu():
    """torch.compile(fullgraph=True) over kernels.adain must not break the graph on the CPU path."""
    generator = torch.Generator().manual_seed(9)
    content, style_mean, style_std, alpha = _random_inputs((2, 8, 4, 4), torch.float32, False, "cpu", generator)
    compiled = torch.compile(kernels.adain, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(content, style_mean, style_std, alpha), kernels.adain(content, style_mean, style_std, alpha))


@pytest.mark.parametrize("cpu_kernel_runs_triton", [False, True], ids=["reference_cpu_kernel", "triton_cpu_kernel"])
def test_ops_compile_fullgraph_on_cpu_with_gradients(cpu_kernel_runs_triton, monkeypatch):
    """The ops themselves on CPU tensors under torch.compile's AOT dispatch (what aot_eager and Inductor
    run): it decomposes a triton_op through its Python body, which must not launch Triton on fake
    CPU tensors. Output and every gradient match the eager op."""
    if cpu_kernel_runs_triton and not adain_module.INTERPRETED:
        pytest.skip("Triton kernels are compiled, not interpreted")
    monkeypatch.setattr(adain_module, "cpu_ops_use_triton", cpu_kernel_runs_triton)
    generator = torch.Generator().manual_seed(37)
    inputs = _random_inputs((2, 3, 5, 7), torch.float32, True, "cpu", generator)

    def stylize_and_measure(content, style_mean, style_std, alpha):
        out = adain_forward(content, style_mean, style_std, alpha, 1e-5)[0]
        mean, std = adain_stats_op(out, 1e-5)
        return out * 2, mean + std

    torch._dynamo.reset()
    compiled = torch.compile(stylize_and_measure, fullgraph=True, backend="aot_eager")
    results = []
    for function in (compiled, stylize_and_measure):
        leaves = [t.clone().requires_grad_() for t in inputs]
        out, stats = function(*leaves)
        loss = (out * torch.linspace(0.5, 1.5, out.numel()).reshape(out.shape)).sum() + (stats * stats).sum()
        results.append((out, stats, *torch.autograd.grad(loss, leaves)))
    for name, actual, expected in zip(("out", "stats", "content", "style_mean", "style_std", "alpha"), *results):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_cuda_op_matches_eager():
    generator = torch.Generator().manual_seed(9)
    content, style_mean, style_std, alpha = _random_inputs((4, 64, 8, 8), torch.bfloat16, True, "cuda", generator)
    compiled = torch.compile(kernels.adain, fullgraph=True)
    torch.testing.assert_close(compiled(content, style_mean, style_std, alpha), kernels.adain(content, style_mean, style_std, alpha))


@pytest.mark.parametrize(
    "content_shape, mean_shape, std_shape, alpha, error, match",
    [
        ((2, 3, 4, 4), (2, 4), (2, 4), 1.0, ValueError, "style_mean must have shape"),     # mismatched C
        ((2, 3, 4, 4), (2, 3), (3, 3), 1.0, ValueError, "style_std must have shape"),      # wrong batch
        ((2, 3, 4, 4), (2, 3), (2, 3), torch.ones(3), ValueError, "alpha must be"),       # wrong alpha length
        ((3, 4, 4), (2, 3), (2, 3), 1.0, ValueError, r"content must be \(N, C, H, W\)"),  # 3-D content
    ],
)
def test_bad_shapes_get_clear_errors(content_shape, mean_shape, std_shape, alpha, error, match):
    with pytest.raises(error, match=match):
        kernels.adain(torch.randn(content_shape), torch.randn(mean_shape), torch.rand(std_shape), alpha)


@pytest.mark.parametrize("shape", [(0, 3, 4, 5), (2, 0, 4, 5)], ids=["no-samples", "no-channels"])
@pytest.mark.parametrize("cpu_kernel_runs_triton", [False, True], ids=["reference", "triton"])
def test_empty_batches_give_empty_results(shape, cpu_kernel_runs_triton, monkeypatch):
    """An empty subset (no image drawn for stylization) is a no-op on every path, as the CUDA launch
    of an empty grid is; the reference must not fail to reshape zero elements."""
    if cpu_kernel_runs_triton and not adain_module.INTERPRETED:
        pytest.skip("Triton kernels are compiled, not interpreted")
    monkeypatch.setattr(adain_module, "cpu_ops_use_triton", cpu_kernel_runs_triton)
    n, c = shape[:2]
    content = torch.randn(shape, requires_grad=True)
    style_mean, style_std = torch.randn(n, c, requires_grad=True), torch.rand(n, c, requires_grad=True)
    alpha = torch.rand(n, requires_grad=True)
    for out in (kernels.adain(content, style_mean, style_std, alpha), adain_forward(content, style_mean, style_std, alpha, 1e-5)[0]):
        assert out.shape == content.shape
        grads = torch.autograd.grad(out.sum(), (content, style_mean, style_std, alpha))
        assert [g.shape for g in grads] == [content.shape, (n, c), (n, c), (n,)]
    for mean, std in (kernels.adain_stats(content), adain_stats_op(content, 1e-5)):
        assert mean.shape == std.shape == (n, c)


@pytest.mark.parametrize(
    "style_device, alpha, error, match",
    [
        ("meta", 1.0, ValueError, "style_mean is on meta but content is on cpu"),  # a device other than content's
        ("cpu", "half", TypeError, "alpha must be a float or"),                     # neither number nor tensor
        ("cpu", None, TypeError, "alpha must be a float or"),
        ("cpu", torch.ones(2, dtype=torch.int64), TypeError, "alpha must be a float or a floating-point tensor"),
        ("cpu", torch.ones(2, 1), ValueError, r"alpha must be a float or have shape \(N,\)"),
    ],
    ids=["style-device", "alpha-string", "alpha-none", "alpha-int", "alpha-2d"],
)
def test_bad_style_statistics_and_alpha_get_one_line_errors_naming_them(style_device, alpha, error, match):
    with pytest.raises(error, match=match) as raised:
        kernels.adain(torch.randn(2, 3, 4, 4), torch.randn(2, 3, device=style_device), torch.rand(2, 3), alpha)
    assert "\n" not in str(raised.value)


def test_a_sample_past_int32_offsets_is_refused():
    """The kernels index inside a sample in int32 (the sample's base is 64-bit): a larger sample is refused."""
    largest = torch.empty(1, 2**15 - 1, 2**8, 2**8, device="meta")  # 2**31 - 2**16 elements: accepted
    assert adain_module._map_strides(largest) == (largest.stride(0), 2**16, 1)
    with pytest.raises(ValueError, match="more than 2\\*\\*31 - 1 elements"):
        adain_module._map_strides(torch.empty(2, 2**15, 2**8, 2**8, device="meta").contiguous(memory_format=torch.channels_last))


def test_integer_tensors_are_rejected():
    with pytest.raises(TypeError, match="content must be a floating-point tensor"):
        kernels.adain(torch.ones(2, 3, 4, 4, dtype=torch.uint8), torch.randn(2, 3), torch.rand(2, 3))
    with pytest.raises(TypeError, match="style_std must be a floating-point tensor"):
        kernels.adain(torch.randn(2, 3, 4, 4), torch.randn(2, 3), torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        kernels.adain_stats(torch.ones(2, 3, 4, 4, dtype=torch.int32))


@pytest.mark.parametrize("shape, permutation", SIZE_ONE_STRIDE_CASES, ids=["w1", "h1"])
@on_kernel_devices
def test_size_one_dimensions_with_unusual_strides(shape, permutation, kernel_device):
    generator = torch.Generator().manual_seed(19)
    content = (torch.randn(shape, generator=generator) + 0.5).permute(*permutation)
    n, c = content.shape[:2]
    style_mean, style_std = torch.randn(n, c, generator=generator), torch.rand(n, c, generator=generator) + 0.5
    alpha = torch.rand(n, generator=generator)
    # .to() keeps the strides, the size-1 dimension's odd one included
    leaves = [t.to(kernel_device, copy=True).requires_grad_() for t in (content, style_mean, style_std, alpha)]
    out = adain_forward(*leaves, 1e-5)[0]
    grad_output = torch.randn(out.shape, generator=generator).to(kernel_device)
    grads = torch.autograd.grad(out, leaves, grad_output)
    expected, expected_grads = _float64_reference_with_grads(content, style_mean, style_std, alpha, grad_output)
    assert _relative_error(out, expected) < 1e-5
    assert _relative_error(grads[0], expected_grads[0]) < _gradient_tolerance(1e-5)


NON_CONTIGUOUS_CASES = {  # content views that are neither contiguous nor channels_last
    "every-other-column": lambda t: t[:, :, :, ::2],
    "every-other-sample": lambda t: t[::2],
    "h-and-w-swapped": lambda t: t.permute(0, 1, 3, 2),
    "channels-between-h-and-w": lambda t: t.permute(0, 2, 1, 3),
    "channel-slice-of-channels-last": lambda t: t.contiguous(memory_format=torch.channels_last)[:, 1:],
}


@pytest.mark.parametrize("make_view", NON_CONTIGUOUS_CASES.values(), ids=NON_CONTIGUOUS_CASES.keys())
@on_kernel_devices
def test_non_contiguous_content_matches_reference(make_view, kernel_device):
    """Slices and permutations of either layout: copied to a layout the kernels take, values and
    gradients as for a contiguous input."""
    generator = torch.Generator().manual_seed(41)
    content = make_view(torch.randn(4, 6, 8, 10, generator=generator).to(kernel_device) * 2 + 0.5)
    n, c = content.shape[:2]
    style_mean, style_std = torch.randn(n, c, generator=generator), torch.rand(n, c, generator=generator) + 0.5
    alpha = torch.rand(n, generator=generator) * 0.9 + 0.05
    leaves = [t.to(kernel_device) if t is not content else t.detach() for t in (content, style_mean, style_std, alpha)]
    leaves = [t.requires_grad_() for t in leaves]
    out = adain_forward(*leaves, 1e-5)[0]
    grad_output = (torch.randn(out.shape, generator=generator) + 0.1).to(kernel_device)
    grads = torch.autograd.grad(out, leaves, grad_output)
    expected, expected_grads = _float64_reference_with_grads(content, style_mean, style_std, alpha, grad_output)
    assert out.shape == content.shape and _relative_error(out, expected) < 1e-5
    for grad, expected_grad in zip(grads, expected_grads):
        assert _relative_error(grad, expected_grad) < _gradient_tolerance(1e-5)


@on_kernel_devices
def test_style_statistics_in_other_dtypes_get_gradients_in_their_dtype(kernel_device):
    """bf16 style statistics and a float64 alpha with float32 content: each gradient in its leaf's dtype."""
    generator = torch.Generator().manual_seed(43)
    content, style_mean, style_std, alpha = _random_inputs((2, 5, 6, 7), torch.float32, True, kernel_device, generator)
    style_mean, style_std, alpha = style_mean.bfloat16(), style_std.bfloat16(), alpha.double()
    leaves = [t.clone().requires_grad_() for t in (content, style_mean, style_std, alpha)]
    out = adain_forward(*leaves, 1e-5)[0]
    grad_output = (torch.randn(out.shape, generator=generator) + 0.1).to(kernel_device)
    grads = torch.autograd.grad(out, leaves, grad_output)
    expected, expected_grads = _float64_reference_with_grads(content, style_mean, style_std, alpha, grad_output)
    assert out.dtype == torch.float32 and _relative_error(out, expected) < 1e-5
    for leaf, grad, expected_grad in zip(leaves, grads, expected_grads):
        # bf16 gradients carry bf16's rounding (2**-9 relative)
        assert grad.dtype == leaf.dtype and _relative_error(grad, expected_grad) < 1e-2


@on_kernel_devices
def test_style_statistics_with_their_own_strides(kernel_device):
    """A broadcast style_mean and a transposed style_std: each is read with its own strides."""
    generator = torch.Generator().manual_seed(17)
    content = torch.randn(3, 5, 4, 6, generator=generator) + 0.5
    style_mean = torch.randn(1, 5, generator=generator).to(kernel_device).expand(3, 5)
    style_std = (torch.rand(5, 3, generator=generator) + 0.5).to(kernel_device).t()
    alpha = torch.rand(3, generator=generator)
    out = adain_forward(content.to(kernel_device), style_mean, style_std, alpha.to(kernel_device), 1e-5)[0]
    expected = adain_reference(content.double(), style_mean.cpu().double(), style_std.cpu().double(), alpha.double())
    assert _relative_error(out, expected) < 1e-5


# --------------------------------------------------------------------------- device guard


def test_every_launch_runs_under_its_tensors_device_guard(monkeypatch):
    """Forward, backward and stats launch inside a guard for x's device, so cuda:1 tensors launch on cuda:1."""
    events = []

    @contextlib.contextmanager
    def recording_guard(device):
        events.append(("enter", device))
        yield
        events.append(("exit", device))

    class RecordingLaunch:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            return lambda *args, **meta: events.append(("launch", self.kernel.fn.__name__))

    monkeypatch.setattr(adain_module, "_device_guard", recording_guard)
    monkeypatch.setattr(adain_module, "wrap_triton", RecordingLaunch)
    monkeypatch.setattr(adain_module, "INTERPRETED", False)  # compiled kernels launch through wrap_triton
    generator = torch.Generator().manual_seed(29)
    content, style_mean, style_std, alpha = _random_inputs((2, 3, 4, 5), torch.float32, True, "cpu", generator)
    device = content.device
    _, mean, std = adain_module._launch_forward(content, style_mean, style_std, alpha, 1e-5, write_output=True)
    adain_module._launch_backward(torch.ones_like(content), content, style_mean, style_std, alpha, mean, std)
    adain_module._launch_stats(content, 1e-5)
    assert events == [
        ("enter", device), ("launch", "_adain_fwd_kernel"), ("exit", device),
        ("enter", device), ("launch", "_adain_bwd_kernel"), ("exit", device),
        ("enter", device), ("launch", "_adain_fwd_kernel"), ("exit", device),
    ]


def test_device_guard_switches_to_a_cuda_tensors_device(monkeypatch):
    chosen = []

    class RecordingCudaDevice:
        def __init__(self, device):
            chosen.append(device)

    monkeypatch.setattr(torch.cuda, "device", RecordingCudaDevice)
    guard = adain_module._device_guard(torch.device("cuda", 1))
    assert isinstance(guard, RecordingCudaDevice) and chosen == [torch.device("cuda", 1)]
    assert isinstance(adain_module._device_guard(torch.device("cpu")), contextlib.nullcontext)
    assert chosen == [torch.device("cuda", 1)]  # no CUDA call for a CPU tensor


def test_interpreted_launches_do_not_need_wrap_triton(triton_interpreter, monkeypatch):
    """torch 2.11's wrap_triton accepts only triton.jit functions, not the interpreter's: forward,
    backward and statistics still run interpreted there."""

    def strict_wrap_triton(kernel):  # torch 2.11's check
        if not isinstance(kernel, triton.runtime.jit.JITFunction):
            raise RuntimeError("wrap_triton only works on functions annotated with triton.jit or triton.autotune")
        return torch.library.wrap_triton(kernel)

    monkeypatch.setattr(adain_module, "wrap_triton", strict_wrap_triton)
    generator = torch.Generator().manual_seed(47)
    leaves = [t.requires_grad_() for t in _random_inputs((2, 3, 4, 5), torch.float32, False, "cpu", generator)]
    out = adain_forward(*leaves, 1e-5)[0]
    grads = torch.autograd.grad(out.sum(), leaves)
    assert _relative_error(out, adain_reference(*(t.detach().double() for t in leaves))) < 1e-5
    assert all(torch.isfinite(g).all() for g in grads)
    assert _relative_error(adain_stats_op(leaves[0].detach(), 1e-5)[1], adain_stats_reference(leaves[0].double())[1]) < 1e-5


FAKE_CUDA_PLUGIN = """
import json, os
import torch

torch.cuda.is_available = lambda: True  # before tests/conftest.py and test_adain.py ask
devices, setups = {}, {}


def pytest_collection_modifyitems(items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "kernel_device" in params:
            devices[item.nodeid] = (item.originalname, params["kernel_device"])


def pytest_runtest_logreport(report):
    if report.when == "setup" and report.nodeid in devices:
        setups[report.nodeid] = report.outcome


def pytest_sessionfinish(session):
    with open(os.environ["FAKE_CUDA_REPORT"], "w") as out:
        json.dump([(*devices[nodeid], setups.get(nodeid)) for nodeid in devices], out)
"""


def test_float64_reference_tests_run_on_cuda_whenever_present(tmp_path):
    """On a CUDA host (faked here, and only fixtures set up: --setup-only) the kernels are compiled, yet
    every float64 reference test has cuda cases that neither a mark nor a fixture skips; only the
    interpreted-CPU cases are skipped."""
    (tmp_path / "fake_cuda.py").write_text(FAKE_CUDA_PLUGIN)
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]), FAKE_CUDA_REPORT=str(tmp_path / "cases.json"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "fake_cuda", "--setup-only", "-q", "-p", "no:cacheprovider",
         str(Path(__file__))], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    cases = json.loads((tmp_path / "cases.json").read_text())
    tests = {test for test, _, _ in cases}
    assert {"test_forward_and_gradients_match_float64_reference", "test_stats_and_their_gradient_match_float64_reference",
            "test_non_contiguous_content_matches_reference"} <= tests
    for test in tests:
        assert {(device, setup) for name, device, setup in cases if name == test} == {("cuda", "passed"), ("cpu", "skipped")}, test
    assert sum(device == "cuda" for _, device, _ in cases) >= len(LAYOUT_CASES) * len(DTYPE_TOLERANCES)


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_tensors_on_the_second_gpu_launch_there():
    generator = torch.Generator().manual_seed(31)
    inputs = _random_inputs((2, 64, 8, 8), torch.float32, True, "cuda:1", generator)
    leaves = [t.clone().requires_grad_() for t in inputs]
    with torch.cuda.device(0):
        out = adain_forward(*leaves, 1e-5)[0]
        grad_output = torch.randn(out.shape, generator=generator).to(out.device)
        grads = torch.autograd.grad(out, leaves, grad_output)
        mean, std = kernels.adain_stats(inputs[0])
    torch.cuda.synchronize(1)
    expected, expected_grads = _float64_reference_with_grads(*inputs, grad_output)
    assert out.device == torch.device("cuda", 1) and _relative_error(out, expected) < 1e-5
    assert all(_relative_error(g, e) < 1e-4 for g, e in zip(grads, expected_grads))
    mean64, std64 = adain_stats_reference(inputs[0].double().cpu())
    assert _relative_error(mean, mean64) < 1e-5 and _relative_error(std, std64) < 1e-5


# --------------------------------------------------------------------------- bandwidth measurement


def test_bandwidth_measurement_dry_run(monkeypatch, tmp_path, capsys):
    """The GPU run's AdaIN GB/s table, tiny and on the CPU: every row present and its arithmetic right."""
    monkeypatch.setattr(adain_module, "cpu_ops_use_triton", False)  # timing the interpreter would be slow and moot
    rows = adain_bandwidth.measure_bandwidth("cpu", **adain_bandwidth.DRY_RUN)
    settings = adain_bandwidth.DRY_RUN
    assert len(rows) == len(settings["layers"]) * len(settings["image_sides"]) * 2 * 2 * 2
    relu4_1 = [row for row in rows if row["layer"] == "relu4_1"]
    assert {tuple(row["shape"]) for row in relu4_1} == {(1, 512, 4, 4)}
    for row in rows:
        element_size = torch.empty(0, dtype=getattr(torch, row["dtype"])).element_size()
        map_bytes = torch.Size(row["shape"]).numel() * element_size
        assert row["bytes"] == {"forward": 2, "backward": 3}[row["pass"]] * map_bytes
        assert row["gb_per_s"] == pytest.approx(row["bytes"] / row["seconds"] / 1e9)
        assert row["copy_gb_per_s"] == pytest.approx(2 * map_bytes / row["copy_seconds"] / 1e9)
        assert row["fraction_of_copy"] == pytest.approx(row["gb_per_s"] / row["copy_gb_per_s"])
        assert row["timer"] == "wall clock median" and row["device"] == "cpu"
    assert "| relu4_1 | 32 | 1x512x4x4 | bfloat16 | channels_last | backward | 256x16 single 8w |" in (
        adain_bandwidth.markdown_table(rows))

    assert adain_bandwidth.main(["--dry-run", "--json", str(tmp_path / "rows.json")]) == 0
    assert len(json.loads((tmp_path / "rows.json").read_text())) == len(rows)
    assert "| relu1_1 | 32 |" in capsys.readouterr().out

