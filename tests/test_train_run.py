"""``python -m train.run`` end to end on a tiny generated data set: train, evaluate, report; and its errors."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from fastnst.style_bank import encode_style_folder
from fastnst.train.checkpoint import load_checkpoint
from fastnst.train.data import make_demo_dataset
from fastnst.train.data.demo import draw_style_images
from fastnst.weights import load_encoder, write_random_weights
from tests.data_formats import write_cifar10
from fastnst.train.run import cli, main


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
    assert summary["random_weights"] == {"encoder": True, "decoder": True}  # the demo's stylizer is random
    assert set(summary["robustness"]) == {"model", "swa_model"}
    scores = summary["robustness"]["model"]["scores"]  # the authors' scores, over the generated demo sets
    assert scores["Acc_C-original-15"]["source"] == "generated" and 0 <= scores["Acc_C-original-15"]["value"] <= 100
    assert "Acc_C-original-15" in captured.out
    assert "done: 2 epochs of wrn16_2 on demo in " in captured.out and "(CPU time " in captured.out
    assert summary["elapsed_seconds"] > 0 and summary["cpu_seconds"] > 0
    for kind in ("json", "markdown", "bars", "examples", "stylization"):
        assert (out / "report").joinpath(summary["report"][kind].rsplit("/", 1)[-1]).is_file()
    # the picture of the stylization: in report/, in report.md and in TensorBoard's images
    assert "![the Stylizer on training samples](stylization.png)" in (out / "report" / "report.md").read_text()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert "stylization" in events.Tags()["images"]


def test_timing_flags_cap_the_epoch_skip_clean_evaluation_and_split_its_seconds(tmp_path, demo_root, monkeypatch):
    """bench/end_to_end.py's run: 2 of the epoch's 4 batches, no test set loaded, the epoch's seconds split."""
    import fastnst.train.run as run_module

    monkeypatch.setattr(run_module, "create_eval_loader", lambda *args, **kwargs: pytest.fail("evaluated"))
    out = tmp_path / "run"
    assert main(["--out", str(out), "--data-root", str(demo_root), "--epochs", "2", "--batch-size", "16",
                 "--max-steps-per-epoch", "2", "--no-evaluate-clean", "--no-evaluate-corruptions", "--no-swa"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        assert row["test_acc"] is None
        assert row["images_per_second"] * row["epoch_seconds"] == pytest.approx(2 * 16)
        assert 0 < row["data_wait_seconds"] and 0 < row["step_seconds"]
        assert row["data_wait_seconds"] + row["step_seconds"] <= row["epoch_seconds"]  # on the CPU, one after the other
    assert json.loads((out / "summary.json").read_text())["final"].get("test_acc") is None


def test_missing_data_says_what_to_download(tmp_path, capsys):
    code = cli(["--dataset", "cifar10", "--data-root", str(tmp_path / "nothing"), "--synthetic-ratio", "0",
                "--no-stylize", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m train.run: error: cifar10: ") and "lacks" in err and "--download" in err


def test_real_dataset_with_stylization_needs_weights(tmp_path, capsys):
    code = cli(["--dataset", "cifar10", "--synthetic-ratio", "0", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "needs its data set and --styles, --vgg, --decoder" in capsys.readouterr().err  # (no ./data here)


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
    assert cli(flags + ["--resume", str(tmp_path / "nope.pt")]) == 2
    assert "--resume" in capsys.readouterr().err


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_reusing_out_is_refused_and_overwrite_moves_the_earlier_run_aside(tmp_path, demo_root, capsys):
    out = tmp_path / "run"
    out.mkdir()
    earlier = '{"epoch": 1, "train_loss": 2.3}\n'  # an earlier run's log and checkpoint, planted
    (out / "metrics.jsonl").write_text(earlier)
    (out / "checkpoint.pt").write_bytes(b"earlier")
    flags = ["--out", str(out), "--data-root", str(demo_root), "--epochs", "1", "--batch-size", "16",
             "--no-evaluate-corruptions", "--no-swa", "--no-trivial-augment", "--no-stylize"]  # the cheapest run

    assert cli(flags) == 2  # a second run into the same folder would append a second "epoch 1"
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m train.run: error: --out ") and "already holds a run" in err
    assert "--resume" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "metrics.jsonl").read_text() == earlier
    assert cli(flags + ["--overwrite", "--resume"]) == 2  # contradictory
    assert "pass one of them" in capsys.readouterr().err

    assert main(flags + ["--overwrite"]) == 0
    (aside,) = tmp_path.glob("run.old-*")
    assert f"moved the earlier run in {out} to {aside}" in capsys.readouterr().out
    assert (aside / "metrics.jsonl").read_text() == earlier and (aside / "checkpoint.pt").read_bytes() == b"earlier"
    assert [row["epoch"] for row in _metrics(out)] == [1]  # the logs of the two runs never mix


def test_random_weight_files_are_said_in_the_output_and_summary(tmp_path, capsys):
    vgg, decoder = write_random_weights(tmp_path / "weights")
    write_cifar10(tmp_path / "data", per_batch=20, num_test=20)
    styles = draw_style_images(tmp_path / "styles", count=3, size=32, seed=0)[0].parent
    with pytest.warns(UserWarning, match="RANDOM"):
        encode_style_folder(styles, load_encoder(vgg), image_size=32).save(tmp_path / "styles.pt")
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="RANDOM weights"):
        code = main(["--dataset", "cifar10", "--data-root", str(tmp_path / "data"), "--synthetic-ratio", "0",
                     "--styles", str(tmp_path / "styles.pt"), "--vgg", str(vgg), "--decoder", str(decoder),
                     "--model", "wrn16_2", "--epochs", "1", "--batch-size", "16", "--style-resolution", "native",
                     "--no-evaluate-corruptions", "--no-swa", "--no-trivial-augment", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "stylizer's encoder and decoder run with RANDOM weights" in printed
    assert "stylization used RANDOM encoder and decoder weights" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["random_weights"] == {"encoder": True, "decoder": True}


@pytest.mark.filterwarnings("ignore::fastnst.RandomWeightsWarning")
def test_stylize_precision_reaches_the_stylizer(tmp_path):
    from fastnst import StyleBank
    from fastnst.train.config import parse_config
    from fastnst.distributed import DistInfo
    from fastnst.train.run import stylizer_from_config

    bank = tmp_path / "styles.pt"
    StyleBank(torch.rand(3, 512), torch.rand(3, 512) + 0.2, ["a", "b", "c"]).save(bank)
    for precision, dtype in (("auto", None), ("fp32", torch.float32), ("bf16", torch.bfloat16)):
        config = parse_config(["--styles", str(bank), "--stylize-precision", precision, "--out", str(tmp_path / "run")])
        assert stylizer_from_config(config, DistInfo()).stylizer.autocast_dtype == dtype


def test_eval_amp_reaches_the_robustness_evaluation(monkeypatch, tmp_path):
    from fastnst.train import evaluate as evaluate_module
    from fastnst.train.config import parse_config
    from fastnst.train.run import evaluate_robustness

    class Called(Exception):
        pass

    def evaluate_checkpoint(checkpoint, dataset, data_root, **options):
        raise Called(options["amp"])

    monkeypatch.setattr(evaluate_module, "evaluate_checkpoint", evaluate_checkpoint)
    for flags, amp in (([], "fp32"), (["--eval-amp", "fp16"], "fp16")):
        with pytest.raises(Called, match=amp):
            evaluate_robustness(tmp_path / "checkpoint.pt", parse_config(flags), tmp_path, "cpu")


def test_the_demo_preparation_is_a_function_of_the_seed(tmp_path, demo_root, monkeypatch):
    """The demo's style bank is encoded with a random encoder: one drawn from --seed, not from the process's
    global RNG (two preparations once gave banks whose means differed by 0.03, and so two demo results)."""
    from fastnst.train.data import demo
    from fastnst.train.run import prepare_demo

    monkeypatch.setattr(demo, "DEMO_NUM_STYLES", 2)  # the encoder is what is tested, not the drawings
    banks = []
    for name in ("a", "b"):
        config = {"data_root": str(demo_root), "seed": 3, "stylize": True, "stylize_cache": None,
                  "styles": str(tmp_path / name / "demo_styles.pt"), "vgg": None}
        torch.rand(5)  # whatever the process drew before
        prepare_demo(config, tmp_path / name)
        banks.append(torch.load(config["styles"], weights_only=True))
    assert torch.equal(banks[0]["mean"], banks[1]["mean"]) and torch.equal(banks[0]["std"], banks[1]["std"])


def test_the_demo_is_reproducible_bit_for_bit(tmp_path, demo_root, monkeypatch):
    """Two demo runs with the same --seed in one process: the same numbers and the same weights."""
    from fastnst.train.data import demo

    monkeypatch.setattr(demo, "DEMO_NUM_STYLES", 2)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["--out", str(out), "--data-root", str(demo_root), "--epochs", "1", "--batch-size", "16",
                     "--no-swa", "--no-evaluate-corruptions", "--seed", "5"]) == 0
        runs.append((json.loads((out / "summary.json").read_text()), load_checkpoint(out / "checkpoint.pt")["model"]))
    (first, first_weights), (second, second_weights) = runs
    assert first["final"]["num_stylized"] > 0  # the random networks took part
    timings = ("images_per_second", "stylize_seconds", "data_wait_seconds", "step_seconds", "epoch_seconds")
    numbers = [{key: value for key, value in run["final"].items() if key not in timings} for run in (first, second)]
    assert numbers[0] == numbers[1] and numbers[0]["test_acc"] is not None
    assert all(torch.equal(first_weights[key], second_weights[key]) for key in first_weights)


def test_missing_demo_data_names_the_command_that_writes_it(tmp_path, capsys):
    from fastnst.train.data import MissingDataError, load_test_set
    from fastnst.train.data.demo import cli as demo_cli

    with pytest.raises(MissingDataError, match="`python -m train.data.demo --data-root ") as raised:
        load_test_set("demo", tmp_path / "gone")
    command = str(raised.value).split("`")[1].split()
    assert demo_cli(command[3:]) == 0  # what the message says to run works
    images, labels = load_test_set("demo", tmp_path / "gone")
    assert images.shape == (500, 32, 32, 3) and len(labels) == 500


def test_the_stylization_figure_says_what_it_shows_and_draws_nothing_from_training(monkeypatch):
    """Real and synthetic samples, each labelled with source and alpha, the style beside it; with random
    networks the title says so (as fastnst.preview's); neither the global RNG nor the Stylizer's stream moves."""
    from types import SimpleNamespace

    import numpy as np

    import fastnst.preview as preview
    from fastnst import StyleBank, Stylizer, load_decoder
    from fastnst.train.data import dataset_info
    from fastnst.train.data.sources import ArraySource
    from fastnst.train.stylization_figure import write_stylization_figure

    drawn = {}
    monkeypatch.setattr(preview, "draw_grid", lambda originals, stylized, titles, styles, title, out, row_labels:
                        drawn.update(originals=originals, stylized=stylized, styles=styles, title=title, rows=row_labels))
    bank = StyleBank(torch.rand(3, 512), torch.rand(3, 512) + 0.1, ["a.png", "b.png", "c.png"])
    with pytest.warns(UserWarning, match="RANDOM"):
        stylizer = Stylizer(bank, load_encoder(None), load_decoder(None), resolution=None)
    images = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    loader = SimpleNamespace(real=ArraySource(images, np.zeros(10, dtype=np.int64)),
                             synthetic=ArraySource(images[::-1].copy(), np.zeros(10, dtype=np.int64)),
                             info=dataset_info("cifar10"))
    config = {"seed": 0, "prob_real": 0.1, "prob_synthetic": 0.4, "dataset": "cifar10"}
    global_rng, stylizer_rng = torch.get_rng_state(), stylizer.generator.get_state()
    write_stylization_figure(loader, stylizer, config, "unused.png")
    assert torch.equal(torch.get_rng_state(), global_rng) and torch.equal(stylizer.generator.get_state(), stylizer_rng)
    assert "RANDOM encoder and decoder weights" in drawn["title"]
    assert [row.split("\n")[0] for row in drawn["rows"]] == ["real"] * 3 + ["synthetic"] * 3
    assert all(row.split("\n")[1].startswith("α = ") for row in drawn["rows"])
    assert set(drawn["styles"]) <= {"a.png", "b.png", "c.png"}
    assert drawn["originals"].shape == drawn["stylized"][0].shape == (6, 3, 32, 32)
