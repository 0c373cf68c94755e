"""The presets equal the authors' configs: a transcription of their config files, mapped to our keys.

The dicts below were copied from github.com/Georgsiedel/model-based-data-augmentation at commit 07e47c1
(``experiments/configs/config549.py``, ``config550.py``, ``config551.py``; the first experiments' configs from
their copies under ``results/CIFAR10/WideResNet_28_4/``; the paper's CIFAR-10 config from commit ba12d46), so
that a typo in a YAML preset and a typo here would have to coincide to pass.
"""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
import yaml
from PIL import Image

from fastnst.train.config import DEFAULTS, PRESET_NAMES, parse_config
from fastnst.train.trainer import lr_per_epoch, swa_start_epoch

# The keys all three HEAD configs share (config549.py:11-50; config550.py one line lower from :37 on).
_SHARED = dict(
    noise_sparsity=1.0,                                                      # :11
    noise_patch_scale={'lower': 0.2, 'upper': 0.7},                          # :12
    batchsize=256,                                                           # :16
    minibatchsize=8,                                                         # :17
    lrschedule='CosineAnnealingWarmRestarts',                                # :24
    learningrate=0.1,                                                        # :25
    epochs=600,                                                              # :26
    lrparams={'T_0': 40, 'T_mult': 2},                                       # :27
    optimizerparams={'momentum': 0.9, 'weight_decay': 1e-4, 'nesterov': True},  # :32
    modeltype='WideResNet_28_4',                                             # :34
    modelparams={'dropout_rate': 0.2, 'activation_function': 'silu'},        # :35
    lossparams={'label_smoothing': 0.1},                                     # :40
    mixup={'alpha': 0.2, 'p': 0.0},                                          # :45
    cutmix={'alpha': 1.0, 'p': 0.0},                                         # :46
    manifold={'apply': True, 'noise_factor': 3},                             # :47
    RandomEraseProbability=0.3,                                              # :49
    swa={'apply': True, 'start_factor': 0.9, 'lr_factor': 0.2},              # :50
)


def _noise(linf, l05, l1, l2, impulse):
    return [
        {'noise_type': 'uniform-linf', 'epsilon': linf, 'sphere': False, 'distribution': 'uniform'},
        {'noise_type': 'uniform-l0.5', 'epsilon': l05, 'sphere': False, 'distribution': 'uniform'},
        {'noise_type': 'uniform-l1', 'epsilon': l1, 'sphere': False, 'distribution': 'uniform'},
        {'noise_type': 'uniform-l2', 'epsilon': l2, 'sphere': False, 'distribution': 'uniform'},
        {'noise_type': 'uniform-l0-impulse', 'epsilon': impulse, 'sphere': False, 'distribution': 'uniform'},
    ]


CIFAR_NOISE = _noise(0.1, 400000.0, 200.0, 5.0, 0.2)                      # config549.py:5-9, config550.py:5-9
NO_NOISE = [{'noise_type': 'standard', 'epsilon': 0.0, 'sphere': False, 'distribution': 'beta2-5'}]  # config31.py:4

AUTHORS = {
    "cifar10": dict(_SHARED, dataset='CIFAR10', generated_ratio=0.5, train_corruptions=CIFAR_NOISE,
                    train_aug_strat_orig='TAandStyle10alpha10', train_aug_strat_gen='TAorStyle50alpha01-10'),
    "cifar100": dict(_SHARED, dataset='CIFAR100', generated_ratio=0.5, train_corruptions=CIFAR_NOISE,
                     train_aug_strat_orig='TAandStyle20alpha10', train_aug_strat_gen='TAorStyle40alpha01-10'),
    "tinyimagenet": dict(_SHARED, dataset='TinyImageNet', generated_ratio=0.6,
                         train_corruptions=_noise(0.2, 12000000.0, 1500.0, 20.0, 0.4),  # config551.py:5-9
                         train_aug_strat_orig='TAandStyle20alpha10', train_aug_strat_gen='TAandStyle20alpha01-10'),
}
_FIRST_EXPERIMENTS = dict(epochs=300, lrparams={'T_0': 20, 'T_mult': 2}, train_corruptions=NO_NOISE,
                          manifold={'apply': False, 'noise_factor': 3}, RandomEraseProbability=0.0)
