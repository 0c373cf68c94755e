"""Each option of train.run is defined once (train.config): its flag, default, check and presets agree."""
from __future__ import annotations

import inspect
import re
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest
import yaml

from fastnst.train.config import (DEFAULTS, DERIVED_KEYS, GROUPS, OPTIONS, PRESET_NAMES, Augmentation, ConfigError,
                                  build_parser, flag_name, load_preset, load_yaml, parse_config)

OVERLAYS = sorted(path for path in (Path(__file__).resolve().parents[1] / "train" / "presets").glob("*.yaml")
                  if path.stem not in PRESET_NAMES)


def _value_sets() -> dict[str, dict]:
    """The built-in defaults, and every preset and overlay over them, as a resolved configuration holds them."""
    sets = {"built-in": DEFAULTS, **{name: {**DEFAULTS, **load_preset(name)} for name in PRESET_NAMES}}
    for path in OVERLAYS:
        overlay = load_yaml(path)
        sets[path.name] = {**DEFAULTS, **load_preset(overlay["dataset"]), **overlay}
    return sets


VALUE_SETS = _value_sets()


def test_each_option_is_defined_once_and_each_flag_is_one():
    names = [item.name for group in GROUPS.values() for item in fields(group)]
    assert len(names) == len(set(names)) == len(OPTIONS) == len(DEFAULTS)
    assert not set(names) & set(DERIVED_KEYS)
    dests = {action.dest for action in build_parser()._actions} - {"help", "config", "print_config", "debug"}
    assert dests == {name for name, item in OPTIONS.items() if item.metadata["flag"] is not None}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_default_and_preset_value_passes_its_check(name):
    for group in GROUPS.values():
        group.from_config(VALUE_SETS[name])  # raises ConfigError naming the flag


def _typed(flag: str, value) -> list[str]:
    """``value`` as a user types it after ``flag``."""
    if isinstance(value, bool):
        return [flag if value else flag.replace("--", "--no-", 1)]
    return [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_flag_takes_the_default_and_preset_values_as_typed(name):
    parser, values = build_parser(), VALUE_SETS[name]
    for group in GROUPS.values():
        for item in fields(group):
            value, flag = values[item.name], item.metadata["flag"]
            if flag is None or value is None or (flag.get("action") == "store_true" and not value):
                continue  # no flag, or none to type for this value
            parsed = getattr(parser.parse_args(_typed(flag_name(item.name), value)), item.name)
            assert parsed == value, item.name
            group.from_config({**values, item.name: parsed})  # of the type its check expects


def test_the_stylizers_library_defaults_are_the_runs_but_nst_probability():
    from fastnst import Stylizer

    library = {name: parameter.default for name, parameter in inspect.signature(Stylizer).parameters.items()}
    for key in ("prob_synthetic", "prob_real", "alpha_synthetic", "alpha_real"):
        assert DEFAULTS[key] == (list(library[key]) if isinstance(library[key], tuple) else library[key]), key
    assert library["resolution"] == DEFAULTS["style_resolution"]
    assert library["nst_probability"] == 1.0 != DEFAULTS["nst_probability"]  # fastnst/stylizer.py says why


@pytest.mark.parametrize("values, message", [
    ({"weight_decay": "5e-4"}, "--weight-decay must be a number, got '5e-4'"),  # PyYAML: no dot, a string
    ({"seed": 1.5}, "--seed must be an integer, got 1.5"),
    ({"swa": 1}, "--swa must be true or false, got 1"),
    ({"log_every": 0}, "--log-every must be a positive integer, got 0"),
    ({"on_bad_image": "ignore"}, "--on-bad-image must be one of skip, stop, got 'ignore'"),
])
def test_a_value_of_another_type_than_the_default_is_refused_naming_the_flag(tmp_path, values, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"dataset": "demo", **values}))
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(["--config", str(path)])


def test_the_loaders_options_are_frozen_and_checked_when_made():
    augmentation = Augmentation(random_erasing_scale=[0.1, 0.2])  # as YAML and the flags give a pair
    assert augmentation.random_erasing_scale == (0.1, 0.2)
    with pytest.raises(FrozenInstanceError):
        augmentation.random_erasing_prob = 1.0
    with pytest.raises(ConfigError, match=re.escape("--random-erasing-prob must be a probability in [0, 1], got 2")):
        Augmentation(random_erasing_prob=2)
    with pytest.raises(ConfigError, match=re.escape("--crop-padding must be 'auto' or pixels in [0, 32), got 32")):
        Augmentation(crop_padding=32).padding_for(32)


@pytest.mark.parametrize("option, command, table", [("eval_amp", "train.evaluate", "EVAL_AMP"),
                                                    ("stylize_precision", "train.stylize_cache", None)])
def test_an_option_other_commands_share_is_their_flag_too(option, command, table):
    """train.evaluate's --eval-amp and train.stylize_cache's --stylize-precision are train.run's option (one
    definition), and its choices are the names of the table they index."""
    import importlib

    from fastnst.stylizer import STYLIZE_PRECISION
    from fastnst.train.config import flag_name

    (item,) = [item for group in GROUPS.values() for item in fields(group) if item.name == option]
    module = importlib.import_module(f"fastnst.{command}")
    (action,) = [action for action in module.build_parser()._actions if flag_name(option) in action.option_strings]
    assert tuple(action.choices) == item.metadata["flag"]["choices"] and action.help == item.metadata["help"]
    names = getattr(module, table) if table else STYLIZE_PRECISION
    assert tuple(names) == item.metadata["flag"]["choices"]
    assert action.default == (item.default if command == "train.evaluate" else None)  # None: the preset's
