"""Run configuration: built-in defaults < YAML preset of the data set < ``--config FILE`` < command-line flags.

The resolved configuration is one flat dict (the checkpoint contract reads
``config["dataset"]``, ``config["model"]`` and ``config["num_classes"]``), written
next to the run's outputs as ``config.yaml`` and ``config.json``.

Flags are kebab-case and grouped as in timm's ``train.py``: Dataset, Model,
Optimizer, Augmentation, Stylization, Run. Every flag defaults to "not given"
(``None``) so that only flags the user typed override the preset; ``--help`` ends
with a table of every preset's values, generated from the YAML files, and
``--print-config`` prints the resolved values with the source of each.
"""
from __future__ import annotations

import argparse
import json
import os
from importlib import resources
from pathlib import Path

import yaml

from fastnst.cli import UsageError, add_debug_flag, program_name, style_resolution
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
    # Augmentation (order, as the authors': stylize -> flip + crop -> TrivialAugmentWide -> Random Erasing)
    "trivial_augment": True,
    "random_erasing_prob": 0.3,
    "random_erasing_scale": [0.02, 0.4],  # area fraction of an erased box (authors: experiments/data.py:174)
    "crop_padding": "auto",       # px of zero padding of the random crop; auto: side / 8 (4 CIFAR, 8 TinyImageNet,
                                  # the authors' RandomCrop, experiments/data.py:162-163)
    "ta_or_style_real": False,    # "TAorStyle" for real images: one chosen for style transfer skips TrivialAugment
    "ta_or_style_synthetic": False,  # the same for synthetic images (False: "TAandStyle", TA for all)
    # Stylization
    "stylize": True,
    "styles": None,               # style bank file (fastnst.StyleBank); demo: built from generated styles
    "vgg": None,                  # vgg_normalised.pth (AdaIN port) or torchvision VGG-19 weights
    "decoder": None,              # AdaIN decoder.pth
    "prob_synthetic": 0.4,        # λs: probability that a synthetic sample is stylized
    "prob_real": 0.1,             # λo: probability that a real sample is stylized
    "alpha_synthetic": [0.1, 1.0],  # αs: stylization strength range (uniform) for synthetic samples
    "alpha_real": [1.0, 1.0],     # αo: the same for real samples
    "nst_probability": 0.95,      # share of the chosen samples actually stylized (authors' NSTTransform
                                  # probability, experiments/custom_transforms.py:33)
    "style_resolution": 224,      # stylize at this square side (the authors' 224), or "native" (fast mode)
    "stylize_cache": None,        # stylize_dataset folders (one per source): stored variants replace the networks
    # Run
    "out": "runs/demo",
    "resume": None,               # None, "auto" (OUT/checkpoint.pt) or a checkpoint path
    "overwrite": False,           # an earlier run in --out is moved aside to OUT.old-<time> (else: refused)
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


