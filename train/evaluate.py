"""Corruption-robustness evaluation: clean accuracy, accuracy per corruption and severity,
and the paper's metric, the mean corruption accuracy over the 15 x 5 benchmark sets.

    python -m train.evaluate --checkpoint runs/x/last.pt --dataset cifar10 [--baseline runs/base/last.pt]

Uses the official -C files (CIFAR-10-C, CIFAR-100-C, Tiny-ImageNet-C) when they are under
``--data-root``, else generates the corruptions from the clean test set with
``train.corruptions`` (on the GPU when there is one). Which one was used is printed and
stored in the results. Accuracies are in percent.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fastnst.train.checkpoint import load_checkpoint, model_from_checkpoint
from fastnst.train.corruptions import CORRUPTIONS, SEVERITIES, corrupt, frost_source
from fastnst.train.corruptions.digital import jpeg_compression
from fastnst.train.data import dataset_info, has_official_corruptions, load_test_set, normalize
from fastnst.train.data.corrupted import corrupted_root, load_cifar_c, load_tinyimagenet_c

SOURCES = ("auto", "official", "generated")
# Tiny-ImageNet-C was saved as JPEG, quality 85 (make_tinyimagenet_c.py); generated sets repeat that.
STORED_JPEG_QUALITY = {"tinyimagenet": 85}


def resolve_source(dataset: str, data_root: str | os.PathLike, source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    official = has_official_corruptions(dataset, data_root)
    if source == "official" and not official:
        raise FileNotFoundError(
            f"--source official: no complete official corruption set for {dataset} under {data_root} "
            f"(expected {corrupted_root(dataset, data_root) if dataset != 'demo' else 'none: the demo set has none'})"
        )
    if source == "auto":
        return "official" if official else "generated"
    return source


def _subset(count: int, max_images: int | None, seed: int) -> np.ndarray:
    """Indices of the evaluated test images: all, or a seeded random subset (sorted)."""
    if max_images is None or max_images >= count:
        return np.arange(count)
    if max_images <= 0:
        raise ValueError(f"--max-images must be positive, got {max_images}")
    return np.sort(np.random.default_rng(seed).choice(count, size=max_images, replace=False))


@torch.inference_mode()
def _count_correct(models: dict[str, nn.Module], images: torch.Tensor, labels: torch.Tensor, dataset: str,
                   batch_size: int, correct: dict[str, int]) -> None:
    for start in range(0, len(images), batch_size):
        batch = normalize(images[start : start + batch_size], dataset)
        if batch.is_cuda:  # the trainer's layout; on CPU it is slower
            batch = batch.contiguous(memory_format=torch.channels_last)
        targets = labels[start : start + batch_size]
        for name, model in models.items():
            correct[name] += int((model(batch).argmax(dim=1) == targets).sum())


def _official_set(dataset: str, data_root, corruption: str, severity: int, test_labels: np.ndarray, indices: np.ndarray):
    """Rows ``indices`` of one official set, after checking it holds the clean test set's images.

    CIFAR-C files keep the test set's order, so their labels must equal the test labels.
    Tiny-ImageNet-C stores each set by class folder, not in val order: the same images in
    another order, so only the class counts must agree (and the subset is drawn in its order).
    """
    root = corrupted_root(dataset, data_root)
    loader = load_tinyimagenet_c if dataset == "tinyimagenet" else load_cifar_c
    images, labels = loader(root, corruption, severity)
    if dataset == "tinyimagenet":
        classes = max(int(labels.max(initial=0)), int(test_labels.max(initial=0))) + 1
        same = np.array_equal(np.bincount(labels, minlength=classes), np.bincount(test_labels, minlength=classes))
    else:
        same = np.array_equal(labels, test_labels)
    if not same:
        raise ValueError(f"{corruption} severity {severity}: labels differ from the clean test set's; "
                         f"the files under {root} belong to another test set")
    return np.ascontiguousarray(images[indices]), labels[indices]


def _to_device(images_nhwc: np.ndarray, labels: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(np.ascontiguousarray(images_nhwc)).to(device).permute(0, 3, 1, 2).contiguous()
    return images, torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)


def generate_corrupted(images: torch.Tensor, dataset: str, corruption: str, severity: int, *, batch_size: int,
                       seed: int, frost_dir=None) -> torch.Tensor:
    """The (corruption, severity) version of uint8 test images, generated batch by batch on their device."""
    generator = torch.Generator(device=images.device)
    generator.manual_seed(seed * 1_000_003 + CORRUPTIONS.index(corruption) * 10 + severity)
    image_size = dataset_info(dataset).image_size
    parts = []
    for start in range(0, len(images), batch_size):
        part = corrupt(images[start : start + batch_size], corruption, severity, image_size=image_size,
                       generator=generator, frost_dir=frost_dir)
        if dataset in STORED_JPEG_QUALITY:
            part = jpeg_compression(part, STORED_JPEG_QUALITY[dataset])
        parts.append(part)
    return torch.cat(parts)


def summarize(clean_correct: int, correct: dict[tuple[str, int], int], count: int) -> dict:
    """Counts of correct predictions -> accuracies in percent and their means."""
    accuracy = {name: [100.0 * correct[(name, s)] / count for s in SEVERITIES] for name in CORRUPTIONS if (name, 1) in correct}
    every = [value for values in accuracy.values() for value in values]
    return {
        "clean_accuracy": 100.0 * clean_correct / count,
        "accuracy": accuracy,  # corruption -> [severity 1..5]
        "corruption_mean": {name: float(np.mean(values)) for name, values in accuracy.items()},
        "severity_mean": [float(np.mean([accuracy[n][i] for n in accuracy])) for i in range(len(SEVERITIES))],
        "mean_corruption_accuracy": float(np.mean(every)),
        "num_sets": len(every),
    }


def evaluate_models(models: dict[str, nn.Module], dataset: str, data_root, *, device="cpu", batch_size: int = 500,
                    source: str = "auto", max_images: int | None = None, seed: int = 0,
                    corruptions: tuple[str, ...] = CORRUPTIONS, frost_dir=None, progress: bool = True) -> dict:
    """Evaluate several classifiers on the same clean and corrupted images (generated once)."""
    device = torch.device(device)
    source = resolve_source(dataset, data_root, source)
    for model in models.values():
        model.to(device).eval()
    test_images, test_labels = load_test_set(dataset, data_root)
    indices = _subset(len(test_labels), max_images, seed)
    clean, labels = _to_device(test_images[indices], test_labels[indices], device)

    clean_correct = dict.fromkeys(models, 0)
    _count_correct(models, clean, labels, dataset, batch_size, clean_correct)
    correct = {name: {} for name in models}
    started = time.perf_counter()
    pairs = [(c, s) for c in corruptions for s in SEVERITIES]
    for corruption, severity in tqdm(pairs, desc=f"{dataset}-C ({source})", disable=not progress, unit="set"):
        if source == "official":
            images, set_labels = _to_device(*_official_set(dataset, data_root, corruption, severity, test_labels,
                                                           indices), device)
        else:
            images = generate_corrupted(clean, dataset, corruption, severity, batch_size=batch_size, seed=seed,
                                        frost_dir=frost_dir)
            set_labels = labels
        counts = dict.fromkeys(models, 0)
        _count_correct(models, images, set_labels, dataset, batch_size, counts)
        for name in models:
            correct[name][(corruption, severity)] = counts[name]

    meta = {
        "dataset": dataset,
        "source": source,
        "frost": frost_source(frost_dir) if source == "generated" else "official files",
        "num_images": int(len(indices)),
        "image_size": dataset_info(dataset).image_size,
        "seed": seed,
        "batch_size": batch_size,
        "device": str(device),
        "seconds": time.perf_counter() - started,
    }
    return {"meta": meta, "models": {name: summarize(clean_correct[name], correct[name], len(indices)) for name in models}}


def evaluate(model: nn.Module, dataset: str, data_root, *, device="cpu", batch_size: int = 500, source: str = "auto",
             max_images: int | None = None, seed: int = 0, frost_dir=None, progress: bool = True) -> dict:
    """One classifier -> {clean_accuracy, accuracy[corruption][severity-1], corruption_mean, severity_mean,
    mean_corruption_accuracy, meta: {source, frost, num_images, ...}}; accuracies in percent."""
    results = evaluate_models({"model": model}, dataset, data_root, device=device, batch_size=batch_size, source=source,
                              max_images=max_images, seed=seed, frost_dir=frost_dir, progress=progress)
    return {**results["models"]["model"], "meta": results["meta"]}


def relative_to(result: dict, baseline: dict) -> dict:
    """Differences in percentage points, and corruption errors relative to the baseline's
    (Hendrycks & Dietterich's CE with the baseline in AlexNet's place; below 1 is better)."""
    per_corruption_ce = {
        name: sum(100 - a for a in result["accuracy"][name]) / max(sum(100 - a for a in baseline["accuracy"][name]), 1e-9)
        for name in result["accuracy"]
    }
    return {
        "clean_accuracy_delta": result["clean_accuracy"] - baseline["clean_accuracy"],
        "mean_corruption_accuracy_delta": result["mean_corruption_accuracy"] - baseline["mean_corruption_accuracy"],
        "corruption_mean_delta": {n: result["corruption_mean"][n] - baseline["corruption_mean"][n] for n in result["corruption_mean"]},
        "corruption_error": per_corruption_ce,
        "mean_corruption_error": float(np.mean(list(per_corruption_ce.values()))),
    }


def _checkpoint_models(path, device) -> tuple[dict[str, nn.Module], dict]:
    state = load_checkpoint(path)
    models = {}
    for which in ("model", "swa_model"):
        if state.get(which) is not None:
            models[which], config = model_from_checkpoint(path, which=which)
    return models, state["config"]


def evaluate_checkpoint(checkpoint, dataset: str | None, data_root, *, baseline=None, device="cpu", **options) -> dict:
    """Evaluate a checkpoint's model (and its SWA model), optionally a baseline checkpoint on the same images."""
    models, config = _checkpoint_models(checkpoint, device)
    dataset = dataset or config["dataset"]
    if config.get("dataset") not in (None, dataset):
        raise ValueError(f"--dataset {dataset} but {checkpoint} was trained on {config['dataset']}")
    everything = dict(models)
    if baseline is not None:
        baseline_models, baseline_config = _checkpoint_models(baseline, device)
        if baseline_config.get("dataset") not in (None, dataset):
            raise ValueError(f"--baseline {baseline} was trained on {baseline_config['dataset']}, not {dataset}")
        everything.update({f"baseline_{name}": model for name, model in baseline_models.items()})
    results = evaluate_models(everything, dataset, data_root, device=device, **options)
    report = {"meta": {**results["meta"], "checkpoint": str(checkpoint), "config": config},
              "results": {name: results["models"][name] for name in models}}
    if baseline is not None:
        report["meta"]["baseline_checkpoint"] = str(baseline)
        report["baseline"] = {name[len("baseline_"):]: r for name, r in results["models"].items() if name.startswith("baseline_")}
        report["relative"] = {
            name: relative_to(result, report["baseline"].get(name, report["baseline"]["model"]))
            for name, result in report["results"].items()
        }
    return report


