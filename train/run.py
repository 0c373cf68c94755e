"""``python -m train.run``: train with stylized synthetic augmentation, evaluate corruption robustness, report.

    python -m train.run                                   # the built-in demo, end to end, CPU, minutes
    python -m train.data.download --for cifar10 --data-root data    # the data set, its -C set, EDM images, AdaIN
    python -m train.run --dataset cifar10 --data-root data          # the authors' config549; inputs found there
    torchrun --nproc_per_node=8 -m train.run --dataset cifar10 ...   # DistributedDataParallel

Reads top to bottom: options, data (and the demo's generated data and styles), stylizer,
loader, model, training (train.trainer.fit), corruption evaluation and report.
"""
from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import torch

from fastnst import CachedStylizer
from fastnst.stylizer import STYLIZE_PRECISION
from fastnst.cli import program_name, run_cli
from fastnst import distributed
from fastnst.train.checkpoint import load_checkpoint
from fastnst.train.config import (Augmentation, ConfigError, format_config, parse_command_line, save_config,
                                  stylizer_resolution)
from fastnst.train.data import create_eval_loader, create_train_loader, dataset_info, default_synthetic_path
from fastnst.train.data import make_demo_dataset
from fastnst.train.data.demo import DEMO_NUM_STYLES, DEMO_SIZES, make_demo_style_bank
from fastnst.train.models import model_from_config
from fastnst.train.metrics_log import MetricsLog
from fastnst.train.projection import ProjectedTime, format_duration, gpu_recipe_warning
from fastnst.train.step_settings import StepSettings
from fastnst.train.stylization_figure import write_stylization_figure
from fastnst.train.trainer import CHECKPOINT_NAME, StylizerMeter, autocast_dtype, check_resume, clean_accuracy, fit

# What a run writes into --out that another run must not mix with (the demo's generated data may stay).
RUN_OUTPUTS = (CHECKPOINT_NAME, "metrics.jsonl", "tensorboard", "summary.json", "report")

DEMO_BANNER = """\
================================================================================
 fastnst demo: everything below is BUILT IN and GENERATED, nothing was downloaded.
   data      a generated 10-class pattern data set in the CIFAR-10 layout, plus a
             generated stand-in for the EDM synthetic images      ({data})
   styles    {num_styles} procedurally drawn style images, encoded with a RANDOMLY
             INITIALISED VGG encoder; the decoder is random too. This is NOT the
             paper's style transfer: it only exercises the same code path.
   corruptions  generated with train.corruptions (the 19 CIFAR-10-C types).
 For the real thing (arXiv 2512.15675):
   python -m train.data.download --for cifar10 --data-root data
       the data set, its -C set, the 1M EDM images, the authors' style features
       and the AdaIN weights (docs/data.md lists every file and its checksum)
   python -m train.run --dataset cifar10 --data-root data
       the authors' config549 (600 epochs of WRN-28-4: a GPU); cifar100 and
       tinyimagenet likewise. --print-config shows every value and its source.
================================================================================"""


# ----------------------------------------------------------------------------- the demo's generated inputs

def prepare_demo(config: dict, out_dir: Path) -> None:
    """Generate the demo data set and, unless --styles was given, the style bank; once, on rank 0."""
    data_root = Path(config["data_root"])
    if not (data_root / "demo" / "synthetic.npz").exists():
        print(f"generating the demo data set under {data_root} ...", flush=True)
        make_demo_dataset(data_root, seed=config["seed"], **DEMO_SIZES)
    bank_path = out_dir / "demo_styles.pt"
    if config["stylize"] and not config["stylize_cache"] and Path(config["styles"]) == bank_path \
            and not bank_path.exists():
        make_demo_style_bank(bank_path, config["vgg"], config["seed"])


