"""Clone -> download -> train: the README's commands, offline.

The manifest's CIFAR-10 items are served from 127.0.0.1 as tiny files in their real formats and
layouts (CIFAR pickles in a .tar.gz, -C .npy files in a .tar, AdaIN weight files, an EDM .npz, the
authors' relu4_1 feature array, frost PNGs); the README's download command fetches them and its
train command must then find every input under the data root with no other flag.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import shlex
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import data_formats
from fastnst.networks import Decoder, VGGEncoder
from fastnst.train.config import ConfigError, parse_config
from fastnst.train.data import download, manifest
from fastnst.train.data.manifest import Checksum
from fastnst.train.fetched import items_to_download
from test_data_download import server, url  # noqa: F401  (the loopback server fixture)

README = Path(__file__).resolve().parent.parent / "README.md"
BENCHMARK_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
                         "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
                         "jpeg_compression")
# Sizes and the post-training evaluation only: none of them touches how inputs are found (the demo test covers
# SWA and the report; here the official -C set is checked where the evaluation looks for it). The recipe itself
# (WRN-28-4, 600 epochs, 224 px) needs a GPU.
TINY_RUN = ["--epochs", "1", "--batch-size", "16", "--model", "wrn10_1", "--style-resolution", "native",
            "--no-swa", "--no-evaluate-corruptions", "--log-every", "1", "--out", "run"]


def readme_commands() -> list[list[str]]:
    """The commands of the first code block of the README's "Set up" section, as argv lists."""
    section = README.read_text().split("## Set up", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.strip()]


def _folder_tar(root: Path, folder: str, mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        archive.add(root / folder, arcname=folder)
    return buffer.getvalue()


def _bytes_of(writer) -> bytes:
    buffer = io.BytesIO()
    writer(buffer)
    return buffer.getvalue()


def cifar10_payloads(tmp_path: Path) -> dict[str, bytes]:
    """Bytes of every downloadable CIFAR-10 item's files, in the real formats, by the file's name."""
    source = tmp_path / "upstream"
    _, _, _, test_labels = data_formats.write_cifar10(source, per_batch=6, num_test=8)
    corrupted = source / "CIFAR-10-C"  # as the official files: the test labels 5 times, one block per severity
    corrupted.mkdir()
    np.save(corrupted / "labels.npy", np.tile(test_labels, 5))
    rng = np.random.default_rng(2)
    for name in BENCHMARK_CORRUPTIONS:
        np.save(corrupted / f"{name}.npy", data_formats.random_images(rng, 5 * len(test_labels), 32))
    data_formats.write_synthetic_npz(source / "1m.npz", count=30)
    torch.manual_seed(0)
    payloads = {
        "cifar-10-python.tar.gz": _folder_tar(source, "cifar-10-batches-py", "w:gz"),
        "CIFAR-10-C.tar": _folder_tar(source, "CIFAR-10-C", "w"),
        "vgg_normalised.pth": _bytes_of(lambda f: torch.save(VGGEncoder().state_dict(), f)),
        "decoder.pth": _bytes_of(lambda f: torch.save(Decoder().state_dict(), f)),
        "cifar10_edm_1m.npz": (source / "1m.npz").read_bytes(),
        "style_feats_adain_1000.npy": _bytes_of(lambda f: np.save(f, np.random.default_rng(0).uniform(
            0, 3, (6, 512, 4, 4)).astype(np.float32))),
    }
    rng = np.random.default_rng(1)
    for index in range(1, 6):
        name = f"frost{index}.png" if index <= 3 else f"frost{index}.jpg"
        payloads[name] = _bytes_of(lambda f: Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
            f, format="PNG" if name.endswith("png") else "JPEG"))
    return payloads


@pytest.fixture()
def fake_internet(tmp_path, server, monkeypatch):  # noqa: F811
    """The real manifest's CIFAR-10 items, each served from the loopback server with its own md5."""
    payloads = cifar10_payloads(tmp_path)
    server.files.update(payloads)
    items = dict(manifest.ITEMS)
    for item in manifest.items_for("cifar10"):
        files = tuple(dataclasses.replace(
            entry, urls=(url(server, entry.file_name),), size=len(payloads[entry.file_name]), checksum_api=None,
            checksums=(Checksum("md5", hashlib.md5(payloads[entry.file_name]).hexdigest(), "official", "test"),))
            for entry in item.files)
        items[item.name] = dataclasses.replace(item, files=files)
    monkeypatch.setattr(manifest, "ITEMS", items)
    monkeypatch.chdir(tmp_path)  # the README's relative --data-root data
    return server