class ConfigError(UsageError):
    """A bad option value or option file; the message names the flag or file (one line, exit 2)."""


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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's table as written; wraps the flags' help as usual."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name("train.run"),
        description="Train a classifier with stylized synthetic augmentation (arXiv 2512.15675), evaluate\n"
        "its corruption robustness and write a report. Each value comes from, in rising priority:\n"
        "the built-in default, the data set's preset (train/presets/<dataset>.yaml), --config FILE,\n"
        "the flags. Every flag's value per data set is in the table at the end; --print-config\n"
        "shows the resolved values of a command line and where each came from.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="YAML file of options applied over the preset")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved configuration, with the source of each value, and exit")
    add_debug_flag(parser)

    group = parser.add_argument_group("Dataset")
    add = group.add_argument
    add("--dataset", choices=sorted(DATASETS), help="data set and preset (without it: demo, built in)")
    add("--data-root", metavar="DIR", help="folder holding the data set")
    add("--synthetic", metavar="FILE", help="EDM-style .npz of synthetic images and labels")
    add("--synthetic-ratio", type=float, metavar="R", help="fraction of each epoch drawn from --synthetic")
    add("--download", action="store_true", default=None, help="download the data set if missing")
    add("--on-bad-image", choices=["skip", "stop"], help="what to do with an image that cannot be decoded")

    group = parser.add_argument_group("Model")
    add = group.add_argument
    add("--model", choices=MODEL_NAMES, help="classifier")
    add("--dropout", type=float, metavar="P", help="dropout probability in the residual blocks")
    add("--amp", choices=["auto", "bf16", "fp16", "none"], help="mixed precision (auto: bf16 on CUDA)")
    add("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the classifier")

    group = parser.add_argument_group("Optimizer")
    add = group.add_argument
    add("--epochs", type=int, help="training epochs")
    add("--batch-size", type=int, help="global batch size over all ranks")
    add("--lr", type=float, help="peak learning rate (SGD, cosine schedule)")
    add("--momentum", type=float, help="SGD momentum")
    add("--nesterov", action=argparse.BooleanOptionalAction, default=None, help="Nesterov momentum")
    add("--weight-decay", type=float, help="L2 weight decay")
    add("--label-smoothing", type=float, help="label smoothing of the cross-entropy loss")
    add("--swa", action=argparse.BooleanOptionalAction, default=None, help="stochastic weight averaging")
    add("--swa-start", type=float, metavar="FRACTION", help="fraction of epochs before averaging starts")
    add("--swa-lr-factor", type=float, help="SWA learning rate as a fraction of --lr")

    group = parser.add_argument_group("Augmentation")
    add = group.add_argument
    add("--trivial-augment", action=argparse.BooleanOptionalAction, default=None,
        help="TrivialAugmentWide after stylization")
    add("--random-erasing-prob", type=float, metavar="P", help="probability of Random Erasing per image")
    add("--random-erasing-scale", type=float, nargs=2, metavar=("LOW", "HIGH"),
        help="area fraction range of an erased box")
    add("--crop-padding", type=_crop_padding, metavar="PX|auto", help="zero padding of the random crop")
    add("--ta-or-style-real", action=argparse.BooleanOptionalAction, default=None,
        help='"TAorStyle" for real images: a sample chosen for style transfer skips TrivialAugment')
    add("--ta-or-style-synthetic", action=argparse.BooleanOptionalAction, default=None,
        help='"TAorStyle" for synthetic images')

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
    add("--nst-probability", type=float, metavar="P", help="share of the chosen samples actually stylized")
    add("--style-resolution", type=style_resolution, metavar="PX|native",
        help="stylize images upsampled to PX x PX (the authors' 224) or at their native size (fast mode)")
    add("--stylize-cache", nargs="+", metavar="DIR",
        help="caches of python -m train.stylize_cache (one per source, real and/or synthetic): a stylized "
        "sample takes one of its image's stored variants instead of running the networks")

    group = parser.add_argument_group("Run")
    add = group.add_argument
    add("--out", metavar="DIR", help="output folder (checkpoint, logs, config, report)")
    add("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
        help="continue from CHECKPOINT (without a value: OUT/checkpoint.pt)")
    add("--overwrite", action="store_true", default=None,
        help="--out holds an earlier run: move it aside to OUT.old-<time> and start afresh (without "
        "--overwrite or --resume such a run is refused)")
    add("--seed", type=int, help="seed of weights, data order, augmentations and stylization")
    add("--device", choices=["auto", "cpu", "cuda"], help="auto: CUDA when available")
    add("--eval-every", type=int, metavar="EPOCHS", help="clean test accuracy every N epochs (0: at the end)")
    add("--log-every", type=int, metavar="STEPS", help="steps between progress updates and NaN checks")
    add("--evaluate-corruptions", action=argparse.BooleanOptionalAction, default=None,
        help="evaluate corruption robustness and write the report after training")
    add("--corruption-source", choices=["auto", "official", "generated"],
        help="official -C files, generated corruptions, or auto: official when present")
    add("--max-eval-images", type=int, metavar="N", help="cap of test images per corruption and severity")
    parser.epilog = preset_table({action.dest for action in parser._actions})
    return parser


# ----------------------------------------------------------------------------- --help table, --print-config