def fill_default_paths(config: dict) -> list[str]:
    """Defaults that depend on other options: data root, the demo's synthetic set and style bank.
    Returns the keys filled in."""
    out_dir = Path(config["out"])
    filled = []
    if config["data_root"] is None:
        config["data_root"] = str(out_dir / "demo_data") if config["dataset"] == "demo" else "data"
        filled.append("data_root")
    if config["dataset"] == "demo":
        if config["synthetic"] is None and config["synthetic_ratio"] > 0:
            config["synthetic"] = str(default_synthetic_path("demo", config["data_root"]))
            filled.append("synthetic")
        if config["stylize"] and config["styles"] is None:
            config["styles"] = str(out_dir / "demo_styles.pt")
            filled.append("styles")
    return filled


def fill_paths(config: dict) -> None:
    """``fill_default_paths``, then check that a real data set's stylization has its three files."""
    fill_default_paths(config)
    if config["dataset"] != "demo" and config["stylize"] and not config["stylize_cache"]:
        missing = [flag for flag, key in (("--styles", "styles"), ("--vgg", "vgg"), ("--decoder", "decoder"))
                   if config[key] is None]
        if missing:
            raise ConfigError(
                f"stylization on --dataset {config['dataset']} needs {', '.join(missing)}: fetch the authors' style "
                f"features and the AdaIN weights with `python -m train.data.download --for {config['dataset']}`, "
                "or make a bank of your own (python -m fastnst.style_bank --styles PAINTINGS_DIR --vgg "
                "vgg_normalised.pth --out styles.pt). --no-stylize trains the baseline without style transfer."
            )


def claim_out_dir(config: dict, *, move: bool = True) -> Path | None:
    """Keep two runs' logs apart: an earlier run in --out is refused, unless --resume continues it or
    --overwrite moves it aside (to OUT.old-<time>, returned; ``move=False``: only check, as on other ranks)."""
    out_dir = Path(config["out"])
    if config["overwrite"] and config["resume"] is not None:
        raise ConfigError("--resume continues the run in --out and --overwrite moves it aside: pass one of them")
    found = [name for name in RUN_OUTPUTS if (out_dir / name).exists()]
    if not found or config["resume"] is not None:
        return None
    if not config["overwrite"]:
        raise ConfigError(f"--out {out_dir} already holds a run ({', '.join(found)}); pass --resume to continue it, "
                          f"--overwrite to move it aside to {out_dir}.old-<time> and start afresh, or another --out")
    if not move:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = out_dir.with_name(f"{out_dir.name}.old-{stamp}")
    count = 1
    while aside.exists():
        count += 1
        aside = out_dir.with_name(f"{out_dir.name}.old-{stamp}-{count}")
    out_dir.rename(aside)
    return aside


def resume_path(config: dict) -> Path | None:
    if config["resume"] is None:
        return None
    if config["resume"] == "auto":
        path = Path(config["out"]) / CHECKPOINT_NAME
        if not path.exists():
            print(f"--resume: no {path} yet, starting from scratch")
            return None
        return path
    path = Path(config["resume"])
    if not path.is_file():
        raise ConfigError(f"--resume {path}: no such checkpoint")
    return path


# ----------------------------------------------------------------------------- the run

def build_cached_stylizer(config: dict, dist_info) -> StylizerMeter:
    """``--stylize-cache``: the stored variants, checked against this run's sources, in the networks' place."""
    from fastnst.train.data.sources import ArraySource, load_train_source
    from fastnst.train.data.stylized_cache import open_caches
    from fastnst.train.data.synthetic import load_synthetic

    sources = {"real": load_train_source(config["dataset"], config["data_root"]), "synthetic": None}
    if config["synthetic_ratio"] > 0:
        sources["synthetic"] = ArraySource(*load_synthetic(config["synthetic"], config["image_size"],
                                                           config["num_classes"]))
    caches = open_caches(config["stylize_cache"], sources, config["image_size"])
    # A source without samples in this run never draws: its probability is moot, and it needs no cache.
    probability = {"real": config["prob_real"], "synthetic": config["prob_synthetic"] if sources["synthetic"] else 0.0}
    for source in ("real", "synthetic"):
        if probability[source] > 0 and source not in caches:
            raise ConfigError(f"--stylize-cache has no cache of the {source} images (prob_{source} is "
                              f"{probability[source]}): make one with python -m train.stylize_cache --source {source} "
                              f"and pass both folders, or set --prob-{source} 0")
    if dist_info.is_main:
        for source, cache in caches.items():
            settings = cache.meta["settings"]
            print(f"--stylize-cache: {source} images from {cache.path}: K = {cache.variants} variants per image, "
                  f"made at {settings['resolution']} px with alpha in {settings['alpha']}; this run's "
                  "style bank, weights, alpha and style resolution are not used", flush=True)
    stylizer = CachedStylizer(caches, prob_synthetic=probability["synthetic"], prob_real=probability["real"],
                              nst_probability=config["nst_probability"], seed=config["seed"] + dist_info.rank,
                              device=dist_info.device)
    return StylizerMeter(stylizer)


