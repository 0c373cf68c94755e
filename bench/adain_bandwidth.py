"""Fused AdaIN forward and backward GB/s against a device copy of the same bytes, at VGG-19 relu1_1..relu4_1.

    from bench.adain_bandwidth import measure_bandwidth, markdown_table
    rows = measure_bandwidth(torch.device("cuda"))     # N=256; 32, 64, 224 px; both layouts; fp32 and bf16
    print(markdown_table(rows))

    python -m bench.adain_bandwidth --json out.json --markdown out.md   # the same, on the GPU
    python -m bench.adain_bandwidth --dry-run                          # tiny, on the CPU: keeps it working

Maps: relu1_1..relu4_1 have 64/128/256/512 channels at side, side/2, side/4 and side/8.
Bytes are the op's floor: the forward reads x and writes y (2 maps), the backward reads the
incoming gradient and x and writes dx (3 maps); the (N, C) statistics are left out. The copy
moves one map from a buffer to another (2 maps of traffic), and each side's rate is its bytes
over its time, so ``fraction_of_copy`` = op GB/s / copy GB/s compares like with like.

On CUDA the op and the copy are timed the same way: ``triton.testing.do_bench``, median of
CUDA-event times, with do_bench's 256 MB L2 flush before every call (so no side reads a warm
L2). The forward is ``kernels.adain`` as users call it (its host dispatch hides behind the
flush); the backward is the ``fastnst::adain_backward`` op alone. On the CPU (dry run) the times
are wall-clock medians of the reference path: they only show that the code runs.
"""
from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from fastnst import kernels

VGG_LAYERS = {"relu1_1": (64, 1), "relu2_1": (128, 2), "relu3_1": (256, 4), "relu4_1": (512, 8)}  # channels, side divisor
FULL = dict(batch=256, image_sides=(32, 64, 224), dtypes=(torch.float32, torch.bfloat16),
            layouts=("nchw", "channels_last"), layers=tuple(VGG_LAYERS))
DRY_RUN = dict(batch=1, image_sides=(32,), dtypes=(torch.float32, torch.bfloat16),
               layouts=("nchw", "channels_last"), layers=tuple(VGG_LAYERS), warmup_ms=0, rep_ms=0)
# Issue #10's goals on an H100 (fraction of copy bandwidth), where they are set.
GOALS = {("relu4_1", 224, "forward"): 0.85, ("relu4_1", 224, "backward"): 0.75}
MAPS_MOVED = {"forward": 2, "backward": 3}

adain_module = importlib.import_module("fastnst.kernels.adain")  # the package re-exports a function of the same name