OVERLAYS = {
    # git show ba12d46:experiments/configs/config549.py, lines 19, 37, 38, 47
    "cifar10_paper.yaml": dict(AUTHORS["cifar10"], generated_ratio=0.2, train_aug_strat_orig='TAandStyle30alpha10',
                               train_aug_strat_gen='TAorStyle20alpha01-10', manifold={'apply': False, 'noise_factor': 3}),
    # results/CIFAR10/WideResNet_28_4/config31.py:4, 19, 26-27, 38-39, 46-49
    "cifar10_exp1_synthetic_ta.yaml": dict(AUTHORS["cifar10"], **_FIRST_EXPERIMENTS,
                                           train_aug_strat_orig='TrivialAugmentWide',
                                           train_aug_strat_gen='TrivialAugmentWide'),
    # results/CIFAR10/WideResNet_28_4/config557.py:4, 19, 26-27, 37-38, 45-49
    "cifar10_exp2_style.yaml": dict(AUTHORS["cifar10"], **_FIRST_EXPERIMENTS, train_aug_strat_orig='TrivialAugmentWide',
                                    train_aug_strat_gen='TAorStyle50alpha01-10'),
    # results/CIFAR10/WideResNet_28_4/config524.py:4, 19, 26-27, 37-38, 45-49
    "cifar10_exp3_mixup.yaml": dict(AUTHORS["cifar10"], **_FIRST_EXPERIMENTS, mixup={'alpha': 1.0, 'p': 0.5},
                                    cutmix={'alpha': 1.0, 'p': 0.5}),
}

# experiments/custom_transforms.py: strategy -> (stylized_ratio, NST probability, alpha_min, alpha_max,
# TrivialAugmentWide after stylization).
STRATEGIES = {
    "TAorStyle50alpha01-10": (0.5, 0.95, 0.1, 1.0, False),   # :353-354
    "TAorStyle40alpha01-10": (0.4, 0.95, 0.1, 1.0, False),   # :355-356
    "TAorStyle20alpha01-10": (0.2, 0.95, 0.1, 1.0, False),   # :359-360
    "TAandStyle20alpha01-10": (0.2, 0.95, 0.1, 1.0, True),   # :393-394
    "TAandStyle10alpha10": (0.1, 0.95, 1.0, 1.0, True),      # :411-412
    "TAandStyle20alpha10": (0.2, 0.95, 1.0, 1.0, True),      # :413-414
    "TAandStyle30alpha10": (0.3, 0.95, 1.0, 1.0, True),      # :415-416
    "TrivialAugmentWide": (0.0, None, None, None, True),     # :447-448
}
CROP_PADDING = {"CIFAR10": 4, "CIFAR100": 4, "TinyImageNet": 8}  # experiments/data.py:162-163, 203-205


def expected_values(authors: dict) -> dict:
    """Our option values for one of the authors' configs."""
    orig, gen = STRATEGIES[authors["train_aug_strat_orig"]], STRATEGIES[authors["train_aug_strat_gen"]]
    noise = {c["noise_type"]: c["epsilon"] for c in authors["train_corruptions"] if c["noise_type"] != "standard"}
    assert all(not c["sphere"] and c["distribution"] == "uniform" for c in authors["train_corruptions"]
               if c["noise_type"] != "standard")  # the only kind train.noise implements
    probabilities = {p for p in (orig[1], gen[1]) if p is not None}
    expected = {
        "model": "wrn28_4",
        "activation": authors["modelparams"]["activation_function"],
        "dropout": authors["modelparams"]["dropout_rate"],
        "epochs": authors["epochs"],
        "batch_size": authors["batchsize"],
        "lr": authors["learningrate"],
        "momentum": authors["optimizerparams"]["momentum"],
        "nesterov": authors["optimizerparams"]["nesterov"],
        "weight_decay": authors["optimizerparams"]["weight_decay"],
        "label_smoothing": authors["lossparams"]["label_smoothing"],
        "lr_cycle_epochs": authors["lrparams"]["T_0"],
        "lr_cycle_mult": authors["lrparams"]["T_mult"],
        "grad_clip_norm": 1.0,                 # experiments/train.py:198
        "swa": authors["swa"]["apply"],
        "swa_start": authors["swa"]["start_factor"],
        "swa_lr_factor": authors["swa"]["lr_factor"],
        "swa_anneal_epochs": 5,                # experiments/train.py:323
        "synthetic_ratio": authors["generated_ratio"],
        "trivial_augment": True,
        "random_erasing_prob": authors["RandomEraseProbability"],
        "random_erasing_scale": [0.02, 0.4],   # experiments/data.py:174
        "crop_padding": CROP_PADDING[authors["dataset"]],
        "stylize": orig[0] > 0 or gen[0] > 0,
        "input_noise": noise,
        "noise_group_size": authors["minibatchsize"],
        "noise_sparsity": authors["noise_sparsity"],
        "noise_patch_scale": [authors["noise_patch_scale"]["lower"], authors["noise_patch_scale"]["upper"]],
        "manifold_noise": authors["manifold"]["apply"],
        "mixup_alpha": authors["mixup"]["alpha"], "mixup_p": authors["mixup"]["p"],
        "cutmix_alpha": authors["cutmix"]["alpha"], "cutmix_p": authors["cutmix"]["p"],
    }
    if expected["stylize"]:
        assert len(probabilities) == 1
        expected.update({
            "prob_real": orig[0], "prob_synthetic": gen[0], "nst_probability": probabilities.pop(),
            "style_resolution": 224,           # experiments/style_transfer.py:77
        })
        for source, strategy in (("real", orig), ("synthetic", gen)):
            if strategy[0] > 0:
                expected[f"alpha_{source}"] = [strategy[2], strategy[3]]
                expected[f"ta_or_style_{source}"] = not strategy[4]
    return expected