def stylizer_from_config(config: dict, dist_info) -> StylizerMeter | None:
    if not config["stylize"]:
        return None
    if config["stylize_cache"]:
        return build_cached_stylizer(config, dist_info)
    import fastnst
    from fastnst.weights import seeded_initialisation

    # Networks without a weight file start from --seed's random weights (the same encoder as the demo's bank).
    with warnings.catch_warnings(), seeded_initialisation(config["seed"]):
        if config["dataset"] == "demo":
            warnings.simplefilter("ignore", fastnst.RandomWeightsWarning)  # the demo banner says so
        stylizer = fastnst.build_stylizer(
            config["styles"], config["vgg"], config["decoder"], device=dist_info.device,
            prob_synthetic=config["prob_synthetic"], prob_real=config["prob_real"],
            alpha_synthetic=tuple(config["alpha_synthetic"]), alpha_real=tuple(config["alpha_real"]),
            resolution=stylizer_resolution(config), nst_probability=config["nst_probability"],
            autocast_dtype=STYLIZE_PRECISION[config["stylize_precision"]],
            seed=config["seed"] + dist_info.rank,  # each rank draws its own styles
            compile=StepSettings.resolve(config, dist_info.device).compiled and dist_info.device.type == "cuda",
        )
    return StylizerMeter(stylizer)


# What summary.json keeps of each model's evaluation (train.evaluate), beside the authors' "scores".
SUMMARY_ROBUSTNESS_KEYS = ("clean_accuracy", "mean_corruption_accuracy", "lp_noise_accuracy", "calibration_error",
                           "mean_corruption_calibration_error", "corruption_mean")


def evaluate_robustness(checkpoint: Path, config: dict, out_dir: Path, device, stylization: Path | None = None) -> dict:
    """Corruption benchmark of the checkpoint's model and SWA model (official -C files when present,
    generated otherwise) and the report, through train.evaluate / train.report (with the stylization figure)."""
    from fastnst.train.evaluate import evaluate_checkpoint, example_grid, format_summary
    from fastnst.train.report import write_report

    report = evaluate_checkpoint(checkpoint, config["dataset"], config["data_root"], device=device, batch_size=500,
                                 source=config["corruption_source"], max_images=config["max_eval_images"],
                                 seed=config["seed"], amp=config["eval_amp"], corrupted_root=config["corrupted_root"])
    examples = example_grid(config["dataset"], config["data_root"], seed=config["seed"], info=data_info(config))
    paths = write_report(report, out_dir / "report", examples=examples, stylization=stylization)
    print(format_summary(report), flush=True)
    return {"robustness": {name: {**{key: result.get(key) for key in SUMMARY_ROBUSTNESS_KEYS},
                                  "scores": {score: {key: entry[key] for key in ("value", "source", "missing")}
                                             for score, entry in result["scores"].items()}}
                           for name, result in report["results"].items()},
            "corruption_source": report["meta"]["source"],
            "report": {kind: str(path) for kind, path in paths.items()}}


def data_info(config: dict):
    """The data set's facts as this run sees them (an image folder's classes and image size are the run's)."""
    return dataset_info(config["dataset"], config)


def download(config: dict) -> None:
    from fastnst.train.data import download_dataset
    from fastnst.train.fetched import items_to_download

    for name in items_to_download(config):
        print(f"--download: {name} into {config['data_root']} ...", flush=True)
        download_dataset(name, config["data_root"])


