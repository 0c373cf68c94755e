"""fastnst.stylize_dataset and its command line train.stylize_cache: the stylized cache of a data set,
its resume after a kill, its errors.

Random (but lively) networks saved as weight files, a random style bank, 32 px images stylized at
native size: the logic under test at a CPU-friendly cost.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from data_formats import random_images, write_cifar10, write_synthetic_npz, write_tinyimagenet
from lively_networks import write_stylizer_files
from fastnst import cache_format as fmt
from fastnst import stylize_dataset as sd
from fastnst.cache_journal import JOURNAL_FILE
from fastnst.stylizer import build_stylizer
from fastnst.train import stylize_cache

REPO_ROOT = Path(__file__).resolve().parent.parent
VARIANTS = 2


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """Weight files, a style bank and a small EDM-style set, written once for the module."""
    folder = tmp_path_factory.mktemp("stylize_dataset")
    write_stylizer_files(folder)
    images, labels = write_synthetic_npz(folder / "set.npz", count=10, size=32)
    return {"folder": folder, "vgg": str(folder / "vgg.pth"), "decoder": str(folder / "decoder.pth"),
            "styles": str(folder / "styles.pt"), "npz": folder / "set.npz", "images": images, "labels": labels}


def options(files, **overrides) -> sd.StylizeOptions:
    values = dict(style_bank=files["styles"], vgg=files["vgg"], decoder=files["decoder"], variants=VARIANTS,
                  resolution=None, device="cpu", batch_size=2, chunk_size=4, progress=False)
    return sd.StylizeOptions(**{**values, **overrides})


def cli_args(files, out, *extra) -> list[str]:
    return ["--input", str(files["npz"]), "--out", str(out), "--source", "synthetic", "--styles", files["styles"],
            "--vgg", files["vgg"], "--decoder", files["decoder"], "--variants", str(VARIANTS), "--style-resolution", "native",
            "--batch-size", "2", "--chunk-size", "4", "--device", "cpu", "--no-progress", *extra]


@pytest.fixture(scope="module")
def reference(files, tmp_path_factory):
    """An uninterrupted run through the command line: the output every other run must reproduce."""
    out = tmp_path_factory.mktemp("reference") / "cache"
    assert stylize_cache.main(cli_args(files, out)) == 0
    return fmt.open_stylized_dataset(out)


def test_cache_holds_each_variant_as_the_stylizer_makes_it(files, reference):
    images, labels = files["images"], files["labels"]
    count = len(images)
    assert reference.images.shape == (count, VARIANTS, 32, 32, 3) and reference.images.dtype == np.uint8
    assert reference.style_index.shape == reference.alpha.shape == (count, VARIANTS)
    np.testing.assert_array_equal(reference.labels, labels)
    # Recompute every variant with the Stylizer, one variant per call: same pixels (CPU convolutions on
    # other batch shapes may differ in the last float bit, hence at most 1 grey level on a few pixels).
    stylizer = build_stylizer(files["styles"], files["vgg"], files["decoder"], device="cpu", resolution=None)
    content = torch.from_numpy(images).permute(0, 3, 1, 2)
    for k in range(VARIANTS):
        expected = stylizer.stylize(content, torch.from_numpy(reference.style_index[:, k]).long(),
                                    torch.from_numpy(reference.alpha[:, k])).permute(0, 2, 3, 1).numpy()
        difference = np.abs(expected.astype(int) - reference.images[:, k].astype(int))
        assert difference.max() <= 1 and (difference == 0).mean() > 0.99
    # The variants really differ, from the input and from each other.
    assert (reference.images[:, 0] != reference.images[:, 1]).mean() > 0.5
    assert (reference.images[:, 0] != images).mean() > 0.5


def test_meta_records_settings_and_hashes(files, reference):
    meta = reference.meta
    settings = meta["settings"]
    assert settings["vgg_sha256"] == fmt.sha256_file(files["vgg"])
    assert settings["decoder_sha256"] == fmt.sha256_file(files["decoder"])
    assert settings["style_bank_sha256"] == fmt.sha256_file(files["styles"])
    assert settings["variants"] == VARIANTS and settings["resolution"] == "native" and settings["source"] == "synthetic"
    assert settings["alpha"] == [0.1, 1.0]  # the paper's synthetic range
    assert meta["dataset"] == fmt.dataset_identity(files["images"], files["labels"])
    assert meta["last_call"]["images_per_second"] > 0
    assert not (reference.path / JOURNAL_FILE).exists()
    assert not fmt.partial_path(reference.path).exists()
    assert reference.mismatches(files["images"], files["labels"]) == []


def test_style_and_alpha_draws_are_uniform():
    """Statistical: 20000 x 4 draws; tolerance 5 standard errors (false alarm < 1e-6)."""
    count, variants, num_styles = 20000, 4, 7
    style_index, alpha = sd.draw_variants(count, variants, num_styles, (0.1, 1.0), seed=3)
    draws = count * variants
    share = np.bincount(style_index.ravel(), minlength=num_styles) / draws
    assert np.abs(share - 1 / num_styles).max() < 5 * np.sqrt((1 / num_styles) * (1 - 1 / num_styles) / draws)
    assert alpha.min() >= 0.1 and alpha.max() < 1.0
    assert abs(alpha.mean() - 0.55) < 5 * 0.9 / np.sqrt(12 * draws)
    fixed_style, fixed_alpha = sd.draw_variants(10, 2, num_styles, (1.0, 1.0), seed=3)
    assert (fixed_alpha == 1.0).all()
    again = sd.draw_variants(count, variants, num_styles, (0.1, 1.0), seed=3)
    assert np.array_equal(again[0], style_index) and np.array_equal(again[1], alpha)


def test_variants_in_one_call_equal_separate_calls(files):
    """Stylizer.stylize(variants=K) encodes once and decodes K times: same as K separate calls."""
    stylizer = build_stylizer(files["styles"], files["vgg"], files["decoder"], device="cpu", resolution=40)
    content = torch.from_numpy(files["images"][:3]).permute(0, 3, 1, 2)
    style_index = torch.tensor([0, 5, 2, 2, 4, 1])
    alpha = torch.tensor([0.3, 1.0, 0.5, 0.9, 0.1, 0.7])
    together = stylizer.stylize(content, style_index, alpha, variants=2)
    assert together.shape == (6, 3, 32, 32)
    for k in range(2):
        alone = stylizer.stylize(content, style_index[k::2], alpha[k::2])
        assert (together[k::2].int() - alone.int()).abs().max() <= 1
    with pytest.raises(ValueError, match="3 images x 2 variants"):
        stylizer.stylize(content, style_index[:3], alpha[:3], variants=2)


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import fastnst.stylize_dataset as sd
    from fastnst.train.stylize_cache import main
    # Die like a killed process (no cleanup) while chunk 1's second batch is being written.
    sd._batch_written_hook = lambda written: os.kill(os.getpid(), signal.SIGKILL) if written == 3 else None
    sys.exit(main(sys.argv[1:]))
""")


