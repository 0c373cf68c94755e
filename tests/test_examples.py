"""The examples in examples/ run as users run them (their main, tiny sizes), so they cannot rot."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_adain_in_your_model_trains_through_the_op(capsys):
    example = load_example("adain_in_your_model")
    result = example.main(["--steps", "40", "--batch-size", "8", "--size", "16", "--device", "cpu"])
    losses = result["losses"]
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])  # it learns the per-style colour transforms
    assert all(grad > 0 for grad in result["style_grads"].values())  # gradients reached the style statistics
    assert "step" in capsys.readouterr().out


def test_adain_layer_gradients_match_the_reference():
    """The example's layer is the op: its gradients equal those of the plain-PyTorch reference."""
    from fastnst import kernels

    example = load_example("adain_in_your_model")
    torch.manual_seed(0)
    model = example.StyledGenerator(num_styles=3, channels=8)
    images, style, alpha = torch.rand(4, 3, 12, 12), torch.tensor([0, 2, 1, 2]), torch.tensor([0.7, 1.0, 0.2, 0.5])
    grads = []
    for adain in (model.adain, lambda x, m, s, a: kernels.adain_reference(x, m, s, a)):
        model.zero_grad()
        features = model.features(images)
        out = model.to_rgb(adain(features, model.style_mean(style), model.style_log_std(style).exp(), alpha))
        out.square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for op_grad, reference_grad in zip(*grads):
        torch.testing.assert_close(op_grad, reference_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore::fastnst.RandomWeightsWarning")
def test_stylizer_in_plain_loop_stylizes_batches_of_a_dataloader(tmp_path, capsys):
    from fastnst import StyleBank

    example = load_example("stylizer_in_plain_loop")
    result = example.main(["--num-images", "32", "--batch-size", "8", "--image-size", "16", "--workers", "0",
                           "--device", "cpu"])
    assert 0 < result["num_stylized"] < result["num_seen"] == 32  # prob_real 0.5: some, not all
    assert all(np.isfinite(result["losses"]))
    # with a style bank file, as with the downloaded features
    example.random_style_bank(count=3).save(tmp_path / "bank.pt")
    again = example.main(["--styles", str(tmp_path / "bank.pt"), "--num-images", "16", "--batch-size", "8",
                          "--image-size", "16", "--workers", "0", "--device", "cpu", "--prob-real", "1"])
    assert again["num_stylized"] == 16
    assert len(StyleBank.load(tmp_path / "bank.pt")) == 3
    assert "random encoder/decoder weights" in capsys.readouterr().out