def random_weights_used(stylizer: StylizerMeter | None) -> dict | None:
    """Which stylizer networks run with random weights (no file, or a ``fastnst.weights --random`` file)."""
    if stylizer is None:
        return None
    inner = stylizer.stylizer
    if isinstance(inner, CachedStylizer):  # the networks ran when the cache was made; its metadata says how
        random = any(cache.meta["settings"].get("random_weights", False) for cache in inner.caches.values())
        return {"encoder": random, "decoder": random}
    return {name: bool(getattr(getattr(inner, name), "random_weights", False)) for name in ("encoder", "decoder")}


def run(config: dict) -> dict:
    started, cpu_started = time.perf_counter(), time.process_time()
    dist_info = distributed.setup(config["device"])
    out_dir = Path(config["out"])
    # Every rank checks (a refusal must stop them all); rank 0 moves an earlier run aside.
    moved_to = claim_out_dir(config, move=dist_info.is_main)
    if moved_to is not None:
        print(f"--overwrite: moved the earlier run in {out_dir} to {moved_to}", flush=True)
    fill_paths(config)
    resume_from = resume_path(config)
    if resume_from is not None:  # before anything is loaded or written: a refused resume changes nothing
        # its config alone: the weights and optimizer state are read once, by fit
        check_resume(load_checkpoint(resume_from, mmap=True)["config"], config, resume_from)
    if dist_info.is_main:
        if config["dataset"] == "demo":
            print(DEMO_BANNER.format(data=config["data_root"], num_styles=DEMO_NUM_STYLES), flush=True)
            prepare_demo(config, out_dir)
        elif config["download"]:
            download(config)
        save_config(config, out_dir)
    distributed.barrier(dist_info)
    if config["batch_size"] % dist_info.world_size:
        raise ConfigError(f"--batch-size {config['batch_size']} must be divisible by the {dist_info.world_size} ranks")

    recipe_warning = gpu_recipe_warning(config, dist_info.device) if dist_info.is_main else None
    if recipe_warning:
        print(recipe_warning, flush=True)
    stylizer = stylizer_from_config(config, dist_info)
    random_weights = random_weights_used(stylizer)
    if dist_info.is_main and random_weights and any(random_weights.values()) and config["dataset"] != "demo":
        names = " and ".join(name for name, random in random_weights.items() if random)
        print(f"NOTE: the stylizer's {names} run with RANDOM weights: images are re-textured, but not as the "
              "paper's AdaIN style transfer; this run's numbers say nothing about the paper's.", flush=True)
    loader = create_train_loader(
        config["dataset"], config["data_root"], config["batch_size"] // dist_info.world_size,
        synthetic_path=config["synthetic"], synthetic_ratio=config["synthetic_ratio"], stylizer=stylizer,
        augmentation=Augmentation.from_config(config), device=str(dist_info.device), rank=dist_info.rank,
        world_size=dist_info.world_size, seed=config["seed"], on_bad_image=config["on_bad_image"],
        max_steps_per_epoch=config["max_steps_per_epoch"], info=data_info(config),
    )
    evaluate_clean = None
    if dist_info.is_main and config["evaluate_clean"]:
        eval_loader = create_eval_loader(config["dataset"], config["data_root"], 512, str(dist_info.device),
                                         info=data_info(config))
        amp_dtype = autocast_dtype(config["amp"], dist_info.device)
        evaluate_clean = lambda model: clean_accuracy(model, eval_loader, amp_dtype)  # noqa: E731

    log = MetricsLog(out_dir, enabled=dist_info.is_main)
    stylization = None
    if dist_info.is_main and stylizer is not None:  # what the Stylizer does, before the first step
        stylization = write_stylization_figure(loader, stylizer.stylizer, config, out_dir / "report" / "stylization.png")
        if stylization is not None:
            log.log_image("stylization", stylization)
            print(f"the Stylizer on a few training samples: {stylization}", flush=True)

    torch.manual_seed(config["seed"])  # identical initial weights on every rank
    model = model_from_config(config)
    projection = ProjectedTime(dist_info.device, warned=bool(recipe_warning)) if dist_info.is_main else None
    result = fit(config, model, loader, out_dir=out_dir, dist_info=dist_info, stylizer=stylizer,
                 evaluate_clean=evaluate_clean, resume_from=resume_from, projection=projection, log=log)

    summary = {"checkpoint": str(result.checkpoint), "final": result.final,
               "random_weights": random_weights,  # {"encoder": bool, "decoder": bool}; None without stylization
               **({"projected_time": projection.summary()} if projection is not None else {}),
               **({"report": {"stylization": str(stylization)}} if stylization is not None else {})}
    if dist_info.is_main and config["evaluate_corruptions"]:
        summary.update(evaluate_robustness(result.checkpoint, config, out_dir, dist_info.device, stylization))
    # the whole run, data generation to report; CPU time: this process's, all its threads
    summary.update(elapsed_seconds=time.perf_counter() - started, cpu_seconds=time.process_time() - cpu_started)
    if dist_info.is_main:
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        print_summary(config, summary, out_dir)
    distributed.cleanup()
    return summary


