"""Style bank: file round trip, the CLI on a folder with a broken image, statistics as kernels computes them."""
import numpy as np
import pytest
import torch
from PIL import Image

from fastnst import kernels
from fastnst import StyleBank
from fastnst.networks import VGGEncoder
from fastnst.style_bank import encode_style_folder, load_style_image, main


def random_bank(styles=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return StyleBank(torch.randn(styles, 512, generator=generator), torch.rand(styles, 512, generator=generator) + 0.1,
                     [f"artist/{i}.jpg" for i in range(styles)], image_size=128, skipped=["bad.jpg"])


def test_round_trip(tmp_path):
    bank = random_bank()
    bank.save(tmp_path / "styles.pt")
    loaded = StyleBank.load(tmp_path / "styles.pt")
    assert torch.equal(loaded.mean, bank.mean) and torch.equal(loaded.std, bank.std)
    assert loaded.names == bank.names and loaded.image_size == 128 and loaded.skipped == ["bad.jpg"]
    # Plain tensors, strings and ints: readable with weights_only=True.
    assert set(torch.load(tmp_path / "styles.pt", weights_only=True)) >= {"mean", "std", "names"}


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        StyleBank.load(tmp_path / "absent.pt")
    torch.save({"mean": torch.rand(2, 512)}, tmp_path / "half.pt")
    with pytest.raises(ValueError, match="half.pt lacks std, names"):
        StyleBank.load(tmp_path / "half.pt")
    torch.save({"mean": torch.rand(2, 64), "std": torch.rand(2, 64), "names": ["a", "b"]}, tmp_path / "narrow.pt")
    with pytest.raises(ValueError, match="narrow.pt: 64 channels"):
        StyleBank.load(tmp_path / "narrow.pt")


def test_inconsistent_bank_is_rejected():
    with pytest.raises(ValueError, match="same"):
        StyleBank(torch.rand(3, 512), torch.rand(3, 512), ["a", "b"])


def write_style_folder(root):
    rng = np.random.default_rng(0)
    (root / "impressionism").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (48, 72, 3), dtype=np.uint8)).save(root / "impressionism" / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (80, 40, 3), dtype=np.uint8)).save(root / "b.png")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8), mode="L").save(root / "c.JPEG")  # grayscale
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("not an image")


def test_cli_encodes_folder_and_lists_unreadable(tmp_path, capsys):
    styles = tmp_path / "styles"
    write_style_folder(styles)
    torch.manual_seed(0)
    encoder = VGGEncoder().eval()
    torch.save(encoder.state_dict(), tmp_path / "vgg.pth")
    main(["--styles", str(styles), "--out", str(tmp_path / "bank.pt"), "--vgg", str(tmp_path / "vgg.pth"),
          "--image-size", "32", "--device", "cpu", "--workers", "1"])
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err
    bank = StyleBank.load(tmp_path / "bank.pt")
    assert bank.names == ["b.png", "c.JPEG", "impressionism/a.jpg"]
    assert bank.skipped == ["broken.jpg"]
    assert bank.mean.shape == (3, 512) and bank.mean.dtype == torch.float32
    with torch.no_grad():
        expected_mean, expected_std = kernels.adain_stats(encoder(load_style_image(styles / "b.png", 32)))
    torch.testing.assert_close(bank.mean[0], expected_mean[0])
    torch.testing.assert_close(bank.std[0], expected_std[0])
    assert load_style_image(styles / "b.png", 32).shape == (1, 3, 64, 32)  # shorter side resized, aspect kept


def test_empty_or_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty holds no"):
        encode_style_folder(tmp_path / "empty", VGGEncoder())
    with pytest.raises(FileNotFoundError, match="missing"):
        encode_style_folder(tmp_path / "missing", VGGEncoder())


# ----------------------------------------------------------------------------- the authors' style features (.npy)

def write_style_features(path, count=5, height=7, width=6, dtype=np.float32, seed=0):
    """Relu4_1-like maps (count, 512, h, w) as in style_feats_adain_1000.npy: non-negative, scale varying per map."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.1, 30.0, (count, 512, 1, 1))
    features = np.maximum(rng.normal(0.3, 1.0, (count, 512, height, width)), 0) * scale
    np.save(path, features.astype(dtype))
    return features.astype(dtype)


def float64_statistics(features: np.ndarray):
    """The authors' calc_mean_std (experiments/adaIN/utils.py:1-9) in float64: unbiased var + eps, then sqrt."""
    flat = torch.from_numpy(np.asarray(features, dtype=np.float64)).flatten(2)
    return flat.mean(dim=2), (flat.var(dim=2, unbiased=True) + 1e-5).sqrt()


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_bank_from_features_matches_a_float64_reference(tmp_path, dtype):
    from fastnst.style_bank import bank_from_features

    features = write_style_features(tmp_path / "feats.npy", count=5, dtype=dtype)
    bank = bank_from_features(tmp_path / "feats.npy", batch_size=2)  # several chunks, a short last one
    mean, std = float64_statistics(features)
    assert bank.mean.dtype == torch.float32 and bank.mean.shape == (5, 512)
    torch.testing.assert_close(bank.mean.double(), mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bank.std.double(), std, rtol=1e-5, atol=1e-6)
    assert bank.names == [f"feats.npy[{i}]" for i in range(5)] and bank.image_size == 8 * 6


