"""The encoder and decoder have the PyTorch AdaIN port's exact layer layout and shapes."""
import pytest
import torch

from fastnst.networks import ENCODER_LAYER_NAMES, Decoder, VGGEncoder

# (key, shape) of every conv weight in the port's vgg[:31] and decoder (naoto0804/pytorch-AdaIN net.py).
ENCODER_CONVS = {
    "0.weight": (3, 3, 1, 1), "2.weight": (64, 3, 3, 3), "5.weight": (64, 64, 3, 3),
    "9.weight": (128, 64, 3, 3), "12.weight": (128, 128, 3, 3), "16.weight": (256, 128, 3, 3),
    "19.weight": (256, 256, 3, 3), "22.weight": (256, 256, 3, 3), "25.weight": (256, 256, 3, 3),
    "29.weight": (512, 256, 3, 3),
}
DECODER_CONVS = {
    "1.weight": (256, 512, 3, 3), "5.weight": (256, 256, 3, 3), "8.weight": (256, 256, 3, 3),
    "11.weight": (256, 256, 3, 3), "14.weight": (128, 256, 3, 3), "18.weight": (128, 128, 3, 3),
    "21.weight": (64, 128, 3, 3), "25.weight": (64, 64, 3, 3), "28.weight": (3, 64, 3, 3),
}


@pytest.mark.parametrize("module, convs", [(VGGEncoder, ENCODER_CONVS), (Decoder, DECODER_CONVS)])
def test_state_dict_layout_matches_port(module, convs):
    state = module().state_dict()
    weights = {key: tuple(value.shape) for key, value in state.items() if key.endswith("weight")}
    assert weights == convs
    assert {key[: -len(".bias")] for key in state if key.endswith("bias")} == {k[: -len(".weight")] for k in convs}


@pytest.mark.parametrize("size", [32, 64])
def test_features_shapes_and_decoder_roundtrip_shape(size):
    torch.manual_seed(0)
    encoder, decoder = VGGEncoder().eval(), Decoder().eval()
    images = torch.rand(2, 3, size, size)
    with torch.no_grad():
        features = encoder.features(images)
        assert len(features) == len(ENCODER_LAYER_NAMES)
        expected = [(64, size), (128, size // 2), (256, size // 4), (512, size // 8)]
        assert [(f.shape[1], f.shape[2]) for f in features] == expected
        assert torch.equal(encoder(images), features[-1])
        assert all((f >= 0).all() for f in features)  # each exposed output is a ReLU
        assert decoder(features[-1]).shape == images.shape