def print_summary(config: dict, summary: dict, out_dir: Path) -> None:
    from fastnst.train.evaluate import calibration_text

    final = summary["final"]
    lines = [f"done: {config['epochs']} epochs of {config['model']} on {config['dataset']} in "
             f"{format_duration(summary['elapsed_seconds'])} (CPU time {format_duration(summary['cpu_seconds'])})"]
    for key, label in (("test_acc", "clean test accuracy"), ("swa_test_acc", "clean test accuracy, SWA")):
        if final.get(key) is not None:
            lines.append(f"  {label:32s} {100 * final[key]:6.2f} %")
    for name, numbers in (summary.get("robustness") or {}).items():
        lines.append(f"  {'corruption accuracy, ' + name:32s} {numbers['mean_corruption_accuracy']:6.2f} %"
                     f"  ({summary['corruption_source']} corruptions)")
        for score, entry in numbers.get("scores", {}).items():  # the authors' Acc_C-* (None: sets missing)
            if entry["value"] is not None:
                lines.append(f"    {score:30s} {entry['value']:6.2f} %  ({entry['source']})")
        if numbers.get("lp_noise_accuracy") is not None:
            lines.append(f"    {'Lp noise (Combined_Noise)':30s} {numbers['lp_noise_accuracy']:6.2f} %")
        for label, key in (("RMSCE (clean)", "calibration_error"), ("RMSCE_C", "mean_corruption_calibration_error")):
            lines.append(f"    {label:30s} {calibration_text(numbers.get(key))}")
    lines.append(f"  checkpoint  {summary['checkpoint']}")
    for kind, path in (summary.get("report") or {}).items():
        lines.append(f"  report      {path}")
    lines.append(f"  logs        {out_dir / 'metrics.jsonl'}, {out_dir / 'tensorboard'}")
    random_weights = summary.get("random_weights") or {}
    if any(random_weights.values()) and config["dataset"] != "demo":
        names = " and ".join(name for name, random in random_weights.items() if random)
        lines.append(f"  (stylization used RANDOM {names} weights: not the paper's style transfer)")
    if config["dataset"] == "demo":
        lines.append("  (demo: generated data and random-weight style transfer. These numbers show the pipeline "
                     "works end to end, not what the paper reports.)")
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse, then run (or with --print-config, show the resolved configuration). Errors are raised:
    ``cli`` reports them."""
    config, sources, print_config = parse_command_line(argv)
    if print_config:
        for key in fill_default_paths(config):
            sources[key] = "default (follows from --dataset and --out)"
        print(format_config(config, sources))
        return 0
    run(config)
    return 0


def cli(argv: list[str] | None = None) -> int:
    """``python -m train.run`` / ``fastnst-train``: expected errors as one line, exit 2 (diverged: 3)."""
    return run_cli(main, argv, prog=program_name("train.run"))


if __name__ == "__main__":
    sys.exit(cli())
