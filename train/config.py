"""The options of ``python -m train.run``, each defined once, and the run configuration they resolve to.

A value comes from, in rising priority: the built-in default < the data set's YAML preset < ``--config FILE``
< the flags. The resolved configuration is one flat dict (the checkpoint contract reads ``config["dataset"]``,
``config["model"]`` and ``config["num_classes"]``), written next to the run's outputs as ``config.yaml`` and
``config.json``. The options come in groups, as timm's ``train.py`` groups its kebab-case flags: each group is
a frozen dataclass, one field per option, from which the flags and their --help, the table of every preset's
values that ends --help, ``--print-config`` and the checks derive. A flag's default is None, "not given".

To add an option, add one field to its group: ``name: type = option(default, "help", CHECK, metavar=...)``
(CHECK: a ``Check``, else choices=..., else the default's type is checked; ``flag=False``: no flag, set it
in a YAML file). A preset sets its value in ``train/presets/<dataset>.yaml``, citing the authors' file:line.
Read it where it is used: ``config["name"]``, or the group's checked object, as the training loader takes
``Augmentation.from_config(config)``.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Callable, NamedTuple, Self

import yaml

from fastnst import cli
from fastnst.train.models import ACTIVATIONS, MODEL_NAMES, has_layer_hooks, is_model_name
from fastnst.train.noise import noise_kind

PRESET_NAMES = ("cifar10", "cifar100", "tinyimagenet", "imagefolder", "demo")  # train/presets/<name>.yaml
# Filled in by resolve(), never read from a preset or a flag (image_size too, but an image folder takes it as an option).
DERIVED_KEYS = ("num_classes", "class_names")
TRAIN_CROPS = ("auto", "random-resized", "pad")  # train.data.imagefolder says what auto picks


class ConfigError(cli.UsageError):
    """A bad option value or option file; the message names the flag or file (one line, exit 2)."""


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


# ----------------------------------------------------------------------------- the options

class Check(NamedTuple):
    """A test of an option's value and what it expects: "--flag must be EXPECTED, got VALUE"."""

    test: Callable[[Any], bool]
    expected: str


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # YAML's true is no number


def _is_number(value) -> bool:
    return _is_int(value) or isinstance(value, float)


# By the default's type: the check of an option that names none, and the kind of its flag.
TYPE_CHECKS = {bool: Check(lambda value: isinstance(value, bool), "true or false"),
               int: Check(_is_int, "an integer"), float: Check(_is_number, "a number")}
FLAG_KINDS: dict[type, dict] = {bool: {"action": argparse.BooleanOptionalAction}, int: {"type": int},
                                float: {"type": float}, tuple: {"type": float, "nargs": 2, "metavar": ("LOW", "HIGH")}}
POSITIVE_INT = Check(lambda value: _is_int(value) and value >= 1, "a positive integer")
NON_NEGATIVE = Check(lambda value: _is_number(value) and value >= 0, ">= 0")
PROBABILITY = Check(lambda value: _is_number(value) and 0 <= value <= 1, "a probability in [0, 1]")
BELOW_ONE = Check(lambda value: _is_number(value) and 0 <= value < 1, "in [0, 1)")
AREA_RANGE = Check(lambda pair: len(pair) == 2 and 0 < pair[0] <= pair[1] <= 1, "LOW HIGH with 0 < LOW <= HIGH <= 1")
ALPHA_RANGE = Check(lambda pair: len(pair) == 2 and 0 <= pair[0] <= pair[1] <= 1, "LOW HIGH with 0 <= LOW <= HIGH <= 1")
INPUT_NOISE = Check(lambda noise: isinstance(noise, dict) and all(_is_number(eps) and eps > 0 for eps in noise.values())
                    and all(noise_kind(name) for name in noise), "a mapping of noise type to a positive eps_max")


def option(default, help: str, check: Check | None = None, *, flag: bool = True, **argparse_keywords) -> Any:
    """One option (a dataclass field). Its check: ``check``, else its choices, else its default's type. Its
    flag's kind follows from the default's type (``FLAG_KINDS``); ``argparse_keywords`` add to it or replace it."""
    choices = argparse_keywords.get("choices")
    if check is None and choices is not None:
        check = Check(lambda value: value in choices, f"one of {', '.join(choices)}")
    metadata = {"help": help, "check": check or TYPE_CHECKS.get(type(default)),
                "flag": argparse_keywords if flag else None}
    if isinstance(default, dict):  # mutable: each object gets its own copy
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _passes(check: Check, flag: str, value) -> bool:
    try:
        return bool(check.test(value))
    except TypeError:  # a string where a number belongs (PyYAML reads 5e-4 as one), a number for a pair
        return False
    except ValueError as error:  # the test's own reason (an unknown noise type)
        raise ConfigError(f"{flag}: {error}") from None


