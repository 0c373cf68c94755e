"""``python -m train.export``: a finished run's classifier as a RobustBench-ready folder, with its model card.

    python -m train.export --checkpoint runs/cifar10/checkpoint.pt --out export/cifar10

writes into ``--out``:

    model.py          the classifier in plain PyTorch (needs torch, not fastnst): ``load_model(folder)``
    weights.pt        its state dict, normalization buffers included (``torch.load(..., weights_only=True)``)
    robustbench.json  RobustBench's leaderboard entry, filled from the run's summary.json; the fields only a
                      person can fill hold a string starting with "FILL IN"
    README.md         the model card: data set, recipe, stylization, seed, every score with its source

The model takes what RobustBench feeds every model: float NCHW in [0, 1]; the per-channel normalization
of the training loader is inside it (buffers ``mean`` and ``std``), and it returns logits.

Why a state dict plus a constructor, and no TorchScript or ``torch.export`` file:

- RobustBench's Model Zoo holds exactly that: a constructor in ``robustbench/model_zoo/<dataset>.py`` (an
  architecture in ``model_zoo/architectures/`` where it is not a standard one) plus a checkpoint its loader
  reads with ``torch.load`` into ``load_state_dict`` (RobustBench README, "Adding a new model" > "Model
  definition" / "Model checkpoint", github.com/RobustBench/robustbench at 78fcc9e). Its ``WideResNet``
  is not the authors' layout (theirs has conv biases, SiLU and the stride on conv2: ``train/models/wrn.py``),
  so the architecture has to travel with the weights: ``model.py`` is ``wrn.py``'s source, copied. A
  ``torchvision:`` / ``timm:`` model's ``model.py`` calls that library's constructor instead (it needs the
  library, not fastnst).
- ``robustbench.eval.benchmark`` calls ``model.training``, ``model.to(device)`` and, for the Lp threat
  models, gradients through the model: a plain ``nn.Module`` has all of them; a ``torch.export`` program's
  module refuses ``eval()``, and TorchScript (``torch.jit.trace/save/load``) warns as deprecated in the
  PyTorch this project pins (2.14).
- A state dict loads with ``weights_only=True``: no pickled code runs on the user's machine.

The weights are the SWA model's when the run has one (the recipe reports the SWA model: the authors'
``experiments/train.py:402-410`` evaluate ``swa_model`` after ``update_bn``), else the plain model's:
``--which auto``; ``--which model`` / ``swa_model`` choose. The card's and the JSON's numbers are read
from the run's ``summary.json`` by ``read_scores`` alone (``CARD_SCORES``: one line per score).
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import inspect
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fastnst.atomic import atomic_write, save_atomic
from fastnst.cache_format import sha256_file
from fastnst.cli import UsageError, add_debug_flag, program_name, run_cli
from fastnst.train.checkpoint import load_checkpoint
from fastnst.train.config import DEFAULTS, PRESET_NAMES, load_preset
from fastnst.train.data import dataset_info
from fastnst.train.models import model_from_config, wrn
from fastnst.train.models.external import constructor_source, split_name

MODEL_FILE, WEIGHTS_FILE, ROBUSTBENCH_FILE, CARD_FILE = "model.py", "weights.pt", "robustbench.json", "README.md"
EXPORT_FILES = (MODEL_FILE, WEIGHTS_FILE, ROBUSTBENCH_FILE, CARD_FILE)
WHICH = ("auto", "swa_model", "model")
TO_FILL = "FILL IN"  # the start of every JSON value only a person can give
NOT_MEASURED = "not measured"
# RobustBench's data sets (robustbench/model_zoo/enums.py:4-7, BenchmarkDataset at 78fcc9e).
ROBUSTBENCH_DATASETS = ("cifar10", "cifar100", "imagenet")


# ----------------------------------------------------------------------------- the scores, read in one place

@dataclass(frozen=True)
class Score:
    """One row of the card: where train.run's summary.json holds it, under ``robustness.<model|swa_model>``."""

    label: str
    path: tuple[str, ...]
    percent: bool = True
    source: str = ""  # where it comes from, when the summary entry does not say