def test_resume_after_a_kill_is_bit_identical(files, reference, tmp_path):
    out = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, *cli_args(files, out)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    partial = fmt.partial_path(out)
    assert not out.exists() and partial.is_dir()
    journal = json.loads((partial / JOURNAL_FILE).read_text())
    assert journal["done"] == [0] and journal["num_chunks"] == 3  # 10 images, chunks of 4
    with pytest.raises(fmt.StylizeDatasetError, match="incomplete"):
        fmt.open_stylized_dataset(out)

    resumed = subprocess.run([sys.executable, "-m", "train.stylize_cache", *cli_args(files, out)], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "img/s" in resumed.stdout
    result = fmt.open_stylized_dataset(out)
    assert result.meta["last_call"]["stylized_images"] == 6 * VARIANTS  # chunk 0 was not redone
    np.testing.assert_array_equal(result.images, reference.images)
    np.testing.assert_array_equal(result.style_index, reference.style_index)
    np.testing.assert_array_equal(result.alpha, reference.alpha)
    assert not partial.exists()


def test_max_chunks_stops_and_resumes(files, reference, tmp_path, capsys):
    out = tmp_path / "cache"
    first = sd.stylize_dataset(files["images"], files["labels"], out, options(files, max_chunks=2))
    assert not first.complete and first.images_stylized == 8 * VARIANTS and not out.exists()
    assert "run the same command again" in capsys.readouterr().out
    second = sd.stylize_dataset(files["images"], files["labels"], out, options(files))
    assert second.complete and second.images_stylized == 2 * VARIANTS
    stylize_cache.report(second)  # the time and img/s are this call's: the line must not claim the whole set
    assert f"(resumed: {2 * VARIANTS} of the {10 * VARIANTS} stylized images made by this call)" in capsys.readouterr().out
    np.testing.assert_array_equal(fmt.open_stylized_dataset(out).images, reference.images)
    again = sd.stylize_dataset(files["images"], files["labels"], out, options(files))  # complete: nothing to do
    assert again.complete and again.images_stylized == 0


def test_resume_with_other_settings_is_refused(files, tmp_path):
    out = tmp_path / "cache"
    sd.stylize_dataset(files["images"], files["labels"], out, options(files, max_chunks=1))
    with pytest.raises(fmt.StylizeDatasetError, match=r"settings\.seed: recorded 0, now 1"):
        sd.stylize_dataset(files["images"], files["labels"], out, options(files, seed=1))
    other_images = files["images"].copy()
    other_images[0] ^= 1
    with pytest.raises(fmt.StylizeDatasetError, match=r"dataset\.pixels_sha256"):
        sd.stylize_dataset(other_images, files["labels"], out, options(files))


def test_complete_output_with_other_settings_is_refused(files, reference):
    with pytest.raises(fmt.StylizeDatasetError, match=r"already exists.*settings\.variants: recorded 2, now 3"):
        sd.stylize_dataset(files["images"], files["labels"], reference.path, options(files, variants=3))


def _cli_error(args, capsys) -> str:
    assert stylize_cache.cli(args) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "Traceback" not in message
    return message


def test_bad_input_gets_a_one_line_error(files, tmp_path, capsys):
    out = tmp_path / "out"
    base = cli_args(files, out)
    with_input = lambda value: [value if arg == str(files["npz"]) else arg for arg in base]  # noqa: E731
    assert "does not exist" in _cli_error(with_input(str(tmp_path / "missing.npz")), capsys)
    (tmp_path / "notes.txt").write_text("x")
    assert "expected an .npz file or an image folder" in _cli_error(with_input(str(tmp_path / "notes.txt")), capsys)
    np.savez(tmp_path / "wrong.npz", pictures=np.zeros((2, 32, 32, 3), np.uint8))
    assert "no array 'image'" in _cli_error(with_input(str(tmp_path / "wrong.npz")), capsys)
    np.savez(tmp_path / "gray.npz", image=np.zeros((2, 32, 32), np.uint8), label=np.zeros(2))
    assert "uint8 (N, H, W, 3)" in _cli_error(with_input(str(tmp_path / "gray.npz")), capsys)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    assert "not a valid .npz" in _cli_error(with_input(str(tmp_path / "broken.npz")), capsys)
    write_cifar10(tmp_path / "data", per_batch=2, num_test=2)
    message = _cli_error(with_input(str(tmp_path / "data" / "cifar-10-batches-py")), capsys)
    assert "--dataset cifar10|cifar100" in message
    mixed = tmp_path / "mixed" / "cat"
    mixed.mkdir(parents=True)
    from PIL import Image
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(mixed / "a.png")
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(mixed / "b.png")
    assert "b.png is 32x16" in _cli_error(with_input(str(tmp_path / "mixed")), capsys)
    (mixed / "b.png").unlink()
    (mixed / "c.png").write_bytes(b"garbage")
    assert "cannot decode" in _cli_error(with_input(str(tmp_path / "mixed")), capsys)
    assert "--styles" in _cli_error([*base[:-1], "--styles", str(tmp_path / "nope.pt"), "--no-progress"], capsys)
    assert "--variants must be at least 1" in _cli_error([*base, "--variants", "0"], capsys)
    assert "--synthetic names the EDM set" in _cli_error([*base, "--synthetic", str(files["npz"])], capsys)
    assert not out.exists() and not fmt.partial_path(out).exists()


def test_image_folder_reads_tinyimagenet_in_the_loaders_order(tmp_path):
    from fastnst.train.data.jpeg import decode_files
    from fastnst.train.data.tinyimagenet import list_train_files

    write_tinyimagenet(tmp_path, per_class=2, num_val=2, classes=3)
    from fastnst.train.data.generic_input import read_input

    images, labels = read_input(tmp_path / "tiny-imagenet-200")
    paths, expected_labels = list_train_files(tmp_path, 3)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(images, decode_files(paths, 64, "check"))


def test_train_entry_point_caches_the_loaders_source(files, tmp_path):
    """python -m train.stylize_cache reads the source as the loader does and records it."""
    from fastnst.train.data.sources import load_train_source
    write_cifar10(tmp_path / "data", per_batch=2, num_test=2)
    out = tmp_path / "real"
    assert stylize_cache.main(["--dataset", "cifar10", "--data-root", str(tmp_path / "data"), "--source", "real",
                 "--styles", files["styles"], "--vgg", files["vgg"], "--decoder", files["decoder"],
                 "--style-resolution", "native", "--variants", "1", "--out", str(out), "--device", "cpu",
                 "--no-progress"]) == 0
    cache = fmt.open_stylized_dataset(out)
    real = load_train_source("cifar10", tmp_path / "data")
    assert cache.mismatches(real.images, real.labels) == []
    assert cache.meta["settings"]["alpha"] == [1.0, 1.0]  # the cifar10 preset's alpha_real
    assert cache.meta["input"] == {"dataset": "cifar10", "source": "real", "path": str(tmp_path / "data")}


def test_mismatches_name_what_differs(files, reference):
    images, labels = files["images"], files["labels"]
    assert reference.mismatches(images[:-1], labels[:-1]) == ["count: cache 10 images, data set 9"]
    small = random_images(np.random.default_rng(0), 10, 16)
    assert reference.mismatches(small, labels)[0].startswith("image size")
    relabelled = labels.copy()
    relabelled[:3] = (relabelled[:3] + 1) % 10
    assert reference.mismatches(images, relabelled) == ["labels: 3 of 10 differ"]
    swapped = images.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    assert [m.split(":")[0] for m in reference.mismatches(swapped, labels)] == ["pixels"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_build_matches_the_cpu_build(files, reference, tmp_path):
    """bf16, compiled, pinned overlapped copies: the same variants as the float32 CPU build, within bf16."""
    out = tmp_path / "cuda"
    result = sd.stylize_dataset(files["images"], files["labels"], out, options(files, device="cuda", batch_size=4))
    assert result.complete and result.meta["settings"]["compute_dtype"] == "torch.bfloat16"
    cache = fmt.open_stylized_dataset(out)
    np.testing.assert_array_equal(cache.style_index, reference.style_index)
    assert np.abs(cache.images.astype(float) - reference.images.astype(float)).mean() < 8  # uint8 levels
