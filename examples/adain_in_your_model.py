"""The fused AdaIN op inside someone else's model: a small style-conditioned generator, trained end to end.

    python examples/adain_in_your_model.py [--steps 200] [--device cuda]

``kernels.AdaIN()`` is an ``nn.Module`` like any other: here it re-normalises a generator's
features to per-style statistics that are themselves learned (two embeddings), so the gradient
of the loss flows through the op to the content features *and* to the style mean and std. The
toy task: turn an image into its "style k" version (a per-channel colour transform per style).
On CUDA the op runs as Triton kernels (and ``torch.compile`` traces through it); on the CPU it
runs the plain-PyTorch reference, so the same code trains anywhere.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from fastnst import kernels


class StyledGenerator(nn.Module):
    """conv features -> AdaIN to the learned statistics of style k -> conv to RGB."""

    def __init__(self, num_styles: int = 4, channels: int = 32):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.style_mean = nn.Embedding(num_styles, channels)
        self.style_log_std = nn.Embedding(num_styles, channels)  # std = exp(.) stays positive
        self.adain = kernels.AdaIN()
        self.to_rgb = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, images: torch.Tensor, style: torch.Tensor, alpha: float | torch.Tensor = 1.0) -> torch.Tensor:
        features = self.features(images)
        features = self.adain(features, self.style_mean(style), self.style_log_std(style).exp(), alpha)
        return self.to_rgb(features)


def make_batch(batch_size: int, size: int, gains: torch.Tensor, biases: torch.Tensor, generator: torch.Generator):
    """Smooth random images, a style per image, and the target: the image under that style's colour transform."""
    coarse = torch.rand(batch_size, 3, 4, 4, generator=generator)
    images = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    style = torch.randint(0, len(gains), (batch_size,), generator=generator)
    target = images * gains[style][:, :, None, None] + biases[style][:, :, None, None]
    return images, style, target


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="image side, px")
    parser.add_argument("--num-styles", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    gains = torch.rand(args.num_styles, 3, generator=generator) * 1.5 + 0.25   # what each style does to colour
    biases = torch.rand(args.num_styles, 3, generator=generator) - 0.5
    model = StyledGenerator(args.num_styles).to(args.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(args.steps):
        images, style, target = (t.to(args.device) for t in make_batch(args.batch_size, args.size, gains, biases,
                                                                          generator))
        loss = F.mse_loss(model(images, style), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # through the op: to the features, and to style_mean / style_log_std
        optimizer.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    style_grads = {name: parameter.grad.abs().sum().item() for name, parameter in model.named_parameters()
                   if name.startswith("style_")}
    return {"losses": losses, "style_grads": style_grads, "model": model}


if __name__ == "__main__":
    main()
