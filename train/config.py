"""Run configuration: built-in defaults < YAML preset of the data set < ``--config FILE`` < command-line flags.

The resolved configuration is one flat dict (the checkpoint contract reads
``config["dataset"]``, ``config["model"]`` and ``config["num_classes"]``), written
next to the run's outputs as ``config.yaml`` and ``config.json``.

Flags are kebab-case and grouped as in timm's ``train.py``: Dataset, Model,
Optimizer, Augmentation, Stylization, Run. Every flag defaults to "not given"
(``None``) so that only flags the user typed override the preset.
"""
from __future__ import annotations

import argparse
import json
import os
from importlib import resources
from pathlib import Path

import yaml

from fastnst.train.data.stats import DATASETS, dataset_info
from fastnst.train.fetched import resolve_fetched_paths
from fastnst.train.models import MODEL_NAMES

# Used where neither the preset nor a flag says otherwise. Units in the comments.
DEFAULTS: dict = {
    # Dataset
    "dataset": "demo",
    "data_root": None,            # folder holding the data set; None: ./data (demo: <out>/demo_data)
    "synthetic": None,            # .npz of EDM-generated images ("image", "label"); None: real images only
    "synthetic_ratio": 0.0,       # fraction of each epoch's samples drawn from the synthetic set
    "download": False,
    "on_bad_image": "skip",       # "skip" or "stop" on an undecodable image
    # Model
    "model": "wrn28_4",
    "dropout": 0.0,
    "activation": "silu",         # "silu" or "relu" (the authors' configs: silu)
    "amp": "auto",                # "auto" (bf16 on CUDA, off on CPU), "bf16", "fp16", "none"
    "compile": False,             # torch.compile the classifier
    # Optimizer
    "epochs": 300,
    "batch_size": 512,            # global, over all ranks
    "lr": 0.1,                    # peak learning rate at batch_size (no automatic scaling)
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "swa": True,
    "swa_start": 0.85,            # fraction of the epochs after which weights are averaged
    "swa_lr_factor": 0.2,         # SWA learning rate = lr * swa_lr_factor
    "swa_anneal_epochs": 5,       # SWALR's linear ramp from the cosine's lr to the SWA lr, in epochs
    "lr_cycle_epochs": 40,        # CosineAnnealingWarmRestarts T_0: epochs of the first cosine cycle
    "lr_cycle_mult": 2,           # T_mult: each cycle this many times longer (1: equal cycles)
    "grad_clip_norm": 1.0,        # clip the gradients' global L2 norm to this (None: no clipping)
    # Noise and mixing (the authors' ct_model.py / noise.py / mixup.py)
    "input_noise": {},            # noise type -> eps_max in [0, 1] pixel units, e.g. {"uniform-linf": 0.1}
    "noise_group_size": 8,        # consecutive images sharing one input-noise draw
    "noise_sparsity": 1.0,        # per group, a share U(0, this) of the noise elements is dropped
    "noise_patch_scale": [0.2, 0.7],  # input noise only inside one rectangle of this area share per group
    "manifold_noise": False,      # per batch k ~ U{0,1,2}: input noise (k=0) or feature noise after layer k
    "mixup_alpha": 0.2,
    "mixup_p": 0.0,               # per batch: CutMix with cutmix_p, else Mixup with mixup_p
    "cutmix_alpha": 1.0,
    "cutmix_p": 0.0,
    # Augmentation
    "trivial_augment": True,
    "random_erasing_prob": 0.3,
    # The loader's keys (train/data implements them; listed here so that the presets load)
    "random_erasing_scale": [0.02, 0.33],  # area share range of an erased box
    "crop_padding": 4,            # zero padding of the random crop, in pixels
    "ta_or_style_real": False,    # stylized real samples skip TrivialAugmentWide ("TAorStyle")
    "ta_or_style_synthetic": False,  # the same for synthetic samples
    "nst_probability": 1.0,       # share of the samples chosen for stylization that are actually stylized
    # Stylization
    "stylize": True,
    "styles": None,               # style bank file (fastnst.StyleBank); demo: built from generated styles
    "vgg": None,                  # vgg_normalised.pth (AdaIN port) or torchvision VGG-19 weights
    "decoder": None,              # AdaIN decoder.pth
    "prob_synthetic": 0.4,        # λs: probability that a synthetic sample is stylized
    "prob_real": 0.1,             # λo: probability that a real sample is stylized
    "alpha_synthetic": [0.1, 1.0],  # αs: stylization strength range (uniform) for synthetic samples
    "alpha_real": [1.0, 1.0],     # αo: the same for real samples
    "style_resolution": 224,      # stylize at this square side (the authors' 224), or "native" (fast mode)
    # Run
    "out": "runs/demo",
    "resume": None,               # None, "auto" (OUT/checkpoint.pt) or a checkpoint path
    "seed": 0,
    "device": "auto",             # "auto", "cpu", "cuda"
    "eval_every": 1,              # epochs between clean test-set evaluations (0: only at the end)
    "log_every": 20,              # steps between progress-bar updates and NaN/inf checks
    "evaluate_corruptions": True,  # run train.evaluate + train.report after training (rank 0)
    "corruption_source": "auto",  # "auto", "official", "generated"
    "max_eval_images": None,      # cap per corruption and severity (None: the whole test set)
}