CLEAN, C15 = "clean", "C-15 (Acc_C-original-15)"
CARD_SCORES = (
    Score(CLEAN, ("clean_accuracy",), source="clean test set"),
    Score(C15, ("scores", "Acc_C-original-15")),
    Score("C-19 (Acc_C-all-19)", ("scores", "Acc_C-all-19")),
    Score("C-bar (Acc_C-bar-10)", ("scores", "Acc_C-bar-10")),
    # The authors' Combined_Noise, RMSCE and RMSCE_C (train.evaluate; l1, as their HEAD computes it).
    Score("Lp-noise", ("lp_noise_accuracy",), source="config549's 50 Lp-noise conditions"),
    Score("RMSCE, clean", ("calibration_error", "l1"), percent=False, source="clean test set"),
    Score("RMSCE, corrupted", ("mean_corruption_calibration_error", "l1"), percent=False),
)


END_OF_TRAINING = "whole clean test set, at the end of training"  # the clean score without a corruption evaluation


@dataclass(frozen=True)
class Reading:
    value: float | None  # None: not measured
    source: str


def read_scores(summary: dict | None, which: str) -> dict[str, Reading]:
    """Every ``CARD_SCORES`` entry of ``which`` model from a summary.json (a number, or {"value", "source"})."""
    measured = ((summary or {}).get("robustness") or {}).get(which) or {}
    readings = {}
    for score in CARD_SCORES:
        entry = measured
        for key in score.path:
            entry = entry.get(key) if isinstance(entry, dict) else None
        if isinstance(entry, dict):
            value, source = entry.get("value"), entry.get("source") or score.source
        else:
            value, source = entry, score.source
        readings[score.label] = Reading(None if value is None else float(value), source if value is not None else "")
    if readings[CLEAN].value is None and summary is not None:  # no corruption evaluation: the last epoch's test
        final = summary.get("final") or {}
        accuracy = final.get("swa_test_acc" if which == "swa_model" else "test_acc")
        if accuracy is not None:
            readings[CLEAN] = Reading(100.0 * float(accuracy), END_OF_TRAINING)
    return readings


# ----------------------------------------------------------------------------- the exported module

class NormalizedClassifier(nn.Module):
    """Float NCHW in [0, 1] in (RobustBench's input), logits out: normalizes per channel as the training
    loader did, ``(x - mean) / std``, then runs the classifier."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def normalization(config: dict) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) the training loader normalized with (``train.data.normalize``)."""
    info = dataset_info(config["dataset"])
    return tuple(info.mean), tuple(info.std)


def image_size(config: dict) -> int:
    return int(config.get("image_size") or dataset_info(config["dataset"]).image_size)


@dataclass(frozen=True)
class Architecture:
    name: str         # as RobustBench writes it ("WideResNet-28-4")
    source: str       # Python source defining the classifier's class, plain PyTorch
    constructor: str  # the expression that builds it, in that source's namespace
    needs: str = "torch"  # what model.py imports


def architecture(model: nn.Module, config: dict, checkpoint: Path) -> Architecture:
    """The source that rebuilds ``model`` without fastnst; a one-line error for a model it cannot write."""
    if isinstance(model, wrn.WideResNet):
        arguments = ", ".join(f"{key}={value!r}" for key, value in model.init_kwargs.items())
        return Architecture(f"WideResNet-{model.init_kwargs['depth']}-{model.init_kwargs['widen_factor']}",
                            inspect.getsource(wrn), f"WideResNet({arguments})")
    if split_name(config["model"]) is not None:
        library, name = split_name(config["model"])
        module, call = constructor_source(config["model"], config["num_classes"])
        return Architecture(f"{name} ({library})", f"import torch\nimport {module}\nfrom torch import nn\n", call,
                            f"torch and {library}")
    raise UsageError(f"checkpoint {checkpoint} holds a {config['model']} ({type(model).__name__}); train.export "
                     "writes the WideResNets (wrn*) and torchvision:/timm: models only")


