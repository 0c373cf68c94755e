"""train.evaluate and train.report on tiny data sets written in the real on-disk layouts
(CIFAR-10 python pickles, CIFAR-10-C and CIFAR-10-C-Bar .npy files), with classifiers whose
predictions are known, so every accuracy and every score is checked exactly."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from authors_code import EVAL_SOURCE
from fastnst.train.checkpoint import save_atomic
import warnings

from fastnst.train.corruptions import ALL_CORRUPTIONS, CORRUPTIONS, SEVERITIES
from fastnst.train.corruptions import frost as frost_module
from fastnst.train.data import dataset_info, load_test_set
from fastnst.train.data.corrupted import CIFAR_C_BAR
from fastnst.train.evaluate import evaluate, format_summary, main, plan_evaluation, relative_to
from fastnst.train.models import create_model
from fastnst.train.report import write_report

LEVELS = [10 + 25 * k for k in range(10)]  # the grey level that stands for each class


class ConstantColourClassifier(nn.Module):
    """Predicts the class whose grey level is nearest to the image's mean red value."""

    def __init__(self, dataset: str):
        super().__init__()
        info = dataset_info(dataset)
        centres = (torch.tensor(LEVELS, dtype=torch.float32) / 255 - info.mean[0]) / info.std[0]
        self.register_buffer("centres", centres)

    def forward(self, images):
        red = images[:, 0].mean(dim=(1, 2))
        return -(red[:, None] - self.centres[None]).abs()


class AlwaysClass(nn.Module):
    def __init__(self, label: int):
        super().__init__()
        self.label = label

    def forward(self, images):
        return nn.functional.one_hot(torch.full((len(images),), self.label), 10).float()


def grey_images(levels: list[int]) -> np.ndarray:
    return np.stack([np.full((32, 32, 3), level, np.uint8) for level in levels])


def write_cifar10(root, test_images: np.ndarray, test_labels: np.ndarray) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def dump(name, images, labels):
        data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": np.ascontiguousarray(data), b"labels": [int(x) for x in labels]}, f, protocol=2)

    for index in range(1, 6):
        dump(f"data_batch_{index}", rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), np.arange(10))
    dump("test_batch", test_images, test_labels)


def correct_count(corruption_index: int, severity: int) -> int:
    return (corruption_index * 3 + severity) % 11  # 0..10 of 10 images right


def write_corruption_npy(path, index: int, labels: np.ndarray) -> None:
    """Five severity blocks of grey images, correct_count(index, severity) of them on their class level."""
    blocks = []
    for severity in SEVERITIES:
        right = correct_count(index, severity)
        levels = [LEVELS[label] if i < right else LEVELS[(label + 1) % 10] for i, label in enumerate(labels)]
        blocks.append(grey_images(levels))
    np.save(path, np.concatenate(blocks))


def write_cifar10_c(root, labels: np.ndarray, corruptions=ALL_CORRUPTIONS) -> None:
    """The CIFAR-10-C archive's layout: 19 corruption files (the 15 and the 4 extra) and labels.npy."""
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    np.save(folder / "labels.npy", np.tile(labels, 5).astype(np.uint8))  # official: uint8, 5 blocks
    for name in corruptions:
        write_corruption_npy(folder / f"{name}.npy", ALL_CORRUPTIONS.index(name), labels)


def write_cifar10_c_bar(root, labels: np.ndarray | None) -> None:
    """make_cifar10_c_bar.py's layout: CIFAR-10-C-Bar/<name>.npy (5 severity blocks), labels.npy (int64)."""
    folder = root / "CIFAR-10-C-Bar"
    folder.mkdir(parents=True)
    if labels is not None:
        np.save(folder / "labels.npy", np.tile(labels, 5).astype(np.int64))
    for index, name in enumerate(CIFAR_C_BAR):
        write_corruption_npy(folder / f"{name}.npy", 19 + index, np.arange(10) % 10)


