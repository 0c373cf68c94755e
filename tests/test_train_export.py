"""train.export: the RobustBench-ready folder of a finished run, its model card and its errors.

A real checkpoint of a tiny run (the trainer's stand-in loop, seconds on a CPU) and a summary.json in
train.run's layout whose numbers differ between the model and the SWA model, so that a number read
from the wrong place is caught.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from test_train_trainer import run_standin
from fastnst.train import export as ex
from fastnst.train.checkpoint import load_checkpoint, model_from_checkpoint, save_atomic
from fastnst.train.data import normalize

SIZE = 16  # the stand-in run's images


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    run_standin(folder, epochs=2)
    state = load_checkpoint(folder / "checkpoint.pt")
    assert state["finished"] and state["swa_model"] is not None
    return folder


def summary_for(state: dict, *, source="generated", swa_extra=True) -> dict:
    """summary.json as train.run writes it (train/run.py: run, evaluate_robustness), with Lp-noise and
    RMSCE for the SWA model only."""
    def result(clean, base, extra):
        entries = {name: {"value": base + offset, "source": source, "missing": []}
                   for name, offset in (("Acc_C-original-15", 1.111), ("Acc_C-all-19", 2.222))}
        entries["Acc_C-bar-10"] = {"value": None, "source": None, "missing": ["blue_noise_sample"]}
        return {"clean_accuracy": clean, "mean_corruption_accuracy": base + 1.0, "scores": entries,
                "lp_noise_accuracy": base + 3.333 if extra else None,
                "calibration_error": {"l1": 0.04321, "l2": 0.05} if extra else None,
                "mean_corruption_calibration_error": {"l1": 0.05678, "l2": 0.06, "sets": 19} if extra else None}

    from fastnst.train.run import SUMMARY_ROBUSTNESS_KEYS  # the fixture holds what train.run writes, no other key
    assert set(result(0.0, 0.0, True)) - {"scores"} <= set(SUMMARY_ROBUSTNESS_KEYS)
    return {"checkpoint": "somewhere/checkpoint.pt",
            "final": {"epoch": state["epoch"], "test_acc": 0.6125, "swa_test_acc": 0.6375},
            "random_weights": {"encoder": False, "decoder": False},
            "robustness": {"model": result(61.25, 10.0, False), "swa_model": result(63.75, 20.0, swa_extra)},
            "corruption_source": source}


def variant(run_dir, tmp_path, summary=None, name="run", **state_changes):
    """A copy of the run whose checkpoint (config keys under "config") and summary.json are changed."""
    state = load_checkpoint(run_dir / "checkpoint.pt")
    state["config"] = {**state["config"], **state_changes.pop("config", {})}
    state.update(state_changes)
    folder = tmp_path / name
    folder.mkdir()
    save_atomic(state, folder / "checkpoint.pt")
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary(state) if callable(summary) else summary))
    return folder


def images_and_labels(count=24, seed=5):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (count, 3, SIZE, SIZE), dtype=torch.uint8, generator=generator),
            torch.randint(0, 10, (count,), generator=generator))


@pytest.mark.parametrize("which, weights", [("auto", "swa_model"), ("model", "model")])
def test_export_gives_the_trained_models_logits(run_dir, tmp_path, which, weights):
    out = tmp_path / "export"
    assert ex.cli(["--checkpoint", str(run_dir / "checkpoint.pt"), "--out", str(out), "--which", which]) == 0
    trained, config = model_from_checkpoint(run_dir / "checkpoint.pt", which=weights)
    images, _ = images_and_labels()
    with torch.no_grad():
        expected = trained.eval()(normalize(images, config["dataset"]))  # the loader's normalization
        logits = ex.load_exported(out)(images.float() / 255)  # RobustBench's input: float in [0, 1]
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert f"`{weights}`" in (out / ex.CARD_FILE).read_text()
    other = "model" if weights == "swa_model" else "swa_model"
    other_model, _ = model_from_checkpoint(run_dir / "checkpoint.pt", which=other)
    with torch.no_grad():
        assert not torch.allclose(other_model.eval()(normalize(images, config["dataset"])), expected, atol=1e-3)


LOAD_WITHOUT_FASTNST = textwrap.dedent("""
    import sys, torch
    from model import load_model
    assert not any(name == "fastnst" or name.startswith("fastnst.") for name in sys.modules), "fastnst imported"
    images = torch.load(sys.argv[1], weights_only=True)
    torch.save(load_model().eval()(images).detach(), sys.argv[2])
