"""Corruption-robustness evaluation as the paper's authors report it: clean accuracy, accuracy per
corruption and severity, and their scores ``Acc_C-original-15``, ``Acc_C-all-19``, ``Acc_C-bar-10``
(and ``Acc_all-ex-pixelwise-noise-24``); the accuracy under their Lp-noise test set (``Combined_Noise``,
``train.noise.EVALUATION_NOISE``) and the calibration errors ``RMSCE`` and ``RMSCE_C`` (``train.calibration``).

    python -m train.evaluate --checkpoint runs/x/checkpoint.pt [--baseline runs/base/checkpoint.pt]

-C sets: the official files (CIFAR-10-C, CIFAR-100-C, Tiny-ImageNet-C; an image folder's in the
ImageNet-C layout, ``--corrupted-root``, by default DATA_ROOT/val-c) under ``--data-root`` where they exist, the others generated from the clean test set by ``train.corruptions`` (on the GPU when
there is one); every set records its source, missing files are named, and a score over sets of both
sources is flagged as mixed, with its mean over the official sets beside it. C-bar sets are read from
their files when present and never generated. Accuracies are in percent.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fastnst.cli import UsageError, add_debug_flag, add_device_flag, positive_int, program_name, run_cli
from fastnst.train.calibration import CalibrationBins
from fastnst.train.checkpoint import load_checkpoint, model_from_checkpoint
from fastnst.train.config import DEFAULTS, add_option_flag
from fastnst.train.corruptions import ALL_CORRUPTIONS, CORRUPTIONS, SEVERITIES, corrupt, frost_source, seeded_generator
from fastnst.train.corruptions.digital import jpeg_compression
from fastnst.train.corruptions.frost import default_frost_dir, stand_in_warning_suppressed
from fastnst.train.data import DataFormatError, MissingDataError, dataset_info, load_test_set, manifest, normalize
from fastnst.train.data.corrupted import (C_BAR_CORRUPTIONS, C_BAR_FOLDERS, CORRUPTED_FOLDERS, FOLDER_LAYOUT, c_bar_root,
                                          check_generated_for, corrupted_root, load_cifar_c, load_folder_c, load_tinyimagenet_c,
                                          missing_c_bar_files, missing_official_files)
from fastnst.train.data.stats import IMAGEFOLDER, DatasetInfo, normalization
from fastnst.train.noise import EVALUATION_NOISE, EVALUATION_NOISE_GROUP, EVALUATION_NOISE_PATCH, evaluation_noise

SOURCES = ("auto", "official", "generated")
# fp32, or fp16 autocast as the authors evaluate (experiments/eval.py:84, eval_corruptions.py:32, 107)
EVAL_AMP = {"fp32": None, "fp16": torch.float16}
# Tiny-ImageNet-C and ImageNet-C were saved as JPEG, quality 85 (make_tinyimagenet_c.py, make_imagenet_c.py:119);
# generated sets repeat that (an image folder's as ImageNet-C, and train.corruptions.generate writes them so).
STORED_JPEG_QUALITY = {"tinyimagenet": 85, IMAGEFOLDER: 85}
# The layout the evaluator feeds the model, per device type: channels_last wherever it was measured
# faster (docs/corruptions.md, "Evaluator throughput": CPU and, as in the trainer, CUDA).
EVAL_MEMORY_FORMAT = {"cuda": torch.channels_last, "cpu": torch.channels_last}
# The most images per forward pass, per device type: on the CPU smaller passes stay in cache and
# were measured faster than --batch-size 500 (same docs section); elsewhere --batch-size decides.
EVAL_FORWARD_BATCH = {"cpu": 64}


def score_members(dataset: str) -> dict[str, tuple[str, ...]]:
    """The authors' scores and the corruptions each one averages.

    Their list is the 19 -C corruptions (data/c-labels.txt:1-19) then the 10 C-bar ones, and the
    scores are accs_c[0:19] / 19, accs_c[0:15] / 15, accs_c[19:29] / 10 and
    (accs_c[3:15] + accs_c[16:19] + accs_c[20:29]) / 24 (experiments/eval_corruptions.py:78-86, named in
    experiments/utils.py:543), where each accs_c entry is the accuracy on the five severities
    together (experiments/data.py:598-605: five equal blocks, so the mean of the five accuracies).
    """
    bar = C_BAR_CORRUPTIONS.get(dataset, ())
    every = ALL_CORRUPTIONS + bar
    return {
        "Acc_C-original-15": CORRUPTIONS,
        "Acc_C-all-19": ALL_CORRUPTIONS,
        "Acc_C-bar-10": bar,
        "Acc_all-ex-pixelwise-noise-24": every[3:15] + every[16:19] + every[20:29] if bar else (),
    }


@dataclass(frozen=True)
class CorruptionSet:
    """One corruption at all five severities: where its images come from."""
    name: str
    family: str  # "C" or "C-bar"
    source: str  # "official" (read from root) or "generated"
    root: Path | None = None


@dataclass
class EvaluationPlan:
    sets: list[CorruptionSet]
    official_root: Path | None
    c_bar_root: Path | None
    missing_files: dict[str, str]  # corruption -> the file that is not on disk
    not_evaluated: dict[str, str]  # corruption -> why

    @property
    def source(self) -> str:
        sources = {s.source for s in self.sets}
        return "mixed" if len(sources) > 1 else next(iter(sources), "none")


def how_to_get_official(dataset: str, data_root, official_root: Path) -> str:
    """The command that puts ``dataset``'s -C set at ``official_root``: the download, or for an image folder
    train.corruptions.generate (its -C set is made, not published)."""
    if dataset == IMAGEFOLDER:
        command = shlex.join(["python", "-m", "train.corruptions.generate", "--data", str(data_root),
                              "--out", str(official_root)])
        return f"write it with `{command}` (with the run's --image-size and --train-crop)"
    return f"fetch the official set with `{manifest.download_command(f'{dataset}-c', data_root=data_root)}`"


def plan_evaluation(dataset: str, data_root, source: str = "auto", corruptions=None,
                    official_root=None) -> EvaluationPlan:
    """Decide, set by set, what is read and what is generated.

    auto: official where its file exists, generated where not (the missing files are named);
    official: an error naming the missing files if any of the 15 benchmark sets lacks one, and
    extra sets without a file are not evaluated; generated: every -C set generated. C-bar sets are
    read where their files exist, under any source, and never generated.
    """
    if source not in SOURCES:
        raise ValueError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    bar_names = C_BAR_CORRUPTIONS.get(dataset, ())
    wanted = set(ALL_CORRUPTIONS + bar_names) if corruptions is None else set(corruptions)
    c_names = [name for name in ALL_CORRUPTIONS if name in wanted]
    if official_root is not None:  # --corrupted-root
        official_root = Path(official_root)
    elif dataset in CORRUPTED_FOLDERS or dataset == IMAGEFOLDER:
        official_root = corrupted_root(dataset, data_root)
    if official_root is None:
        missing = {name: "none: the demo set has no official corruption files" for name in c_names}
    else:
        missing = {name: str(path) for name, path in missing_official_files(dataset, official_root, c_names).items()}
    if source == "official":
        if official_root is None:
            raise MissingDataError(f"--source official: {dataset} has no official corruption set")
        lacking = [name for name in c_names if name in missing and name in CORRUPTIONS]
        if lacking and not official_root.is_dir():
            raise MissingDataError(f"--source official: there is no {official_root}; "
                                   f"{how_to_get_official(dataset, data_root, official_root)} (or use --source auto to "
                                   "generate the sets that are missing, flagged)")
        if lacking:  # each missing file once: without labels.npy every set lacks the same file
            files = dict.fromkeys(missing[name] for name in lacking)
            raise MissingDataError(
                f"--source official: {len(lacking)} of the 15 benchmark sets of {dataset} cannot be read, missing: "
                f"{', '.join(files)} (use --source auto to generate them, flagged)")
    sets, not_evaluated = [], {}
    for name in c_names:
        if source == "generated":
            sets.append(CorruptionSet(name, "C", "generated"))
        elif name not in missing:
            sets.append(CorruptionSet(name, "C", "official", official_root))
        elif source == "official":
            not_evaluated[name] = f"no official file ({missing[name]}) and --source official"
        else:
            sets.append(CorruptionSet(name, "C", "generated"))
    bar_root = c_bar_root(dataset, data_root)
    bar_wanted = [name for name in bar_names if name in wanted]
    if bar_wanted and bar_root is None:
        for name in bar_wanted:
            not_evaluated[name] = (f"no C-bar folder under {data_root} (looked for {', '.join(C_BAR_FOLDERS[dataset])}); "
                                   "C-bar is read from its files, never generated")
    elif bar_wanted:
        bar_missing = missing_c_bar_files(dataset, bar_root, bar_wanted)
        for name in bar_wanted:
            if name in bar_missing:
                missing[name] = str(bar_missing[name])
                not_evaluated[name] = f"no file {bar_missing[name]} (C-bar is never generated)"
            else:
                sets.append(CorruptionSet(name, "C-bar", "official", bar_root))
    return EvaluationPlan(sets, official_root, bar_root, missing, not_evaluated)


def _subset(count: int, max_images: int | None, seed: int) -> np.ndarray:
    """Indices of the evaluated test images: all, or a seeded random subset (sorted)."""
    if max_images is None or max_images >= count:
        return np.arange(count)
    if max_images <= 0:
        raise ValueError(f"--max-images must be positive, got {max_images}")
    return np.sort(np.random.default_rng(seed).choice(count, size=max_images, replace=False))


@torch.inference_mode()
def _count_correct(models: dict[str, nn.Module], images: torch.Tensor, labels: torch.Tensor, dataset: str,
                   batch_size: int, correct: dict[str, int], calibration: dict[str, CalibrationBins] | None = None,
                   amp: str = DEFAULTS["eval_amp"], perturb=None) -> None:
    """Add each model's correct predictions to ``correct`` (and its logits to ``calibration``); ``perturb``
    maps every normalised batch to the one all models see (the Lp noise)."""
    memory_format = EVAL_MEMORY_FORMAT.get(images.device.type, torch.contiguous_format)
    step = min(batch_size, EVAL_FORWARD_BATCH.get(images.device.type, batch_size))
    for start in range(0, len(images), step):
        batch = normalize(images[start : start + step], dataset).contiguous(memory_format=memory_format)
        batch = perturb(batch) if perturb is not None else batch
        targets = labels[start : start + step]
        for name, model in models.items():
            with torch.autocast(images.device.type, dtype=EVAL_AMP[amp], enabled=EVAL_AMP[amp] is not None):
                logits = model(batch)
            correct[name] += int((logits.argmax(dim=1) == targets).sum())
            if calibration is not None:
                calibration[name].update(logits, targets)


def _lp_noise_correct(models: dict[str, nn.Module], images: torch.Tensor, labels: torch.Tensor, dataset: str,
                      batch_size: int, seed: int, amp: str) -> dict[str, int]:
    """Correct predictions under the authors' Lp-noise test set, the same noisy images for every model."""
    noise = evaluation_noise(*normalization(dataset))  # an image folder's too: no run configuration needed
    correct = dict.fromkeys(models, 0)
    with torch.random.fork_rng(devices=[images.device] if images.device.type == "cuda" else []):
        torch.manual_seed(seed)
        _count_correct(models, images, labels, dataset, batch_size, correct, amp=amp, perturb=noise)
    return correct