@pytest.fixture
def tiny_cifar(tmp_path):
    labels = np.arange(10) % 10
    clean_levels = [LEVELS[label] if i < 7 else LEVELS[(label + 1) % 10] for i, label in enumerate(labels)]
    write_cifar10(tmp_path, grey_images(clean_levels), labels)
    return tmp_path, labels


def authors_scores(accuracy_by_name: dict[str, float]) -> dict[str, float]:
    """The authors' formulas (experiments/eval_corruptions.py:78-81) on their list: 19 -C then 10 C-bar."""
    accs_c = list(accuracy_by_name.values())
    assert len(accs_c) == 29
    return {"Acc_C-all-19": sum(accs_c[0:19]) / 19, "Acc_C-original-15": sum(accs_c[0:15]) / 15,
            "Acc_C-bar-10": sum(accs_c[19:29]) / 10,
            "Acc_all-ex-pixelwise-noise-24": (sum(accs_c[3:15]) + sum(accs_c[16:19]) + sum(accs_c[20:29])) / 24}


def expected_accuracy(index: int) -> list[float]:
    return [10.0 * correct_count(index, s) for s in SEVERITIES]


def test_official_files_give_exact_accuracies_and_the_authors_scores(tiny_cifar):
    root, labels = tiny_cifar
    write_cifar10_c(root, labels)
    write_cifar10_c_bar(root, labels=None)  # no labels.npy: the test labels, as the authors read C-bar
    result = evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, batch_size=4, progress=False)
    assert result["meta"]["source"] == "official"
    assert result["clean_accuracy"] == pytest.approx(70.0)
    names = ALL_CORRUPTIONS + tuple(CIFAR_C_BAR)
    expected = {name: expected_accuracy(i) for i, name in enumerate(names)}
    assert list(result["accuracy"]) == list(names)
    for name in names:
        assert result["accuracy"][name] == pytest.approx(expected[name]), name
        assert result["meta"]["sources"][name] == "official"
    every = [v for name in CORRUPTIONS for v in expected[name]]
    assert result["mean_corruption_accuracy"] == pytest.approx(sum(every) / 75)
    assert result["severity_mean"] == pytest.approx([np.mean([expected[n][s] for n in CORRUPTIONS]) for s in range(5)])
    assert result["num_sets"] == 75
    reference = authors_scores({name: np.mean(values) for name, values in expected.items()})
    assert set(result["scores"]) == set(reference)
    for name, value in reference.items():
        assert result["scores"][name]["value"] == pytest.approx(value), name
        assert result["scores"][name]["source"] == "official" and result["scores"][name]["official_only"] is None


