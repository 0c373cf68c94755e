"""Decoder training runs, checkpoints atomically, resumes where it stopped."""
import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.train_decoder import main
from fastnst.weights import load_decoder

# Random networks are these tests' point; the warning itself is tested in test_fastnst_weights.py.
pytestmark = pytest.mark.filterwarnings("ignore::fastnst.RandomWeightsWarning")


def write_images(folder, count, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        size = rng.integers(36, 60, 2)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{index}.png")


@pytest.fixture()
def folders(tmp_path):
    write_images(tmp_path / "content", 4, seed=0)
    write_images(tmp_path / "styles", 3, seed=1)
    return tmp_path


def args_for(folders, max_iter):
    return ["--content", str(folders / "content"), "--styles", str(folders / "styles"), "--out", str(folders / "run"),
            "--load-size", "36", "--image-size", "32", "--batch-size", "2", "--max-iter", str(max_iter),
            "--workers", "0", "--device", "cpu", "--lr", "1e-3"]


def test_two_steps_then_resume(folders):
    first = main(args_for(folders, 2))
    assert first["start"] == 0 and len(first["style_loss"]) == 2
    assert np.isfinite(first["content_loss"]).all() and np.isfinite(first["style_loss"]).all()
    state = torch.load(folders / "run" / "train_state.pt", weights_only=True)
    assert state["iteration"] == 2
    decoder_after_two = load_decoder(folders / "run" / "decoder.pth")  # the port's layout: loads by key

    second = main(args_for(folders, 3))
    assert second["start"] == 2 and len(second["style_loss"]) == 1
    assert torch.load(folders / "run" / "train_state.pt", weights_only=True)["iteration"] == 3
    decoder_after_three = load_decoder(folders / "run" / "decoder.pth")
    changed = any(not torch.equal(a, b) for a, b in
                  zip(decoder_after_two.state_dict().values(), decoder_after_three.state_dict().values()))
    assert changed, "the resumed step must update the decoder"
    assert not list((folders / "run").glob("*.tmp")), "no half-written files left behind"


def test_bad_sizes_and_folders_are_named(folders, capsys):
    with pytest.raises(SystemExit):
        main(args_for(folders, 1) + ["--image-size", "64"])
    assert "--image-size 64 is larger than --load-size 36" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        main(["--content", str(folders / "nothing-here"), "--styles", str(folders / "styles"),
              "--out", str(folders / "run2"), "--workers", "0", "--device", "cpu"])
