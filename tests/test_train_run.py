"""``python -m train.run`` end to end on a tiny generated data set: train, evaluate, report; and its errors."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from fastnst.train.checkpoint import load_checkpoint
from fastnst.train.data import make_demo_dataset
from fastnst.train.run import draw_style_images, main


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_demo_dataset(root, num_train=50, num_test=40, num_synthetic=30, seed=1)
    return root


def test_demo_run_end_to_end(tmp_path, demo_root, capsys):
    out = tmp_path / "run"
    code = main(["--out", str(out), "--data-root", str(demo_root), "--epochs", "2", "--batch-size", "16",
                 "--swa-start", "0.5", "--max-eval-images", "16", "--log-every", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "RANDOMLY" in captured.out and "For the real thing" in captured.out  # says what is built in

    state = load_checkpoint(out / "checkpoint.pt")
    assert state["finished"] and state["swa_model"] is not None
    assert yaml.safe_load((out / "config.yaml").read_text()) == state["config"]
    assert state["config"]["styles"] == str(out / "demo_styles.pt")

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert all(row["num_stylized"] > 0 and row["stylize_seconds"] > 0 for row in rows)  # NST ran and was timed

    summary = json.loads((out / "summary.json").read_text())
    assert summary["corruption_source"] == "generated"
    assert set(summary["robustness"]) == {"model", "swa_model"}
    for kind in ("json", "markdown", "bars", "examples"):
        assert (out / "report").joinpath(summary["report"][kind].rsplit("/", 1)[-1]).is_file()


def test_missing_data_says_what_to_download(tmp_path, capsys):
    code = main(["--dataset", "cifar10", "--data-root", str(tmp_path / "nothing"), "--synthetic-ratio", "0",
                 "--no-stylize", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing data" in err and "--download" in err


def test_real_dataset_with_stylization_needs_weights(tmp_path, capsys):
    code = main(["--dataset", "cifar10", "--synthetic-ratio", "0", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "needs --styles, --vgg, --decoder" in capsys.readouterr().err


def test_style_images_are_drawn_deterministically(tmp_path):
    first = draw_style_images(tmp_path / "a", count=5, size=32, seed=3)
    second = draw_style_images(tmp_path / "b", count=5, size=32, seed=3)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert len({p.read_bytes() for p in first}) == 5


def test_resume_flag_continues_from_the_run_folder(tmp_path, demo_root, capsys):
    flags = ["--out", str(tmp_path / "run"), "--data-root", str(demo_root), "--epochs", "1", "--batch-size", "16",
             "--no-evaluate-corruptions", "--no-swa"]
    assert main(flags + ["--resume"]) == 0  # nothing to resume yet: starts from scratch
    assert "starting from scratch" in capsys.readouterr().out
    first = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    assert main(flags + ["--resume"]) == 0  # finished run: loads it, trains nothing more
    assert "1 of 1 epochs done" in capsys.readouterr().out
    again = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert main(flags + ["--resume", str(tmp_path / "nope.pt")]) == 2
    assert "--resume" in capsys.readouterr().err