def _official_set(dataset: str, corruption_set: CorruptionSet, severity: int, test_labels: np.ndarray, indices: np.ndarray,
                  info: DatasetInfo | None = None):
    """Rows ``indices`` of one official set, after checking it holds the clean test set's images.

    CIFAR-C files keep the test set's order, so their labels must equal the test labels (a C-bar
    folder without labels.npy takes the test labels, as the authors do). Tiny-ImageNet-C stores each
    set by class folder, not in val order: the same images in another order, so only the class
    counts must agree (and the subset is drawn in its order).
    """
    root, corruption = corruption_set.root, corruption_set.name
    if dataset in FOLDER_LAYOUT:  # an image folder's as Tiny-ImageNet-C: by class folder
        images, labels = (load_tinyimagenet_c(root, corruption, severity) if dataset == "tinyimagenet" else
                          load_folder_c(root, corruption, severity, list(info.class_names), info.image_size))
        classes = max(int(labels.max(initial=0)), int(test_labels.max(initial=0))) + 1
        same = np.array_equal(np.bincount(labels, minlength=classes), np.bincount(test_labels, minlength=classes))
    else:
        images, labels = load_cifar_c(root, corruption, severity, labels_optional=corruption_set.family == "C-bar")
        if labels is None:
            if len(images) != len(test_labels):
                raise DataFormatError(f"{root / (corruption + '.npy')}: {len(images)} rows per severity, but the test set has "
                                      f"{len(test_labels)} images")
            labels = test_labels
        same = np.array_equal(labels, test_labels)
    if not same:
        raise DataFormatError(f"{corruption} severity {severity}: labels differ from the clean test set's; "
                              f"the files under {root} belong to another test set")
    return np.ascontiguousarray(images[indices]), labels[indices]


