"""Compile every fused-AdaIN kernel variant for an H100 (sm_90) on a machine without a GPU.

    python -m bench.sm90_report                # prints the Markdown table of registers and spills
    python -m bench.sm90_report --json out.json --markdown table.md

Triton's real NVIDIA backend compiles each launch the op can make (forward, backward and
statistics kernels x float32/bfloat16/float16 x NCHW/channels_last x every block shape
``kernels.adain.block_shape`` can return, single-tile and looped) to PTX and a cubin for
``GPUTarget("cuda", 90, 32)``; the bundled ``ptxas -v --gpu-name sm_90a`` then reports each
variant's registers and spills. The interpreter (``TRITON_INTERPRET=1``, which the tests use
for everything else) cannot show a compile failure, a spill or a missing ``cp.async``.

It needs no GPU: a stand-in driver tells Triton the current target is sm_90, and the launchers
get meta tensors (shapes and strides, no memory); instead of launching, each kernel is
compiled with ``JITFunction.warmup``. Exits non-zero if a variant fails to compile, spills, or
(on the looped path) does not pipeline its loads with cp.async. ``tests/test_adain_sm90.py``
runs it in a subprocess (TRITON_INTERPRET must be unset before Triton is imported).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

TARGET_ARCH = 90
PTXAS_ARCH = "sm_90a"  # what Triton's backend assembles for capability 90
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
KERNELS = ("forward", "backward", "stats")
# VGG-19 relu1_1..relu4_1 maps (channels, side divisor) at the image sides the project runs.
VGG_LAYERS = {"relu1_1": (64, 1), "relu2_1": (128, 2), "relu3_1": (256, 4), "relu4_1": (512, 8)}
IMAGE_SIDES = (32, 64, 224)


@dataclass
class Variant:
    kernel: str
    dtype: str
    layout: str
    block_c: int
    block_hw: int
    single_tile: bool
    num_warps: int
    maps: list[str] = field(default_factory=list)  # the VGG maps that use this block shape
    ok: bool = False
    error: str = ""
    registers: int | None = None
    spill_stores: int | None = None
    spill_loads: int | None = None
    stack_bytes: int | None = None
    shared_bytes: int | None = None
    cp_async: bool = False
    seconds: float = 0.0

    @property
    def name(self) -> str:
        path = "single" if self.single_tile else "looped"
        return f"{self.kernel} {self.dtype} {self.layout} {self.block_c}x{self.block_hw} {path}"


def install_sm90_stand_in_driver() -> None:
    """Make Triton compile for an H100 here: its driver is only asked for the target, device and stream."""
    from triton.backends.compiler import GPUTarget
    from triton.backends.driver import DriverBase
    from triton.backends.nvidia.driver import ty_to_cpp
    from triton.runtime import driver

    class SM90StandIn(DriverBase):
        @classmethod
        def is_active(cls):
            return True

        def map_python_to_cpp_type(self, ty: str) -> str:
            return ty_to_cpp(ty)

        def get_current_target(self):
            return GPUTarget("cuda", TARGET_ARCH, 32)

        def get_active_torch_device(self):
            return torch.device("meta")

        def get_current_device(self):
            return 0

        def get_current_stream(self, device=None):
            return 0

        def get_benchmarker(self):
            raise RuntimeError("the sm_90 stand-in driver compiles only; nothing can be timed")

    driver.set_active(SM90StandIn())


def ptxas_path() -> Path:
    from triton import knobs

    return Path(knobs.nvidia.ptxas.path)


def ptxas_resources(ptx: str) -> dict:
    """Registers, spills and stack of the kernel in ``ptx``, from ``ptxas -v --gpu-name sm_90a``."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch, "kernel.ptx")
        source.write_text(ptx)
        # --regAllocOptLevel=2: the flag Triton's backend assembles with, so these are the cubin's registers.
        result = subprocess.run(
            [str(ptxas_path()), "-v", "--regAllocOptLevel=2", f"--gpu-name={PTXAS_ARCH}", str(source),
             "-o", str(Path(scratch, "kernel.cubin"))],
            capture_output=True, text=True, check=True,
        )
    log = result.stderr + result.stdout
    registers = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    stack = re.search(r"(\d+) bytes stack frame", log)
    if not (registers and spills and stack):
        raise RuntimeError(f"could not read ptxas -v output:\n{log}")
    return dict(registers=int(registers[1]), spill_stores=int(spills[1]), spill_loads=int(spills[2]),
                stack_bytes=int(stack[1]))


