"""``--dataset imagefolder``: a user's folder of JPEG and PNG images (tests.data_formats.write_image_folder: 3 classes
x 20 images of 96 px, one greyscale, one PNG with a broken pixel stream), torchvision and timm classifiers, the
random-resized and padded crops, the generated -C folder and its evaluation, and torchrun."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.style_bank import encode_style_folder
from fastnst.train.checkpoint import load_checkpoint, model_from_checkpoint
from fastnst.train.config import Augmentation, parse_command_line
from fastnst.train.corruptions import generate
from fastnst.train.data import create_eval_loader, create_train_loader, dataset_info
from fastnst.train.data.demo import draw_style_images
from fastnst.train.data.draws import TA_EQUALIZE_OP, TA_IDENTITY_OP, AugmentDraws, draw_resized_crops
from fastnst.train.data.jpeg_check import check_files
from fastnst.train.data.stats import IMAGENET_MEAN, IMAGENET_STD
from fastnst.train.data.train_loader import equalize_chosen
from fastnst.train.evaluate import main as evaluate_main
from fastnst.train.run import cli, main
from fastnst.weights import load_encoder, write_random_weights
from tests.data_formats import IMAGEFOLDER_CLASSES, write_image_folder
from tests.markers import needs_dali
from tests.test_data_download import server  # noqa: F401  (the loopback server fixture)
from tests.test_fetched_defaults import fake_internet  # noqa: F401  (the manifest served from it)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The user's folder, a synthetic folder (40 px, two of the classes) and random-weight stylizer files."""
    root = tmp_path_factory.mktemp("imagefolder")
    written = write_image_folder(root / "data")
    synthetic = write_image_folder(root / "synthetic", per_class=6, val_per_class=0, size=40, seed=5)
    for path, _ in synthetic["train"]:  # the synthetic set as a folder of class folders, one class left out
        if path.parent.name == "bird":
            path.unlink()
    (root / "synthetic" / "train" / "dog" / "dog_001.png").unlink()  # its broken and its greyscale file: not here
    (root / "synthetic" / "train" / "cat" / "cat_002.jpg").unlink()
    vgg, decoder = write_random_weights(root / "weights")
    styles = draw_style_images(root / "styles", count=3, size=32, seed=0)[0].parent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RANDOM weights: said in every run's output
        encode_style_folder(styles, load_encoder(vgg), image_size=32).save(root / "styles.pt")
    stylization = ["--styles", str(root / "styles.pt"), "--vgg", str(vgg), "--decoder", str(decoder)]
    return {"root": root, "data": root / "data", "synthetic": root / "synthetic" / "train", "written": written,
            "stylization": stylization}


def _run_flags(images, out, model, *extra):
    return ["--dataset", "imagefolder", "--data-root", str(images["data"]), "--model", model, "--image-size", "32",
            "--epochs", "1", "--batch-size", "16", "--no-swa", "--no-evaluate-corruptions", "--log-every", "2",
            "--out", str(out), *images["stylization"], *extra]


# ----------------------------------------------------------------------------- configuration

def test_classes_image_size_and_crop_come_from_the_folder(images, tmp_path):
    config, sources, _ = parse_command_line(["--dataset", "imagefolder", "--data-root", str(images["data"]),
                                             "--no-stylize"])
    assert config["class_names"] == list(IMAGEFOLDER_CLASSES) and config["num_classes"] == 3
    assert config["train_crop"] == "random-resized" and config["image_size"] == 224  # 96 px images: ImageNet-style
    assert "96x96" in sources["train_crop"] and config["model"] == "torchvision:resnet18"
    assert dataset_info("imagefolder", config).mean == IMAGENET_MEAN and dataset_info("imagefolder", config).std == IMAGENET_STD
    small = tmp_path / "small"
    write_image_folder(small, per_class=2, val_per_class=1, size=32)
    config, sources, _ = parse_command_line(["--dataset", "imagefolder", "--data-root", str(small), "--no-stylize"])
    assert (config["train_crop"], config["image_size"]) == ("pad", 32) and "32x32" in sources["train_crop"]
    assert dataset_info("imagefolder", config).eval_resize == 32  # test images are taken as they are
    config, _, _ = parse_command_line(["--dataset", "imagefolder", "--data-root", str(small), "--no-stylize",
                                       "--image-size", "64"])
    assert (config["train_crop"], config["image_size"]) == ("random-resized", 64)
    assert dataset_info("imagefolder", config).eval_resize == 73  # the 256/224 ratio