def _to_device(images_nhwc: np.ndarray, labels: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(np.ascontiguousarray(images_nhwc)).to(device).permute(0, 3, 1, 2).contiguous()
    return images, torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)


def generate_corrupted(images: torch.Tensor, dataset: str, corruption: str, severity: int, *, batch_size: int,
                       seed: int, frost_dir=None) -> torch.Tensor:
    """The (corruption, severity) version of uint8 test images, generated batch by batch on their device."""
    generator = seeded_generator(seed, corruption, severity, images.device)
    image_size = images.shape[-1]
    parts = []
    with stand_in_warning_suppressed():  # evaluate_models says once what a stand-in frost feeds
        for start in range(0, len(images), batch_size):
            part = corrupt(images[start : start + batch_size], corruption, severity, image_size=image_size,
                           generator=generator, frost_dir=frost_dir)
            if dataset in STORED_JPEG_QUALITY:
                part = jpeg_compression(part, STORED_JPEG_QUALITY[dataset])
            parts.append(part)
    return torch.cat(parts)


def _mean(values) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def summarize(clean_correct: int, correct: dict[tuple[str, int], int], count: int, dataset: str = "cifar10",
              sources: dict[str, str] | None = None, calibration: dict[str, CalibrationBins] | None = None,
              lp_noise_correct: int | None = None) -> dict:
    """Counts of correct predictions -> accuracies in percent, their means and the authors' scores.

    ``mean_corruption_accuracy`` and ``severity_mean`` are over the evaluated sets of the 15
    benchmark corruptions (the paper's metric when all 75 are there). Each score is computed only when
    all its corruptions were evaluated; ``source`` says whether its sets are official, generated or
    mixed, and a mixed score carries ``official_only``, its mean over the official sets alone.
    ``calibration``: bins of the clean set (key "clean") and of each corruption over its five severities ->
    the calibration errors (``l1``: the authors' RMSCE at HEAD, ``l2``) and their mean over the evaluated sets
    (RMSCE_C; the authors' is over all 29). ``lp_noise_correct`` -> ``lp_noise_accuracy`` (Combined_Noise)."""
    evaluated = [name for name in ALL_CORRUPTIONS + C_BAR_CORRUPTIONS.get(dataset, ()) if (name, 1) in correct]
    accuracy = {name: [100.0 * correct[(name, s)] / count for s in SEVERITIES] for name in evaluated}
    corruption_mean = {name: float(np.mean(values)) for name, values in accuracy.items()}
    benchmark = [name for name in CORRUPTIONS if name in accuracy]
    sources = sources or {}
    scores = {}
    for score, members in score_members(dataset).items():
        missing = [name for name in members if name not in accuracy]
        member_sources = {sources.get(name, "generated") for name in members if name in accuracy}
        source = "mixed" if len(member_sources) > 1 else next(iter(member_sources), None)
        scores[score] = {
            "value": None if missing or not members else _mean(corruption_mean[name] for name in members),
            "source": source,
            "corruptions": len(members),
            "missing": missing,
            "official_only": _mean(corruption_mean[name] for name in members
                                   if name in accuracy and sources.get(name) == "official") if source == "mixed" else None,
        }
    calibration = calibration or {}
    corruption_calibration = {name: calibration[name].errors() for name in evaluated if name in calibration}
    return {
        "clean_accuracy": 100.0 * clean_correct / count,
        "lp_noise_accuracy": None if lp_noise_correct is None else 100.0 * lp_noise_correct / count,
        "calibration_error": calibration["clean"].errors() if "clean" in calibration else None,
        "corruption_calibration_error": corruption_calibration,
        "mean_corruption_calibration_error": {
            **{norm: _mean(errors[norm] for errors in corruption_calibration.values()) for norm in ("l1", "l2")},
            "sets": len(corruption_calibration)},
        "accuracy": accuracy,  # corruption -> [severity 1..5]
        "corruption_mean": corruption_mean,
        "severity_mean": [float(np.mean([accuracy[n][i] for n in benchmark])) if benchmark else None
                          for i in range(len(SEVERITIES))],
        "mean_corruption_accuracy": _mean(value for name in benchmark for value in accuracy[name]),
        "num_sets": len(benchmark) * len(SEVERITIES),
        "scores": scores,
    }


