"""The preview command writes a PNG grid (originals, alphas, styles)."""
import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.networks import Decoder, VGGEncoder
from fastnst.preview import generated_contents, main

# Random networks are these tests' point; the warning itself is tested in test_fastnst_weights.py.
pytestmark = pytest.mark.filterwarnings("ignore::fastnst.RandomWeightsWarning")


def test_preview_writes_png_from_generated_data(tmp_path):
    out = main(["--out", str(tmp_path / "grid.png"), "--num-images", "2", "--alphas", "0", "1",
                "--style-size", "64", "--device", "cpu"])
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > image.height > 100


def test_preview_with_folders_and_weights(tmp_path):
    rng = np.random.default_rng(0)
    for folder in ("images", "styles"):
        (tmp_path / folder).mkdir()
        for index in range(2):
            Image.fromarray(rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)).save(tmp_path / folder / f"{index}.png")
    torch.save(VGGEncoder().state_dict(), tmp_path / "vgg.pth")
    torch.save(Decoder().state_dict(), tmp_path / "decoder.pth")
    out = main(["--out", str(tmp_path / "sub" / "grid.png"), "--images", str(tmp_path / "images"),
                "--styles", str(tmp_path / "styles"), "--vgg", str(tmp_path / "vgg.pth"),
                "--decoder", str(tmp_path / "decoder.pth"), "--num-images", "3", "--style-size", "64",
                "--resolution", "48", "--device", "cpu"])
    assert out.is_file() and out.stat().st_size > 1000


def test_generated_contents_are_varied_images():
    images = generated_contents(3, 32, seed=0)
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.uint8
    assert images.float().std() > 20 and not torch.equal(images[0], images[1])