@pytest.mark.filterwarnings("ignore:CUDA is not available")  # their autocast("cuda"), on a CPU
def test_calibration_errors_equal_the_authors_compute_clean_and_compute_c(tiny_cifar):
    """Their compute_clean (experiments/eval.py:69-110) and compute_c (eval_corruptions.py:93-137), run verbatim
    with torchmetrics: the same accuracies and RMSCE (l1 at HEAD), clean and per corruption over its five
    severities; RMSCE_C is their mean over the corruptions (eval_corruptions.py:77)."""
    torchmetrics = pytest.importorskip("torchmetrics")
    root, labels = tiny_cifar
    names = ("gaussian_noise", "fog", "saturate")
    write_cifar10_c(root, labels, corruptions=names)
    model = ConstantColourClassifier("cifar10")
    result = evaluate(model, "cifar10", root, corruptions=names, batch_size=4, progress=False)

    authors = {"torch": torch, "np": np, "device": "cpu",
               "MulticlassCalibrationError": torchmetrics.classification.MulticlassCalibrationError,
               "BinaryCalibrationError": torchmetrics.classification.BinaryCalibrationError}
    exec(EVAL_SOURCE, authors)
    info = dataset_info("cifar10")

    class OnPixels(nn.Module):  # theirs normalises inside the model (ct_model.py:37-40)
        def forward(self, pixels):
            return model((pixels - torch.tensor(info.mean).view(1, 3, 1, 1)) / torch.tensor(info.std).view(1, 3, 1, 1))

    def loader(images_nhwc, set_labels):  # batches of 4, as their DataLoader gives them
        pixels = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).float() / 255
        return list(zip(pixels.split(4), torch.from_numpy(np.asarray(set_labels, dtype=np.int64)).split(4)))

    clean_accuracy, clean_rmsce = authors["compute_clean"](loader(*load_test_set("cifar10", root)), OnPixels(), 10,
                                                          "CIFAR10")
    assert result["clean_accuracy"] == pytest.approx(clean_accuracy)
    assert result["calibration_error"]["l1"] == pytest.approx(clean_rmsce, abs=1e-6) and clean_rmsce > 0.01
    theirs = []
    for name in names:
        accuracy, rmsce, _ = authors["compute_c"](loader(np.load(root / "CIFAR-10-C" / f"{name}.npy"),
                                                         np.tile(labels, 5)), OnPixels(), 10, "CIFAR10")
        assert result["corruption_mean"][name] == pytest.approx(accuracy)
        assert result["corruption_calibration_error"][name]["l1"] == pytest.approx(rmsce, abs=1e-6)
        theirs.append(rmsce)
    assert result["mean_corruption_calibration_error"]["l1"] == pytest.approx(np.average(theirs), abs=1e-6)
    assert result["mean_corruption_calibration_error"]["sets"] == 3
    assert all(errors["l2"] >= errors["l1"] for errors in result["corruption_calibration_error"].values())


def test_lp_noise_accuracy_is_reported_and_reproducible(tiny_cifar, tmp_path):
    root, labels = tiny_cifar
    write_cifar10_c(root, labels, corruptions=("fog",))
    runs = [evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, corruptions=("fog",), batch_size=4,
                     seed=seed, progress=False) for seed in (0, 0)]
    assert runs[0]["lp_noise_accuracy"] == runs[1]["lp_noise_accuracy"]  # seeded: the same noise
    assert 0 <= runs[0]["lp_noise_accuracy"] <= 100
    assert runs[0]["meta"]["lp_noise"]["conditions"] == 50
    printed = format_summary({"meta": runs[0]["meta"], "results": {"model": runs[0]}})
    assert "Lp noise (Combined_Noise)" in printed and "calibration error (RMSCE)" in printed
    markdown = write_report(runs[0], tmp_path)["markdown"].read_text()
    assert "Lp noise" in markdown and "RMSCE" in markdown


def test_eval_amp_fp16_runs_the_models_under_fp16_autocast(tiny_cifar):
    """--eval-amp fp16: the authors' torch.amp.autocast (experiments/eval.py:84); fp32 by default."""
    root, _ = tiny_cifar

    class Probe(ConstantColourClassifier):
        def __init__(self):
            super().__init__("cifar10")
            self.linear = nn.Linear(3, 3)
            self.dtypes = set()

        def forward(self, images):
            self.dtypes.add(self.linear(images[:, :, 0, 0]).dtype)
            return super().forward(images)

    for amp, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        probe = Probe()
        result = evaluate(probe, "cifar10", root, source="generated", corruptions=("brightness",), progress=False,
                          amp=amp)
        assert probe.dtypes == {dtype} and result["meta"]["amp"] == amp
        assert result["clean_accuracy"] == pytest.approx(70.0)
    with pytest.raises(ValueError, match="--eval-amp"):
        evaluate(Probe(), "cifar10", root, corruptions=("brightness",), progress=False, amp="bf16")


def test_c_bar_labels_must_match_the_test_set(tiny_cifar):
    root, labels = tiny_cifar
    write_cifar10_c(root, labels)
    write_cifar10_c_bar(root, labels=(labels + 1) % 10)
    with pytest.raises(ValueError, match="labels differ"):
        evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, corruptions=("lines",), progress=False)


