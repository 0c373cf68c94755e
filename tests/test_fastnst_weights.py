"""Weight files load by key layout; wrong ones fail naming the file and the first mismatch."""
import re

import pytest
import torch
import torchvision

from fastnst.networks import Decoder, VGGEncoder
from fastnst.weights import (
    IMAGENET_MEAN, IMAGENET_STD, PORT_VGG_DEEPER_CONVS, RandomWeightsWarning, WeightsError, load_decoder, load_encoder,
)


def full_port_vgg_state(seed=0):
    """A state dict shaped like the port's whole vgg_normalised.pth (to relu5_4), random values."""
    torch.manual_seed(seed)
    state = {k: torch.randn_like(v) for k, v in VGGEncoder().state_dict().items()}
    for index in PORT_VGG_DEEPER_CONVS:
        state[f"{index}.weight"] = torch.randn(512, 512, 3, 3)
        state[f"{index}.bias"] = torch.randn(512)
    return state


def assert_same_weights(module, state):
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_full_port_vgg_file_loads_and_drops_deeper_layers(tmp_path):
    state = full_port_vgg_state()
    torch.save(state, tmp_path / "vgg_normalised.pth")
    encoder = load_encoder(tmp_path / "vgg_normalised.pth")
    assert_same_weights(encoder, state)
    assert not any(p.requires_grad for p in encoder.parameters())


def test_truncated_port_vgg_file_loads(tmp_path):
    state = {k: torch.randn_like(v) for k, v in VGGEncoder().state_dict().items()}
    torch.save(state, tmp_path / "vgg_to_relu4_1.pth")
    assert_same_weights(load_encoder(tmp_path / "vgg_to_relu4_1.pth"), state)


def test_decoder_file_loads(tmp_path):
    state = {k: torch.randn_like(v) for k, v in Decoder().state_dict().items()}
    torch.save(state, tmp_path / "decoder.pth")
    assert_same_weights(load_decoder(tmp_path / "decoder.pth"), state)


def test_missing_key_is_named(tmp_path):
    state = {k: torch.randn_like(v) for k, v in Decoder().state_dict().items()}
    del state["14.bias"]
    path = tmp_path / "decoder.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=re.escape(str(path)) + r".*missing key '14.bias'"):
        load_decoder(path)


def test_unexpected_key_is_named(tmp_path):
    state = {k: torch.randn_like(v) for k, v in Decoder().state_dict().items()}
    state["module.extra"] = torch.randn(3)
    path = tmp_path / "decoder.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"unexpected key 'module.extra'"):
        load_decoder(path)


def test_wrong_shape_is_named(tmp_path):
    state = full_port_vgg_state()
    state["9.weight"] = torch.randn(128, 64, 1, 1)
    path = tmp_path / "vgg.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"vgg.pth: key '9.weight' has shape \(128, 64, 1, 1\), expected \(128, 64, 3, 3\)"):
        load_encoder(path)


def test_decoder_file_given_as_encoder_fails_on_first_key(tmp_path):
    path = tmp_path / "decoder.pth"
    torch.save(Decoder().state_dict(), path)
    with pytest.raises(WeightsError, match=r"decoder.pth: missing key '0.weight'"):
        load_encoder(path)


def test_not_a_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_encoder(tmp_path / "nowhere.pth")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        load_decoder(tmp_path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(WeightsError, match="garbage.pth.*could not be read"):
        load_decoder(garbage)
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="list.pth.*flat state dict"):
        load_decoder(tmp_path / "list.pth")


def test_random_init_warns_loudly():
    with pytest.warns(RandomWeightsWarning, match="NOT the paper"):
        load_encoder(None)
    with pytest.warns(RandomWeightsWarning, match="decoder"):
        load_decoder(None)


def test_torchvision_vgg19_is_converted(tmp_path):
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.randn(8, 4)  # stand-in: classifier keys are recognised and ignored
    state["classifier.0.bias"] = torch.randn(8)
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    encoder = load_encoder(path)
    assert torch.equal(encoder[2].weight, features[0].weight)
    assert torch.equal(encoder[29].bias, features[19].bias)

    images = torch.rand(2, 3, 16, 16)
    normalized = torchvision.transforms.functional.normalize(images, IMAGENET_MEAN, IMAGENET_STD)
    with torch.no_grad():
        torch.testing.assert_close(encoder[0](images), normalized, rtol=1e-6, atol=1e-6)
        ours = encoder.features(images)[0]          # relu1_1, reflection padding
        theirs = features[:2](normalized)           # relu1_1, zero padding
    # Same convolution: equal away from the 1-pixel border where the paddings differ.
    torch.testing.assert_close(ours[..., 1:-1, 1:-1], theirs[..., 1:-1, 1:-1], rtol=1e-5, atol=1e-5)