class _CompileInsteadOfLaunch:
    """Stands in for ``torch.library.wrap_triton`` in the launchers: ``[grid](*args, **meta)`` compiles."""

    compiled: list = []

    def __init__(self, kernel):
        self.kernel = kernel

    def __getitem__(self, grid):
        def compile_for_sm90(*args, **meta):
            type(self).compiled.append(self.kernel.warmup(*args, grid=(1,), **meta))

        return compile_for_sm90


def _example_maps(adain, element_size: int) -> dict[tuple[bool, tuple], tuple[int, int, list[str]]]:
    """(channels_last, block shape) -> (channels, positions, VGG maps): an input for every block shape."""
    examples = {}
    for layer, (channels, divisor) in VGG_LAYERS.items():
        for side in IMAGE_SIDES:
            positions = (side // divisor) ** 2
            for channels_last in (False, True):
                key = (channels_last, tuple(adain.block_shape(channels, positions, channels_last, element_size)))
                entry = examples.setdefault(key, (channels, positions, []))
                entry[2].append(f"{layer}@{side}px")
    # Every other shape block_shape can return, with the largest power-of-two map that gets it.
    for channels_last in (False, True):
        for positions in sorted(adain.POWER_OF_TWO_MAPS, reverse=True):
            key = (channels_last, tuple(adain.block_shape(64, positions, channels_last, element_size)))
            examples.setdefault(key, (64, positions, []))
    assert set(examples) == {(layout, tuple(shape)) for layout, shape in adain.all_block_shapes(element_size)}
    return examples


def compile_all(progress=None, only: str = "") -> list[Variant]:
    """Compile every variant for sm_90 through the launchers; one :class:`Variant` each, failures recorded.

    ``only``: compile just the variants whose "kernel dtype layout CxHW single|looped" contains it."""
    install_sm90_stand_in_driver()
    adain = importlib.import_module("fastnst.kernels.adain")
    adain.wrap_triton = _CompileInsteadOfLaunch
    variants = []
    for dtype_name, dtype in DTYPES.items():
        examples = _example_maps(adain, dtype.itemsize)
        for (channels_last, shape), (channels, positions, maps) in sorted(examples.items()):
            shape = adain.BlockShape(*shape)
            for kernel in KERNELS:
                variant = Variant(kernel, dtype_name, "channels_last" if channels_last else "nchw",
                                  shape.block_c, shape.block_hw, shape.single_tile,
                                  shape.backward_num_warps if kernel == "backward" else shape.num_warps, maps)
                if only not in variant.name:
                    continue
                start = time.perf_counter()
                try:
                    compiled = _compile_one(adain, kernel, channels, positions, dtype, channels_last)
                    variant.__dict__.update(ptxas_resources(compiled.asm["ptx"]))
                    variant.shared_bytes = compiled.metadata.shared
                    variant.cp_async = "cp.async" in compiled.asm["ptx"]
                    variant.ok = True
                except Exception as error:  # a compile failure is a result to report, not the end of the run
                    variant.error = f"{type(error).__name__}: {str(error).strip().splitlines()[-1][:200]}"
                variant.seconds = time.perf_counter() - start
                variants.append(variant)
                if progress:
                    progress(variant)
    return variants


def _compile_one(adain, kernel: str, channels: int, positions: int, dtype: torch.dtype, channels_last: bool):
    batch = 2
    # H = positions, W = 1: the merged H*W axis, with the layout's real strides.
    x = torch.empty(batch, channels, positions, 1, dtype=dtype, device="meta")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    statistics = torch.empty(batch, channels, device="meta")
    alpha = torch.empty(batch, device="meta")
    _CompileInsteadOfLaunch.compiled.clear()
    if kernel == "forward":
        adain._launch_forward(x, statistics, statistics, alpha, 1e-5, write_output=True)
    elif kernel == "backward":
        adain._launch_backward(torch.empty_like(x), x, statistics, statistics, alpha, statistics, statistics)
    else:
        adain._launch_stats(x, 1e-5)
    (compiled,) = _CompileInsteadOfLaunch.compiled
    return compiled


def failures(variants: list[Variant]) -> list[str]:
    """Why the run fails: compile errors, spills, and looped variants without cp.async pipelining."""
    problems = []
    for v in variants:
        name = v.name
        if not v.ok:
            problems.append(f"{name}: {v.error}")
        elif v.spill_stores or v.spill_loads:
            problems.append(f"{name}: spills {v.spill_stores} B stores, {v.spill_loads} B loads")
        elif not v.single_tile and not v.cp_async:
            problems.append(f"{name}: the looped path's loads are not pipelined (no cp.async in the PTX)")
    return problems


def ctas_per_sm(registers: int, num_warps: int) -> int:
    """CTAs an H100 SM holds by registers alone (64 K a SM; allocated 256 at a time per warp)."""
    per_warp = -(-registers * 32 // 256) * 256
    return min(65536 // (per_warp * num_warps), 32)


def markdown_table(variants: list[Variant]) -> str:
    lines = [
        "| kernel | dtype | layout | tile (C x HW) | path | warps | registers | spills (st/ld B) | CTAs/SM by regs | smem B | cp.async | VGG maps |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for v in variants:
        path = "single" if v.single_tile else "looped"
        maps = ", ".join(v.maps) if v.maps else ""
        if v.ok:
            lines.append(
                f"| {v.kernel} | {v.dtype} | {v.layout} | {v.block_c} x {v.block_hw} | {path} | {v.num_warps} | "
                f"{v.registers} | {v.spill_stores}/{v.spill_loads} | {ctas_per_sm(v.registers, v.num_warps)} | "
                f"{v.shared_bytes} | {'yes' if v.cp_async else 'no'} | {maps} |"
            )
        else:
            lines.append(f"| {v.kernel} | {v.dtype} | {v.layout} | {v.block_c} x {v.block_hw} | {path} | "
                         f"{v.num_warps} | **FAILED** | | | | | {maps} |")
    return "\n".join(lines)


def compact_table(variants: list[Variant]) -> str:
    """One row per (dtype, layout, tile, path): registers (warps) of forward / backward / stats, spills summed."""
    groups: dict[tuple, dict[str, Variant]] = {}
    for v in variants:
        groups.setdefault((v.dtype, v.layout, v.block_c, v.block_hw, v.single_tile), {})[v.kernel] = v
    lines = [
        "| dtype | layout | tile (C x HW) | path | forward regs (warps, CTAs/SM) | backward | stats | spills | VGG maps |",
        "| --- | --- | --- | --- | --- | --- | --- | ---: | --- |",
    ]

    def cell(v: Variant | None) -> str:
        if v is None:
            return ""
        if not v.ok:
            return "**FAILED**"
        return f"{v.registers} ({v.num_warps}w, {ctas_per_sm(v.registers, v.num_warps)})"

    for (dtype, layout, block_c, block_hw, single_tile), kernels in groups.items():
        spills = sum((v.spill_stores or 0) + (v.spill_loads or 0) for v in kernels.values())
        any_variant = next(iter(kernels.values()))
        lines.append(
            f"| {dtype} | {layout} | {block_c} x {block_hw} | {'single' if single_tile else 'looped'} | "
            f"{cell(kernels.get('forward'))} | {cell(kernels.get('backward'))} | {cell(kernels.get('stats'))} | "
            f"{spills} | {', '.join(any_variant.maps)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write every variant's figures here")
    parser.add_argument("--markdown", type=Path, help="write the table here (it is printed either way)")
    parser.add_argument("--compact", action="store_true",
                        help="one row per tile: forward, backward and stats registers side by side")
    parser.add_argument("--only", default="", metavar="TEXT",
                        help='compile only variants whose "kernel dtype layout CxHW single|looped" contains TEXT')
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("error: TRITON_INTERPRET is set: the kernels would be interpreted, not compiled", file=sys.stderr)
        return 2
    start = time.perf_counter()
    variants = compile_all(progress=lambda v: print(".", end="", flush=True, file=sys.stderr), only=args.only)
    seconds = time.perf_counter() - start
    print(file=sys.stderr)
    table = compact_table(variants) if args.compact else markdown_table(variants)
    print(table)
    problems = failures(variants)
    print(f"\n{len(variants)} variants compiled for {PTXAS_ARCH} in {seconds:.1f} s; {len(problems)} problems",
          file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"seconds": seconds, "variants": [asdict(v) for v in variants]}, indent=1))
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
