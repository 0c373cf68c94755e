"""``python -m train.repeat``: one train.run per seed, the authors' mean and std, continuing a stopped repeat,
refusing seeds that ran with other settings."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fastnst import StyleBank
from fastnst.train import run as run_module
from fastnst.train.data import make_demo_dataset
from fastnst.train.data.demo import make_demo_style_bank
from fastnst.train.repeat import aggregate, build_parser, cli, main

ROOT = Path(__file__).resolve().parent.parent

# The cheapest runs of the built-in demo that still take the whole path: stylization, TrivialAugment, noise,
# the corruption evaluation (2 images per set) and the report.
TINY = ["--epochs", "1", "--batch-size", "16", "--no-swa", "--model", "wrn10_1", "--max-eval-images", "2",
        "--log-every", "2"]
# Cheaper still, where only the repeat's own logic is tested.
TRAIN_ONLY = ["--batch-size", "16", "--no-swa", "--model", "wrn10_1", "--no-evaluate-corruptions", "--no-stylize",
              "--no-trivial-augment"]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_demo_dataset(root, num_train=50, num_test=40, num_synthetic=30, seed=1)
    return root


def test_aggregate_is_the_authors_mean_and_std():
    """Their config549 runs 0, 1, 2 give their avg and std columns (population std, ddof 0: experiments/utils.py:521;
    results/CIFAR10/WideResNet_28_4/config549_result_metrics.csv lines 2, 3, 34, 38)."""
    runs = {0: (97.09, 0.0393, 93.1581, 94.56), 1: (96.95, 0.0412, 93.1956, 94.43), 2: (96.92, 0.0410, 93.0988, 94.21)}
    rows = ("Standard_Acc", "RMSCE", "Acc_C-original-15", "Combined_Noise")
    table = aggregate({seed: {"swa_model": dict(zip(rows, values))} for seed, values in runs.items()})["swa_model"]
    theirs = {"Standard_Acc": (96.9867, 0.0741), "RMSCE": (0.0405, 0.0009), "Acc_C-original-15": (93.1508, 0.0399),
              "Combined_Noise": (94.4000, 0.1445)}
    for row, (mean, std) in theirs.items():
        assert table[row]["mean"] == pytest.approx(mean, abs=1e-4) and table[row]["std"] == pytest.approx(std, abs=1e-4)
    assert table["Standard_Acc"]["runs"] == {0: 97.09, 1: 96.95, 2: 96.92}
    missing = aggregate({0: {"model": {"Acc_C-bar-10": None}}, 1: {"model": {"Acc_C-bar-10": 80.0}}})
    assert missing["model"]["Acc_C-bar-10"]["mean"] is None  # no mean over a part of the runs


def test_three_seed_repeat_of_the_demo_writes_the_aggregate_table(tmp_path, demo_root, capsys):
    out = tmp_path / "repeat"
    summary = main(["--seeds", "0", "1", "2", "--", "--out", str(out), "--data-root", str(demo_root), *TINY])
    printed = capsys.readouterr().out
    seeds = (0, 1, 2)
    configs = [json.loads((out / f"seed_{seed}" / "config.json").read_text()) for seed in seeds]
    assert [config["seed"] for config in configs] == [0, 1, 2]
    # each seed's bank is encoded by the random encoder its Stylizer has (drawn from its seed)
    for seed, config in zip(seeds, configs):
        assert config["styles"] == str(out / f"seed_{seed}" / "demo_styles.pt")
        make_demo_style_bank(tmp_path / f"bank_{seed}.pt", None, seed)
        assert torch.equal(StyleBank.load(config["styles"]).mean, StyleBank.load(tmp_path / f"bank_{seed}.pt").mean)
    runs = [json.loads((out / f"seed_{seed}" / "summary.json").read_text())["robustness"]["model"] for seed in seeds]
    table = summary["models"]["model"]
    clean = [run["clean_accuracy"] for run in runs]
    assert table["Standard_Acc"]["mean"] == pytest.approx(np.mean(clean))
    assert table["Standard_Acc"]["std"] == pytest.approx(np.std(clean))
    for row, key in (("Acc_C-original-15", None), ("Acc_C-all-19", None), ("Combined_Noise", "lp_noise_accuracy")):
        values = [run["scores"][row]["value"] if key is None else run[key] for run in runs]
        assert table[row]["mean"] == pytest.approx(np.mean(values)) and table[row]["runs"] == dict(zip(seeds, values))
    assert table["RMSCE"]["mean"] == pytest.approx(np.mean([run["calibration_error"]["l1"] for run in runs]))
    assert table["RMSCE_C"]["mean"] is not None and table["fog"]["mean"] is not None
    assert table["Acc_C-bar-10"]["mean"] is None  # the demo has no C-bar files
    saved = json.loads((out / "repeat_summary.json").read_text())
    assert saved["seeds"] == [0, 1, 2] and saved["std"] == "ddof 0"
    markdown = (out / "repeat_summary.md").read_text()
    assert "| | avg | std | seed_0 | seed_1 | seed_2 |" in markdown
    for row in ("Standard_Acc", "RMSCE", "Acc_C-original-15", "Acc_C-all-19", "Acc_C-bar-10", "RMSCE_C",
                "Combined_Noise"):
        assert f"\n| {row} |" in markdown and f"\n| {row} |" in printed


class Killed(Exception):
    pass


def test_a_stopped_repeat_continues_without_running_finished_seeds_again(tmp_path, demo_root, monkeypatch, capsys):
    out = tmp_path / "repeat"
    flags = ["--seeds", "0", "1", "--", "--out", str(out), "--data-root", str(demo_root), "--epochs", "2", *TRAIN_ONLY]
    calls, clean_accuracy = [], run_module.clean_accuracy

    def killed_in_seed_1_epoch_2(*args, **kwargs):  # the demo evaluates every epoch: 2 calls per seed
        calls.append(None)
        if len(calls) == 4:
            raise Killed  # before seed 1's second checkpoint
        return clean_accuracy(*args, **kwargs)

    monkeypatch.setattr(run_module, "clean_accuracy", killed_in_seed_1_epoch_2)
    with pytest.raises(Killed):
        main(flags)
    assert (out / "seed_0" / "summary.json").is_file() and not (out / "seed_1" / "summary.json").exists()
    finished = (out / "seed_0" / "checkpoint.pt").read_bytes()
    monkeypatch.undo()
    capsys.readouterr()

    summary = main(flags)
    printed = capsys.readouterr().out
    assert f"seed 0: finished in {out / 'seed_0'}, not run again" in printed
    assert "seed 1: continuing" in printed and "1 of 2 epochs done" in printed
    assert (out / "seed_0" / "checkpoint.pt").read_bytes() == finished  # not trained again
    epochs = [json.loads(line)["epoch"] for line in (out / "seed_1" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    assert summary["models"]["model"]["Standard_Acc"]["runs"].keys() == {0, 1}


def test_a_repeat_refuses_seeds_that_ran_with_other_settings(tmp_path, demo_root, capsys):
    out = tmp_path / "repeat"
    flags = ["--out", str(out), "--data-root", str(demo_root), *TRAIN_ONLY]
    assert cli(["--seeds", "0", "--", *flags, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert cli(["--seeds", "1", "0", "--", *flags, "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"python -m train.repeat: error: {out / 'seed_0'} ran with other settings (epochs 1 there, 2 now); "
                   "give the same train.run arguments to continue this repeat, or another --out")
    assert not (out / "seed_1").exists()  # refused before any run
    assert cli(["--", *flags, "--seed", "3"]) == 2
    assert "--seed is set by train.repeat for each seed" in capsys.readouterr().err


def test_the_documented_help_is_the_current_one(monkeypatch):
    """The README shows `python -m train.repeat --help` beside the authors' 3-run table: it must not go stale."""
    monkeypatch.setenv("COLUMNS", "110")  # the width it was copied at
    marker = "$ python -m train.repeat --help\n"
    texts = [path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]]
    (text,) = [text for text in texts if marker in text]
    assert text.split(marker, 1)[1].split("```", 1)[0] == build_parser().format_help()
