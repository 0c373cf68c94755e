"""A real epoch of ``python -m train.run``, timed: the number a user feels (bench/gpu_run.py's end-to-end parts).

    python -m bench.end_to_end paper224|plain|native|cache --work DIR [--out DIR] [--steps N] [--dry-run]

Runs the cifar10 preset as a user would (WRN-28-4, batch 256, 224-px stylization, manifold and
input noise, TrivialAugment, Random Erasing, the authors' 50,000-sample epoch; compiled on CUDA,
``compile: auto``) for 2 epochs, with evaluation off (``--no-evaluate-clean --no-evaluate-corruptions``)
and no SWA (its BatchNorm pass after the last epoch is not training time), on generated data in the
official on-disk layout: 50,000 CIFAR-10 images as the python batches, a synthetic ``.npz`` of
100,000 images, a random style bank and random weights (``fastnst.weights``; the cost does not depend
on them). Where DALI is not installed the loader runs its torch backend (``--augment-backend auto``).
Epoch 2 is timed (epoch 1 holds the compilation and cuDNN tuning), from ``metrics.jsonl``: its
seconds, img/s, and its split into the wait for data, stylizing and the steps. ``--steps N`` trains
each epoch on its first N batches (``--max-steps-per-epoch``) and projects the whole epoch from their
img/s. Writing the data takes about 20 s on a busy 2-core CPU (2026-12-07; timed as a figure).

Variants: ``paper224`` (the preset), ``plain`` (``--no-stylize``), ``native``
(``--style-resolution native``), ``cache`` (``--stylize-cache`` of one stored variant per image,
built first with ``python -m train.stylize_cache`` at native size: its content does not change
the epoch's cost, a gather). The data is written once into ``--work`` and shared by the variants.
``--dry-run``: 40 + 40 images, WRN-10-1, batch 16, 2 steps an epoch, on the CPU: the same commands, no figure
worth reading.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.figures import emit

VARIANTS = {"paper224": [], "plain": ["--no-stylize"], "native": ["--style-resolution", "native"], "cache": []}
# The authors' seconds per CIFAR-10 epoch (issue 20: 60.6 stylized, 22.2 plain), beside ours.
AUTHORS_EPOCH_SECONDS = {"paper224": 60.6, "plain": 22.2}
# CIFAR-10 train images = 5 x per_batch, test images, synthetic images; the dry run's train.run flags.
FULL_SIZES, DRY_SIZES = (10_000, 1_000, 100_000), (8, 16, 40)
# The GPU hosts lent so far have no DALI: the dry run takes their path, the loader's torch backend.
DRY_FLAGS = ["--model", "wrn10_1", "--batch-size", "16", "--device", "cpu", "--augment-backend", "torch"]
DRY_STEPS = 2  # of the dry run's 3 batches: --max-steps-per-epoch runs in CI
DRY_STYLE_RESOLUTION = {"paper224": ["--style-resolution", "40"]}  # 224 px on a CPU: minutes per step
EPOCHS = 2


def prepare(work: Path, dry_run: bool) -> dict[str, Path]:
    """The generated inputs under ``work`` (written once; a finished set is marked by ``inputs.json``)."""
    import torch

    from fastnst import StyleBank
    from fastnst.weights import write_random_weights
    from tests.data_formats import FAST_PICKLE, write_cifar10, write_synthetic_npz

    marker = work / "inputs.json"
    if marker.is_file():
        return {key: Path(value) for key, value in json.loads(marker.read_text()).items()}
    started = time.perf_counter()
    per_batch, num_test, num_synthetic = DRY_SIZES if dry_run else FULL_SIZES
    inputs = {"data_root": work / "data", "synthetic": work / "data" / "synthetic.npz", "styles": work / "styles.pt"}
    write_cifar10(inputs["data_root"], per_batch=per_batch, num_test=num_test, protocol=FAST_PICKLE)
    write_synthetic_npz(inputs["synthetic"], count=num_synthetic)
    generator = torch.Generator().manual_seed(0)
    StyleBank(torch.rand(64, 512, generator=generator), torch.rand(64, 512, generator=generator) + 0.1,
              [f"style{i}" for i in range(64)]).save(inputs["styles"])
    inputs["vgg"], inputs["decoder"] = write_random_weights(work / "weights")
    marker.write_text(json.dumps({key: str(value) for key, value in inputs.items()}))
    emit("end_to_end data generation", time.perf_counter() - started, "s", train_images=5 * per_batch,
         synthetic_images=num_synthetic)
    return inputs


def _data_flags(inputs: dict[str, Path]) -> list[str]:
    return ["--dataset", "cifar10", "--data-root", str(inputs["data_root"]), "--synthetic", str(inputs["synthetic"]),
            "--styles", str(inputs["styles"]), "--vgg", str(inputs["vgg"]), "--decoder", str(inputs["decoder"])]


def build_caches(work: Path, inputs: dict[str, Path], dry_run: bool) -> list[Path]:
    """One stored variant per real and synthetic image, at native size (``python -m train.stylize_cache``)."""
    caches = []
    for source in ("real", "synthetic"):
        cache = work / f"cache_{source}"
        if not cache.is_dir():
            subprocess.run([sys.executable, "-m", "train.stylize_cache", *_data_flags(inputs), "--source", source,
                            "--style-resolution", "native", "--variants", "1", "--no-compile", "--no-progress",
                            "--out", str(cache), *(["--device", "cpu"] if dry_run else [])], check=True)
        caches.append(cache)
    return caches


def run_variant(variant: str, work: Path, out: Path, dry_run: bool, steps: int | None = None) -> dict:
    """Train 2 epochs of ``variant`` (each its first ``steps`` batches if given), emit epoch 2's figures;
    returns its metrics row."""
    from fastnst.train.config import load_preset
    from fastnst.train.data.backend import resolve_backend

    inputs = prepare(work, dry_run)
    flags = list(VARIANTS[variant])
    if variant == "cache":
        flags += ["--stylize-cache", *map(str, build_caches(work, inputs, dry_run))]
    if dry_run:
        flags += DRY_FLAGS + DRY_STYLE_RESOLUTION.get(variant, [])
        steps = steps or DRY_STEPS
    if steps:
        flags += ["--max-steps-per-epoch", str(steps)]
    run_dir = work / f"run_{variant}"
    subprocess.run([sys.executable, "-m", "train.run", *_data_flags(inputs), *flags, "--epochs", str(EPOCHS),
                    "--no-evaluate-clean", "--no-evaluate-corruptions", "--no-swa", "--overwrite", "--out", str(run_dir)],
                   check=True)
    shutil.copyfile(run_dir / "metrics.jsonl", out / f"end_to_end_{variant}.metrics.jsonl")
    config = json.loads((run_dir / "config.json").read_text())
    config["augment_backend"] = resolve_backend(config["augment_backend"])  # what auto chose here
    row = [json.loads(text) for text in (run_dir / "metrics.jsonl").read_text().splitlines() if text.strip()][-1]
    epoch_images = 5 * (DRY_SIZES if dry_run else FULL_SIZES)[0]  # the authors' epoch: every real image once
    emit_figures(variant, row, config, load_preset("cifar10")["epochs"], epoch_images)
    return row


def emit_figures(variant: str, row: dict, config: dict, preset_epochs: int, epoch_images: int) -> None:
    """Epoch ``row``'s figures; a whole epoch (``epoch_images``) at its img/s where the epoch was cut short."""
    name, seconds = f"end_to_end[{variant}]", row["epoch_seconds"]
    epoch_seconds = epoch_images / row["images_per_second"]
    settings = {key: config.get(key) for key in ("model", "batch_size", "compile", "amp", "style_resolution",
                                                 "augment_backend", "max_steps_per_epoch")}
    emit(f"{name} epoch {row['epoch']} seconds", seconds, "s", **settings)
    emit(f"{name} images_per_second", row["images_per_second"], "img/s", batch=config.get("batch_size"))
    if config.get("max_steps_per_epoch"):
        emit(f"{name} whole epoch seconds", epoch_seconds, "s", images=epoch_images,
             projected_from_steps=config["max_steps_per_epoch"])
    emit(f"{name} projected {preset_epochs} epochs", epoch_seconds * preset_epochs / 60, "min")
    if variant in AUTHORS_EPOCH_SECONDS:
        emit(f"{name} speed-up over the authors' {AUTHORS_EPOCH_SECONDS[variant]} s/epoch",
             AUTHORS_EPOCH_SECONDS[variant] / epoch_seconds, "x")
    # The split of the epoch: whatever train.run's metrics row reports of it.
    for key in ("stylize_seconds", "data_wait_seconds", "step_seconds"):
        if row.get(key) is not None:
            emit(f"{name} {key.removesuffix('_seconds')} share", row[key] / seconds, "of epoch", seconds=row[key])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.end_to_end", description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--work", type=Path, required=True, help="folder for the generated data and the runs")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder that gets the metrics.jsonl")
    parser.add_argument("--steps", type=int, default=None, help="train each epoch on its first N batches (default: "
                        f"all; the dry run: {DRY_STEPS})")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    args = parser.parse_args(argv)
    run_variant(args.variant, args.work, args.out, args.dry_run, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
