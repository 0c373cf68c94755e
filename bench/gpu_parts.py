"""The measuring parts of ``bench/gpu_run.py`` that are not a pytest run: each prints its figures as it goes.

    python -m bench.gpu_parts env|adain|adain_rest|feed|profile [--dry-run] [--out DIR]

One process per part (gpu_run starts each in its own process group, so a stop frees the GPU);
each figure is an ``@figure`` line (``bench/figures.py``) printed the moment it is measured.
``--dry-run``: the CPU at tiny sizes, every code path, no figure worth reading.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

from bench.figures import emit
from bench.gpu_run import FLOOR

# Present or not on a GPU host: the report says which (the run turns what is missing into "not run").
PACKAGES = ("nvidia-dali-cuda130", "nvidia-dali-cuda120", "tqdm", "PyYAML", "tensorboard", "matplotlib",
            "pytest", "pytest-benchmark")
NVIDIA_SMI_QUERY = "name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit,pstate,temperature.gpu"
ADAIN_SIDES = (32, 64, 224)
ADAIN_HEADLINE = ("relu4_1", 224)  # the rows the goals are set on; the rest follow in adain_rest


def _device(dry_run: bool) -> torch.device:
    return torch.device("cpu" if dry_run or not torch.cuda.is_available() else "cuda")


def part_env(dry_run: bool, out: Path) -> None:
    from bench.conftest import describe_device, library_versions
    from bench.cost_model import preset_workload

    device = _device(dry_run)
    emit("device", describe_device(device))
    for name, version in library_versions().items():
        emit(f"version {name}", version)
    for package in PACKAGES:
        try:
            emit(f"installed {package}", metadata.version(package))
        except metadata.PackageNotFoundError:
            emit(f"installed {package}", "missing")
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        emit("compute capability", f"{props.major}.{props.minor}")
        emit("multiprocessors", props.multi_processor_count)
        emit("memory", round(props.total_memory / 2**30, 1), "GiB")
        emit("cudnn", torch.backends.cudnn.version())
        smi = subprocess.run(["nvidia-smi", f"--query-gpu={NVIDIA_SMI_QUERY}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=60)
        emit("nvidia-smi " + NVIDIA_SMI_QUERY, smi.stdout.strip() or smi.stderr.strip())
    # The 224-px goal is set against the arithmetic floor of the cifar10 preset (bench/cost_model.py).
    emit(FLOOR, preset_workload("cifar10").floor(224), "x")


def _adain_rows(dry_run: bool, layers: tuple[str, ...], sides: tuple[int, ...]) -> None:
    from bench.adain_bandwidth import measure_bandwidth

    def emit_row(row: dict) -> None:
        goal = {"goal": [">=", row["goal"]]} if row["goal"] else {}
        emit(f"adain {row['layer']} {row['image_side']}px {row['dtype']} {row['layout']} {row['pass']}",
             row["fraction_of_copy"], "of copy", gb_per_s=round(row["gb_per_s"], 1),
             copy_gb_per_s=round(row["copy_gb_per_s"], 1), tile=row["block_shape"], **goal)

    device = _device(dry_run)
    timing = {"warmup_ms": 0, "rep_ms": 0} if dry_run else {}
    measure_bandwidth(device, batch=1 if dry_run else 256, image_sides=(16,) if dry_run else sides, layers=layers,
                      dtypes=(torch.float32, torch.bfloat16), progress=emit_row, **timing)


def part_adain(dry_run: bool, out: Path) -> None:
    layer, side = ADAIN_HEADLINE
    _adain_rows(dry_run, (layer,), (side,))


def part_adain_rest(dry_run: bool, out: Path) -> None:
    """Every VGG map at 32, 64 and 224 px but the adain part's (the dry run has one side: relu4_1 is its)."""
    from bench.adain_bandwidth import VGG_LAYERS

    for layer in VGG_LAYERS:
        sides = tuple(side for side in ADAIN_SIDES if (layer, side) != ADAIN_HEADLINE)
        if not (dry_run and layer == ADAIN_HEADLINE[0]):
            _adain_rows(dry_run, (layer,), sides)


def _loader_images_per_second(loader, batches: int, device: torch.device) -> float:
    iterator = iter(loader)
    next(iterator)  # builds the stages, and the first batch's work: not the steady state
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    synchronize()
    started = time.perf_counter()
    for _ in range(batches):
        images, _, _ = next(iterator)
    synchronize()
    return batches * len(images) / (time.perf_counter() - started)