MODEL_PY_TAIL = '''

# ------------------------------------------------------------------- the exported classifier (train.export)

{classifier}

MEAN = {mean!r}  # the training loader's per-channel normalization ({dataset}), on the [0, 1] scale
STD = {std!r}


def build_model() -> nn.Module:
    """The classifier with random weights: float NCHW in [0, 1] ({size} x {size} px) in, {classes} logits out."""
    return NormalizedClassifier({constructor}, MEAN, STD)


def load_model(folder=None, device="cpu") -> nn.Module:
    """``build_model()`` with ``folder``/{weights} (default: this file's folder), in eval mode."""
    from pathlib import Path

    path = Path(folder if folder is not None else Path(__file__).resolve().parent) / "{weights}"
    model = build_model()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval()
'''


def model_source(arch: Architecture, config: dict) -> str:
    mean, std = normalization(config)
    header = ("# Written by `python -m train.export` (fastnst): the classifier's source as it was trained\n"
              f"# (fastnst/train/models), plain PyTorch; it needs {arch.needs} only. Use: load_model(folder).\n")
    return header + arch.source + MODEL_PY_TAIL.format(
        classifier=inspect.getsource(NormalizedClassifier), mean=mean, std=std, dataset=config["dataset"],
        size=image_size(config), classes=config["num_classes"], constructor=arch.constructor, weights=WEIGHTS_FILE)