def _frost_notice(plan: EvaluationPlan, frost_dir, dataset: str) -> str | None:
    """A warning when generated frost with the stand-in texture feeds reported numbers, naming them."""
    if not any(s.name == "frost" and s.source == "generated" for s in plan.sets) or "procedural" not in frost_source(frost_dir):
        return None
    fed = ["frost's accuracy"] + [score for score, members in score_members(dataset).items() if "frost" in members]
    return ("frost is GENERATED with a procedural stand-in texture (official textures not found: python -m "
            "train.data.download frost puts them in DATA_ROOT/frost, or set FASTNST_FROST_DIR or --frost-dir); "
            f"it feeds {', '.join(fed)}, which are therefore not comparable to published numbers")


def evaluate_models(models: dict[str, nn.Module], dataset: str, data_root, *, device="cpu", batch_size: int = 500,
                    source: str = "auto", max_images: int | None = None, seed: int = 0,
                    corruptions: tuple[str, ...] | None = None, frost_dir=None, progress: bool = True,
                    amp: str = DEFAULTS["eval_amp"], info: DatasetInfo | None = None, corrupted_root=None) -> dict:
    """Evaluate several classifiers on the same clean, Lp-noised and corrupted images (generated once). ``amp``:
    "fp32", or "fp16" autocast as the authors evaluate; ``info``: an image folder's facts
    (``dataset_info(dataset, config)``); ``corrupted_root``: the official -C folder, if not the data set's."""
    if amp not in EVAL_AMP:
        raise ValueError(f"--eval-amp must be one of {', '.join(EVAL_AMP)}, got {amp!r}")
    device = torch.device(device)
    frost_dir = frost_dir if frost_dir is not None else default_frost_dir(data_root)
    plan = plan_evaluation(dataset, data_root, source, corruptions, official_root=corrupted_root)
    test_images, test_labels = load_test_set(dataset, data_root, info)  # a bad test set stops us before any warning
    if dataset == IMAGEFOLDER:  # a generated -C folder must hold the test view of this model: checked before any work
        for root in {s.root for s in plan.sets if s.source == "official"}:
            check_generated_for(root, info.image_size, info.eval_resize)
    generated = [s.name for s in plan.sets if s.source == "generated"]
    if source == "auto" and any(s.source == "official" for s in plan.sets) and generated:
        warnings.warn(f"{dataset}-C is partly missing under {plan.official_root}: "
                      + ", ".join(f"{name} ({plan.missing_files[name]})" for name in generated)
                      + " GENERATED instead; scores over both sources are flagged as mixed", stacklevel=2)
    frost_notice = _frost_notice(plan, frost_dir, dataset)
    if frost_notice:
        warnings.warn(frost_notice, stacklevel=2)
    memory_format = EVAL_MEMORY_FORMAT.get(device.type, torch.contiguous_format)
    for model in models.values():
        model.to(device, memory_format=memory_format).eval()
    indices = _subset(len(test_labels), max_images, seed)
    clean, labels = _to_device(test_images[indices], test_labels[indices], device)

    clean_correct = dict.fromkeys(models, 0)
    calibration = {name: {"clean": CalibrationBins()} for name in models}
    _count_correct(models, clean, labels, dataset, batch_size, clean_correct,
                   {name: bins["clean"] for name, bins in calibration.items()}, amp)
    lp_noise_correct = _lp_noise_correct(models, clean, labels, dataset, batch_size, seed, amp)
    correct = {name: {} for name in models}
    started = time.perf_counter()
    pairs = [(corruption_set, s) for corruption_set in plan.sets for s in SEVERITIES]
    for corruption_set, severity in tqdm(pairs, desc=f"{dataset}-C ({plan.source})", disable=not progress, unit="set"):
        if corruption_set.source == "official":
            images, set_labels = _to_device(*_official_set(dataset, corruption_set, severity, test_labels, indices, info),
                                            device)
        else:
            images = generate_corrupted(clean, dataset, corruption_set.name, severity, batch_size=batch_size, seed=seed,
                                        frost_dir=frost_dir)
            set_labels = labels
        counts = dict.fromkeys(models, 0)
        set_calibration = {name: bins.setdefault(corruption_set.name, CalibrationBins())
                           for name, bins in calibration.items()}
        _count_correct(models, images, set_labels, dataset, batch_size, counts, set_calibration, amp)
        for name in models:
            correct[name][(corruption_set.name, severity)] = counts[name]

    sources = {s.name: s.source for s in plan.sets}
    frost = ("not evaluated" if "frost" not in sources else "official files" if sources["frost"] == "official"
             else frost_source(frost_dir))
    meta = {
        "dataset": dataset,
        "source": plan.source,  # official, generated or mixed
        "requested_source": source,
        "sources": sources,  # corruption -> official | generated
        "official_root": str(plan.official_root) if plan.official_root else None,
        "c_bar_root": str(plan.c_bar_root) if plan.c_bar_root else None,
        "missing_files": plan.missing_files,
        "not_evaluated": plan.not_evaluated,
        "frost": frost,
        "warnings": [notice for notice in (frost_notice,) if notice],
        "num_images": int(len(indices)),
        "test_set_size": int(len(test_labels)),  # num_images is smaller with max_images: clean is the subset's
        "image_size": int(clean.shape[-1]),
        "seed": seed,
        "batch_size": batch_size,
        "device": str(device),
        "memory_format": str(memory_format).replace("torch.", ""),
        "amp": amp,
        "lp_noise": {"conditions": len(EVALUATION_NOISE), "group_size": EVALUATION_NOISE_GROUP,
                     "patch_scale": list(EVALUATION_NOISE_PATCH), "source": "experiments/configs/config549.py:56-107"},
        "seconds": time.perf_counter() - started,
    }
    results = {name: summarize(clean_correct[name], correct[name], len(indices), dataset, sources, calibration[name],
                               lp_noise_correct[name]) for name in models}
    return {"meta": meta, "models": results}


