"""Presets, flag overrides and the resolved configuration written next to a run."""
from __future__ import annotations

import json

import pytest
import yaml

from fastnst.train.config import DEFAULTS, PRESET_NAMES, build_parser, load_preset, parse_config, save_config

# A real data set with stylization needs these (found under --data-root after train.data.download, or given).
STYLE_FILES = ["--styles", "styles.pt", "--vgg", "vgg.pth", "--decoder", "decoder.pth"]


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_loads_and_names_its_dataset(name):
    preset = load_preset(name)
    assert preset["dataset"] == name
    assert set(preset) <= set(DEFAULTS)


def test_no_arguments_is_the_demo():
    config = parse_config([])
    assert config["dataset"] == "demo" and config["model"] == load_preset("demo")["model"]
    assert config["num_classes"] == 10 and config["image_size"] == 32


def test_flags_override_the_preset_and_the_preset_overrides_defaults():
    preset = load_preset("cifar100")
    config = parse_config(["--dataset", "cifar100", "--synthetic", "edm.npz", "--epochs", "7", "--lr", "0.3",
                           "--no-swa", "--alpha-synthetic", "0.2", "0.5", "--batch-size", "64", *STYLE_FILES])
    assert (config["epochs"], config["lr"], config["swa"], config["batch_size"]) == (7, 0.3, False, 64)
    assert config["alpha_synthetic"] == [0.2, 0.5]
    assert config["weight_decay"] == preset["weight_decay"] != DEFAULTS["weight_decay"]
    assert config["num_classes"] == 100
    assert config["prob_real"] == preset["prob_real"]


def test_config_file_sits_between_preset_and_flags(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"dataset": "demo", "epochs": 11, "lr": 0.02}))
    config = parse_config(["--config", str(path), "--lr", "0.01"])
    assert (config["epochs"], config["lr"]) == (11, 0.01)


def test_unknown_option_in_a_config_file_is_named(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("learning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"typo.yaml has unknown option\(s\) learning_rate"):
        parse_config(["--config", str(path)])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "--epochs must be a positive integer"),
        (["--prob-real", "1.5"], "--prob-real must be a probability"),
        (["--alpha-real", "0.9", "0.1"], "--alpha-real must be LOW HIGH"),
        (["--swa-start", "1.0"], "--swa-start must be a fraction"),
        (["--dataset", "cifar10"], "needs its data set, --synthetic FILE"),
    ],
)
def test_bad_values_name_the_flag(argv, message):
    with pytest.raises(ValueError, match=message):
        parse_config(argv)


def test_baseline_switches(tmp_path):
    config = parse_config(["--dataset", "cifar10", "--synthetic-ratio", "0", "--no-stylize", "--no-trivial-augment"])
    assert (config["stylize"], config["synthetic_ratio"], config["trivial_augment"]) == (False, 0, False)


def test_flags_are_grouped_and_kebab_case():
    parser = build_parser()
    groups = {group.title: [a.option_strings[0] for a in group._group_actions] for group in parser._action_groups}
    for title in ("Dataset", "Model", "Optimizer", "Augmentation", "Stylization", "Run"):
        assert groups[title], title
    assert "--random-erasing-prob" in groups["Augmentation"] and "--prob-synthetic" in groups["Stylization"]
    assert all("_" not in flag for flags in groups.values() for flag in flags)


def test_resolved_config_is_saved_as_yaml_and_json(tmp_path):
    config = parse_config(["--epochs", "2"])
    yaml_path, json_path = save_config(config, tmp_path / "run")
    assert yaml.safe_load(yaml_path.read_text()) == config
    assert json.loads(json_path.read_text()) == config