def format_summary(report: dict) -> str:
    meta = report["meta"]
    lines = [f"{meta['dataset']}-C from {meta['source'].upper()} files" if meta["source"] == "official"
             else f"{meta['dataset']}-C GENERATED from the clean test set (frost: {meta['frost']})",
             f"{meta['num_images']} images per set, {meta['seconds']:.1f} s"]
    for name, result in report["results"].items():
        lines.append(f"{name:>10}: clean {result['clean_accuracy']:6.2f} %   mean corruption accuracy "
                     f"{result['mean_corruption_accuracy']:6.2f} % (over {result['num_sets']} sets)")
        if "relative" in report:
            relative = report["relative"][name]
            lines.append(f"{'':>10}  vs baseline: clean {relative['clean_accuracy_delta']:+.2f} pp, "
                         f"corruption {relative['mean_corruption_accuracy_delta']:+.2f} pp, "
                         f"relative mCE {relative['mean_corruption_error']:.3f}")
    return "\n".join(lines)


def example_grid(dataset: str, data_root, *, seed: int = 0, frost_dir=None) -> torch.Tensor:
    """uint8 (15, 6, 3, H, W): one test image clean and at severities 1..5 of every corruption (generated)."""
    images, _ = load_test_set(dataset, data_root)
    image = torch.from_numpy(np.ascontiguousarray(images[seed % len(images)][None])).permute(0, 3, 1, 2).contiguous()
    rows = []
    for name in CORRUPTIONS:
        generator = torch.Generator().manual_seed(seed)
        rows.append(torch.cat([image] + [corrupt(image, name, s, generator=generator, frost_dir=frost_dir) for s in SEVERITIES]))
    return torch.stack(rows)