def evaluate(model: nn.Module, dataset: str, data_root, *, device="cpu", batch_size: int = 500, source: str = "auto",
             max_images: int | None = None, seed: int = 0, corruptions: tuple[str, ...] | None = None, frost_dir=None,
             progress: bool = True, amp: str = DEFAULTS["eval_amp"], info: DatasetInfo | None = None,
             corrupted_root=None) -> dict:
    """One classifier -> {clean_accuracy, accuracy[corruption][severity-1], corruption_mean, severity_mean,
    mean_corruption_accuracy, scores, meta: {source, sources, frost, num_images, ...}}; accuracies in percent."""
    results = evaluate_models({"model": model}, dataset, data_root, device=device, batch_size=batch_size, source=source,
                              max_images=max_images, seed=seed, corruptions=corruptions, frost_dir=frost_dir,
                              progress=progress, amp=amp, info=info, corrupted_root=corrupted_root)
    return {**results["models"]["model"], "meta": results["meta"]}


def relative_to(result: dict, baseline: dict) -> dict:
    """Differences in percentage points, and corruption errors relative to the baseline's
    (Hendrycks & Dietterich's CE with the baseline in AlexNet's place; below 1 is better; the
    mean is over the 15 benchmark corruptions evaluated, as their mCE)."""
    per_corruption_ce = {
        name: sum(100 - a for a in result["accuracy"][name]) / max(sum(100 - a for a in baseline["accuracy"][name]), 1e-9)
        for name in result["accuracy"] if name in baseline["accuracy"]
    }

    def delta(ours, theirs):
        return None if ours is None or theirs is None else ours - theirs

    return {
        "clean_accuracy_delta": result["clean_accuracy"] - baseline["clean_accuracy"],
        "mean_corruption_accuracy_delta": delta(result["mean_corruption_accuracy"], baseline["mean_corruption_accuracy"]),
        "score_delta": {name: delta(score["value"], baseline.get("scores", {}).get(name, {}).get("value"))
                        for name, score in result.get("scores", {}).items()},
        "corruption_mean_delta": {n: result["corruption_mean"][n] - baseline["corruption_mean"][n]
                                  for n in result["corruption_mean"] if n in baseline["corruption_mean"]},
        "corruption_error": per_corruption_ce,
        "mean_corruption_error": _mean(ce for name, ce in per_corruption_ce.items() if name in CORRUPTIONS),
    }


