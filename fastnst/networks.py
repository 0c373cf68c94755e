"""The AdaIN networks: normalised VGG-19 encoder to relu4_1 and its mirror decoder.

Layer layout is exactly that of the widely used PyTorch AdaIN port
(naoto0804/pytorch-AdaIN, ``net.py``), so its public ``vgg_normalised.pth``
and ``decoder.pth`` state dicts (keys ``0.weight``, ``2.weight``, ...) load
straight into these ``nn.Sequential`` modules. Input of the encoder: RGB in
[0, 1]; its first layer is a 1x1 conv that maps to the Caffe convention
(BGR * 255 minus the ImageNet mean), which is what the normalised VGG was
trained on. Output of the decoder: RGB, nominally in [0, 1] (not clamped).

Memory format: every layer keeps channels_last on every device (the reflection pads included,
see ``LayoutPreservingReflectionPad2d``), so a channels_last input runs without layout copies
(``tests/test_fastnst_networks.py`` checks each layer's output strides).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Index one past each exposed ReLU in the encoder: relu1_1, relu2_1, relu3_1, relu4_1.
ENCODER_STAGE_ENDS = (4, 11, 18, 31)
ENCODER_LAYER_NAMES = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
FEATURE_CHANNELS = 512  # channels of relu4_1: the width of a style bank entry


class LayoutPreservingReflectionPad2d(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` whose output keeps the input's memory format on every device.

    CUDA's ``reflection_pad2d`` makes its input contiguous and writes NCHW, so in a channels_last
    network each pad + conv costs two layout copies (NHWC -> NCHW for the pad, NCHW -> NHWC for
    cuDNN's channels_last conv); the CPU kernel keeps channels_last, which hides this on a CPU.
    A channels_last tensor is dense NHWC memory, i.e. a contiguous (N, H, W, C) view: reflection-
    padding the dims H and W of that view (``reflection_pad3d`` over its last three dims, C padded
    by 0) is one kernel that reads and writes NHWC, whose output viewed back is channels_last.
    Values are those of ``nn.ReflectionPad2d``; other layouts go through it unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            left, right, top, bottom = self.padding
            nhwc = x.permute(0, 2, 3, 1)
            return F.pad(nhwc, (0, 0, left, right, top, bottom), mode="reflect").permute(0, 3, 1, 2)
        return super().forward(x)


def _conv(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [LayoutPreservingReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3), nn.ReLU()]


def _pool() -> nn.Module:
    return nn.MaxPool2d(2, 2, 0, ceil_mode=True)


class VGGEncoder(nn.Sequential):
    """Normalised VGG-19 up to relu4_1 (indices 0..30 of the port's ``vgg``)."""

    def __init__(self):
        super().__init__(
            nn.Conv2d(3, 3, 1),              # 0: RGB [0,1] -> Caffe BGR*255 - mean
            *_conv(3, 64),                   # 1-3: relu1_1
            *_conv(64, 64), _pool(),         # 4-7
            *_conv(64, 128),                 # 8-10: relu2_1
            *_conv(128, 128), _pool(),       # 11-14
            *_conv(128, 256),                # 15-17: relu3_1
            *_conv(256, 256),                # 18-20
            *_conv(256, 256),                # 21-23
            *_conv(256, 256), _pool(),       # 24-27
            *_conv(256, 512),                # 28-30: relu4_1
        )

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """relu1_1, relu2_1, relu3_1, relu4_1 of ``images`` (the style loss needs all four)."""
        layers = list(self.children())
        outputs, x, start = [], images, 0
        for end in ENCODER_STAGE_ENDS:
            for layer in layers[start:end]:
                x = layer(x)
            outputs.append(x)
            start = end
        return outputs


class Decoder(nn.Sequential):
    """Mirror of the encoder: reflection padding, nearest-neighbour 2x upsampling (the port's ``decoder``)."""

    def __init__(self):
        super().__init__(
            *_conv(512, 256), nn.Upsample(scale_factor=2, mode="nearest"),   # 0-3
            *_conv(256, 256),                                                # 4-6
            *_conv(256, 256),                                                # 7-9
            *_conv(256, 256),                                                # 10-12
            *_conv(256, 128), nn.Upsample(scale_factor=2, mode="nearest"),   # 13-16
            *_conv(128, 128),                                                # 17-19
            *_conv(128, 64), nn.Upsample(scale_factor=2, mode="nearest"),    # 20-23
            *_conv(64, 64),                                                  # 24-26
            LayoutPreservingReflectionPad2d(1), nn.Conv2d(64, 3, 3),         # 27-28: no ReLU on the output
        )