def time_seconds(function, device: torch.device, warmup_ms: float = 25, rep_ms: float = 100) -> float:
    """Median seconds a call: do_bench with its L2 flush on CUDA, the wall clock on the CPU."""
    if device.type == "cuda":
        import triton.testing

        with torch.cuda.device(device):
            return triton.testing.do_bench(function, warmup=warmup_ms, rep=rep_ms, return_mode="median") / 1e3
    function()  # warm-up (first-call costs)
    times = []
    deadline = time.perf_counter() + rep_ms / 1e3
    while len(times) < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _describe_device(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _block_shape_text(content: torch.Tensor, backward: bool) -> str:
    n, c, h, w = content.shape
    channels_last = adain_module._is_channels_last(content)
    shape = adain_module.block_shape(c, h * w, channels_last, content.element_size())
    warps = shape.backward_num_warps if backward else shape.num_warps
    return f"{shape.block_c}x{shape.block_hw} {'single' if shape.single_tile else 'looped'} {warps}w"


def measure_bandwidth(
    device: torch.device | str,
    batch: int = FULL["batch"],
    image_sides=FULL["image_sides"],
    dtypes=FULL["dtypes"],
    layouts=FULL["layouts"],
    layers=FULL["layers"],
    warmup_ms: float = 25,
    rep_ms: float = 100,
    progress=None,
) -> list[dict]:
    """One row per (layer, image side, dtype, layout, pass): the op's and a copy's GB/s and their ratio."""
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(0)
    copy_seconds: dict[int, float] = {}  # bytes of one map -> copy time
    rows = []
    for layer in layers:
        channels, divisor = VGG_LAYERS[layer]
        for side in image_sides:
            map_side = side // divisor
            for dtype in dtypes:
                for layout in layouts:
                    shape = (batch, channels, map_side, map_side)
                    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
                    content = torch.randn(shape, generator=generator, device=device).to(dtype=dtype, memory_format=memory_format)
                    style_mean = torch.randn(batch, channels, generator=generator, device=device)
                    style_std = torch.rand(batch, channels, generator=generator, device=device) + 0.5
                    alpha = torch.rand(batch, generator=generator, device=device)
                    grad_output = torch.randn_like(content)
                    _, mean, std = adain_module.adain_forward(content, style_mean, style_std, alpha, kernels.DEFAULT_EPS)
                    map_bytes = content.numel() * content.element_size()
                    if map_bytes not in copy_seconds:
                        source = torch.empty(map_bytes, dtype=torch.uint8, device=device)
                        target = torch.empty_like(source)
                        copy_seconds[map_bytes] = time_seconds(lambda: target.copy_(source), device, warmup_ms, rep_ms)
                        del source, target
                    passes = {
                        "forward": lambda: kernels.adain(content, style_mean, style_std, alpha),
                        "backward": lambda: adain_module.adain_backward(
                            grad_output, content, style_mean, style_std, alpha, mean, std),
                    }
                    for name, function in passes.items():
                        seconds = time_seconds(function, device, warmup_ms, rep_ms)
                        moved = MAPS_MOVED[name] * map_bytes
                        gb_per_s = moved / seconds / 1e9
                        copy_gb_per_s = 2 * map_bytes / copy_seconds[map_bytes] / 1e9
                        row = dict(
                            layer=layer, image_side=side, shape=list(shape), dtype=str(dtype).removeprefix("torch."),
                            layout=layout, **{"pass": name}, block_shape=_block_shape_text(content, name == "backward"),
                            bytes=moved, seconds=seconds, gb_per_s=gb_per_s,
                            copy_seconds=copy_seconds[map_bytes], copy_gb_per_s=copy_gb_per_s,
                            fraction_of_copy=gb_per_s / copy_gb_per_s, goal=GOALS.get((layer, side, name)),
                            device=_describe_device(device),
                            timer="triton.testing.do_bench median, L2 flushed" if device.type == "cuda" else "wall clock median",
                        )
                        rows.append(row)
                        if progress:
                            progress(row)
                    del content, grad_output, mean, std
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| layer | px | shape | dtype | layout | pass | tile | GB/s | copy GB/s | fraction of copy | goal |",
        "| --- | ---: | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        goal = f"≥ {row['goal']:.2f}" if row["goal"] else ""
        lines.append(
            f"| {row['layer']} | {row['image_side']} | {'x'.join(map(str, row['shape']))} | {row['dtype']} | "
            f"{row['layout']} | {row['pass']} | {row['block_shape']} | {row['gb_per_s']:.4g} | "
            f"{row['copy_gb_per_s']:.4g} | {row['fraction_of_copy']:.3g} | {goal} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="N=1, 32 px, on the CPU: checks the code, measures nothing")
    parser.add_argument("--device", default=None, help="default: cuda when available (the dry run: cpu)")
    parser.add_argument("--batch", type=int, default=None, help=f"default {FULL['batch']} (dry run: 1)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--markdown", type=Path, help="write the table here (it is printed either way)")
    args = parser.parse_args(argv)
    settings = dict(DRY_RUN if args.dry_run else FULL)
    if args.batch:
        settings["batch"] = args.batch
    device = torch.device(args.device or ("cpu" if args.dry_run or not torch.cuda.is_available() else "cuda"))
    if device.type == "cpu" and not args.dry_run:
        print("note: no CUDA device; CPU times of the PyTorch reference say nothing about the kernels",
              file=sys.stderr)
    rows = measure_bandwidth(device, **settings, progress=lambda row: print(".", end="", flush=True, file=sys.stderr))
    print(file=sys.stderr)
    table = markdown_table(rows)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