""")


def test_model_py_needs_torch_only(run_dir, tmp_path):
    out = tmp_path / "export"
    ex.export(run_dir / "checkpoint.pt", out)
    images = images_and_labels()[0].float() / 255
    torch.save(images, tmp_path / "images.pt")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # no checkout on the path
    done = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_FASTNST, str(tmp_path / "images.pt"),
                           str(tmp_path / "logits.pt")], cwd=out, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    with torch.no_grad():
        expected = ex.load_exported(out)(images)
    assert torch.equal(torch.load(tmp_path / "logits.pt", weights_only=True), expected)


def test_a_torchvision_model_exports_with_its_constructor(run_dir, tmp_path):
    """A --model torchvision:<name> run: model.py calls torchvision's constructor (no fastnst) and gives its logits."""
    from fastnst.train.models import create_model

    trained = create_model("torchvision:resnet18", num_classes=10)
    with torch.no_grad():
        for parameter in trained.parameters():  # weights no fresh constructor gives
            parameter.add_(0.01 * torch.randn_like(parameter))
    weights = {key: value.clone() for key, value in trained.state_dict().items()}
    folder = variant(run_dir, tmp_path, config={"model": "torchvision:resnet18"}, model=weights, swa_model=None)
    out = tmp_path / "export"
    ex.export(folder / "checkpoint.pt", out)
    source = (out / ex.MODEL_FILE).read_text()
    assert "torchvision.models.get_model('resnet18', weights=None, num_classes=10)" in source
    assert "needs torch and torchvision only" in source
    images, _ = images_and_labels()
    config = load_checkpoint(folder / "checkpoint.pt")["config"]
    with torch.no_grad():
        expected = trained.eval()(normalize(images, config["dataset"]))
        torch.testing.assert_close(ex.load_exported(out)(images.float() / 255), expected, rtol=1e-5, atol=1e-5)
    assert "resnet18 (torchvision)" in (out / ex.CARD_FILE).read_text()


