"""WideResNet (Zagoruyko & Komodakis, 2016) laid out exactly as the authors' ``experiments/models/wideresnet.py``.

WRN-d-k: depth d = 6n + 4, widen factor k; channels 16, 16k, 32k, 64k; n pre-activation blocks per stage.
What makes it the authors' network rather than the textbook one (cited at commit 07e47c1):

- every convolution has a bias (``wideresnet.py:12, 27, 30, 36``);
- a block is ``bn1 -> act -> conv1 -> dropout -> bn2 -> act -> conv2 (stride s) + shortcut(x)``: dropout sits
  between conv1 and bn2, the stride is on conv2, and the 1x1 projection shortcut sees the raw block input x,
  not the pre-activated one (``wideresnet.py:39-44``);
- the activation is a parameter (``getattr(F, activation_function)``, ``wideresnet.py:84``; the paper's
  configs use SiLU, ``configs/config549.py:35``);
- the first block of layer1 has stride ``first_stride``: 1 for 32 px, 2 for TinyImageNet's 64 px, so both end
  on an 8x8 map (``wideresnet.py:93``, factor from ``data.py:119-126``); the stem conv has stride 1 (``:92``);
- the head BatchNorm has ``momentum=0.9`` (``wideresnet.py:96``), the others PyTorch's default 0.1;
- PyTorch's default initialisation: ``conv_init`` (``wideresnet.py:14-21``) is never called.

Module names are the authors' too, so their ``state_dict`` loads (without their ``mu``/``sigma`` buffers:
here the loader normalises, ``ct_model.py:37-40`` does it inside the model; the result is the same).

``forward(x, perturb_stage=k, perturb=f)`` applies ``f`` to the output of layer k (1 or 2): the hook for the
authors' feature-space ("manifold") noise and mixup, ``ct_model.py:138-166``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": F.relu, "silu": F.silu}


class WideBasic(nn.Module):
    def __init__(self, in_planes: int, planes: int, dropout: float, stride: int, activation: Callable):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, padding=1, bias=True)
        self.dropout = nn.Dropout(p=dropout)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=True)
        self.activation = activation
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.conv1(self.activation(self.bn1(x))))
        out = self.conv2(self.activation(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    def __init__(self, depth: int = 28, widen_factor: int = 4, num_classes: int = 10, dropout: float = 0.0,
                 activation: str = "silu", first_stride: int = 1):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
        # The arguments, for train.export's plain-PyTorch copy of this class.
        self.init_kwargs = dict(depth=depth, widen_factor=widen_factor, num_classes=num_classes, dropout=dropout,
                                activation=activation, first_stride=first_stride)
        blocks_per_stage = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.first_stride = first_stride
        self.activation = ACTIVATIONS[activation]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=True)
        in_planes = widths[0]
        stages = []
        for planes, stride in zip(widths[1:], (first_stride, 2, 2)):
            blocks = []
            for block_stride in [stride] + [1] * (blocks_per_stage - 1):
                blocks.append(WideBasic(in_planes, planes, dropout, block_stride, self.activation))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn1 = nn.BatchNorm2d(in_planes, momentum=0.9)
        self.linear = nn.Linear(in_planes, num_classes)

    def stage_output_size(self, stage: int, input_size: int) -> int:
        """Side of layer ``stage``'s (1-3) output map for a square ``input_size`` input."""
        return input_size // self.first_stride // 2 ** (stage - 1)

    def forward(self, x: torch.Tensor, perturb_stage: int = 0,
                perturb: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        out = self.conv1(x)
        for stage, layer in enumerate((self.layer1, self.layer2, self.layer3), start=1):
            out = layer(out)
            if perturb is not None and stage == perturb_stage:
                out = perturb(out)
        out = self.activation(self.bn1(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)