def test_features_are_memory_mapped(tmp_path):
    from fastnst.style_bank import read_style_features

    write_style_features(tmp_path / "feats.npy", count=2)
    assert isinstance(read_style_features(tmp_path / "feats.npy"), np.memmap)  # the real file is 1.6 GB


def test_load_converts_features_once_and_caches_the_bank(tmp_path, monkeypatch):
    import os

    from fastnst import style_bank

    features = write_style_features(tmp_path / "style_feats_adain_1000.npy", count=3)
    first = StyleBank.load(tmp_path / "style_feats_adain_1000.npy")
    cache = tmp_path / "style_feats_adain_1000.bank.pt"
    assert cache.is_file()
    torch.testing.assert_close(first.mean.double(), float64_statistics(features)[0], rtol=1e-5, atol=1e-6)

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although the cache is fresh")

    monkeypatch.setattr(style_bank, "bank_from_features", no_conversion)
    again = StyleBank.load(tmp_path / "style_feats_adain_1000.npy")
    assert torch.equal(again.mean, first.mean) and again.names == first.names
    monkeypatch.undo()
    newer = write_style_features(tmp_path / "style_feats_adain_1000.npy", count=4, seed=1)  # a new download
    stat = cache.stat()
    os.utime(tmp_path / "style_feats_adain_1000.npy", (stat.st_atime + 10, stat.st_mtime + 10))
    rebuilt = StyleBank.load(tmp_path / "style_feats_adain_1000.npy")
    assert len(rebuilt) == 4
    torch.testing.assert_close(rebuilt.std.double(), float64_statistics(newer)[1], rtol=1e-5, atol=1e-6)


def test_concurrent_loads_convert_once(tmp_path, monkeypatch):
    """DDP ranks start together: one converts under the file lock, the others read its cache."""
    import threading

    from fastnst import style_bank

    write_style_features(tmp_path / "feats.npy", count=3)
    calls, original = [], style_bank.bank_from_features

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(style_bank, "bank_from_features", counted)
    banks = []
    threads = [threading.Thread(target=lambda: banks.append(StyleBank.load(tmp_path / "feats.npy")))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(banks) == 3 and all(torch.equal(b.std, banks[0].std) for b in banks)


def test_unwritable_cache_still_gives_the_bank(tmp_path, monkeypatch):
    write_style_features(tmp_path / "feats.npy", count=2)

    def refuse(self, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(StyleBank, "save", refuse)
    with pytest.warns(UserWarning, match="feats.bank.pt could not be written"):
        bank = StyleBank.load(tmp_path / "feats.npy")
    assert len(bank) == 2


@pytest.mark.parametrize("write, message", [
    (lambda p: np.save(p, np.zeros((2, 256, 4, 4), np.float32)), r"\(N, 512, h, w\), got float32 \(2, 256, 4, 4\)"),
    (lambda p: np.save(p, np.zeros((2, 512, 4, 4), np.int64)), "got int64"),
    (lambda p: np.save(p, np.zeros((2, 512), np.float32)), "got float32 \\(2, 512\\)"),
    (lambda p: p.write_bytes(b"\x93NUMPY garbage"), "could not be read as a .npy"),
])
def test_bad_feature_files_are_named(tmp_path, write, message):
    write(tmp_path / "bad.npy")
    with pytest.raises(ValueError, match=f"bad.npy.*{message}"):
        StyleBank.load(tmp_path / "bad.npy")


def test_non_finite_features_are_refused(tmp_path):
    features = np.ones((3, 512, 4, 4), np.float32)
    features[1, 7, 2, 2] = np.nan
    np.save(tmp_path / "nan.npy", features)
    with pytest.raises(ValueError, match="nan.npy: map 1 holds non-finite"):
        StyleBank.load(tmp_path / "nan.npy")


def test_missing_features_name_the_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.npy.*train.data.download style-feats"):
        StyleBank.load(tmp_path / "absent.npy")


def test_cli_converts_features(tmp_path, capsys):
    from fastnst.style_bank import bank_from_features

    write_style_features(tmp_path / "feats.npy", count=3)
    main(["--features", str(tmp_path / "feats.npy"), "--out", str(tmp_path / "bank.pt"), "--device", "cpu"])
    assert "wrote 3 styles" in capsys.readouterr().out
    assert torch.equal(StyleBank.load(tmp_path / "bank.pt").std, bank_from_features(tmp_path / "feats.npy").std)
