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


def test_preview_with_fetched_weights_and_the_authors_style_features(tmp_path):
    """As the README regenerates docs/img/preview.png from what train.data.download fetched."""
    from fastnst.preview import pick_from_bank
    from fastnst.style_bank import StyleBank

    data = tmp_path / "data"
    (data / "adain").mkdir(parents=True)
    torch.save(VGGEncoder().state_dict(), data / "adain" / "vgg_normalised.pth")
    torch.save(Decoder().state_dict(), data / "adain" / "decoder.pth")
    np.save(data / "style_feats_adain_1000.npy", np.random.default_rng(0).uniform(0, 2, (5, 512, 3, 3)).astype(np.float32))
    out = main(["--vgg", str(data / "adain" / "vgg_normalised.pth"), "--decoder", str(data / "adain" / "decoder.pth"),
                "--styles", str(data / "style_feats_adain_1000.npy"), "--num-images", "3", "--alphas", "0.5", "1",
                "--resolution", "40", "--out", str(tmp_path / "preview.png"), "--device", "cpu"])
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > image.height
    assert (data / "style_feats_adain_1000.bank.pt").is_file()  # the same cached bank train.run uses
    bank = StyleBank.load(data / "style_feats_adain_1000.bank.pt")
    picked, names = pick_from_bank(bank, 7, seed=0)  # more rows than styles: every style, then repeats
    assert len(set(names)) == 5 and len(picked) == 7
    assert all(torch.equal(picked.mean[i], bank.mean[bank.names.index(name)]) for i, name in enumerate(names))


def test_the_title_says_random_for_files_of_fastnst_weights_random(tmp_path, monkeypatch):
    """Named like the real files or not, ``fastnst.weights --random`` files give a RANDOM title."""
    import fastnst.preview as preview
    from fastnst.weights import write_random_weights

    titles = []
    monkeypatch.setattr(preview, "draw_grid", lambda *args: titles.append(args[4]) or args[5])
    vgg, decoder = write_random_weights(tmp_path)
    torch.save(Decoder().state_dict(), tmp_path / "decoder.pth")  # a plain file: not marked
    common = ["--out", str(tmp_path / "grid.png"), "--num-images", "1", "--alphas", "1", "--style-size", "32",
              "--image-size", "16", "--device", "cpu", "--vgg", str(vgg)]
    main(common + ["--decoder", str(decoder)])
    main(common + ["--decoder", str(tmp_path / "decoder.pth")])
    assert "RANDOM encoder and decoder weights" in titles[0]
    assert "RANDOM encoder weights" in titles[1] and "decoder weights" not in titles[1]