@pytest.mark.parametrize("flags, message", [
    (["--manifold-noise"], "--manifold-noise needs layer hooks (a WRN's stage_output_size / perturb_stage) that "
                           "--model torchvision:resnet18 lacks: pass --no-manifold-noise"),
    (["--model", "torchvision:resnet_huge"], "--model torchvision:resnet_huge: torchvision has no classifier"),
    (["--model", "resnet18"], "--model must be one of wrn28_4, wrn28_10, wrn16_2, wrn10_1, torchvision:<name> or timm:<name>"),
    (["--stylize-cache", "cache"], "--stylize-cache stores stylized copies of fixed images"),
])
def test_model_and_option_errors_are_one_line(images, capsys, flags, message):
    code = cli(["--dataset", "imagefolder", "--data-root", str(images["data"]), "--out", "unused",
                *images["stylization"], *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_a_wrn_takes_manifold_noise_and_the_wrn_names_still_work(images):
    config, _, _ = parse_command_line(["--dataset", "imagefolder", "--data-root", str(images["data"]), "--no-stylize",
                                       "--model", "wrn16_2", "--manifold-noise"])
    assert config["manifold_noise"] and config["model"] == "wrn16_2"


def test_a_missing_folder_is_named(tmp_path, capsys):
    assert cli(["--dataset", "imagefolder", "--data-root", str(tmp_path / "mine"), "--no-stylize"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'mine' / 'train'} not found" in err and "DIR/val/<class>/<image>" in err
    # with the stylization's inputs missing too: all of them in one error (the folder was once named alone)
    assert cli(["--dataset", "imagefolder", "--data-root", str(tmp_path / "mine")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "needs its data set and --styles, --vgg, --decoder" in line and "holds no train/<class>/<image>; " in line
    assert f"`python -m train.data.download --for imagefolder --data-root {tmp_path / 'mine'}` (your images go in " in line
    assert cli(["--dataset", "imagefolder", "--data-root", str(tmp_path / "mine"), "--print-config"]) == 0
    printed = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "MISSING" in printed["dataset"] and "MISSING" in printed["vgg"]


# ----------------------------------------------------------------------------- check, crops, loader

def test_the_check_refuses_the_broken_png_and_records_every_size(images):
    written = images["written"]
    paths = [path for path, _ in written["train"]]
    bad, sizes = check_files(paths, None, images["data"] / "train")
    assert set(bad) == {written["corrupt"]} and "broken data stream" in bad[written["corrupt"]]
    assert (sizes[[path != written["corrupt"] for path in paths]] == 96).all()  # the greyscale JPEG included
    assert (sizes[paths.index(written["corrupt"])] == -1).all()
    bad_at_32, _ = check_files(paths, 32, images["data"] / "train")  # the cache knows sizes: padded crops need 32 px
    assert len(bad_at_32) == len(paths) and "expected 32x32 pixels, got 96x96" in bad_at_32[paths[0]]


def test_resized_crops_are_torchvisions_draws():
    """torchvision's RandomResizedCrop.get_params: the same fallback, and the same crop statistics."""
    from torchvision.transforms.v2 import RandomResizedCrop

    rng = np.random.default_rng(0)
    start, shape = draw_resized_crops(rng, np.array([10]), np.array([200]), (1.0, 1.0))
    expected = RandomResizedCrop.get_params(torch.zeros(3, 10, 200), scale=[1.0, 1.0], ratio=[3 / 4, 4 / 3])
    assert (start[0].tolist(), shape[0].tolist()) == ([expected[0], expected[1]], [expected[2], expected[3]])
    heights, widths = np.full(4000, 96), np.full(4000, 140)
    start, shape = draw_resized_crops(rng, heights, widths, (0.08, 1.0))
    assert (start >= 0).all() and (start + shape <= np.stack([heights, widths], 1)).all() and (shape > 0).all()
    torch.manual_seed(0)
    theirs = np.array([RandomResizedCrop.get_params(torch.zeros(3, 96, 140), [0.08, 1.0], [3 / 4, 4 / 3])
                       for _ in range(4000)])
    for ours_value, theirs_value in ((shape[:, 0] * shape[:, 1], theirs[:, 2] * theirs[:, 3]),
                                     (shape[:, 1] / shape[:, 0], theirs[:, 3] / theirs[:, 2]),
                                     (start[:, 0], theirs[:, 0])):
        assert abs(ours_value.mean() - theirs_value.mean()) < 0.05 * theirs_value.mean()


def _tint_labels(images_nchw: torch.Tensor) -> np.ndarray:
    """The class each (normalized) image was tinted with: its strongest channel (bird red, cat green, dog blue)."""
    pixels = images_nchw * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    return pixels.mean(dim=(2, 3)).argmax(dim=1).numpy()


BACKENDS = [pytest.param("dali", marks=needs_dali), "torch"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_resized_crops_decode_jpeg_and_png_and_replay_exactly(images, caplog, backend):
    config, _, _ = parse_command_line(["--dataset", "imagefolder", "--data-root", str(images["data"]), "--no-stylize",
                                       "--image-size", "48", "--no-trivial-augment", "--random-erasing-prob", "0",
                                       "--synthetic", str(images["synthetic"]), "--synthetic-ratio", "0.25",
                                       "--augment-backend", backend])
    info = dataset_info("imagefolder", config)
    with caplog.at_level(logging.WARNING):
        loader = create_train_loader("imagefolder", images["data"], 16, synthetic_path=config["synthetic"],
                                     synthetic_ratio=0.25, augmentation=Augmentation.from_config(config), info=info)
    assert loader.backend == backend
    assert loader.num_skipped == 1 and "dog_001.png" in caplog.text  # the broken PNG, before any step
    batches = [[tuple(part.clone() for part in batch) for batch in loader] for _ in range(2)]
    images_seen = synthetic_seen = mislabelled = 0
    for images_nchw, labels, is_synthetic in batches[0]:
        assert images_nchw.shape[1:] == (3, 48, 48)
        mislabelled += int((_tint_labels(images_nchw) != labels.numpy()).sum())
        images_seen, synthetic_seen = images_seen + len(labels), synthetic_seen + int(is_synthetic.sum())
    assert (images_seen, synthetic_seen) == (60, 15)  # the authors' epoch: N samples, int(N * 0.25) synthetic
    assert mislabelled <= 1  # each crop is of its labelled file, synthetic ones too; the greyscale cat has no tint
    for first, again in zip(*batches):  # an epoch is a function of (seed, epoch): what exact resume rests on
        assert all(torch.equal(a, b) for a, b in zip(first, again))
    loader.set_epoch(1)
    assert not torch.equal(next(iter(loader))[0], batches[0][0][0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_small_images_of_one_size_get_the_padded_crop(tmp_path, backend):
    write_image_folder(tmp_path, per_class=6, val_per_class=2, size=32)
    config, _, _ = parse_command_line(["--dataset", "imagefolder", "--data-root", str(tmp_path), "--no-stylize",
                                       "--augment-backend", backend])
    info = dataset_info("imagefolder", config)
    loader = create_train_loader("imagefolder", tmp_path, 8, augmentation=Augmentation.from_config(config), info=info)
    assert loader.backend == backend and not loader.resized_crops and loader.crop_padding == 4  # side / 8, as RandomCrop
    assert all(images.shape[1:] == (3, 32, 32) for images, _, _ in loader)
    test = create_eval_loader("imagefolder", tmp_path, 4, info=info)
    pixels = torch.cat([images for images, _ in test])
    expected = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in
                         sorted((tmp_path / "val").rglob("*.*"))])  # class folders and files, sorted: the label order
    unnormalized = pixels * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255 + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    assert np.abs(unnormalized.permute(0, 2, 3, 1).numpy() - expected).max() < 1e-3  # taken as they are stored


def test_equalize_of_random_resized_crops_is_torchvisions():
    """The samples that drew equalize get torchvision's own (before stage 2) and the identity in stage 2."""
    from torchvision.transforms.v2.functional import equalize

    rng = np.random.default_rng(0)
    batch = rng.integers(0, 200, (4, 40, 40, 3), dtype=np.uint8)
    batch[3, :, :, 2] = 7  # a flat channel: left as it is
    ta_op = np.array([TA_EQUALIZE_OP, 0, TA_EQUALIZE_OP, TA_EQUALIZE_OP], dtype=np.int32)
    draws = AugmentDraws(*(np.zeros(4, np.int32) for _ in range(2)), ta_op.copy(), *(np.zeros(4, np.int32) for _ in range(2)),
                         np.zeros(4, bool), np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32))
    original = batch.copy()
    out = equalize_chosen(batch, draws)
    theirs = equalize(torch.from_numpy(original).permute(0, 3, 1, 2).float() / 255)  # as the authors' float tensors
    theirs = (theirs * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert out is batch and np.array_equal(out[[0, 2, 3]], theirs[[0, 2, 3]]) and np.array_equal(out[1], original[1])
    assert np.array_equal(out[3, :, :, 2], original[3, :, :, 2])
    assert draws.ta_op.tolist() == [TA_IDENTITY_OP, 0, TA_IDENTITY_OP, TA_IDENTITY_OP]


# ----------------------------------------------------------------------------- one epoch per model family

# the WRN's epoch on the torch backend (no DALI), the others on the default (DALI where installed)
MODELS = [("wrn16_2", "WideResNet", "torch"), ("torchvision:resnet18", "ResNet", "auto"),
          pytest.param("timm:test_resnet", "ResNet", "auto", marks=pytest.mark.skipif(
              __import__("importlib").util.find_spec("timm") is None, reason="the timm extra is not installed"))]


@pytest.mark.parametrize("model, class_name, backend", MODELS)
def test_one_epoch_with_stylization(images, tmp_path, caplog, model, class_name, backend):
    out = tmp_path / "run"
    extra = ["--synthetic", str(images["synthetic"]), "--synthetic-ratio", "0.25"] if model.startswith("torchvision") else []
    extra += ["--augment-backend", backend]
    with caplog.at_level(logging.WARNING), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weight stylizer files' warnings
        assert main(_run_flags(images, out, model, *extra)) == 0
    assert "skipping bad image" in caplog.text and "dog_001.png" in caplog.text
    state = load_checkpoint(out / "checkpoint.pt")
    config = state["config"]
    assert config["class_names"] == list(IMAGEFOLDER_CLASSES) and config["num_classes"] == 3
    assert (config["image_size"], config["train_crop"], config["model"]) == (32, "random-resized", model)
    (row,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert row["num_stylized"] > 0 and row["test_acc"] is not None
    assert (out / "report" / "stylization.png").is_file()  # files of any size, a synthetic set of its own size
    rebuilt, _ = model_from_checkpoint(out / "checkpoint.pt")
    assert type(rebuilt).__name__ == class_name and rebuilt(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


# ----------------------------------------------------------------------------- the -C folder

def test_generated_c_folder_is_written_once_and_evaluated(images, tmp_path, capsys):
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(_run_flags(images, run, "wrn16_2", "--no-stylize")) == 0
    corrupted = tmp_path / "val-c"
    flags = ["--data", str(images["data"]), "--out", str(corrupted), "--image-size", "32", "--corruptions", "fog,contrast"]
    assert generate.cli(flags) == 0
    files = sorted(corrupted.glob("*/*/*/*"))
    assert len(files) == 2 * 5 * 12 and {path.parts[-2] for path in files} == set(IMAGEFOLDER_CLASSES)
    assert {path.suffix for path in files} == {".jpg"} and Image.open(files[0]).size == (32, 32)
    stamp = files[0].stat().st_mtime_ns
    (corrupted / "fog" / "5").rename(corrupted / "fog" / "5.partial")  # as if killed while writing it
    capsys.readouterr()
    assert generate.cli(flags) == 0 and "1 of 10 sets to write" in capsys.readouterr().out
    assert files[0].stat().st_mtime_ns == stamp and (corrupted / "fog" / "5").is_dir()

    report = evaluate_main(["--checkpoint", str(run / "checkpoint.pt"), "--data-root", str(images["data"]),
                            "--corrupted-root", str(corrupted), "--corruptions", "fog,contrast", "--out", str(tmp_path / "r")])
    assert report["meta"]["sources"] == {"fog": "official", "contrast": "official"}
    assert report["meta"]["num_images"] == 12 and report["meta"]["image_size"] == 32
    assert all(0 <= value <= 100 for value in report["results"]["model"]["accuracy"]["fog"])

    assert generate.cli(flags[:-4] + ["--image-size", "48", "--corruptions", "fog"]) == 2  # another test view
    assert "holds a set made with other settings (image_size: 32 there, 48 now" in capsys.readouterr().err
    other = tmp_path / "val-c-48"
    assert generate.cli(["--data", str(images["data"]), "--out", str(other), "--image-size", "48",
                         "--corruptions", "fog"]) == 0
    from fastnst.train.evaluate import cli as evaluate_cli

    assert evaluate_cli(["--checkpoint", str(run / "checkpoint.pt"), "--data-root", str(images["data"]),
                         "--corrupted-root", str(other), "--corruptions", "fog", "--source", "official"]) == 2
    assert "generated from test images of 48 px" in capsys.readouterr().err


# ----------------------------------------------------------------------------- DDP

def test_torchrun_trains_on_an_image_folder(images, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "train.run", *_run_flags(images, tmp_path / "run", "torchvision:resnet18")],
                          env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["finished"] and state["world_size"] == 2 and state["config"]["class_names"] == list(IMAGEFOLDER_CLASSES)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1
    assert done.stderr.count("skipping bad image") == 2  # rank 0 checked the files, the other read its verdicts: both skip


# ----------------------------------------------------------------------------- the README's commands

def readme_imagefolder_commands() -> list[list[str]]:
    """The code block of the README's "Your images, your model" section, as argv lists."""
    import re
    import shlex

    section = (REPO_ROOT / "README.md").read_text().split("## Your images, your model", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_download_then_train_on_your_images(fake_internet, tmp_path, capsys):
    """The README's two commands on a user's folder (the download served from 127.0.0.1): the run finds the
    style inputs under the folder, trains and writes its corruption report."""
    from fastnst.train.data import download

    download_command, train_command = readme_imagefolder_commands()
    assert train_command[3:] == ["--dataset", "imagefolder", "--data-root", "my_images", "--model", "torchvision:resnet18"]
    write_image_folder(tmp_path / "my_images", per_class=8, val_per_class=2)
    assert download.main(download_command[3:]) == 0
    capsys.readouterr()
    for texture in (tmp_path / "my_images" / "frost").iterdir():  # the served ones are 40 px; the official 560x315 and up
        Image.new("RGB", (400, 320), (220, 230, 250)).save(texture, format="PNG" if texture.suffix == ".png" else "JPEG")
    tiny = ["--image-size", "32", "--epochs", "1", "--batch-size", "16", "--no-swa", "--max-eval-images", "3", "--out", "run"]
    assert main(train_command[3:] + tiny) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["corruption_source"] == "generated" and (tmp_path / "run" / "report" / "report.md").is_file()
    config = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"]
    assert config["styles"] == str(Path("my_images/style_feats_adain_1000.npy"))
    assert config["vgg"] == str(Path("my_images/adain/vgg_normalised.pth"))