def test_without_c_bar_files_its_scores_are_not_computed_and_it_says_why(tiny_cifar):
    root, labels = tiny_cifar
    write_cifar10_c(root, labels)
    result = evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, batch_size=4, progress=False)
    assert result["meta"]["source"] == "official" and result["meta"]["c_bar_root"] is None
    assert result["scores"]["Acc_C-bar-10"]["value"] is None and len(result["scores"]["Acc_C-bar-10"]["missing"]) == 10
    assert "never generated" in result["meta"]["not_evaluated"]["lines"]
    assert result["scores"]["Acc_C-all-19"]["value"] == pytest.approx(np.mean([np.mean(expected_accuracy(i)) for i in range(19)]))


def test_partial_official_set_names_the_missing_file_and_flags_mixed_scores(tiny_cifar, tmp_path, monkeypatch):
    """fog.npy missing: auto reads 18 sets, generates fog, names fog.npy, and no score that
    includes fog passes for official; results.json records the source of every set."""
    monkeypatch.delenv("FASTNST_FROST_DIR", raising=False)
    root, labels = tiny_cifar
    write_cifar10_c(root, labels, corruptions=[name for name in ALL_CORRUPTIONS if name != "fog"])
    with pytest.warns(UserWarning, match=r"fog \(.*CIFAR-10-C/fog\.npy\) GENERATED"):
        result = evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, batch_size=5, progress=False)
    meta = result["meta"]
    assert meta["source"] == "mixed" and meta["sources"]["fog"] == "generated"
    assert all(meta["sources"][name] == "official" for name in ALL_CORRUPTIONS if name != "fog")
    assert meta["missing_files"]["fog"].endswith("CIFAR-10-C/fog.npy")
    for name in ("Acc_C-original-15", "Acc_C-all-19"):
        score = result["scores"][name]
        members = CORRUPTIONS if name.endswith("15") else ALL_CORRUPTIONS
        official = [np.mean(expected_accuracy(ALL_CORRUPTIONS.index(n))) for n in members if n != "fog"]
        assert score["source"] == "mixed" and score["official_only"] == pytest.approx(np.mean(official))
        assert score["value"] == pytest.approx(np.mean(official + [result["corruption_mean"]["fog"]]))
    printed = format_summary({"meta": meta, "results": {"model": result}})
    assert "MIXED" in printed and "fog (missing" in printed and "fog.npy" in printed
    write_report(result, tmp_path / "report")
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert saved["meta"]["sources"]["fog"] == "generated" and saved["meta"]["sources"]["snow"] == "official"
    assert saved["results"]["model"]["scores"]["Acc_C-original-15"]["source"] == "mixed"
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| fog | generated |" in markdown and "| snow | official |" in markdown and "MIXED" in markdown


def test_source_official_with_a_missing_benchmark_file_names_it(tiny_cifar):
    root, labels = tiny_cifar
    write_cifar10_c(root, labels, corruptions=[name for name in ALL_CORRUPTIONS if name != "fog"])
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10-C/fog\.npy"):
        evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, source="official", progress=False)


def test_source_official_skips_missing_extra_sets_and_says_so(tiny_cifar):
    root, labels = tiny_cifar
    write_cifar10_c(root, labels, corruptions=CORRUPTIONS)  # the 15, like Tiny-ImageNet-C
    result = evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, source="official", progress=False)
    assert result["meta"]["source"] == "official" and "spatter" not in result["accuracy"]
    assert "spatter.npy" in result["meta"]["not_evaluated"]["spatter"]
    assert result["scores"]["Acc_C-original-15"]["value"] is not None
    assert result["scores"]["Acc_C-all-19"]["value"] is None


def _frost_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "frost" in str(w.message)]