@dataclass(frozen=True)
class Options:
    """Base of the option groups: making one checks every value (a ConfigError names the flag)."""

    def __post_init__(self):
        for item in fields(self):
            value, check = getattr(self, item.name), item.metadata["check"]
            if check is not None and not _passes(check, flag_name(item.name), value):
                raise ConfigError(f"{flag_name(item.name)} must be {check.expected}, got {value!r}")
            if isinstance(item.default, tuple):
                object.__setattr__(self, item.name, tuple(value))  # a pair from YAML or the flags is a list

    @classmethod
    def from_config(cls, config: dict) -> Self:
        return cls(**{item.name: config[item.name] for item in fields(cls)})


def _crop_padding(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected pixels or 'auto', got {text!r}") from None


def _compile_mode(text: str) -> bool | str:
    modes = {"auto": "auto", "true": True, "false": False}
    if text.lower() not in modes:
        raise argparse.ArgumentTypeError(f"expected auto, true or false, got {text!r}")
    return modes[text.lower()]


@dataclass(frozen=True)
class Dataset(Options):
    dataset: str = option("demo", "data set and preset (without it: demo, built in)", choices=sorted(PRESET_NAMES))
    data_root: str | None = option(None, "folder holding the data set (not set: ./data; the demo: OUT/demo_data)",
                                   metavar="DIR")
    synthetic: str | None = option(None, "EDM-style .npz of synthetic images and labels (imagefolder: or a folder "
                                   "of class subfolders named as train/'s)", metavar="FILE|DIR")
    synthetic_ratio: float = option(0.0, "fraction of each epoch drawn from --synthetic", BELOW_ONE, metavar="R")
    download: bool = option(False, "download the data set if missing", action="store_true")
    on_bad_image: str = option("skip", "what to do with an image that cannot be decoded", choices=("skip", "stop"))
    image_size: int | None = option(None, "imagefolder: side in pixels of the training crops and test images "
                                    "(not set: 224 with random-resized crops, else the images' own size)", Check(
        lambda value: value is None or (_is_int(value) and value >= 8), "a side in pixels (>= 8)"), type=int, metavar="PX")


@dataclass(frozen=True)
class Model(Options):
    model: str = option("wrn28_4", f"classifier: {', '.join(MODEL_NAMES)}, torchvision:<name> (e.g. torchvision:resnet18) "
                        "or, with the timm extra, timm:<name>; random initial weights", Check(
        is_model_name, f"one of {', '.join(MODEL_NAMES)}, torchvision:<name> or timm:<name>"), metavar="NAME")
    dropout: float = option(0.0, "dropout probability in the residual blocks", metavar="P")
    activation: str = option("silu", "the authors' configs: silu", choices=tuple(ACTIVATIONS), flag=False)
    amp: str = option("auto", "mixed precision (auto: bf16 on CUDA)", choices=("auto", "bf16", "fp16", "none"))
    compile: bool | str = option("auto", "torch.compile the classifier (auto: on CUDA, not on the CPU; --compile: "
                                 "true)", Check(lambda value: value == "auto" or isinstance(value, bool),
                                                "auto, true or false"),
                                 type=_compile_mode, nargs="?", const=True, metavar="auto|true|false")


@dataclass(frozen=True)
class Optimizer(Options):
    epochs: int = option(300, "training epochs", POSITIVE_INT)
    batch_size: int = option(512, "global batch size over all ranks", POSITIVE_INT)
    lr: float = option(0.1, "peak learning rate (SGD, cosine schedule)",  # at batch_size: no automatic scaling
                       Check(lambda value: _is_number(value) and value > 0, "positive"))
    momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(True, "Nesterov momentum")
    weight_decay: float = option(5e-4, "L2 weight decay")
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy loss", BELOW_ONE)
    swa: bool = option(True, "stochastic weight averaging")
    swa_start: float = option(0.85, "fraction of epochs before averaging starts",
                              Check(lambda value: 0 < value < 1, "a fraction in (0, 1)"), metavar="FRACTION")
    swa_lr_factor: float = option(0.2, "SWA learning rate as a fraction of --lr")
    swa_anneal_epochs: int = option(5, "epochs of SWALR's linear ramp from the cosine's lr to the SWA lr", Check(
        lambda value: _is_int(value) and value >= 0, "an integer >= 0"), flag=False)
    lr_cycle_epochs: int = option(40, "CosineAnnealingWarmRestarts T_0: epochs of the first cycle", POSITIVE_INT,
                                  flag=False)
    lr_cycle_mult: int = option(2, "T_mult: each cycle this many times longer (1: equal)", POSITIVE_INT, flag=False)
    grad_clip_norm: float | None = option(1.0, "clip the gradients' global L2 norm to this (None: no clipping)", Check(
        lambda value: value is None or value > 0, "positive or None"), flag=False)


@dataclass(frozen=True)
class NoiseAndMixing(Options):
    """The authors' ct_model.py / noise.py / mixup.py."""

    input_noise: dict = option({}, "noise type -> eps_max in [0, 1] pixel units, e.g. {uniform-linf: 0.1}",
                               INPUT_NOISE, flag=False)
    noise_group_size: int = option(8, "consecutive images sharing one input-noise draw", POSITIVE_INT, flag=False)
    noise_sparsity: float = option(1.0, "per group, a share U(0, this) of the noise elements is dropped",
                                   Check(lambda value: 0 <= value <= 1, "in [0, 1]"), flag=False)
    noise_patch_scale: tuple[float, float] = option(
        (0.2, 0.7), "input noise only inside one rectangle of this area share per group", AREA_RANGE, flag=False)
    manifold_noise: bool = option(False, "per batch k ~ U{0,1,2}: input noise (k=0) or feature noise after layer k "
                                  "(needs a WRN's layer hooks)")
    mixup_alpha: float = option(0.2, "Mixup's Beta(alpha, alpha)", NON_NEGATIVE, flag=False)
    mixup_p: float = option(0.0, "per batch: CutMix with cutmix_p, else Mixup with mixup_p", NON_NEGATIVE, flag=False)
    cutmix_alpha: float = option(1.0, "CutMix's Beta(alpha, alpha)", NON_NEGATIVE, flag=False)
    cutmix_p: float = option(0.0, "per batch: the probability of CutMix", NON_NEGATIVE, flag=False)


@dataclass(frozen=True)
class Augmentation(Options):
    """The training loader's, in the authors' order: stylize -> flip + crop -> TrivialAugmentWide -> Random Erasing."""

    trivial_augment: bool = option(True, "TrivialAugmentWide after stylization")
    random_erasing_prob: float = option(0.3, "probability of Random Erasing per image", PROBABILITY, metavar="P")
    # Aspect ratio 0.3 to 3.3 and value 0: the authors' RandomErasing(scale=(0.02, 0.4)), experiments/data.py:174
    random_erasing_scale: tuple[float, float] = option((0.02, 0.4), "area fraction range of an erased box", AREA_RANGE)
    train_crop: str = option("auto", "random-resized: ImageNet's RandomResizedCrop to the image size, then a flip; "
                             "pad: the authors' flip + zero-padded random crop (auto: pad for the paper's data sets "
                             "and for an image folder of one size <= 64 px, else random-resized)", choices=TRAIN_CROPS)
    crop_scale: tuple[float, float] = option((0.08, 1.0), "random-resized crops: area fraction range (torchvision's "
                                             "default)", AREA_RANGE)
    crop_padding: int | str = option("auto", "zero padding of the random crop", Check(
        lambda value: value == "auto" or (_is_int(value) and value >= 0), "'auto' or pixels >= 0"),
        type=_crop_padding, metavar="PX|auto")
    # "TAorStyle": a sample chosen for style transfer skips TrivialAugment, also when chosen but not stylized
    # (the authors' NSTTransform); False is "TAandStyle": TrivialAugment for all.
    ta_or_style_real: bool = option(
        False, '"TAorStyle" for real images: a sample chosen for style transfer skips TrivialAugment')
    ta_or_style_synthetic: bool = option(False, '"TAorStyle" for synthetic images')
    # The same draws and images either way (tests/test_augment_torch.py); torch: also JPEG decoding.
    augment_backend: str = option("auto", "library of the loader's decoding and augmentation (auto: DALI when "
                                  "installed, else torch)", choices=("auto", "dali", "torch"))

    def padding_for(self, image_size: int) -> int:
        """Pixels of zero padding around ``image_size`` images; auto: side / 8 (4 CIFAR, 8 TinyImageNet, the
        authors' RandomCrop, experiments/data.py:162-163)."""
        if self.crop_padding == "auto":
            return image_size // 8
        if not int(self.crop_padding) < image_size:
            raise ConfigError(f"--crop-padding must be 'auto' or pixels in [0, {image_size}), got {self.crop_padding}")
        return int(self.crop_padding)


@dataclass(frozen=True)
class Stylization(Options):
    """Prob, alpha and resolution defaults are fastnst.Stylizer's (PAPER_*); nst_probability is the recipe's."""

    stylize: bool = option(True, "neural style transfer augmentation (--no-stylize: the baseline)")
    styles: str | None = option(None, "style bank file (see fastnst.StyleBank)", metavar="FILE")  # demo: generated
    vgg: str | None = option(None, "VGG-19 encoder weights (vgg_normalised.pth)", metavar="FILE")  # or torchvision's
    decoder: str | None = option(None, "AdaIN decoder weights (decoder.pth)", metavar="FILE")
    prob_synthetic: float = option(0.4, "λs: stylization probability of synthetic samples", PROBABILITY, metavar="P")
    prob_real: float = option(0.1, "λo: stylization probability of real samples", PROBABILITY, metavar="P")
    alpha_synthetic: tuple[float, float] = option((0.1, 1.0), "αs range", ALPHA_RANGE)  # alpha ~ U(LOW, HIGH)
    alpha_real: tuple[float, float] = option((1.0, 1.0), "αo range", ALPHA_RANGE)
    # The authors' NSTTransform probability, experiments/custom_transforms.py:33
    nst_probability: float = option(0.95, "share of the chosen samples actually stylized", PROBABILITY, metavar="P")
    stylize_precision: str = option("auto", "the style-transfer networks' precision: fp32 (the authors'), bf16 "
                                    "autocast, or auto: bf16 on CUDA, fp32 on the CPU",
                                    choices=("auto", "fp32", "bf16"))  # fastnst.stylizer.STYLIZE_PRECISION
    style_resolution: int | str = option(
        224, "stylize images upsampled to PX x PX (the authors' 224) or at their native size (fast mode)",
        Check(lambda value: value == "native" or (_is_int(value) and value >= 8),
              "a side in pixels (>= 8) or 'native'"), type=cli.style_resolution, metavar="PX|native")
    stylize_cache: list[str] | None = option(
        None, "caches of python -m train.stylize_cache (one per source, real and/or synthetic): a stylized sample "
        "takes one of its image's stored variants instead of running the networks",
        Check(lambda value: value is None or (isinstance(value, list) and 1 <= len(value) <= 2),
              "one or two folders (a cache per source)"), nargs="+", metavar="DIR")


@dataclass(frozen=True)
class Run(Options):
    out: str = option("runs/demo", "output folder (checkpoint, logs, config, report)", metavar="DIR")
    resume: str | None = option(None, "continue from CHECKPOINT (without a value: OUT/checkpoint.pt)",
                                nargs="?", const="auto", metavar="CHECKPOINT")
    overwrite: bool = option(False, "--out holds an earlier run: move it aside to OUT.old-<time> and start afresh "
                             "(without --overwrite or --resume such a run is refused)", action="store_true")
    seed: int = option(0, "seed of weights, data order, augmentations and stylization")
    device: str = option("auto", "auto: CUDA when available", choices=("auto", "cpu", "cuda"))
    eval_every: int = option(1, "clean test accuracy every N epochs (0: at the end)", metavar="EPOCHS")
    log_every: int = option(20, "steps between progress updates and NaN checks", POSITIVE_INT, metavar="STEPS")
    evaluate_corruptions: bool = option(True, "evaluate corruption robustness and write the report after training")
    corruption_source: str = option("auto", "official -C files, generated corruptions, or auto: official when present",
                                    choices=("auto", "official", "generated"))
    corrupted_root: str | None = option(
        None, "the official -C files' folder (not set: the data set's under --data-root; imagefolder: DATA_ROOT/val-c, "
        "laid out <corruption>/<severity>/<class>/<image> as ImageNet-C and python -m train.corruptions.generate)",
        metavar="DIR")
    max_eval_images: int | None = option(None, "cap of test images per corruption and severity", type=int, metavar="N")
    # For timings and smoke tests (bench/end_to_end.py): the schedule, SWA and checkpoints stay per epoch.
    max_steps_per_epoch: int | None = option(
        None, "train each epoch on its first N batches only (not set: the whole epoch)",
        Check(lambda value: value is None or (_is_int(value) and value >= 1), "a positive integer"), type=int,
        metavar="N")
    evaluate_clean: bool = option(True, "clean test accuracy during and after training (--no-evaluate-clean: none)")
    eval_amp: str = option("fp32", "precision of the robustness evaluation: fp16 autocast as the authors evaluate "
                           "(their eval.py:84), or fp32", choices=("fp32", "fp16"))  # train.evaluate.EVAL_AMP


# --help group title -> group; the order is that of --help, the table, --print-config and config.yaml.
GROUPS: dict[str, type[Options]] = {
    "Dataset": Dataset, "Model": Model, "Optimizer": Optimizer, "Noise and mixing": NoiseAndMixing,
    "Augmentation": Augmentation, "Stylization": Stylization, "Run": Run,
}
OPTIONS = {item.name: item for group in GROUPS.values() for item in fields(group)}
# Where neither the preset nor a flag says otherwise (checked here, by making each group): a pair as a list.
DEFAULTS: dict = {name: list(value) if isinstance(value, tuple) else value
                  for group in GROUPS.values() for name, value in vars(group()).items()}


# ----------------------------------------------------------------------------- presets, files, flags

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
        prog=cli.program_name("train.run"),
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
    cli.add_debug_flag(parser)

    for title, group in GROUPS.items():
        arguments = parser.add_argument_group(title)
        for item in fields(group):
            if item.metadata["flag"] is not None:  # default None: "not given", the preset's value stands
                arguments.add_argument(flag_name(item.name), **{**FLAG_KINDS.get(type(item.default), {}),
                                       **item.metadata["flag"], "default": None, "help": item.metadata["help"]})
    parser.epilog = preset_table()
    return parser


def add_option_flag(parser, name: str, **replace) -> None:
    """``name``'s flag as train.run has it (type, choices, help; its built-in default), on another command's
    parser: the commands that share an option share its one definition. ``replace``: keywords that differ."""
    (item,) = [item for group in GROUPS.values() for item in fields(group) if item.name == name]
    parser.add_argument(flag_name(name), **{**FLAG_KINDS.get(type(item.default), {}), **item.metadata["flag"],
                                            "default": item.default, "help": item.metadata["help"], **replace})


# ----------------------------------------------------------------------------- --help table, --print-config

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


def preset_table() -> str:
    """Every option's value per preset, read from the YAML files (so it cannot drift from them).

    Options without a flag are set in a --config file; they are named as keys with a '*'. Mappings
    (e.g. input_noise) are listed under the table, one line per column.
    """
    presets = {name: {**DEFAULTS, **load_preset(name)} for name in PRESET_NAMES}
    columns = [*PRESET_NAMES, "built-in"]
    values = {**presets, "built-in": DEFAULTS}
    header = ["option", *columns]
    rows, mappings = [], []
    for key in DEFAULTS:
        label = flag_name(key) if OPTIONS[key].metadata["flag"] is not None else f"{key}*"
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
    from fastnst.train.data import imagefolder  # train.data's loader imports this module
    from fastnst.train.data.stats import IMAGEFOLDER
    from fastnst.train.fetched import DEFAULT_DATA_ROOT, resolve_fetched_paths

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
    for group in GROUPS.values():  # each option's own check, as the flag names it
        group.from_config(config)
    _derive_from_dataset(config, sources)
    _check_model(config)
    for key, item in OPTIONS.items():
        if isinstance(item.default, tuple):  # a pair: LOW HIGH
            config[key] = [float(value) for value in config[key]]
    config["input_noise"] = {str(name): eps for name, eps in config["input_noise"].items()}
    not_given = {key for key in ("synthetic", "styles", "vgg", "decoder") if config[key] is None}
    # --synthetic, --styles, --vgg, --decoder from what the download put in --data-root
    missing = resolve_fetched_paths(config, required=require_inputs)
    sources.update({key: "default (found or fetched under --data-root)" for key in not_given if config[key] is not None})
    for key, how in missing.items():  # a value (the data set's name) keeps its source: it is what is not there
        sources[key] = ("" if config[key] is None else f"{sources[key]}; ") + f"MISSING: not under --data-root; {how}"
    if config["dataset"] == IMAGEFOLDER and config["class_names"] is None:  # its folder is all that is missing
        if require_inputs:
            imagefolder.split_folder(config["data_root"] or DEFAULT_DATA_ROOT, "train")  # raises, naming the folder
        return config, sources  # --print-config: no images to check the crop against
    _check_together(config, require_inputs)
    return config, sources


def _derive_from_dataset(config: dict, sources: dict[str, str]) -> None:
    """num_classes, class_names, image_size and what --train-crop auto picks: fixed for the paper's data
    sets, found in the folder for an image folder (train.data.imagefolder)."""
    from fastnst.train.data import imagefolder  # train.data's loader imports this module
    from fastnst.train.data.stats import IMAGEFOLDER, dataset_info
    from fastnst.train.fetched import DEFAULT_DATA_ROOT, missing_data_set

    dataset = config["dataset"]
    if dataset == IMAGEFOLDER:
        root = config["data_root"] or DEFAULT_DATA_ROOT
        if missing_data_set(dataset, Path(root)):  # named with the other missing inputs (resolve_with_sources)
            config.update(num_classes=None, class_names=None)
            sources.update(dict.fromkeys(DERIVED_KEYS, f"derived from the class folders of {Path(root) / 'train'}, "
                                                       "not there"))
            return
        names = imagefolder.class_names(root)
        crop, size, why = imagefolder.resolve_train_crop(config["train_crop"], config["image_size"], root, names)
        config.update(num_classes=len(names), class_names=names, train_crop=crop, image_size=size)
        sources.update(dict.fromkeys(DERIVED_KEYS, f"derived from the class folders of {Path(root) / 'train'}"))
        if why != "given":
            sources["train_crop"] = why
        if sources["image_size"] == "default":
            sources["image_size"] = f"derived ({why if why != 'given' else '--train-crop ' + crop})"
        return
    info = dataset_info(dataset)
    if config["image_size"] not in (None, info.image_size):
        raise ConfigError(f"--image-size is an image folder's (--dataset imagefolder); {dataset} images are "
                          f"{info.image_size} px")
    config.update(num_classes=info.num_classes, class_names=None, image_size=info.image_size)
    sources.update(dict.fromkeys(DERIVED_KEYS, f"derived from dataset {dataset}"))
    sources["image_size"] = f"derived from dataset {dataset}"
    if config["train_crop"] == "auto":
        config["train_crop"], sources["train_crop"] = "pad", "auto: the authors' padded crop"


def _check_model(config: dict) -> None:
    """A torchvision / timm name that exists; manifold noise only where the model has the layer hooks."""
    from fastnst.train.models.external import split_name, unknown_model_reason

    reason = unknown_model_reason(config["model"]) if split_name(config["model"]) is not None else None
    if reason is not None:
        raise ConfigError(f"--model {config['model']}: {reason}")
    if config["manifold_noise"] and not has_layer_hooks(config["model"]):
        raise ConfigError(f"--manifold-noise needs layer hooks (a WRN's stage_output_size / perturb_stage) that "
                          f"--model {config['model']} lacks: pass --no-manifold-noise (input noise works for every model)")


def _check_together(config: dict, require_inputs: bool = True) -> None:
    """The checks of options that depend on each other (each option's own: its group's)."""
    Augmentation.from_config(config).padding_for(config["image_size"])
    if config["stylize_cache"] and config["dataset"] == "imagefolder":
        raise ConfigError("--stylize-cache stores stylized copies of fixed images; an image folder's crops change "
                          "every epoch, so its Stylizer runs on the fly: drop --stylize-cache")
    if config["stylize_cache"] and not config["stylize"]:
        raise ConfigError("--stylize-cache needs stylization on (it replaces the style-transfer networks); "
                          "drop --no-stylize or --stylize-cache")
    if config["synthetic_ratio"] > 0 and not config["synthetic"] and config["dataset"] != "demo" and require_inputs:
        raise ConfigError(
            f"--synthetic-ratio {config['synthetic_ratio']} needs --synthetic FILE (EDM-generated images as .npz); "
            "pass --synthetic-ratio 0 to train on real images only"
        )


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