def _checkpoint_models(path, device) -> tuple[dict[str, nn.Module], dict]:
    state = load_checkpoint(path)
    models = {}
    for which in ("model", "swa_model"):
        if state.get(which) is not None:
            models[which], config = model_from_checkpoint(path, which=which)
    return models, state["config"]


def evaluate_checkpoint(checkpoint, dataset: str | None, data_root, *, baseline=None, device="cpu", **options) -> dict:
    """Evaluate a checkpoint's model (and its SWA model), optionally a baseline checkpoint on the same images.
    ``data_root`` None: the one the checkpoint was trained from (the demo's OUT/demo_data), else ./data."""
    models, config = _checkpoint_models(checkpoint, device)
    dataset = dataset or config["dataset"]
    if data_root is None:
        data_root = config.get("data_root") if config.get("dataset") == dataset and config.get("data_root") else "data"
    if config.get("dataset") not in (None, dataset):
        raise UsageError(f"--dataset {dataset} but {checkpoint} was trained on {config['dataset']}; "
                         f"pass --dataset {config['dataset']} (or leave it out) or the checkpoint of a {dataset} run")
    if dataset == IMAGEFOLDER:  # its classes, image size and test transform are the run's
        options["info"] = dataset_info(dataset, config)
    everything = dict(models)
    if baseline is not None:
        baseline_models, baseline_config = _checkpoint_models(baseline, device)
        if baseline_config.get("dataset") not in (None, dataset):
            raise UsageError(f"--baseline {baseline} was trained on {baseline_config['dataset']}, not {dataset}; "
                             f"pass the baseline checkpoint of a {dataset} run")
        everything.update({f"baseline_{name}": model for name, model in baseline_models.items()})
    results = evaluate_models(everything, dataset, data_root, device=device, **options)
    report = {"meta": {**results["meta"], "checkpoint": str(checkpoint), "data_root": str(data_root), "config": config},
              "results": {name: results["models"][name] for name in models}}
    if baseline is not None:
        report["meta"]["baseline_checkpoint"] = str(baseline)
        report["baseline"] = {name[len("baseline_"):]: r for name, r in results["models"].items() if name.startswith("baseline_")}
        report["relative"] = {
            name: relative_to(result, report["baseline"].get(name, report["baseline"]["model"]))
            for name, result in report["results"].items()
        }
    return report


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.2f} %"