def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def format_value(value) -> str:
    """A value as the --help table shows it: yes/no, lists space-separated (as typed), "-" for not set,
    a mapping as name=value pairs (shown under the table: too wide for a cell)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return " ".join(format_value(item) for item in value)
    if isinstance(value, dict):
        return " ".join(f"{name}={format_value(item)}" for name, item in value.items()) or "-"
    return str(value)


MAPPING_CELL = "(below)"  # a mapping's cell in the table; its values follow the table


def preset_table(flag_keys: set[str] | None = None) -> str:
    """Every option's value per preset, read from the YAML files (so it cannot drift from them).

    Options without a flag (``flag_keys`` lacks them) are set in a --config file; they are named as
    keys with a '*'. Mappings (e.g. input_noise) are listed under the table, one line per column.
    """
    flag_keys = set(DEFAULTS) if flag_keys is None else flag_keys
    presets = {name: {**DEFAULTS, **load_preset(name)} for name in PRESET_NAMES}
    columns = [*PRESET_NAMES, "built-in"]
    values = {**presets, "built-in": DEFAULTS}
    header = ["option", *columns]
    rows, mappings = [], []
    for key in DEFAULTS:
        label = flag_name(key) if key in flag_keys else f"{key}*"
        cells = [MAPPING_CELL if isinstance(values[column][key], dict) and values[column][key]
                 else format_value(values[column][key]) for column in columns]
        rows.append([label, *cells])
        if MAPPING_CELL in cells:
            mappings += [f"  {label} {column}: {format_value(values[column][key])}" for column in columns]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join([
        "defaults per --dataset (train/presets/<dataset>.yaml; built-in: where a preset says nothing):",
        "",
        *("  " + line for line in lines),
        *(["", *mappings] if mappings else []),
        "",
        '"-": not set, see the flag\'s help (e.g. --data-root: ./data, for the demo OUT/demo_data).',
        "*: no flag; set it in a --config FILE (YAML).",
    ])


def _yaml_value(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def format_config(config: dict, sources: dict[str, str]) -> str:
    """The resolved configuration as YAML (usable as --config after removing derived keys), one
    ``# source`` comment per value: default, preset (file), file (--config), flag, or derived."""
    entries = [(f"{key}: {_yaml_value(config[key])}", sources.get(key, "default")) for key in config]
    width = max(len(text) for text, _ in entries if len(text) <= 48)  # a long mapping does not push every comment out
    lines = ["# resolved configuration: built-in default < preset < --config file < flag"]
    for text, source in entries:
        comment_out = "# " if source.startswith("derived") else ""  # not an option: --config would refuse it
        lines.append(f"{comment_out}{text.ljust(width)}  # {source}")
    return "\n".join(lines)