PRESETS_DIR = Path(__file__).resolve().parents[1] / "train" / "presets"


def _resolved(argv):
    # Every input named, so that nothing is looked up under a data root.
    return parse_config(argv + ["--synthetic", "edm.npz", "--styles", "s.pt", "--vgg", "v.pth", "--decoder", "d.pth"])


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "tinyimagenet"])
def test_preset_equals_the_authors_config(dataset):
    config = _resolved(["--dataset", dataset])
    expected = expected_values(AUTHORS[dataset])
    assert {key: config[key] for key in expected} == expected


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_equals_the_authors_config(overlay):
    config = _resolved(["--config", str(PRESETS_DIR / overlay)])
    expected = expected_values(OVERLAYS[overlay])
    assert {key: config[key] for key in expected} == expected
    assert config["dataset"] == "cifar10"


_CITATION = re.compile(r"(?:ba12d46:)?[\w./-]+\.(?:py|csv|txt):\d+")


def _value_lines(text: str):
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            yield line


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "tinyimagenet", "imagefolder"] + sorted(OVERLAYS))
def test_every_value_cites_its_source_or_says_why_not(name):
    text = resources.files("fastnst.train").joinpath("presets", name if name.endswith(".yaml") else f"{name}.yaml").read_text()
    for line in _value_lines(text):
        if line.startswith("dataset:") and not line.partition("#")[2]:
            continue  # the data set is the preset's name
        value, _, comment = line.partition("#")
        assert comment, f"{name}: no source for {value.strip()!r}"
        tagged = re.match(r"\s*\[(deviation|fastnst|ours|run)\]", comment)
        assert _CITATION.search(comment) or tagged, f"{name}: {line.strip()!r} cites no path:line and no tag"
        if tagged and tagged.group(1) != "run":
            assert len(comment.split()) >= 6, f"{name}: {line.strip()!r} gives no reason"


@pytest.mark.parametrize("dataset, config_number", [("cifar10", 549), ("cifar100", 550), ("tinyimagenet", 551),
                                                     ("imagefolder", 551)])  # an image folder's: TinyImageNet's where it carries
def test_a_preset_cites_only_its_own_config(dataset, config_number):
    text = resources.files("fastnst.train").joinpath("presets", f"{dataset}.yaml").read_text()
    cited = {int(n) for n in re.findall(r"configs/config(\d+)\.py", "\n".join(_value_lines(text)))}
    assert cited == {config_number}


def test_overlays_only_change_what_they_list():
    base = _resolved(["--dataset", "cifar10"])
    for overlay in OVERLAYS:
        listed = set(yaml.safe_load(resources.files("fastnst.train").joinpath("presets", overlay).read_text()))
        config = _resolved(["--config", str(PRESETS_DIR / overlay)])
        changed = {key for key in DEFAULTS if config[key] != base[key]}
        assert changed <= listed, overlay


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_trains_a_schedule_that_ends_with_swa(name, tmp_path):
    # an image folder's classes come from its folder: one class of one image is enough here
    folder = tmp_path / "images" / "train" / "only"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    config = _resolved(["--dataset", name] + (["--data-root", str(tmp_path / "images")] if name == "imagefolder" else []))
    rates = lr_per_epoch(config)
    assert len(rates) == config["epochs"] and max(rates) == config["lr"]
    assert rates[-1] == pytest.approx(config["lr"] * config["swa_lr_factor"])
    assert 0 < swa_start_epoch(config) < config["epochs"]


@pytest.mark.parametrize("values, message", [
    ({"grad_clip_norm": -1.0}, "--grad-clip-norm must be positive or None"),
    ({"lr_cycle_epochs": 0}, "--lr-cycle-epochs must be a positive integer"),
    ({"input_noise": {"uniform-l0-salt-pepper": 0.1}}, "unknown input noise type 'uniform-l0-salt-pepper'"),
    ({"input_noise": {"uniform-l2": "5e0"}}, "--input-noise must be a mapping of noise type to a positive eps_max"),
    ({"noise_patch_scale": [0.0, 0.7]}, "--noise-patch-scale must be LOW HIGH"),
    ({"activation": "gelu"}, "--activation must be one of relu, silu"),
])
def test_bad_recipe_values_name_the_option(tmp_path, values, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"dataset": "demo", **values}))
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_config(["--config", str(path)])