def test_no_frost_warning_when_official_files_feed_every_number(tiny_cifar, tmp_path, monkeypatch):
    """The example grid draws generated frost with the stand-in, but no reported number uses it."""
    monkeypatch.delenv("FASTNST_FROST_DIR", raising=False)
    monkeypatch.setattr(frost_module, "_warned", False)
    root, labels = tiny_cifar
    write_cifar10_c(root, labels)
    checkpoint = _checkpoint(tmp_path / "run.pt", seed=0, with_swa=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = main(["--checkpoint", str(checkpoint), "--data-root", str(root), "--batch-size", "5",
                       "--out", str(tmp_path / "report"), "--device", "cpu", "--corruptions", "frost,fog"])
    assert report["meta"]["frost"] == "official files"
    assert _frost_warnings(caught) == []
    assert "stand-in" not in (tmp_path / "report" / "report.md").read_text()


def test_frost_warning_names_what_the_generated_stand_in_feeds(tiny_cifar, monkeypatch):
    monkeypatch.delenv("FASTNST_FROST_DIR", raising=False)
    monkeypatch.setattr(frost_module, "_warned", False)
    root, labels = tiny_cifar
    write_cifar10_c(root, labels, corruptions=[name for name in ALL_CORRUPTIONS if name != "frost"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, batch_size=5, progress=False)
    messages = _frost_warnings(caught)
    stand_in = [m for m in messages if "stand-in" in m]
    assert len(stand_in) == 1, messages  # ours, once; not also the generic one from train.corruptions
    assert "frost's accuracy" in stand_in[0] and "Acc_C-original-15" in stand_in[0] and "Acc_C-all-19" in stand_in[0]
    assert "Acc_C-bar-10" not in stand_in[0]
    assert result["meta"]["frost"] == "procedural stand-in" and result["meta"]["warnings"] == stand_in


def test_a_broken_test_set_stops_before_any_frost_warning(tiny_cifar, monkeypatch):
    """The error is the one line a user sees: no stand-in warning about numbers that will never exist."""
    monkeypatch.delenv("FASTNST_FROST_DIR", raising=False)
    root, _ = tiny_cifar
    test_batch = root / "cifar-10-batches-py" / "test_batch"
    test_batch.write_bytes(test_batch.read_bytes()[:500])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="test_batch"):
            evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, progress=False)
    assert not _frost_warnings(caught)


def test_official_files_with_other_labels_are_rejected(tiny_cifar):
    root, labels = tiny_cifar
    write_cifar10_c(root, (labels + 1) % 10)
    with pytest.raises(ValueError, match="labels differ"):
        evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, progress=False)


def test_source_official_without_files_names_the_folder(tiny_cifar):
    root, _ = tiny_cifar
    with pytest.raises(FileNotFoundError, match="CIFAR-10-C"):
        evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, source="official", progress=False)


@pytest.mark.filterwarnings("ignore:frost")
def test_generated_when_no_official_files(tiny_cifar, monkeypatch):
    monkeypatch.delenv("FASTNST_FROST_DIR", raising=False)
    root, labels = tiny_cifar
    # predicts class 3 whatever the image: right exactly on the test images labelled 3
    result = evaluate(AlwaysClass(3), "cifar10", root, batch_size=3, max_images=5, seed=1, progress=False)
    meta = result["meta"]
    assert meta["source"] == "generated" and meta["frost"] == "procedural stand-in" and meta["num_images"] == 5
    assert set(meta["sources"]) == set(ALL_CORRUPTIONS) and set(meta["sources"].values()) == {"generated"}
    chosen = np.sort(np.random.default_rng(1).choice(10, size=5, replace=False))
    expected = 100.0 * np.mean(labels[chosen] == 3)
    assert result["clean_accuracy"] == pytest.approx(expected)
    assert all(v == pytest.approx(expected) for values in result["accuracy"].values() for v in values)