def parse_corruptions(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in CORRUPTIONS]
    if unknown or not names:
        raise SystemExit(f"--corruptions: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(CORRUPTIONS)}")
    return tuple(name for name in CORRUPTIONS if name in names)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Corruption robustness of a trained classifier (and its SWA model).")
    group = parser.add_argument_group("Model")
    group.add_argument("--checkpoint", required=True, help="checkpoint written by python -m train.run")
    group.add_argument("--baseline", help="a baseline checkpoint evaluated on the same images, for relative numbers")
    group = parser.add_argument_group("Dataset")
    group.add_argument("--dataset", help="cifar10, cifar100, tinyimagenet or demo (default: the checkpoint's)")
    group.add_argument("--data-root", default="data", help="folder holding the clean test set and the official -C files")
    group.add_argument("--source", default="auto", choices=SOURCES,
                       help="official -C files, generated corruptions, or auto: official when present")
    group.add_argument("--max-images", type=int, help="evaluate a seeded random subset of this many test images")
    group.add_argument("--frost-dir", help="folder with the official frost textures frost1.png ... frost5.jpg (default: $FASTNST_FROST_DIR, "
                       "else a procedural stand-in, flagged in the results)")
    group.add_argument("--seed", type=int, default=0, help="seed of the subset and of the generated corruptions")
    group.add_argument("--corruptions", default=",".join(CORRUPTIONS),
                       help="comma-separated subset for a quick look (the benchmark mean needs all 15)")
    group = parser.add_argument_group("Run")
    group.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    group.add_argument("--batch-size", type=int, default=500)
    group.add_argument("--out", help="folder for results.json, report.md and the figures (default: next to the checkpoint)")
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    from fastnst.train.report import write_report  # matplotlib only when a report is written

    report = evaluate_checkpoint(args.checkpoint, args.dataset, args.data_root, baseline=args.baseline, device=args.device,
                                 batch_size=args.batch_size, source=args.source, max_images=args.max_images,
                                 seed=args.seed, frost_dir=args.frost_dir, corruptions=parse_corruptions(args.corruptions))
    print(format_summary(report))
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "robustness"
    examples = example_grid(report["meta"]["dataset"], args.data_root, seed=args.seed, frost_dir=args.frost_dir)
    written = write_report(report, out, examples=examples)
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return report


if __name__ == "__main__":
    main()