def card_row(card: str, label: str) -> list[str]:
    (line,) = [line for line in card.splitlines() if line.startswith(f"| {label} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_card_numbers_are_the_summarys(run_dir, tmp_path):
    folder = variant(run_dir, tmp_path, summary=summary_for)
    paths = ex.export(folder / "checkpoint.pt", tmp_path / "export")
    card = paths["card"].read_text()
    summary = json.loads((folder / "summary.json").read_text())
    swa = summary["robustness"]["swa_model"]
    assert card_row(card, "clean") == ["clean", f"{swa['clean_accuracy']:.2f} %", "clean test set"]
    assert card_row(card, ex.C15)[1:] == [f"{swa['scores']['Acc_C-original-15']['value']:.2f} %",
                                          "GENERATED -C (train.corruptions), not the official files"]
    assert card_row(card, "C-19 (Acc_C-all-19)")[1] == f"{swa['scores']['Acc_C-all-19']['value']:.2f} %"
    assert card_row(card, "C-bar (Acc_C-bar-10)")[1] == ex.NOT_MEASURED
    assert card_row(card, "Lp-noise")[1] == f"{swa['lp_noise_accuracy']:.2f} %"
    assert card_row(card, "RMSCE, clean")[1] == f"{swa['calibration_error']['l1']:.4f}"
    assert card_row(card, "RMSCE, corrupted")[1] == f"{swa['mean_corruption_calibration_error']['l1']:.4f}"
    config = load_checkpoint(folder / "checkpoint.pt")["config"]
    assert "preset demo (train/presets/demo.yaml)" in card and "`model` 'wrn10_1' (preset 'wrn16_2')" in card
    assert f"| seed | {config['seed']} " in card
    assert "trained (public) AdaIN weights" in card  # random_weights: false, false

    # The plain model's numbers, and "not measured" where the summary has none.
    card = ex.export(folder / "checkpoint.pt", tmp_path / "export_model", which="model")["card"].read_text()
    plain = summary["robustness"]["model"]
    assert card_row(card, "clean")[1] == f"{plain['clean_accuracy']:.2f} %"
    assert card_row(card, ex.C15)[1] == f"{plain['scores']['Acc_C-original-15']['value']:.2f} %"
    for label in ("Lp-noise", "RMSCE, clean", "RMSCE, corrupted"):
        assert card_row(card, label)[1] == ex.NOT_MEASURED


def test_without_a_corruption_evaluation_the_card_takes_the_final_test_accuracy(run_dir, tmp_path):
    summary = lambda state: {"final": {"epoch": state["epoch"], "test_acc": 0.5, "swa_test_acc": 0.5625},  # noqa: E731
                             "random_weights": {"encoder": True, "decoder": False}}
    folder = variant(run_dir, tmp_path, summary=summary, config={"style_resolution": 224})
    card = ex.export(folder / "checkpoint.pt", tmp_path / "export")["card"].read_text()
    assert card_row(card, "clean")[1:] == ["56.25 %", ex.END_OF_TRAINING]
    assert card_row(card, ex.C15)[1] == ex.NOT_MEASURED
    assert "RANDOM encoder" in card and "on the fly, at 224 px (the authors')" in card


@pytest.mark.parametrize("source, leaderboard", [("official", True), ("generated", False)])
def test_robustbench_json_fields_and_formats(run_dir, tmp_path, source, leaderboard):
    folder = variant(run_dir, tmp_path, summary=lambda state: summary_for(state, source=source),
                     config={"dataset": "cifar10", "max_eval_images": None})
    entry = json.loads(ex.export(folder / "checkpoint.pt", tmp_path / "export")["robustbench"].read_text())
    # RobustBench's fields, in its order (ModelInfo, robustbench/utils.py:555-568 at 78fcc9e, up to corruptions_acc).
    assert list(entry) == ["link", "name", "authors", "additional_data", "number_forward_passes", "dataset", "venue",
                           "architecture", "eps", "clean_acc", "reported", "corruptions_acc"]
    assert entry["dataset"] == "cifar10" and entry["architecture"] == "WideResNet-10-1"
    assert entry["eps"] is None and entry["number_forward_passes"] == 1
    for key in ("link", "name", "authors", "additional_data", "venue", "reported"):
        assert entry[key].startswith(ex.TO_FILL)
    assert entry["clean_acc"] == "63.75"  # str(round(percent, 2)), as RobustBench's update_json
    if leaderboard:
        assert entry["corruptions_acc"] == "21.11"
    else:  # generated corruptions are no leaderboard number: a person must measure on the official files
        assert entry["corruptions_acc"].startswith(ex.TO_FILL) and "generated" in entry["corruptions_acc"]
        assert "(this run: 21.11)" in entry["corruptions_acc"]


def _error(args, capsys) -> str:
    assert ex.cli(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m train.export: error: "), lines
    return lines[0]


def test_errors_are_one_line(run_dir, tmp_path, capsys):
    checkpoint = str(run_dir / "checkpoint.pt")
    assert "absent.pt does not exist" in _error(["--checkpoint", str(tmp_path / "absent.pt")], capsys)

    unfinished = variant(run_dir, tmp_path, finished=False, epoch=1) / "checkpoint.pt"
    assert "is of an unfinished run (epoch 1 of 2)" in _error(["--checkpoint", str(unfinished)], capsys)
    unknown = variant(run_dir, tmp_path, name="unknown", config={"model": "resnet9000"}) / "checkpoint.pt"
    assert "unknown model 'resnet9000'" in _error(["--checkpoint", str(unknown)], capsys)

    out = tmp_path / "export"
    assert ex.cli(["--checkpoint", checkpoint, "--out", str(out)]) == 0
    assert f"--out {out} already holds an export (model.py" in _error(["--checkpoint", checkpoint, "--out", str(out)],
                                                                      capsys)
    before = (out / ex.WEIGHTS_FILE).read_bytes()
    assert ex.cli(["--checkpoint", checkpoint, "--out", str(out), "--overwrite", "--which", "model"]) == 0
    assert (out / ex.WEIGHTS_FILE).read_bytes() != before

    other = tmp_path / "other_summary.json"
    other.write_text(json.dumps({"final": {"epoch": 7}}))
    assert "is of another run (epoch 7" in _error(["--checkpoint", checkpoint, "--out", str(tmp_path / "e2"),
                                                   "--summary", str(other)], capsys)


def test_which_swa_model_without_swa_is_refused(run_dir, tmp_path, capsys):
    no_swa = variant(run_dir, tmp_path, swa_model=None) / "checkpoint.pt"
    message = _error(["--checkpoint", str(no_swa), "--which", "swa_model"], capsys)
    assert "holds no swa_model" in message and "--which model" in message
    assert ex.cli(["--checkpoint", str(no_swa)]) == 0  # auto: the model, as the recipe without SWA reports
    assert "`model`" in (no_swa.parent / "export" / ex.CARD_FILE).read_text()


def test_robustbench_clean_accuracy_of_the_export(run_dir, tmp_path):
    """RobustBench's own evaluation of the export (robustbench.utils.clean_accuracy: float [0, 1] in, argmax of
    the logits) equals the trained model's accuracy through the loader's normalization."""
    rb_utils = pytest.importorskip("robustbench.utils", reason="robustbench is an optional test dependency "
                                   "(1.1.1 from PyPI imports pkg_resources and a module named autoattack, which "
                                   "its dependency pyautoattack does not provide)")
    out = tmp_path / "export"
    ex.export(run_dir / "checkpoint.pt", out)
    trained, config = model_from_checkpoint(run_dir / "checkpoint.pt", which="swa_model")
    images, labels = images_and_labels(count=40)
    with torch.no_grad():
        predicted = trained.eval()(normalize(images, config["dataset"])).argmax(1)
    labels[::2] = predicted[::2]  # half right by construction, the rest by chance
    expected = int((predicted == labels).sum()) / len(labels)
    accuracy = rb_utils.clean_accuracy(ex.load_exported(out), images.float() / 255, labels, batch_size=16)
    assert accuracy == pytest.approx(expected, abs=1e-9) and 0.5 <= accuracy < 1.0