# Filled in by resolve(), never read from a preset or a flag.
DERIVED_KEYS = ("num_classes", "image_size")

PRESET_NAMES = ("cifar10", "cifar100", "tinyimagenet", "demo")


class ConfigError(ValueError):
    """A bad option value or option file; the message names the flag or file."""


def load_preset(name: str) -> dict:
    """The YAML preset shipped in ``train/presets/<name>.yaml`` as a dict."""
    if name not in PRESET_NAMES:
        raise ConfigError(f"no preset for --dataset {name!r}; expected one of {', '.join(PRESET_NAMES)}")
    text = resources.files("fastnst.train").joinpath("presets", f"{name}.yaml").read_text()
    return _checked(yaml.safe_load(text) or {}, f"preset train/presets/{name}.yaml")


def load_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path} does not exist")
    return _checked(yaml.safe_load(path.read_text()) or {}, f"--config {path}")


def _checked(values: dict, source: str) -> dict:
    if not isinstance(values, dict):
        raise ConfigError(f"{source} must hold a mapping of option: value")
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"{source} has unknown option(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train.run",
        description="Train a classifier with stylized synthetic augmentation (arXiv 2512.15675), "
        "evaluate its corruption robustness and write a report. Values come from the data set's "
        "preset (train/presets/<dataset>.yaml); any flag given overrides it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="YAML file of options applied over the preset")

    group = parser.add_argument_group("Dataset")
    add = group.add_argument
    add("--dataset", choices=sorted(DATASETS), help="data set and preset (default: demo, built in)")
    add("--data-root", metavar="DIR", help="folder holding the data set")
    add("--synthetic", metavar="FILE", help="EDM-style .npz of synthetic images and labels")
    add("--synthetic-ratio", type=float, metavar="R", help="fraction of each epoch drawn from --synthetic")
    add("--download", action="store_true", default=None, help="download the data set if missing")
    add("--on-bad-image", choices=["skip", "stop"], help="what to do with an image that cannot be decoded")

    group = parser.add_argument_group("Model")
    add = group.add_argument
    add("--model", choices=MODEL_NAMES)
    add("--dropout", type=float)
    add("--amp", choices=["auto", "bf16", "fp16", "none"], help="mixed precision (auto: bf16 on CUDA)")
    add("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the classifier")

    group = parser.add_argument_group("Optimizer")
    add = group.add_argument
    add("--epochs", type=int)
    add("--batch-size", type=int, help="global batch size over all ranks")
    add("--lr", type=float, help="peak learning rate")
    add("--momentum", type=float)
    add("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    add("--weight-decay", type=float)
    add("--label-smoothing", type=float)
    add("--swa", action=argparse.BooleanOptionalAction, default=None, help="stochastic weight averaging")
    add("--swa-start", type=float, metavar="FRACTION", help="fraction of epochs before averaging starts")
    add("--swa-lr-factor", type=float, help="SWA learning rate as a fraction of --lr")

    group = parser.add_argument_group("Augmentation")
    add = group.add_argument
    add("--trivial-augment", action=argparse.BooleanOptionalAction, default=None)
    add("--random-erasing-prob", type=float)

    group = parser.add_argument_group("Stylization")
    add = group.add_argument
    add("--stylize", action=argparse.BooleanOptionalAction, default=None,
        help="neural style transfer augmentation (--no-stylize: the baseline)")
    add("--styles", metavar="FILE", help="style bank file (see fastnst.StyleBank)")
    add("--vgg", metavar="FILE", help="VGG-19 encoder weights (vgg_normalised.pth)")
    add("--decoder", metavar="FILE", help="AdaIN decoder weights (decoder.pth)")
    add("--prob-synthetic", type=float, metavar="P", help="λs: stylization probability of synthetic samples")
    add("--prob-real", type=float, metavar="P", help="λo: stylization probability of real samples")
    add("--alpha-synthetic", type=float, nargs=2, metavar=("LOW", "HIGH"), help="αs range")
    add("--alpha-real", type=float, nargs=2, metavar=("LOW", "HIGH"), help="αo range")
    add("--style-resolution", type=_style_resolution, metavar="PX|native",
        help="stylize images upsampled to PX x PX (the authors' 224) or at their native size (fast mode)")

    group = parser.add_argument_group("Run")
    add = group.add_argument
    add("--out", metavar="DIR", help="output folder (checkpoint, logs, config, report)")
    add("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
        help="continue from CHECKPOINT (without a value: OUT/checkpoint.pt)")
    add("--seed", type=int)
    add("--device", choices=["auto", "cpu", "cuda"])
    add("--eval-every", type=int, metavar="EPOCHS", help="clean test accuracy every N epochs (0: at the end)")
    add("--log-every", type=int, metavar="STEPS")
    add("--evaluate-corruptions", action=argparse.BooleanOptionalAction, default=None,
        help="evaluate corruption robustness and write the report after training")
    add("--corruption-source", choices=["auto", "official", "generated"])
    add("--max-eval-images", type=int, metavar="N", help="cap of test images per corruption and severity")
    return parser


def _style_resolution(text: str) -> int | str:
    if text == "native":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a side in pixels or 'native', got {text!r}") from None
    if value < 8:
        raise argparse.ArgumentTypeError(f"expected at least 8 px, got {value}")
    return value


def stylizer_resolution(config: dict) -> int | None:
    """The Stylizer's ``resolution`` argument for this configuration (None: native size)."""
    return None if config["style_resolution"] == "native" else int(config["style_resolution"])


def resolve(flags: dict, config_file: str | None = None) -> dict:
    """Merge defaults, the data set's preset, ``config_file`` and ``flags`` (None = not given)."""
    given = {key: value for key, value in flags.items() if value is not None}
    file_values = load_yaml(config_file) if config_file else {}
    dataset = given.get("dataset", file_values.get("dataset", DEFAULTS["dataset"]))
    config = {**DEFAULTS, **load_preset(dataset), **file_values, **given}
    config["dataset"] = dataset
    if dataset not in DATASETS:
        raise ConfigError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    info = dataset_info(dataset)
    config["num_classes"] = info.num_classes
    config["image_size"] = info.image_size
    for key in ("alpha_synthetic", "alpha_real", "noise_patch_scale", "random_erasing_scale"):
        config[key] = [float(v) for v in config[key]]
    if isinstance(config["input_noise"], dict):
        config["input_noise"] = {str(name): eps for name, eps in config["input_noise"].items()}
    resolve_fetched_paths(config)  # --synthetic, --styles, --vgg, --decoder from what the download put in --data-root
    _validate(config)
    return config


def _validate(config: dict) -> None:
    def check(ok: bool, flag: str, expected: str):
        if not ok:
            raise ConfigError(f"--{flag.replace('_', '-')} must be {expected}, got {config[flag]!r}")

    check(config["model"] in MODEL_NAMES, "model", f"one of {', '.join(MODEL_NAMES)}")
    check(isinstance(config["epochs"], int) and config["epochs"] >= 1, "epochs", "a positive integer")
    check(isinstance(config["batch_size"], int) and config["batch_size"] >= 1, "batch_size", "a positive integer")
    check(config["lr"] > 0, "lr", "positive")
    check(0.0 <= config["synthetic_ratio"] < 1.0, "synthetic_ratio", "in [0, 1)")
    check(0.0 < config["swa_start"] < 1.0, "swa_start", "a fraction in (0, 1)")
    check(0.0 <= config["label_smoothing"] < 1.0, "label_smoothing", "in [0, 1)")
    check(0.0 <= config["random_erasing_prob"] <= 1.0, "random_erasing_prob", "in [0, 1]")
    for key in ("prob_synthetic", "prob_real"):
        check(0.0 <= config[key] <= 1.0, key, "a probability in [0, 1]")
    for key in ("alpha_synthetic", "alpha_real"):
        low, high = config[key]
        check(len(config[key]) == 2 and 0.0 <= low <= high <= 1.0, key, "LOW HIGH with 0 <= LOW <= HIGH <= 1")
    check(config["amp"] in ("auto", "bf16", "fp16", "none"), "amp", "auto, bf16, fp16 or none")
    _validate_recipe(config, check)
    resolution = config["style_resolution"]
    check(resolution == "native" or (isinstance(resolution, int) and resolution >= 8), "style_resolution",
          "a side in pixels (>= 8) or 'native'")
    if config["synthetic_ratio"] > 0 and not config["synthetic"] and config["dataset"] != "demo":
        raise ConfigError(
            f"--synthetic-ratio {config['synthetic_ratio']} needs --synthetic FILE (EDM-generated images as .npz); "
            "pass --synthetic-ratio 0 to train on real images only"
        )


def _validate_recipe(config: dict, check) -> None:
    """Schedule, noise and mixing options (train.trainer, train.noise, train.mixup)."""
    from fastnst.train.models import ACTIVATIONS
    from fastnst.train.noise import noise_kind

    check(config["activation"] in ACTIVATIONS, "activation", f"one of {', '.join(ACTIVATIONS)}")
    check(isinstance(config["lr_cycle_epochs"], int) and config["lr_cycle_epochs"] >= 1, "lr_cycle_epochs",
          "a positive integer")
    check(isinstance(config["lr_cycle_mult"], int) and config["lr_cycle_mult"] >= 1, "lr_cycle_mult",
          "a positive integer")
    check(isinstance(config["swa_anneal_epochs"], int) and config["swa_anneal_epochs"] >= 0, "swa_anneal_epochs",
          "an integer >= 0")
    check(config["grad_clip_norm"] is None or config["grad_clip_norm"] > 0, "grad_clip_norm", "positive or None")
    noise = config["input_noise"]
    check(isinstance(noise, dict) and all(isinstance(v, (int, float)) and v > 0 for v in noise.values()),
          "input_noise", "a mapping of noise type to a positive eps_max")
    for name in noise:
        try:
            noise_kind(name)
        except ValueError as error:
            raise ConfigError(f"--input-noise: {error}") from None
    check(isinstance(config["noise_group_size"], int) and config["noise_group_size"] >= 1, "noise_group_size",
          "a positive integer")
    check(0.0 <= config["noise_sparsity"] <= 1.0, "noise_sparsity", "in [0, 1]")
    low, high = config["noise_patch_scale"]
    check(0.0 < low <= high <= 1.0, "noise_patch_scale", "LOW HIGH with 0 < LOW <= HIGH <= 1")
    for key in ("mixup_p", "cutmix_p", "mixup_alpha", "cutmix_alpha"):
        check(config[key] >= 0, key, ">= 0")


def parse_config(argv: list[str] | None = None) -> dict:
    """Command line -> resolved configuration dict."""
    args = vars(build_parser().parse_args(argv))
    config_file = args.pop("config")
    return resolve(args, config_file)


def save_config(config: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``config.yaml`` and ``config.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    yaml_path, json_path = out_dir / "config.yaml", out_dir / "config.json"
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))
    json_path.write_text(json.dumps(config, indent=2) + "\n")
    return yaml_path, json_path
