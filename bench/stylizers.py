"""The Stylizer the benchmarks time: random weights and a random style bank (the cost does not depend on them)."""
from __future__ import annotations

import warnings

import torch

from fastnst import Decoder, StyleBank, Stylizer, VGGEncoder


def random_weight_stylizer(device: torch.device, num_styles: int = 64, **options) -> Stylizer:
    """A ``fastnst.Stylizer`` with random encoder, decoder and style statistics; ``options`` go to it."""
    generator = torch.Generator().manual_seed(0)
    bank = StyleBank(torch.rand(num_styles, 512, generator=generator),
                     torch.rand(num_styles, 512, generator=generator) + 0.1,
                     [f"style{i}" for i in range(num_styles)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights on purpose: timing only
        stylizer = Stylizer(bank, VGGEncoder(), Decoder(), **options)
    return stylizer.to(device)