def _crop_padding(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected pixels or 'auto', got {text!r}") from None


def crop_padding(config: dict) -> int | None:
    """The loader's ``crop_padding`` argument (None: the data set's default, image side / 8)."""
    return None if config["crop_padding"] == "auto" else int(config["crop_padding"])


def stylizer_resolution(config: dict) -> int | None:
    """The Stylizer's ``resolution`` argument for this configuration (None: native size)."""
    return None if config["style_resolution"] == "native" else int(config["style_resolution"])


def resolve(flags: dict, config_file: str | None = None) -> dict:
    """Merge defaults, the data set's preset, ``config_file`` and ``flags`` (None = not given)."""
    return resolve_with_sources(flags, config_file)[0]


def resolve_with_sources(flags: dict, config_file: str | None = None, *,
                         require_inputs: bool = True) -> tuple[dict, dict[str, str]]:
    """``resolve`` and, per key, where its value came from (for --print-config). ``require_inputs=False``
    leaves inputs not found under --data-root empty, their source saying how to fetch them."""
    given = {key: value for key, value in flags.items() if value is not None}
    file_values = load_yaml(config_file) if config_file else {}
    dataset = given.get("dataset", file_values.get("dataset", DEFAULTS["dataset"]))
    preset = load_preset(dataset)
    config, sources = dict(DEFAULTS), dict.fromkeys(DEFAULTS, "default")
    for values, source in ((preset, f"preset (train/presets/{dataset}.yaml)"), (file_values, f"file ({config_file})"),
                           (given, "flag")):
        config.update(values)
        sources.update(dict.fromkeys(values, source))
    config["dataset"] = dataset
    if dataset not in DATASETS:
        raise ConfigError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    info = dataset_info(dataset)
    config["num_classes"] = info.num_classes
    config["image_size"] = info.image_size
    sources.update(dict.fromkeys(DERIVED_KEYS, f"derived from dataset {dataset}"))
    for key in ("alpha_synthetic", "alpha_real", "noise_patch_scale", "random_erasing_scale"):
        config[key] = [float(v) for v in config[key]]
    if isinstance(config["input_noise"], dict):
        config["input_noise"] = {str(name): eps for name, eps in config["input_noise"].items()}
    not_given = {key for key in ("synthetic", "styles", "vgg", "decoder") if config[key] is None}
    # --synthetic, --styles, --vgg, --decoder from what the download put in --data-root
    missing = resolve_fetched_paths(config, required=require_inputs)
    sources.update({key: "default (found or fetched under --data-root)" for key in not_given if config[key] is not None})
    sources.update({key: f"MISSING: not under --data-root; {how}" for key, how in missing.items()})
    _validate(config, require_inputs)
    return config, sources


def _validate(config: dict, require_inputs: bool = True) -> None:
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
    for key in ("prob_synthetic", "prob_real", "nst_probability"):
        check(0.0 <= config[key] <= 1.0, key, "a probability in [0, 1]")
    low, high = config["random_erasing_scale"]
    check(len(config["random_erasing_scale"]) == 2 and 0.0 < low <= high <= 1.0, "random_erasing_scale",
          "LOW HIGH with 0 < LOW <= HIGH <= 1")
    padding = config["crop_padding"]
    check(padding == "auto" or (isinstance(padding, int) and 0 <= padding < config["image_size"]), "crop_padding",
          f"'auto' or pixels in [0, {config['image_size']})")
    for key in ("ta_or_style_real", "ta_or_style_synthetic"):
        check(isinstance(config[key], bool), key, "true or false")
    for key in ("alpha_synthetic", "alpha_real"):
        low, high = config[key]
        check(len(config[key]) == 2 and 0.0 <= low <= high <= 1.0, key, "LOW HIGH with 0 <= LOW <= HIGH <= 1")
    check(config["amp"] in ("auto", "bf16", "fp16", "none"), "amp", "auto, bf16, fp16 or none")
    _validate_recipe(config, check)
    resolution = config["style_resolution"]
    check(resolution == "native" or (isinstance(resolution, int) and resolution >= 8), "style_resolution",
          "a side in pixels (>= 8) or 'native'")
    cache = config["stylize_cache"]
    check(cache is None or (isinstance(cache, list) and 1 <= len(cache) <= 2), "stylize_cache",
          "one or two folders (a cache per source)")
    if cache and not config["stylize"]:
        raise ConfigError("--stylize-cache needs stylization on (it replaces the style-transfer networks); "
                          "drop --no-stylize or --stylize-cache")
    if config["synthetic_ratio"] > 0 and not config["synthetic"] and config["dataset"] != "demo" and require_inputs:
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


def parse_command_line(argv: list[str] | None = None) -> tuple[dict, dict[str, str], bool]:
    """Command line -> (resolved configuration, source of each value, whether --print-config was given)."""
    args = vars(build_parser().parse_args(argv))
    config_file = args.pop("config")
    print_config = args.pop("print_config")
    args.pop("debug")  # read by fastnst.cli.run_cli from the command line itself
    config, sources = resolve_with_sources(args, config_file, require_inputs=not print_config)
    return config, sources, print_config


def parse_config(argv: list[str] | None = None) -> dict:
    """Command line -> resolved configuration dict."""
    return parse_command_line(argv)[0]


def save_config(config: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``config.yaml`` and ``config.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    yaml_path, json_path = out_dir / "config.yaml", out_dir / "config.json"
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))
    json_path.write_text(json.dumps(config, indent=2) + "\n")
    return yaml_path, json_path
