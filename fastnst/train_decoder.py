"""Train an AdaIN decoder (Huang & Belongie 2017), e.g. one specific to 32/64 px images.

    python -m fastnst.train_decoder --content DIR --styles DIR --out runs/decoder32 \
        --vgg vgg_normalised.pth --load-size 40 --image-size 32

Loss as in the AdaIN paper and the PyTorch port: content loss = MSE between
relu4_1 of the decoded image and the AdaIN target t; style loss = MSE
between the per-channel mean and std (``kernels.adain_stats``, through the
fused op's backward) of relu1_1 .. relu4_1 of the decoded image and of the
style image, summed over the four layers; total = content + 10 * style.
Images: shorter-side-agnostic square resize to ``--load-size`` then a random
``--image-size`` crop (the port: 512 then 256). Adam, lr / (1 + decay * iter).

``--out`` receives ``decoder.pth`` (a plain state dict in the port's key
layout: ``fastnst.load_decoder`` and ``--decoder`` of the other commands
read it) and ``train_state.pt`` (to resume: rerun the same command).
Both are written atomically.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler
from tqdm import tqdm

from fastnst import kernels
from fastnst.atomic import save_atomic
from fastnst.cli import MissingFileError, add_debug_flag, add_device_flag, program_name, run_cli
from fastnst.safe_load import safe_torch_load
from fastnst.style_bank import list_style_images
from fastnst.weights import load_decoder, load_encoder


class ImageFolderFlat(Dataset):
    """Every JPEG/PNG under a folder (nested or not), as float RGB crops in [0, 1]."""

    def __init__(self, folder: Path, load_size: int, image_size: int):
        self.paths = list_style_images(folder, "image folder")
        if not self.paths:
            raise MissingFileError(f"image folder {folder} holds no .jpg/.jpeg/.png images")
        self.transform = T.Compose([
            T.ToImage(),
            T.Resize((load_size, load_size), antialias=True),
            T.RandomCrop(image_size),
            T.ToDtype(torch.float32, scale=True),
        ])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                return self.transform(image.convert("RGB"))
        except OSError as exc:
            raise RuntimeError(f"training image {path} could not be read: {exc}") from exc


def _endless(dataset: Dataset, batch_size: int, seed: int, workers: int):
    """Batches drawn with replacement from a generator seeded by ``seed`` (a resumed run reseeds)."""
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=10**9, generator=generator)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        drop_last=True, pin_memory=torch.cuda.is_available(), generator=generator,
                        persistent_workers=workers > 0)
    return iter(loader)


def style_loss(decoded_features, style_features) -> torch.Tensor:
    loss = 0.0
    for decoded, style in zip(decoded_features, style_features):
        decoded_mean, decoded_std = kernels.adain_stats(decoded)
        style_mean, style_std = kernels.adain_stats(style)
        loss = loss + F.mse_loss(decoded_mean, style_mean) + F.mse_loss(decoded_std, style_std)
    return loss


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=program_name("fastnst.train_decoder"), description=__doc__.split("\n\n")[0])
    group = parser.add_argument_group("Data")
    group.add_argument("--content", required=True, type=Path, help="folder of content images")
    group.add_argument("--styles", required=True, type=Path, help="folder of style images")
    group.add_argument("--load-size", type=int, default=512, help="square resize before cropping, px")
    group.add_argument("--image-size", type=int, default=256, help="random crop side used for training, px")
    group.add_argument("--workers", type=int, default=2, help="data loader processes")
    group = parser.add_argument_group("Model")
    group.add_argument("--vgg", type=Path, default=None, help="vgg_normalised.pth or torchvision vgg19 weights")
    group.add_argument("--decoder-init", type=Path, default=None, help="decoder.pth to start from (fine-tuning)")
    group = parser.add_argument_group("Optimizer")
    group.add_argument("--batch-size", type=int, default=8)
    group.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate at step 0")
    group.add_argument("--lr-decay", type=float, default=5e-5, help="lr / (1 + lr_decay * step)")
    group.add_argument("--max-iter", type=int, default=160_000, help="total steps (including resumed ones)")
    group.add_argument("--style-weight", type=float, default=10.0)
    group.add_argument("--content-weight", type=float, default=1.0)
    group = parser.add_argument_group("Run")
    group.add_argument("--out", type=Path, default=Path("runs/decoder"), help="folder for decoder.pth, train_state.pt")
    group.add_argument("--save-every", type=int, default=1000, help="steps between checkpoints")
    group.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                       help="continue from OUT/train_state.pt when it exists")
    add_device_flag(group)
    group.add_argument("--seed", type=int, default=0)
    add_debug_flag(group)
    args = parser.parse_args(argv)
    if args.image_size > args.load_size:
        parser.error(f"--image-size {args.image_size} is larger than --load-size {args.load_size}")
    return args


def train(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    state_path, decoder_path = args.out / "train_state.pt", args.out / "decoder.pth"
    encoder = load_encoder(args.vgg).to(device)
    decoder = load_decoder(args.decoder_init).to(device).train().requires_grad_(True)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=args.lr)
    start = 0
    if args.resume and state_path.is_file():
        state = safe_torch_load(state_path, "decoder training state", map_location=device)
        decoder.load_state_dict(state["decoder"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["iteration"])
        print(f"resuming from {state_path} at step {start}")
    torch.manual_seed(args.seed + start)  # random crops in the main process (workers are seeded by the loader)
    content_batches = _endless(ImageFolderFlat(args.content, args.load_size, args.image_size),
                               args.batch_size, args.seed * 2 + start, args.workers)
    style_batches = _endless(ImageFolderFlat(args.styles, args.load_size, args.image_size),
                             args.batch_size, args.seed * 2 + 1 + start, args.workers)
    use_autocast = device.type == "cuda"
    history = {"content_loss": [], "style_loss": []}

    def save(iteration: int) -> None:
        weights = {key: value.detach().float().cpu() for key, value in decoder.state_dict().items()}
        save_atomic(weights, decoder_path)
        save_atomic({"decoder": decoder.state_dict(), "optimizer": optimizer.state_dict(),
                      "iteration": iteration, "args": {k: str(v) for k, v in vars(args).items()}}, state_path)

    progress = tqdm(range(start, args.max_iter), initial=start, total=args.max_iter, desc="decoder", unit="step")
    for iteration in progress:
        for group in optimizer.param_groups:
            group["lr"] = args.lr / (1.0 + args.lr_decay * iteration)
        content = next(content_batches).to(device, non_blocking=True)
        style = next(style_batches).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast):
            with torch.no_grad():
                style_features = encoder.features(style)
                style_mean, style_std = kernels.adain_stats(style_features[-1])
                target = kernels.adain(encoder(content), style_mean, style_std)
            decoded_features = encoder.features(decoder(target))
            content_loss = F.mse_loss(decoded_features[-1].float(), target.float())
            loss_style = style_loss(decoded_features, style_features)
            loss = args.content_weight * content_loss + args.style_weight * loss_style
        if not torch.isfinite(loss):
            raise FloatingPointError(f"decoder training diverged at step {iteration}: loss {loss.item()}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history["content_loss"].append(content_loss.item())
        history["style_loss"].append(loss_style.item())
        progress.set_postfix(content=f"{history['content_loss'][-1]:.3f}", style=f"{history['style_loss'][-1]:.3f}")
        if (iteration + 1) % args.save_every == 0 or iteration + 1 == args.max_iter:
            save(iteration + 1)
    if start >= args.max_iter and not decoder_path.is_file():
        save(start)
    return {"start": start, "end": max(start, args.max_iter), **{k: np.asarray(v) for k, v in history.items()}}


def main(argv=None) -> dict:
    return train(parse_args(argv))


def cli(argv=None) -> int:
    return run_cli(main, argv, prog=program_name("fastnst.train_decoder"))


if __name__ == "__main__":
    sys.exit(cli())
