"""``--stylize-cache``: caches made by ``python -m train.stylize_cache``, served by the loader, checked, trained on."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fastnst import CachedStylizer, StyleBank
from fastnst.stylizer_meter import StylizerMeter
from fastnst.train.data import create_train_loader, make_demo_dataset
from fastnst.train.config import Augmentation
from fastnst.train.data.sources import load_train_source
from fastnst.train.data.stylized_cache import CacheMismatchError, open_caches
from fastnst.train.data.synthetic import load_synthetic
from fastnst.train.run import cli as run_cli
from fastnst.train.run import main as run_main
from fastnst.train.stylize_cache import main as cache_main

pytestmark = pytest.mark.filterwarnings("ignore::fastnst.RandomWeightsWarning")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A tiny demo data set and a K = 2 cache of each of its sources (random networks, native size)."""
    root = tmp_path_factory.mktemp("cache_demo")
    make_demo_dataset(root, num_train=50, num_test=40, num_synthetic=30, seed=1)
    generator = torch.Generator().manual_seed(0)
    StyleBank(torch.rand(5, 512, generator=generator), torch.rand(5, 512, generator=generator) + 0.2,
              [f"style{i}" for i in range(5)]).save(root / "styles.pt")
    caches = {}
    for source in ("real", "synthetic"):
        caches[source] = root / f"cache-{source}"
        assert cache_main(["--dataset", "demo", "--data-root", str(root), "--source", source, "--styles",
                           str(root / "styles.pt"), "--style-resolution", "native", "--variants", "2",
                           "--out", str(caches[source]), "--device", "cpu", "--no-progress"]) == 0
    return root, caches


def cached_stylizer(root, caches, seed=0):
    sources = {"real": load_train_source("demo", root),
               "synthetic": load_synthetic(root / "demo" / "synthetic.npz", 32, 10)}
    from fastnst.train.data.sources import ArraySource
    sources["synthetic"] = ArraySource(*sources["synthetic"])
    opened = open_caches([caches["real"], caches["synthetic"]], sources, 32)
    return CachedStylizer(opened, prob_synthetic=0.5, prob_real=0.3, nst_probability=0.95, seed=seed)


def epoch_batches(root, caches, epoch: int, stylizer=None):
    stylizer = stylizer or cached_stylizer(root, caches)
    loader = create_train_loader("demo", root, 16, synthetic_path=root / "demo" / "synthetic.npz",
                                 synthetic_ratio=0.5, stylizer=stylizer, seed=3,
                                 augmentation=Augmentation(ta_or_style_synthetic=True))
    stylizer.set_epoch(epoch)
    loader.set_epoch(epoch)
    return [(images.clone(), labels.clone()) for images, labels, _ in loader], stylizer


def test_epochs_replay_bit_identical(demo):
    """Epoch 1 twice with one stylizer, and once more after a 'resume' (new loader and stylizer)."""
    root, caches = demo
    first, stylizer = epoch_batches(root, caches, 1, StylizerMeter(cached_stylizer(root, caches)))
    assert stylizer.totals()[1] > 0  # the loader called it
    replay, _ = epoch_batches(root, caches, 1, stylizer)
    resumed, _ = epoch_batches(root, caches, 1)
    other, _ = epoch_batches(root, caches, 2)
    for (images, labels), (again, again_labels), (resumed_images, _) in zip(first, replay, resumed):
        assert torch.equal(images, again) and torch.equal(labels, again_labels) and torch.equal(images, resumed_images)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))


def test_the_loader_serves_stored_variants(demo):
    """A stylized sample's pixels before augmentation are one of its image's stored variants."""
    root, caches = demo
    stylizer = cached_stylizer(root, caches)
    seen = []

    def recording(images, flags, source_index):
        out, plan = stylizer(images, flags, source_index)
        seen.append((out.permute(0, 2, 3, 1).numpy().copy(), flags.clone(), source_index.clone(), plan))
        return out, plan

    loader = create_train_loader("demo", root, 16, synthetic_path=root / "demo" / "synthetic.npz",
                                 synthetic_ratio=0.5, stylizer=recording, seed=3)
    list(loader)
    opened = {source: np.load(path / "images.npy") for source, path in caches.items()}
    stylized_count = 0
    for images, flags, source_index, plan in seen:
        for row in plan.rows.tolist():
            variants = opened["synthetic" if flags[row] else "real"][int(source_index[row])]
            assert any(np.array_equal(images[row], variant) for variant in variants)
            stylized_count += 1
    assert stylized_count > 0


def test_train_run_one_epoch_with_the_cache(demo, tmp_path, capsys, monkeypatch):
    root, caches = demo
    import fastnst

    def no_networks(*args, **kwargs):
        raise AssertionError("--stylize-cache must not build the style-transfer networks")

    monkeypatch.setattr(fastnst, "build_stylizer", no_networks)
    out = tmp_path / "run"
    code = run_main(["--out", str(out), "--data-root", str(root), "--epochs", "1", "--batch-size", "16",
                     "--no-swa", "--no-evaluate-corruptions", "--stylize-cache", str(caches["real"]),
                     str(caches["synthetic"])])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "--stylize-cache: synthetic images from" in captured.out
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["num_stylized"] > 0
    assert (out / "report" / "stylization.png").is_file()  # the picture shows stored variants