def part_feed(dry_run: bool, out: Path) -> None:
    """The training loader (``create_train_loader``: CIFAR layout, crop, flip, TrivialAugmentWide, Random Erasing,
    no Stylizer) of 32 px batches, by each installed backend of its stages: what the trainer can be fed."""
    import tempfile

    from fastnst.train.config import Augmentation
    from fastnst.train.data import create_train_loader
    from fastnst.train.data.backend import dali_available
    from tests.data_formats import FAST_PICKLE, write_cifar10

    per_batch, batch, batches = (20, 16, 3) if dry_run else (4_000, 512, 30)
    device = _device(dry_run)
    with tempfile.TemporaryDirectory() as root:
        write_cifar10(Path(root), per_batch=per_batch, num_test=10, protocol=FAST_PICKLE)
        for backend in ("torch", "dali") if dali_available() else ("torch",):
            loader = create_train_loader("cifar10", root, batch, device=str(device),
                                         augmentation=Augmentation(augment_backend=backend))
            emit(f"feed loader[{backend}] images_per_second", _loader_images_per_second(loader, batches, device),
                 "img/s", batch=batch, batches=batches, device=str(device))
    if not dali_available():
        emit("feed loader[dali]", "not installed")


def _step_case(variant: str, dry_run: bool, **options):
    from bench.train_step import build_case

    device = _device(dry_run)
    if dry_run:  # the "224 px" variant at 40 px: the same code, seconds instead of minutes on a CPU
        options.update(model_name="wrn10_1", batch=16, style_resolution=40 if variant == "paper224" else "variant")
    return build_case(variant, "cpu" if dry_run else "full", device, **options)


def _median_step_seconds(case, rounds: int) -> float:
    case.run_round()  # compile, cuDNN autotuning, allocator
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        case.run_round()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) / case.steps


def part_profile(dry_run: bool, out: Path) -> None:
    """torch.profiler of one stylized step (kernel table, layout conversions: bench/kernel_table.py), the
    224-px step with 64- and 16-row buckets (docs/stylizer.md), and reflect pads on a channels_last map."""
    from torch.profiler import ProfilerActivity, profile

    from bench.kernel_table import markdown, summarize, work_records

    on_device = _device(dry_run).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    for variant in ("paper224", "native"):
        case = _step_case(variant, dry_run, steps=1, label_regions=True)
        for _ in range(1 if dry_run else 3):  # compile, cuDNN autotuning, allocator: outside the profile
            case.run_round()
        with profile(activities=activities) as prof:
            case.run_round()
        summary = summarize(work_records(prof.events(), on_device))
        (out / f"profile_{variant}.md").write_text(markdown(summary, "kernel" if on_device else "op") + "\n")
        emit(f"profile {variant} step", summary["total_ms"], "ms", regions_ms=summary["regions_ms"],
             table=f"profile_{variant}.md")
        emit(f"profile {variant} layout conversions", summary["layout_conversions"]["share"], "of step",
             count=summary["layout_conversions"]["count"], ms=summary["layout_conversions"]["total_ms"])
        del case, prof
    for bucket in (2, 1) if dry_run else (64, 16):
        case = _step_case("paper224", dry_run, steps=1 if dry_run else 20)
        case.stylizer.bucket_size = bucket
        emit(f"profile paper224 step with {bucket}-row buckets", _median_step_seconds(case, 1 if dry_run else 5) * 1e3,
             "ms")
        del case
    _pad_layout_check(_device(dry_run))


def _pad_layout_check(device: torch.device) -> None:
    """CUDA's reflect pad returns NCHW for a channels_last input; ours keeps the layout: time of each + a conv."""
    from torch import nn

    from bench.adain_bandwidth import time_seconds
    from fastnst.networks import LayoutPreservingReflectionPad2d

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    batch, side = (64, 224) if device.type == "cuda" else (2, 16)
    features = torch.randn(batch, 64, side, side, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    conv = nn.Conv2d(64, 64, 3).to(device, dtype).to(memory_format=torch.channels_last)
    with torch.no_grad():
        for pad in (nn.ReflectionPad2d(1), LayoutPreservingReflectionPad2d(1)):
            emit(f"profile {type(pad).__name__} + conv on channels_last {batch}x64x{side}x{side}",
                 time_seconds(lambda: conv(pad(features)), device) * 1e3, "ms",
                 output_channels_last=pad(features).is_contiguous(memory_format=torch.channels_last))


PARTS = {"env": part_env, "adain": part_adain, "adain_rest": part_adain_rest, "feed": part_feed,
         "profile": part_profile}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_parts", description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=PARTS)
    parser.add_argument("--dry-run", action="store_true", help="the CPU at tiny sizes")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the files a part writes")
    args = parser.parse_args(argv)
    PARTS[args.part](args.dry_run, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