def format_score(score: dict) -> str:
    """One score for people: its value, its source, and what is wrong with it if anything."""
    if score["corruptions"] == 0:
        return "n/a (no such sets for this data set)"
    if score["value"] is None:
        return f"not computed ({len(score['missing'])} of {score['corruptions']} sets not evaluated)"
    if score["source"] == "mixed":
        return (f"{score['value']:.2f} % MIXED official+generated (official sets only: "
                f"{_percent(score['official_only'])})")
    return f"{score['value']:.2f} % ({score['source']})"


def source_lines(meta: dict) -> list[str]:
    """Which sets were read and which generated, and why: for the summary and the report."""
    sources = meta.get("sources", {})
    official = [name for name, source in sources.items() if source == "official"]
    generated = [name for name, source in sources.items() if source == "generated"]
    missing = meta.get("missing_files", {})
    lines = []
    if official:
        roots = ", ".join(str(root) for root in (meta.get("official_root"), meta.get("c_bar_root")) if root)
        lines.append(f"OFFICIAL files ({len(official)} sets, {roots}): {', '.join(official)}")
    if generated:
        why = [f"{name} (missing {missing[name]})" if name in missing and meta.get("official_root")
               and meta.get("requested_source") == "auto" else name for name in generated]
        lines.append(f"GENERATED from the clean test set ({len(generated)} sets, frost: {meta.get('frost')}): {', '.join(why)}")
    by_reason: dict[str, list[str]] = {}
    for name, reason in meta.get("not_evaluated", {}).items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        lines.append(f"not evaluated: {', '.join(names)}: {reason}")
    return lines


def calibration_text(errors: dict | None) -> str:
    """The authors' RMSCE (l1 at HEAD) with the root mean square beside it."""
    if not errors or errors.get("l1") is None:
        return "n/a"
    return f"{errors['l1']:.4f} (l2 {errors['l2']:.4f})"


def subset_note(meta: dict) -> str:
    """What the clean accuracy was measured on, when not the whole test set (train.run's clean accuracy is)."""
    total = meta.get("test_set_size")
    return f" (on {meta['num_images']} of the {total} test images)" if total and meta["num_images"] < total else ""


def format_summary(report: dict) -> str:
    meta = report["meta"]
    lines = [f"{meta['dataset']}-C: {meta['source'].upper()}"] + [f"  {line}" for line in source_lines(meta)]
    lines += [f"  warning: {notice}" for notice in meta.get("warnings", [])]
    lines.append(f"{meta['num_images']} images per set, {meta['seconds']:.1f} s")
    for name, result in report["results"].items():
        lines.append(f"{name:>10}: clean{subset_note(meta)} {result['clean_accuracy']:6.2f} %, calibration error "
                     f"(RMSCE) {calibration_text(result.get('calibration_error'))}")
        if result.get("lp_noise_accuracy") is not None:
            lines.append(f"{'':>10}  {'Lp noise (Combined_Noise)':30s} {result['lp_noise_accuracy']:.2f} %")
        mean_calibration = result.get("mean_corruption_calibration_error") or {}
        if mean_calibration.get("sets"):
            lines.append(f"{'':>10}  {'RMSCE_C':30s} {calibration_text(mean_calibration)}, over "
                         f"{mean_calibration['sets']} sets")
        for score_name, score in result.get("scores", {}).items():
            lines.append(f"{'':>10}  {score_name:30s} {format_score(score)}")
        if "relative" in report:
            relative = report["relative"][name]
            corruption_delta = relative["mean_corruption_accuracy_delta"]
            mce = relative["mean_corruption_error"]
            lines.append(f"{'':>10}  vs baseline: clean {relative['clean_accuracy_delta']:+.2f} pp, corruption "
                         + ("n/a" if corruption_delta is None else f"{corruption_delta:+.2f} pp")
                         + ", relative mCE " + ("n/a" if mce is None else f"{mce:.3f}"))
    return "\n".join(lines)