def test_relative_numbers():
    def flat(accuracy):
        return {"clean_accuracy": accuracy + 5, "accuracy": {n: [accuracy] * 5 for n in CORRUPTIONS},
                "corruption_mean": {n: accuracy for n in CORRUPTIONS}, "mean_corruption_accuracy": accuracy}

    relative = relative_to(flat(80.0), flat(60.0))
    assert relative["clean_accuracy_delta"] == pytest.approx(20.0)
    assert relative["mean_corruption_accuracy_delta"] == pytest.approx(20.0)
    assert relative["mean_corruption_error"] == pytest.approx(0.5)  # 20 % error against 40 %


def _checkpoint(path, seed: int, with_swa: bool):
    torch.manual_seed(seed)
    state = {"config": {"dataset": "cifar10", "model": "wrn10_1", "num_classes": 10},
             "model": create_model("wrn10_1", 10).state_dict(),
             "swa_model": create_model("wrn10_1", 10).state_dict() if with_swa else None}
    save_atomic(state, path)
    return path


@pytest.mark.filterwarnings("ignore:frost")
def test_cli_evaluates_swa_and_baseline_and_writes_the_report(tiny_cifar, tmp_path, capsys):
    root, _ = tiny_cifar
    write_cifar10_c(root, np.arange(10) % 10)
    checkpoint = _checkpoint(tmp_path / "run.pt", seed=0, with_swa=True)
    baseline = _checkpoint(tmp_path / "base.pt", seed=1, with_swa=False)
    out = tmp_path / "report"
    report = main(["--checkpoint", str(checkpoint), "--baseline", str(baseline), "--data-root", str(root),
                   "--max-images", "4", "--batch-size", "4", "--out", str(out), "--device", "cpu",
                   "--corruptions", "fog,gaussian_noise"])
    assert set(report["results"]) == {"model", "swa_model"} and set(report["baseline"]) == {"model"}
    assert set(report["relative"]) == {"model", "swa_model"}
    assert list(report["results"]["model"]["accuracy"]) == ["gaussian_noise", "fog"]  # official order
    assert report["results"]["model"]["scores"]["Acc_C-original-15"]["value"] is None  # 2 of 15: not the score
    assert report["results"]["model"]["num_sets"] == 10
    printed = capsys.readouterr().out
    assert "OFFICIAL" in printed and "swa_model" in printed
    assert "model: clean (on 4 of the 10 test images)" in printed  # not to be confused with a full test set's
    saved = json.loads((out / "results.json").read_text())
    assert saved["results"]["swa_model"]["mean_corruption_accuracy"] == pytest.approx(report["results"]["swa_model"]["mean_corruption_accuracy"])
    markdown = (out / "report.md").read_text()
    assert "official" in markdown and "| gaussian_noise |" in markdown and "relative mCE" in markdown
    assert "10 of the 75" in markdown  # a subset is flagged
    assert "| model | clean (on 4 of the 10 test images) |" in markdown
    for name in ("corruption_accuracy.png", "examples.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] > 200


def test_report_says_when_corruptions_were_generated(tmp_path):
    result = {"clean_accuracy": 90.0, "accuracy": {n: [80.0, 70, 60, 50, 40] for n in CORRUPTIONS},
              "corruption_mean": {n: 60.0 for n in CORRUPTIONS}, "severity_mean": [80.0, 70, 60, 50, 40],
              "mean_corruption_accuracy": 60.0, "num_sets": 75,
              "meta": {"dataset": "cifar10", "source": "generated", "frost": "procedural stand-in", "num_images": 3}}
    written = write_report(result, tmp_path)
    markdown = written["markdown"].read_text()
    assert "GENERATED" in markdown and "procedural stand-in" in markdown
    assert "| model | clean |" in markdown  # no test-set size known: nothing to say
    assert "| **mean of the 15** | | 80.00 | 70.00 | 60.00 | 50.00 | 40.00 | **60.00** | |" in markdown
    assert "examples" not in written and written["bars"].is_file()


def test_tinyimagenet_c_sets_in_class_folder_order(monkeypatch, tmp_path):
    """Tiny-ImageNet-C lists each set by class folder, not in val order: evaluation must use
    each set's own labels (here the loaders are stand-ins returning that layout)."""
    import fastnst.train.evaluate as evaluate_module

    labels = np.array([3, 1, 2, 1, 0, 3, 2, 0])
    clean = np.stack([np.full((64, 64, 3), LEVELS[label], np.uint8) for label in labels])
    by_class = np.argsort(labels, kind="stable")

    def stand_in_c(root, corruption, severity):
        images = clean[by_class].copy()
        wrong = severity  # the first `severity` images of the set are shifted to the next class
        images[:wrong] = np.stack([np.full((64, 64, 3), LEVELS[(label + 1) % 10], np.uint8) for label in labels[by_class][:wrong]])
        return images, labels[by_class]

    monkeypatch.setattr(evaluate_module, "load_test_set", lambda dataset, root, info=None: (clean, labels))
    monkeypatch.setattr(evaluate_module, "missing_official_files", lambda dataset, root, names: {})
    monkeypatch.setattr(evaluate_module, "load_tinyimagenet_c", stand_in_c)
    result = evaluate(ConstantColourClassifier("tinyimagenet"), "tinyimagenet", tmp_path, progress=False)
    assert result["meta"]["source"] == "official" and result["clean_accuracy"] == pytest.approx(100.0)
    for values in result["accuracy"].values():
        assert values == pytest.approx([100.0 * (8 - s) / 8 for s in SEVERITIES])


def test_tinyimagenet_plan_reads_the_published_15_and_generates_the_4_extra(tmp_path):
    """The published Tiny-ImageNet-C holds the 15: auto generates the extra 4 (so C-all-19 is
    mixed); a C-bar folder in ImageNet-C-bar's layout is read, one set missing from it is named."""
    from fastnst.train.data.corrupted import IMAGENET_C_BAR
    from fastnst.train.evaluate import plan_evaluation

    for name in CORRUPTIONS:
        (tmp_path / "Tiny-ImageNet-C" / name / "5").mkdir(parents=True)
    for name in list(IMAGENET_C_BAR)[1:]:
        (tmp_path / "TinyImageNet-c-bar" / name / "5").mkdir(parents=True)
    plan = plan_evaluation("tinyimagenet", tmp_path, "auto")
    sources = {s.name: (s.family, s.source) for s in plan.sets}
    assert all(sources[name] == ("C", "official") for name in CORRUPTIONS)
    assert all(sources[name] == ("C", "generated") for name in ALL_CORRUPTIONS[15:])
    assert plan.missing_files["spatter"].endswith("Tiny-ImageNet-C/spatter/5")
    assert plan.c_bar_root == tmp_path / "TinyImageNet-c-bar"
    assert all(sources[name] == ("C-bar", "official") for name in list(IMAGENET_C_BAR)[1:])
    assert "blue_noise_sample" not in sources and "blue_noise_sample/5" in plan.not_evaluated["blue_noise_sample"]
    assert plan.source == "mixed"
    official = plan_evaluation("tinyimagenet", tmp_path, "official")
    assert {s.name for s in official.sets if s.family == "C"} == set(CORRUPTIONS)
    assert "no official file" in official.not_evaluated["speckle_noise"]


def test_evaluator_feeds_the_measured_layout_and_pass_size(tiny_cifar, monkeypatch):
    """On the CPU: channels_last input (model converted too), at most EVAL_FORWARD_BATCH images per pass."""
    from fastnst.train.evaluate import EVAL_FORWARD_BATCH, EVAL_MEMORY_FORMAT

    class Probe(ConstantColourClassifier):
        def __init__(self):
            super().__init__("cifar10")
            self.conv = nn.Conv2d(3, 1, 1)
            self.seen = []

        def forward(self, images):
            self.seen.append((len(images), images.is_contiguous(memory_format=torch.channels_last)))
            return super().forward(images)

    root, _ = tiny_cifar
    probe = Probe()
    assert EVAL_MEMORY_FORMAT["cpu"] == torch.channels_last and EVAL_FORWARD_BATCH["cpu"] == 64
    monkeypatch.setitem(EVAL_FORWARD_BATCH, "cpu", 3)  # smaller than the tiny test set
    evaluate(probe, "cifar10", root, source="generated", corruptions=("brightness",), batch_size=10, progress=False)
    assert probe.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert max(size for size, _ in probe.seen) == 3 and all(layout for _, layout in probe.seen)
    assert sum(size for size, _ in probe.seen) == 10 * 7  # clean, Lp noise, 5 severities


def test_frost_textures_under_the_data_root_are_found(tiny_cifar, tmp_path, monkeypatch):
    """Where `python -m train.data.download frost` puts them (DATA_ROOT/frost), no flag needed."""
    import shutil

    monkeypatch.delenv("FASTNST_FROST_DIR", raising=False)
    root, labels = tiny_cifar
    data_root = tmp_path / "data"
    shutil.copytree(root, data_root)
    (data_root / "frost").mkdir()
    for name in frost_module.FROST_FILES:
        Image.new("RGB", (240, 200), (200, 220, 250)).save(data_root / "frost" / name, quality=100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(ConstantColourClassifier("cifar10"), "cifar10", data_root, source="generated", batch_size=5,
                          corruptions=("frost",), progress=False)
    assert result["meta"]["frost"] == f"official:{data_root / 'frost'}"
    assert _frost_warnings(caught) == []
    (data_root / "frost" / "frost5.jpg").unlink()  # an incomplete folder is not used: the stand-in, flagged
    result = evaluate(ConstantColourClassifier("cifar10"), "cifar10", data_root, source="generated", batch_size=5,
                      corruptions=("frost",), progress=False)
    assert result["meta"]["frost"] == "procedural stand-in"


def test_source_official_without_the_folder_says_so_once(tiny_cifar):
    """No CIFAR-10-C folder: one sentence saying so, with the command that fetches it (it once listed the
    same missing labels.npy 15 times); a folder without labels.npy names that file once."""
    root, labels = tiny_cifar
    with pytest.raises(FileNotFoundError) as raised:
        evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, source="official", progress=False)
    message = str(raised.value)
    assert f"there is no {root / 'CIFAR-10-C'};" in message and message.count("CIFAR-10-C") == 1
    assert f"python -m train.data.download cifar10-c --data-root {root}" in message
    write_cifar10_c(root, labels)
    (root / "CIFAR-10-C" / "labels.npy").unlink()
    with pytest.raises(FileNotFoundError) as raised:
        evaluate(ConstantColourClassifier("cifar10"), "cifar10", root, source="official", progress=False)
    assert str(raised.value).count("labels.npy") == 1
    with pytest.raises(FileNotFoundError, match=r"there is no .*val-c; write it with `python -m train.corruptions.generate "
                       r"--data .* --out .*val-c`"):  # an image folder's -C set is made, not downloaded
        plan_evaluation("imagefolder", root, source="official")


def test_the_checkpoint_says_where_its_data_came_from(tiny_cifar, tmp_path, monkeypatch, capsys):
    """Without --data-root, a checkpoint is evaluated on the data its run read (the demo's OUT/demo_data),
    not on ./data."""
    root, _ = tiny_cifar
    torch.manual_seed(0)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.parent.mkdir()
    save_atomic({"config": {"dataset": "cifar10", "model": "wrn10_1", "num_classes": 10, "data_root": str(root)},
                 "model": create_model("wrn10_1", 10).state_dict(), "swa_model": None}, checkpoint)
    monkeypatch.chdir(tmp_path)  # no ./data here
    report = main(["--checkpoint", str(checkpoint), "--corruptions", "fog", "--max-images", "4", "--source", "generated"])
    assert report["meta"]["data_root"] == str(root) and (tmp_path / "run" / "robustness" / "report.md").is_file()