def test_style_resolution_defaults_to_the_papers_and_native_is_a_choice():
    from fastnst.train.config import stylizer_resolution

    paper = parse_config(["--dataset", "cifar10", "--synthetic", "edm.npz", *STYLE_FILES])
    assert stylizer_resolution(paper) == 224
    assert stylizer_resolution(parse_config([])) is None  # the CPU demo runs native
    fast = parse_config(["--dataset", "cifar10", "--synthetic", "edm.npz", "--style-resolution", "native", *STYLE_FILES])
    assert stylizer_resolution(fast) is None
    assert stylizer_resolution(parse_config(["--style-resolution", "128"])) == 128
    for bad in ("huge", "4"):
        with pytest.raises(SystemExit):
            parse_config(["--style-resolution", bad])


# ----------------------------------------------------------------------------- --help and --print-config

def _preset_from_yaml(name: str) -> dict:
    """The preset as its YAML file says, read here independently of train.config."""
    from pathlib import Path

    return yaml.safe_load((Path(__file__).resolve().parent.parent / "train" / "presets" / f"{name}.yaml").read_text())


def _cell_tokens(value) -> list[str]:
    if value is None:
        return ["-"]
    if isinstance(value, bool):
        return ["yes" if value else "no"]
    if isinstance(value, list):
        return [token for item in value for token in _cell_tokens(item)]
    if isinstance(value, dict):
        return ["(below)"] if value else ["-"]
    return [str(value)]