def test_a_cache_of_other_data_is_refused(demo, tmp_path, capsys):
    root, caches = demo
    other = tmp_path / "other"
    make_demo_dataset(other, num_train=50, num_test=40, num_synthetic=30, seed=2)  # same sizes, other images
    code = run_cli(["--out", str(tmp_path / "run"), "--data-root", str(other), "--epochs", "1", "--batch-size", "16",
                    "--stylize-cache", str(caches["real"]), str(caches["synthetic"])])
    err = capsys.readouterr().err
    assert code == 2 and "\n" not in err.strip()
    assert f"--stylize-cache {caches['real']} was not made from this run's real images" in err and "labels" in err
    bigger = tmp_path / "bigger"
    make_demo_dataset(bigger, num_train=60, num_test=40, num_synthetic=30, seed=1)
    with pytest.raises(CacheMismatchError, match="count: cache 50 images, data set 60"):
        open_caches([caches["real"]], {"real": load_train_source("demo", bigger)}, 32)
    with pytest.raises(CacheMismatchError, match="both caches of the real images"):
        open_caches([caches["real"], caches["real"]], {"real": load_train_source("demo", root)}, 32)
    with pytest.raises(CacheMismatchError, match="this run has no synthetic images"):
        open_caches([caches["synthetic"]], {"real": load_train_source("demo", root), "synthetic": None}, 32)


def test_a_missing_source_cache_is_a_flag_error(demo, tmp_path, capsys):
    root, caches = demo
    code = run_cli(["--out", str(tmp_path / "run"), "--data-root", str(root), "--epochs", "1", "--batch-size", "16",
                    "--stylize-cache", str(caches["synthetic"])])
    err = capsys.readouterr().err
    assert code == 2 and "no cache of the real images" in err and "--prob-real 0" in err
    code = run_cli(["--out", str(tmp_path / "run"), "--data-root", str(root), "--no-stylize",
                    "--stylize-cache", str(caches["synthetic"])])
    assert code == 2 and "--stylize-cache needs stylization on" in capsys.readouterr().err


def test_inputs_default_to_what_the_download_put_under_the_data_root(tmp_path):
    """``train.stylize_cache --dataset cifar10 --data-root data --source synthetic --out ...`` after
    ``train.data.download --for cifar10``: the EDM set, the authors' features and the AdaIN weights
    are found there, as train.run finds them (they were once ignored: random weights, no bank)."""
    from fastnst.weights import write_random_weights
    from tests.data_formats import write_cifar10, write_synthetic_npz

    root = tmp_path / "data"
    write_cifar10(root, per_batch=4, num_test=4)
    write_synthetic_npz(root / "synthetic" / "cifar10_edm_1m.npz", count=6)
    np.save(root / "style_feats_adain_1000.npy", np.random.default_rng(0).random((3, 512, 4, 4), dtype=np.float32))
    vgg, decoder = write_random_weights(root / "adain")
    vgg.rename(root / "adain" / "vgg_normalised.pth")
    decoder.rename(root / "adain" / "decoder.pth")
    out = tmp_path / "cache"
    assert cache_main(["--dataset", "cifar10", "--data-root", str(root), "--source", "synthetic",
                       "--style-resolution", "native", "--variants", "1", "--out", str(out), "--no-progress"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["input"]["path"] == str(root / "synthetic" / "cifar10_edm_1m.npz")
    assert meta["style_bank"] == str(root / "style_feats_adain_1000.npy")
    assert (meta["vgg"], meta["decoder"]) == (str(root / "adain" / "vgg_normalised.pth"),
                                              str(root / "adain" / "decoder.pth"))
    assert meta["settings"]["random_weights"] is True  # fastnst.weights --random files, whatever their name


def test_stylize_precision_is_one_of_the_caches_settings(demo, tmp_path, capsys):
    """--stylize-precision bf16 runs the networks under bf16 autocast (on the CPU too); a cache made so is not
    continued or reused in float32."""
    from fastnst.cache_format import open_stylized_dataset
    from fastnst.train.stylize_cache import cli as cache_cli

    root, _ = demo
    out = tmp_path / "bf16"
    flags = ["--dataset", "demo", "--data-root", str(root), "--source", "real", "--styles", str(root / "styles.pt"),
             "--style-resolution", "native", "--variants", "1", "--out", str(out), "--device", "cpu", "--no-progress"]
    assert cache_main([*flags, "--stylize-precision", "bf16"]) == 0
    assert open_stylized_dataset(out).meta["settings"]["compute_dtype"] == "torch.bfloat16"
    capsys.readouterr()
    assert cache_cli([*flags, "--stylize-precision", "fp32"]) == 2
    err = capsys.readouterr().err
    assert "compute_dtype" in err and "\n" not in err.strip()
