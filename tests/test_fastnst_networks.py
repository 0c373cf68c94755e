"""The encoder and decoder have the PyTorch AdaIN port's exact layer layout and shapes, and keep channels_last."""
import copy

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from fastnst.networks import ENCODER_LAYER_NAMES, Decoder, LayoutPreservingReflectionPad2d, VGGEncoder

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


# --------------------------------------------------------------------------- memory format
# CUDA's reflection pads make their input contiguous and write a row-major (NCHW) output; the CPU
# kernels keep channels_last. This mode gives the CPU CUDA's behaviour, so the tests below show on a
# CPU what the networks would do to the layout on a GPU.
class CudaPadLayout(TorchDispatchMode):
    """Every reflection pad's output rewritten row-major contiguous, as CUDA writes it; ops are logged."""

    PADS = (torch.ops.aten.reflection_pad1d, torch.ops.aten.reflection_pad2d, torch.ops.aten.reflection_pad3d)

    def __init__(self):
        super().__init__()
        self.called = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.called.add(func.overloadpacket)
        out = func(*args, **(kwargs or {}))
        return out.contiguous() if func.overloadpacket in self.PADS else out


def layers_leaving_channels_last(network: nn.Sequential, images: torch.Tensor) -> list[str]:
    """Names of the layers whose output is not channels_last, for a channels_last input (forward hooks)."""
    offenders = []

    def check(name):
        def hook(module, inputs, output):
            if not output.is_contiguous(memory_format=torch.channels_last):
                offenders.append(f"{name}: {type(module).__name__} -> strides {output.stride()}")
        return hook

    handles = [layer.register_forward_hook(check(name)) for name, layer in network.named_children()]
    try:
        with torch.no_grad():
            network(images)
    finally:
        for handle in handles:
            handle.remove()
    return offenders


def with_plain_pads(network: nn.Sequential) -> nn.Sequential:
    """The same network with torch's nn.ReflectionPad2d in place of the layout-preserving pads."""
    network = copy.deepcopy(network)
    for index, layer in enumerate(network):
        if isinstance(layer, LayoutPreservingReflectionPad2d):
            network[index] = nn.ReflectionPad2d(layer.padding)
    return network


def _channels_last_inputs(size=32):
    torch.manual_seed(0)
    encoder, decoder = VGGEncoder().eval(), Decoder().eval()
    encoder.to(memory_format=torch.channels_last), decoder.to(memory_format=torch.channels_last)
    images = torch.rand(2, 3, size, size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        features = encoder(images)
    return encoder, decoder, images, features


@pytest.mark.parametrize("pads", ["layout_preserving", "nn.ReflectionPad2d"])
def test_every_layer_keeps_channels_last_with_cuda_pad_behaviour(pads):
    """Layer by layer through encoder and decoder, under CUDA's pad behaviour: channels_last all the way
    with our pads; torch's own pad leaves channels_last at every pad (the check can fail)."""
    encoder, decoder, images, features = _channels_last_inputs()
    if pads == "nn.ReflectionPad2d":
        encoder, decoder = with_plain_pads(encoder), with_plain_pads(decoder)
    with CudaPadLayout() as mode:
        offenders = layers_leaving_channels_last(encoder, images) + layers_leaving_channels_last(decoder, features)
    if pads == "layout_preserving":
        assert offenders == []
        assert torch.ops.aten.reflection_pad2d not in mode.called, "the NCHW-writing CUDA op must not run"
    else:
        pad_count = sum(isinstance(layer, nn.ReflectionPad2d) for layer in [*encoder, *decoder])
        assert len([name for name in offenders if "ReflectionPad2d" in name]) == pad_count == 18


def test_every_layer_keeps_channels_last_on_this_device():
    """With this device's own kernels too (no emulation)."""
    encoder, decoder, images, features = _channels_last_inputs()
    assert layers_leaving_channels_last(encoder, images) == []
    assert layers_leaving_channels_last(decoder, features) == []


@pytest.mark.parametrize("channels_last", [True, False], ids=["channels_last", "nchw"])
def test_layout_preserving_pad_matches_reflection_pad(channels_last):
    """Same values and gradients as nn.ReflectionPad2d, and the input's layout kept, for both layouts."""
    generator = torch.Generator().manual_seed(1)
    for padding in (1, (1, 2, 2, 1)):
        x = torch.randn(3, 5, 7, 6, generator=generator)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        ours_input, reference_input = x.clone().requires_grad_(), x.clone().requires_grad_()
        ours = LayoutPreservingReflectionPad2d(padding)(ours_input)
        reference = nn.ReflectionPad2d(padding)(reference_input)
        assert torch.equal(ours, reference)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        assert ours.is_contiguous(memory_format=memory_format)
        grad = torch.randn(ours.shape, generator=generator)
        ours.backward(grad), reference.backward(grad)
        torch.testing.assert_close(ours_input.grad, reference_input.grad)