def test_readme_has_the_three_commands():
    commands = readme_commands()
    assert [command[:3] for command in commands] == [["pip", "install", "-e"], ["python", "-m", "train.data.download"],
                                                    ["python", "-m", "train.run"]]
    assert commands[2][3:] == ["--dataset", "cifar10", "--data-root", "data"]  # no other flag


@pytest.mark.slow
def test_readme_download_then_train_runs_the_recipe(fake_internet, tmp_path, capsys):
    from fastnst.train.checkpoint import load_checkpoint
    from fastnst.train.data import has_official_corruptions
    from fastnst.train.run import main as train_main

    _, download_command, train_command = readme_commands()
    assert download.main(download_command[3:]) == 0
    assert "cifar10-c-bar: skipped, no published download" in capsys.readouterr().out

    code = train_main(train_command[3:] + TINY_RUN)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    config = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"]
    assert config["synthetic"] == str(Path("data/synthetic/cifar10_edm_1m.npz"))
    assert config["vgg"] == str(Path("data/adain/vgg_normalised.pth"))
    assert config["decoder"] == str(Path("data/adain/decoder.pth"))
    assert config["styles"] == str(Path("data/style_feats_adain_1000.npy"))
    assert (tmp_path / "data" / "style_feats_adain_1000.bank.pt").is_file()  # converted once, cached beside it
    assert has_official_corruptions("cifar10", "data")  # the downloaded CIFAR-10-C is where train.evaluate looks
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["num_stylized"] > 0  # with the downloaded style features and weights


def test_resolution_after_the_download(fake_internet, tmp_path):
    assert download.main(["--for", "cifar10", "--data-root", "data"]) == 0
    config = parse_config(["--dataset", "cifar10", "--data-root", "data"])
    assert (config["synthetic"], config["vgg"], config["decoder"], config["styles"]) == (
        "data/synthetic/cifar10_edm_1m.npz", "data/adain/vgg_normalised.pth", "data/adain/decoder.pth",
        "data/style_feats_adain_1000.npy")
    mine = parse_config(["--dataset", "cifar10", "--data-root", "data", "--vgg", "mine.pth", "--no-stylize"])
    assert mine["vgg"] == "mine.pth" and mine["decoder"] is None  # given flags win; no stylization, no lookup


def test_the_authors_file_names_are_accepted(tmp_path):
    data_formats.write_synthetic_npz(tmp_path / "CIFAR10-add-1m-dm.npz")
    config = parse_config(["--dataset", "cifar10", "--data-root", str(tmp_path), "--no-stylize"])
    assert config["synthetic"] == str(tmp_path / "CIFAR10-add-1m-dm.npz")


def test_missing_inputs_name_the_command_that_fetches_them(tmp_path):
    (tmp_path / "adain").mkdir()
    (tmp_path / "adain" / "decoder.pth").write_bytes(b"present")
    (tmp_path / "cifar-100-python").mkdir()  # the data set is there (without it: tests/test_train_config.py)
    with pytest.raises(ConfigError) as raised:
        parse_config(["--dataset", "cifar100", "--data-root", str(tmp_path)])
    message = str(raised.value)
    assert "\n" not in message and "needs --synthetic FILE and --styles, --vgg:" in message
    assert f"python -m train.data.download edm-cifar100 style-feats adain-vgg --data-root {tmp_path}" in message


def test_download_flag_points_at_the_targets_and_fetches_them(tmp_path):
    config = parse_config(["--dataset", "cifar10", "--data-root", str(tmp_path), "--download"])
    assert config["vgg"] == str(tmp_path / "adain" / "vgg_normalised.pth")
    assert items_to_download(config) == ["cifar10", "cifar10-c", "edm-cifar10", "style-feats", "adain-vgg",
                                         "adain-decoder"]
    baseline = parse_config(["--dataset", "cifar10", "--data-root", str(tmp_path), "--download", "--no-stylize",
                             "--synthetic-ratio", "0"])
    assert items_to_download(baseline) == ["cifar10", "cifar10-c"]


def test_train_download_without_network_is_one_line(tmp_path, monkeypatch, capsys):
    from fastnst.train.run import cli as train_main  # main raises; cli reports it in one line, exit 2

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/cifar-10-python.tar.gz"
    item = manifest.ITEMS["cifar10"]
    monkeypatch.setitem(manifest.ITEMS, "cifar10", dataclasses.replace(
        item, files=(dataclasses.replace(item.files[0], urls=(dead,)),)))
    code = train_main(["--dataset", "cifar10", "--data-root", str(tmp_path), "--download", "--no-stylize",
                       "--synthetic-ratio", "0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and dead in err and "Traceback" not in err
    assert not list(tmp_path.glob("cifar-10-python.tar.gz*"))  # nothing half-downloaded left behind