def test_help_shows_every_presets_values_and_no_misleading_none(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "(default: None)" not in text
    table = text[text.index("defaults per --dataset"):].splitlines()
    rows = {}
    for line in table:
        if line.startswith("  ") and len(line.split()) > 1:
            rows.setdefault(line.split()[0], line.split())  # the table row, not a mapping's line under it
    assert rows["option"] == ["option", *PRESET_NAMES, "built-in"]
    flags = {action.dest for action in parser._actions}
    presets = {name: _preset_from_yaml(name) for name in PRESET_NAMES}
    for key, default in DEFAULTS.items():
        label = "--" + key.replace("_", "-") if key in flags else key + "*"  # *: only in a --config file
        values = [presets[name].get(key, default) for name in PRESET_NAMES] + [default]
        assert rows[label] == [label] + [token for value in values for token in _cell_tokens(value)], label
        for name, value in zip([*PRESET_NAMES, "built-in"], values):
            if isinstance(value, dict) and value:  # a mapping is listed under the table, name=value
                line = next(line for line in table if line.split()[:2] == [label, f"{name}:"])
                assert line.split()[2:] == [f"{item}={eps}" for item, eps in value.items()]
    # The values a user asked about in the issue are there, as the YAML says.
    assert rows["--model"][1] == presets["cifar10"]["model"] == "wrn28_4"
    assert rows["--epochs"][PRESET_NAMES.index("tinyimagenet") + 1] == str(presets["tinyimagenet"]["epochs"])


def test_print_config_names_the_source_of_every_value(tmp_path, capsys):
    from fastnst.train.run import main

    own = tmp_path / "mine.yaml"
    own.write_text(yaml.safe_dump({"lr": 0.02}))
    out = tmp_path / "run"
    assert main(["--print-config", "--dataset", "cifar10", "--synthetic-ratio", "0", "--no-stylize", "--epochs", "3",
                 "--config", str(own), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = {line.split(":")[0].lstrip("# "): line for line in text.splitlines() if ":" in line and "#" in line}
    assert lines["epochs"].startswith("epochs: 3") and lines["epochs"].endswith("# flag")
    assert lines["lr"].startswith("lr: 0.02") and lines["lr"].endswith(f"# file ({own})")
    assert lines["model"].startswith("model: wrn28_4") and "# preset (train/presets/cifar10.yaml)" in lines["model"]
    assert lines["momentum"].endswith("# preset (train/presets/cifar10.yaml)")
    assert lines["seed"].startswith("seed: 0") and lines["seed"].endswith("# default")
    assert lines["data_root"].startswith("data_root: data") and "default (follows" in lines["data_root"]
    assert lines["num_classes"].startswith("# num_classes: 10")  # derived: commented out, not an option
    assert not out.exists()  # printing the configuration starts nothing

    # The output (derived lines are comments) is itself a valid --config file giving the same values.
    saved = tmp_path / "printed.yaml"
    saved.write_text(text)
    assert parse_config(["--config", str(saved)]) == parse_config(["--dataset", "cifar10", "--synthetic-ratio", "0",
                                                                   "--no-stylize", "--epochs", "3", "--config", str(own),
                                                                   "--out", str(out), "--data-root", "data"])


def test_print_config_before_the_download_names_what_is_missing(tmp_path, capsys):
    """--print-config works before anything is fetched: inputs not under --data-root are empty, and
    their lines say which download command fetches them; a run with the same flags refuses to start."""
    from fastnst.train.run import cli, main

    empty = tmp_path / "data"
    empty.mkdir()
    assert main(["--print-config", "--dataset", "cifar10", "--data-root", str(empty)]) == 0
    lines = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines() if ":" in line}
    for key, item in (("synthetic", "edm-cifar10"), ("styles", "style-feats"), ("vgg", "adain-vgg"),
                      ("decoder", "adain-decoder")):
        assert lines[key].startswith(f"{key}: null") and "MISSING" in lines[key]
        assert f"python -m train.data.download {item} --data-root {empty}" in lines[key]
    # the data set too (its name is there; its files are not), with the command that fetches everything
    assert lines["dataset"].startswith("dataset: cifar10") and "MISSING" in lines["dataset"]
    assert f"python -m train.data.download --for cifar10 --data-root {empty}" in lines["dataset"]
    assert cli(["--dataset", "cifar10", "--data-root", str(empty), "--out", str(tmp_path / "run")]) == 2
    assert "needs its data set, --synthetic FILE and --styles, --vgg, --decoder" in capsys.readouterr().err


def test_everything_missing_is_named_at_once(tmp_path, capsys):
    """TinyImageNet with nothing downloaded: the data set and the four other inputs in one error, with the one
    command that fetches them all (the data set was once named only on the next try)."""
    from fastnst.train.run import cli

    assert cli(["--dataset", "tinyimagenet", "--data-root", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    for name in ("tiny-imagenet-200", "synthetic/tinyimagenet_edm_1m.npz", "style_feats_adain_1000.npy",
                 "adain/vgg_normalised.pth", "adain/decoder.pth"):
        assert name in line
    assert f"Fetch them all with `python -m train.data.download --for tinyimagenet --data-root {tmp_path}`" in line


def test_data_path_options_default_to_the_authors_and_are_checked():
    from fastnst.train.config import Augmentation

    assert DEFAULTS["random_erasing_scale"] == [0.02, 0.4] and DEFAULTS["nst_probability"] == 0.95
    assert DEFAULTS["crop_padding"] == "auto"  # the data set's own: 4 px at 32 px, 8 px at 64 px
    assert (Augmentation().padding_for(32), Augmentation().padding_for(64)) == (4, 8)
    assert (DEFAULTS["ta_or_style_real"], DEFAULTS["ta_or_style_synthetic"]) == (False, False)
    config = parse_config(["--crop-padding", "6", "--ta-or-style-synthetic", "--random-erasing-scale", "0.1", "0.2",
                           "--nst-probability", "1"])
    augmentation = Augmentation.from_config(config)  # what the loader gets
    assert augmentation.padding_for(32) == 6 and augmentation.random_erasing_scale == (0.1, 0.2)
    assert config["ta_or_style_synthetic"] and not config["ta_or_style_real"]
    assert config["random_erasing_scale"] == [0.1, 0.2] and config["nst_probability"] == 1.0
    for argv, message in ((["--crop-padding", "32"], "--crop-padding must be 'auto' or pixels"),
                          (["--random-erasing-scale", "0.5", "0.1"], "--random-erasing-scale must be LOW HIGH"),
                          (["--nst-probability", "2"], "--nst-probability must be a probability")):
        with pytest.raises(ValueError, match=message):
            parse_config(argv)
