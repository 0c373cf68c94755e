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
