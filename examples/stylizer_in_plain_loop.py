"""The Stylizer as a plain batch augmentation in a plain PyTorch training loop (torchvision DataLoader, no DALI).

    python examples/stylizer_in_plain_loop.py                        # random weights, generated styles: runs anywhere
    python examples/stylizer_in_plain_loop.py --styles data/style_feats_adain_1000.npy \\
        --vgg data/adain/vgg_normalised.pth --decoder data/adain/decoder.pth --resolution 224 --device cuda

The Stylizer takes a batch of uint8 (or [0, 1] float) NCHW images and a per-sample "is synthetic"
flag, re-textures a random subset (probability ``prob_real`` / ``prob_synthetic`` per sample) and
returns the batch in the same dtype; the other images come back unchanged. So it sits between the
loader and the model, on the device, like any GPU batch augmentation. Here the data set is
torchvision's FakeData; use your own Dataset the same way (uint8 tensors: ``PILToTensor``).
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.transforms import v2

import fastnst
from fastnst import StyleBank, Stylizer


def random_style_bank(count: int = 8, seed: int = 0) -> StyleBank:
    """Made-up relu4_1 statistics, for running without the authors' style features."""
    generator = torch.Generator().manual_seed(seed)
    return StyleBank(torch.rand(count, 512, generator=generator), torch.rand(count, 512, generator=generator) + 0.1,
                     [f"random-{i}" for i in range(count)])


def small_classifier(num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", type=Path, help="style bank (.pt) or relu4_1 features (.npy); default: random")
    parser.add_argument("--vgg", type=Path, help="vgg_normalised.pth (default: random weights, with a warning)")
    parser.add_argument("--decoder", type=Path, help="decoder.pth (default: random weights, with a warning)")
    parser.add_argument("--resolution", type=int, default=None, help="stylize at this side (paper: 224); default native")
    parser.add_argument("--prob-real", type=float, default=0.5, help="share of images stylized (paper: 0.1 for real)")
    parser.add_argument("--num-images", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    num_classes = 10
    dataset = torchvision.datasets.FakeData(args.num_images, (3, args.image_size, args.image_size), num_classes,
                                            transform=v2.Compose([v2.PILToTensor(), v2.RandomHorizontalFlip()]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers, pin_memory=args.device == "cuda")

    with warnings.catch_warnings():
        if args.vgg is None or args.decoder is None:  # said once here instead of once per network
            warnings.simplefilter("ignore", fastnst.RandomWeightsWarning)
            print("note: random encoder/decoder weights; pass --vgg and --decoder for the paper's style transfer")
        bank = StyleBank.load(args.styles) if args.styles else random_style_bank()
        stylizer = Stylizer(bank, fastnst.load_encoder(args.vgg), fastnst.load_decoder(args.decoder),
                            prob_real=args.prob_real, resolution=args.resolution).to(args.device)

    model = small_classifier(num_classes).to(args.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    normalize = v2.Normalize(mean=[0.5] * 3, std=[0.25] * 3)
    losses, stylized = [], 0
    for epoch in range(args.epochs):
        stylizer.set_epoch(epoch)  # a reproducible stream of choices per epoch
        for images, labels in loader:
            images, labels = images.to(args.device, non_blocking=True), labels.to(args.device, non_blocking=True)
            is_synthetic = torch.zeros(len(images), dtype=torch.bool)  # all real here; mark generated images True
            images, plan = stylizer(images, is_synthetic)               # uint8 in, uint8 out, and what was done
            stylized += plan.rows.numel()                               # rows stylized (host-side: no sync)
            loss = F.cross_entropy(model(normalize(images.float() / 255)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        print(f"epoch {epoch}: loss {losses[-1]:.3f}, {stylized} images stylized so far")
    return {"losses": losses, "num_stylized": stylized, "num_seen": len(losses) * args.batch_size}


if __name__ == "__main__":
    main()