def example_grid(dataset: str, data_root, *, seed: int = 0, frost_dir=None,
                 info: DatasetInfo | None = None) -> torch.Tensor:
    """uint8 (19, 6, 3, H, W): one test image clean and at severities 1..5 of every -C corruption,
    generated (an illustration, whatever the evaluation read; frost's stand-in is not warned about here)."""
    frost_dir = frost_dir if frost_dir is not None else default_frost_dir(data_root)
    if dataset == IMAGEFOLDER:  # one file decoded, not the whole val/ folder
        from fastnst.train.data.imagefolder import eval_image, list_val_files

        paths, _ = list_val_files(data_root, list(info.class_names))
        picked = eval_image(paths[seed % len(paths)], info.image_size, info.eval_resize)
    else:
        images, _ = load_test_set(dataset, data_root)
        picked = images[seed % len(images)]
    image = torch.from_numpy(np.ascontiguousarray(picked[None])).permute(0, 3, 1, 2).contiguous()
    rows = []
    with stand_in_warning_suppressed():
        for name in ALL_CORRUPTIONS:
            generator = torch.Generator().manual_seed(seed)
            rows.append(torch.cat([image] + [corrupt(image, name, s, generator=generator, frost_dir=frost_dir)
                                             for s in SEVERITIES]))
    return torch.stack(rows)


C_AND_C_BAR = ALL_CORRUPTIONS + tuple(dict.fromkeys(name for names in C_BAR_CORRUPTIONS.values() for name in names))


def parse_corruptions(text: str | None, known: tuple[str, ...] = C_AND_C_BAR) -> tuple[str, ...] | None:
    """--corruptions: None (every set of ``known``) or the named ones, in the official order."""
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise UsageError(f"--corruptions: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(known)}")
    return tuple(name for name in known if name in names)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=program_name("train.evaluate"),
                                     description="Corruption robustness of a trained classifier (and its SWA model).")
    group = parser.add_argument_group("Model")
    group.add_argument("--checkpoint", required=True, help="checkpoint written by python -m train.run")
    group.add_argument("--baseline", help="a baseline checkpoint evaluated on the same images, for relative numbers")
    group = parser.add_argument_group("Dataset")
    group.add_argument("--dataset", help="cifar10, cifar100, tinyimagenet, imagefolder or demo (default: the checkpoint's)")
    group.add_argument("--data-root", help="folder holding the clean test set and the official -C files (default: the "
                       "checkpoint's, where its run read its data, else ./data)")
    group.add_argument("--source", default="auto", choices=SOURCES,
                       help="-C sets: official files, generated, or auto: each set official when its file is there, else "
                            "generated (named, and flagged in every score it feeds); C-bar is read when present, never generated")
    group.add_argument("--corrupted-root", metavar="DIR",
                       help="the official -C folder, if not the data set's under --data-root (imagefolder: DATA_ROOT/val-c; "
                            "<corruption>/<severity>/<class>/<image> as ImageNet-C and python -m train.corruptions.generate)")
    group.add_argument("--max-images", type=positive_int, help="evaluate a seeded random subset of this many test images")
    group.add_argument("--frost-dir", help="folder with the official frost textures frost1.png ... frost5.jpg (default: "
                       "$FASTNST_FROST_DIR, else DATA_ROOT/frost when they are there, else a procedural stand-in, "
                       "flagged in the results)")
    group.add_argument("--seed", type=int, default=0, help="seed of the subset and of the generated corruptions")
    group.add_argument("--corruptions", default=None,
                       help="comma-separated subset for a quick look (default: the 19 -C and the 10 C-bar sets; "
                            "a score is computed only when all its sets are there)")
    group = parser.add_argument_group("Run")
    add_device_flag(group)
    add_option_flag(group, "eval_amp")
    group.add_argument("--batch-size", type=positive_int, default=500,
                       help="images per generation batch and (at most) per forward pass; on the CPU forward passes "
                            "take at most 64 images, measured faster")
    group.add_argument("--out", help="folder for results.json, report.md and the figures (default: next to the checkpoint)")
    add_debug_flag(group)
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    from fastnst.train.report import write_report  # matplotlib only when a report is written

    report = evaluate_checkpoint(args.checkpoint, args.dataset, args.data_root, baseline=args.baseline, device=args.device,
                                 batch_size=args.batch_size, source=args.source, max_images=args.max_images,
                                 seed=args.seed, frost_dir=args.frost_dir, corruptions=parse_corruptions(args.corruptions),
                                 amp=args.eval_amp, corrupted_root=args.corrupted_root)
    print(format_summary(report))
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "robustness"
    dataset = report["meta"]["dataset"]
    info = dataset_info(dataset, report["meta"]["config"]) if dataset == IMAGEFOLDER else None
    examples = example_grid(dataset, report["meta"]["data_root"], seed=args.seed, frost_dir=args.frost_dir, info=info)
    written = write_report(report, out, examples=examples)
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return report


def cli(argv=None) -> int:
    """``python -m train.evaluate`` / ``fastnst-evaluate``: expected errors as one line, exit 2."""
    return run_cli(main, argv, prog=program_name("train.evaluate"))


if __name__ == "__main__":
    sys.exit(cli())