def test_torchvision_file_missing_conv_is_named(tmp_path):
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
    state = {f"features.{k}": v for k, v in features.state_dict().items() if not k.startswith("12.")}
    torch.save(state, tmp_path / "vgg19.pth")
    with pytest.raises(WeightsError, match=r"vgg19.pth: missing key 'features.12.weight'"):
        load_encoder(tmp_path / "vgg19.pth")


# ----------------------------------------------------------------------------- random weight files

def test_random_weights_command_writes_marked_files_in_the_ports_layout(tmp_path, capsys):
    from fastnst.weights import RANDOM_WEIGHTS_KEY, main

    vgg_path, decoder_path = main(["--random", "--out", str(tmp_path / "w"), "--seed", "3"])
    assert (vgg_path.name, decoder_path.name) == ("random_vgg_normalised.pth", "random_decoder.pth")
    assert "RANDOM" in capsys.readouterr().out
    for path, network in ((vgg_path, VGGEncoder()), (decoder_path, Decoder())):
        state = torch.load(path, weights_only=True)
        assert set(state) == set(network.state_dict()) | {RANDOM_WEIGHTS_KEY}  # the port's keys plus the marker
        assert int(state[RANDOM_WEIGHTS_KEY]) == 3
    with pytest.warns(RandomWeightsWarning, match="random_vgg_normalised.pth holds RANDOM weights"):
        encoder = load_encoder(vgg_path)
    with pytest.warns(RandomWeightsWarning, match="random_decoder.pth holds RANDOM weights"):
        decoder = load_decoder(decoder_path)
    assert encoder.random_weights and decoder.random_weights
    # Kaiming-normal convolutions: the features neither vanish nor explode through 10 ReLU layers.
    features = encoder(torch.rand(1, 3, 64, 64))
    assert 0.05 < float(features.std()) < 50
    # Same seed, same files; another seed, other weights.
    again, _ = main(["--random", "--out", str(tmp_path / "again"), "--seed", "3"])
    other, _ = main(["--random", "--out", str(tmp_path / "other"), "--seed", "4"])
    assert torch.equal(torch.load(again, weights_only=True)["2.weight"], torch.load(vgg_path, weights_only=True)["2.weight"])
    assert not torch.equal(torch.load(other, weights_only=True)["2.weight"], torch.load(vgg_path, weights_only=True)["2.weight"])


def test_a_random_file_given_for_the_other_network_gets_only_its_error(tmp_path, recwarn):
    """``--vgg random_decoder.pth``: the key error, not also a warning that the *encoder* is random."""
    from fastnst.weights import main

    vgg_path, decoder_path = main(["--random", "--out", str(tmp_path)])
    with pytest.raises(WeightsError, match="random_decoder.pth: missing key"):
        load_encoder(decoder_path)
    with pytest.raises(WeightsError, match="random_vgg_normalised.pth: missing key"):
        load_decoder(vgg_path)
    assert not [w for w in recwarn if issubclass(w.category, RandomWeightsWarning)]


def test_plain_files_are_not_marked_random(tmp_path, recwarn):
    torch.save(VGGEncoder().state_dict(), tmp_path / "vgg.pth")
    assert load_encoder(tmp_path / "vgg.pth").random_weights is False
    assert not [w for w in recwarn if issubclass(w.category, RandomWeightsWarning)]
    with pytest.warns(RandomWeightsWarning):
        assert load_decoder(None).random_weights is True


# ----------------------------------------------------------------------------- hostile files

class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("echo owned",))


@pytest.mark.parametrize("reader", ["encoder", "decoder", "checkpoint", "style bank", "decoder training state"])
def test_a_pickled_payload_is_refused_with_our_advice_not_pytorchs(reader, tmp_path, capfd):
    from fastnst.style_bank import StyleBank
    from fastnst.train.checkpoint import load_checkpoint
    from fastnst.safe_load import safe_torch_load

    path = tmp_path / "model.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "config": {}, "evil": _Payload()}, path)
    load = {"encoder": load_encoder, "decoder": load_decoder, "checkpoint": load_checkpoint,
            "style bank": StyleBank.load,
            "decoder training state": lambda p: safe_torch_load(p, "decoder training state")}[reader]
    with pytest.raises(ValueError) as error:
        load(path)
    message = str(error.value)
    assert str(path) in message and "not a plain tensor checkpoint" in message and "posix.system" in message
    assert "NOT loaded" in message and "Only use files from a trusted source" in message
    assert "weights_only" not in message and "\n" not in message
    assert "owned" not in capfd.readouterr().out  # the payload never ran


def test_every_torch_load_goes_through_the_safe_loader():
    import ast
    from pathlib import Path

    def calls_torch_load(path: Path) -> bool:
        return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                   and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                   for node in ast.walk(ast.parse(path.read_text())))

    root = Path(__file__).resolve().parent.parent
    callers = {str(path.relative_to(root)) for folder in ("fastnst", "kernels", "train", "bench")
               for path in (root / folder).rglob("*.py") if calls_torch_load(path)}
    assert callers == {"fastnst/safe_load.py"}
