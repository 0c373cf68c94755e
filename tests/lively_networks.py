"""Random style-transfer networks for tests whose output must look like images."""
from __future__ import annotations

import torch
from torch import nn

from fastnst import Decoder, StyleBank, VGGEncoder


def lively_networks(seed=0):
    """Random networks with activations of order one, so outputs are images, not black squares."""
    torch.manual_seed(seed)
    encoder, decoder = VGGEncoder().eval(), Decoder().eval()
    for module in [*encoder.modules(), *decoder.modules()]:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.uniform_(module.bias, -0.1, 0.1)
    decoder[28].weight.data.mul_(0.3)
    decoder[28].bias.data.fill_(0.5)
    return encoder, decoder


def write_stylizer_files(folder) -> None:
    """``folder``/vgg.pth and decoder.pth (``lively_networks``) and styles.pt, a bank of 6 random styles."""
    encoder, decoder = lively_networks()
    torch.save(encoder.state_dict(), folder / "vgg.pth")
    torch.save(decoder.state_dict(), folder / "decoder.pth")
    generator = torch.Generator().manual_seed(0)
    StyleBank(torch.rand(6, 512, generator=generator), torch.rand(6, 512, generator=generator) + 0.2,
              [f"style{i}.jpg" for i in range(6)]).save(folder / "styles.pt")