def load_exported(folder: str | Path, device="cpu") -> nn.Module:
    """The export in ``folder`` as a user loads it: its model.py's ``load_model`` (no fastnst code involved)."""
    folder = Path(folder)
    spec = importlib.util.spec_from_file_location(f"fastnst_export_{uuid.uuid4().hex}", folder / MODEL_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_model(folder, device)


# ----------------------------------------------------------------------------- RobustBench's entry and the card

def _fill(hint: str) -> str:
    return f"{TO_FILL}: {hint}"


def _comparable(config: dict, reading: Reading, official: bool) -> str | None:
    """Why a number is not a leaderboard number (None: it is)."""
    if reading.value is None:
        return "not measured by this run"
    if config["dataset"] not in ROBUSTBENCH_DATASETS:
        return f"RobustBench has no {config['dataset']} leaderboard"
    if config.get("max_eval_images") and reading.source != END_OF_TRAINING:
        return f"measured on a {config['max_eval_images']}-image subset (max_eval_images), not the whole test set"
    if official and reading.source != "official":
        return f"measured on {reading.source or 'unknown'} corruptions, not the official files"
    return None


def robustbench_entry(config: dict, arch: Architecture, scores: dict[str, Reading]) -> dict:
    """The leaderboard JSON, field for field as RobustBench's ``model_info/<dataset>/corruptions/*.json``
    (fields: ``ModelInfo``, robustbench/utils.py:555-573; accuracies as ``str(round(percent, 2))``, as its
    ``update_json`` writes them, :530-539; ``corruptions_acc`` is the mean over the 15 -C corruptions x 5
    severities, robustbench/eval.py:150-185, i.e. Acc_C-original-15; ``eps`` null for corruptions)."""
    numbers = {}
    for field, label, official in (("clean_acc", CLEAN, False), ("corruptions_acc", C15, True)):
        reading = scores[label]
        why_not = _comparable(config, reading, official)
        numbers[field] = str(round(reading.value, 2)) if why_not is None else _fill(
            f"{field}: {why_not}" + ("" if reading.value is None else f" (this run: {reading.value:.2f})"))
    dataset = config["dataset"]
    return {
        "link": _fill("the paper's URL"),
        "name": _fill("the paper's title"),
        "authors": _fill("the paper's authors, comma-separated"),
        "additional_data": _fill("true or false: RobustBench's call; this run trained on "
                                 + ("real and diffusion-generated (synthetic) images" if config.get("synthetic_ratio")
                                    else "the real training set") + (", re-textured with style statistics of "
                                                                      "paintings" if config.get("stylize") else "")),
        "number_forward_passes": 1,
        "dataset": dataset if dataset in ROBUSTBENCH_DATASETS else _fill(f"one of {', '.join(ROBUSTBENCH_DATASETS)} "
                                                                           f"(this model: {dataset})"),
        "venue": _fill("e.g. 'arXiv, Dec 2025'"),
        "architecture": arch.name,
        "eps": None,
        "clean_acc": numbers["clean_acc"],
        "reported": _fill("the corruption accuracy the paper reports for this model, in percent"),
        "corruptions_acc": numbers["corruptions_acc"],
    }


# Options that say where things are or how the run was watched, not what was trained.
NOT_RECIPE = {"dataset", "data_root", "synthetic", "download", "on_bad_image", "styles", "vgg", "decoder",
              "stylize_cache", "out", "resume", "overwrite", "device", "seed", "log_every", "eval_every",
              "evaluate_corruptions", "corruption_source", "max_eval_images", "compile"}


def recipe_overrides(config: dict) -> tuple[str, dict[str, tuple]]:
    """The preset the run started from and the recipe values it changed: {key: (run's, preset's)}."""
    dataset = config["dataset"]
    if dataset not in PRESET_NAMES:
        return "none (built-in defaults)", {}
    base = {**DEFAULTS, **load_preset(dataset)}
    changed = {key: (config[key], base[key]) for key in base
               if key not in NOT_RECIPE and key in config and config[key] != base[key]}
    return f"{dataset} (train/presets/{dataset}.yaml)", changed


def stylization_mode(config: dict) -> str:
    if not config.get("stylize"):
        return "off (no style transfer)"
    if config.get("stylize_cache"):
        return f"offline cache (train.stylize_cache: {', '.join(map(str, config['stylize_cache']))})"
    if config.get("style_resolution") == "native":
        return "on the fly, at the image's own size (--style-resolution native)"
    resolution = int(config["style_resolution"])
    return f"on the fly, at {resolution} px" + (" (the authors')" if resolution == 224 else "")


def stylizer_weights(summary: dict | None, config: dict) -> str:
    if not config.get("stylize"):
        return "none (no style transfer)"
    random = (summary or {}).get("random_weights")
    if random is None:
        return NOT_MEASURED + " (no summary.json)"
    names = [name for name, is_random in random.items() if is_random]
    if names:
        return f"RANDOM {' and '.join(names)} (not the paper's AdaIN style transfer)"
    if config.get("stylize_cache"):
        return "trained (public) AdaIN weights, as recorded by the cache"
    return f"trained (public) AdaIN weights: {Path(str(config.get('vgg'))).name}, {Path(str(config.get('decoder'))).name}"


def _value(reading: Reading, score: Score) -> str:
    if reading.value is None:
        return NOT_MEASURED
    return f"{reading.value:.2f} %" if score.percent else f"{reading.value:.4f}"


def _source(reading: Reading) -> str:
    return {"official": "official -C files", "generated": "GENERATED -C (train.corruptions), not the official files",
            "mixed": "MIXED official and generated -C"}.get(reading.source, reading.source)


def model_card(config: dict, arch: Architecture, which: str, scores: dict[str, Reading], summary_path: Path | None,
               summary: dict | None, checkpoint: Path, weights_sha256: str, entry: dict) -> str:
    preset, changed = recipe_overrides(config)
    overrides = "; ".join(f"`{key}` {run!r} (preset {base!r})" for key, run, base in
                          ((key, *values) for key, values in changed.items())) or "none"
    mean, std = normalization(config)
    size = image_size(config)
    to_fill = [key for key, value in entry.items() if isinstance(value, str) and value.startswith(TO_FILL)]
    rows = "\n".join(f"| {score.label} | {_value(scores[score.label], score)} | {_source(scores[score.label]) or '-'} |"
                     for score in CARD_SCORES)
    subset = (f" The corruption evaluation (and its clean score) used a seeded {config['max_eval_images']}-image "
              "subset of the test set (`max_eval_images`)." if config.get("max_eval_images") else "")
    scores_from = f"`{summary_path}`" if summary is not None else f"no summary.json found ({NOT_MEASURED})"
    demo = ("\n**The built-in demo**: generated data and random-weight style transfer. These numbers show the pipeline "
            "works, not what the paper reports.\n" if config["dataset"] == "demo" else "")
    return f"""# {arch.name} on {config['dataset']}, trained with fastnst

Stylized synthetic augmentation (arXiv 2512.15675) as implemented by fastnst; exported by `python -m train.export`
from `{checkpoint}` on {datetime.date.today().isoformat()}.
{demo}
## Use

```python
import sys; sys.path.insert(0, "EXPORT_DIR")       # this folder
from model import load_model                       # plain PyTorch: {arch.needs} only, no fastnst
model = load_model("EXPORT_DIR", device="cuda")    # eval mode
logits = model(images)                             # float NCHW in [0, 1], {size} x {size} px
```

With RobustBench: `robustbench.utils.clean_accuracy(model, x, y)`, or `robustbench.eval.benchmark(model,
dataset=..., threat_model="corruptions", ...)`. For its Model Zoo, `model.py` is the architecture file and
`{WEIGHTS_FILE}` the checkpoint; `{ROBUSTBENCH_FILE}` is the leaderboard entry
(`model_info/<dataset>/corruptions/<Name><Year><FirstWordOfTheTitle>.json`), in which these fields need a
person: {', '.join(f'`{key}`' for key in to_fill) or 'none'} (values starting with "{TO_FILL}").

## Model

| | |
| --- | --- |
| data set | {config['dataset']} ({config['num_classes']} classes, {size} x {size} px) |
| architecture | {arch.name} (`{config['model']}`): `{arch.constructor}` |
| weights | `{which}`{' (the SWA model: what the recipe reports)' if which == 'swa_model' else ''}; `{WEIGHTS_FILE}` sha256 `{weights_sha256}` |
| input | float NCHW in [0, 1]; normalization inside: mean {mean}, std {std} (the training loader's) |

## Training

| | |
| --- | --- |
| recipe | preset {preset}; overrides: {overrides} |
| epochs, batch | {config['epochs']}, {config['batch_size']} |
| synthetic ratio | {config.get('synthetic_ratio')} |
| stylization | {stylization_mode(config)} |
| stylizer weights | {stylizer_weights(summary, config)} |
| seed | {config['seed']} (weights, augmentation draws, generated corruptions) |

## Scores

From {scores_from}, for `{which}`; accuracies in percent.{subset}

| score | value | source |
| --- | --- | --- |
{rows}
"""


# ----------------------------------------------------------------------------- the command

def choose_weights(state: dict, which: str, checkpoint: Path) -> str:
    if which == "auto":
        return "swa_model" if state.get("swa_model") is not None else "model"
    if state.get(which) is None:
        raise UsageError(f"--which {which}: checkpoint {checkpoint} holds no {which} (the run trained without SWA); "
                         "pass --which model")
    return which


def read_summary(path: Path, state: dict) -> dict | None:
    """The run's summary.json, checked to be this checkpoint's (None when there is none)."""
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except ValueError as error:
        raise UsageError(f"--summary {path} is not JSON ({error})") from None
    epoch = (summary.get("final") or {}).get("epoch")
    if epoch is not None and epoch != state.get("epoch"):
        raise UsageError(f"--summary {path} is of another run (epoch {epoch}, the checkpoint's {state.get('epoch')}); "
                         "pass the summary.json written with this checkpoint")
    return summary


def export(checkpoint: str | Path, out: str | Path, *, which: str = "auto", summary_path: str | Path | None = None,
           overwrite: bool = False) -> dict:
    """Write the export of ``checkpoint`` into ``out``; returns {file role: path}."""
    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; pass a folder")
    found = [name for name in EXPORT_FILES if (out / name).exists()]
    if found and not overwrite:
        raise UsageError(f"--out {out} already holds an export ({', '.join(found)}); pass --overwrite to replace it, "
                         "or another --out")
    state = load_checkpoint(checkpoint)
    config = state["config"]
    if not state.get("finished"):
        raise UsageError(f"checkpoint {checkpoint} is of an unfinished run (epoch {state.get('epoch')} of "
                         f"{config.get('epochs')}); continue it with python -m train.run --resume (same options, "
                         f"--out {checkpoint.parent}) and export the finished run")
    which = choose_weights(state, which, checkpoint)
    try:
        model = model_from_config(config)
    except ValueError as error:  # a model name this fastnst does not know
        raise UsageError(f"checkpoint {checkpoint}: {error}") from None
    model.load_state_dict(state[which])
    arch = architecture(model, config, checkpoint)
    exported = NormalizedClassifier(model, *normalization(config)).eval()

    summary_path = Path(summary_path) if summary_path else checkpoint.parent / "summary.json"
    summary = read_summary(summary_path, state)
    scores = read_scores(summary, which)
    entry = robustbench_entry(config, arch, scores)

    out.mkdir(parents=True, exist_ok=True)
    paths = {"model": out / MODEL_FILE, "weights": out / WEIGHTS_FILE, "robustbench": out / ROBUSTBENCH_FILE,
             "card": out / CARD_FILE}
    with atomic_write(paths["model"], "w") as f:
        f.write(model_source(arch, config))
    save_atomic(exported.state_dict(), paths["weights"])
    _check_reload(exported, out, config)
    with atomic_write(paths["robustbench"], "w") as f:
        f.write(json.dumps(entry, indent=2) + "\n")
    with atomic_write(paths["card"], "w") as f:
        f.write(model_card(config, arch, which, scores, summary_path, summary, checkpoint,
                           sha256_file(paths["weights"]), entry))
    return paths


@torch.inference_mode()
def _check_reload(exported: nn.Module, out: Path, config: dict) -> None:
    """The written files must rebuild the very model (a mismatch here is a bug of this module)."""
    size = image_size(config)
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    if not torch.equal(load_exported(out)(images), exported(images)):
        raise RuntimeError(f"{out / MODEL_FILE} with {out / WEIGHTS_FILE} does not reproduce the exported model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=program_name("train.export"), description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="checkpoint.pt of a finished train.run")
    parser.add_argument("--out", type=Path, help="folder for the export (default: export/ beside the checkpoint)")
    parser.add_argument("--which", choices=WHICH, default="auto",
                        help="the weights exported: auto (default) = the SWA model when the run has one, as the "
                             "recipe reports it, else the model")
    parser.add_argument("--summary", type=Path, help="the run's summary.json (default: beside the checkpoint); "
                        "the card's and the JSON's numbers come from it")
    parser.add_argument("--overwrite", action="store_true", help="replace an export already in --out")
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    out = args.out or args.checkpoint.parent / "export"
    paths = export(args.checkpoint, out, which=args.which, summary_path=args.summary, overwrite=args.overwrite)
    print(f"wrote {', '.join(str(path) for path in paths.values())}")
    entry = json.loads(paths["robustbench"].read_text())
    to_fill = [key for key, value in entry.items() if isinstance(value, str) and value.startswith(TO_FILL)]
    if to_fill:
        print(f"{paths['robustbench'].name}: a person fills {', '.join(to_fill)} (values starting with {TO_FILL!r})")
    return paths


def cli(argv: list[str] | None = None) -> int:
    """``python -m train.export`` / ``fastnst-export``: expected errors as one line, exit 2."""
    return run_cli(main, argv, prog=program_name("train.export"))


if __name__ == "__main__":
    sys.exit(cli())
