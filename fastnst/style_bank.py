"""The style bank: relu4_1 (mean, std) of each style image, computed once and stored.

AdaIN only uses a style image through the per-channel mean and standard
deviation of its relu4_1 features, so a bank of S styles is two (S, 512)
float32 tensors plus the file names. Style images (JPEG/PNG, any size, in
one folder or nested folders as in the WikiArt / painter-by-numbers layout)
are converted to RGB and resized so that their shorter side is
``image_size`` pixels (default 256, the crop size the AdaIN decoder was
trained at), keeping the aspect ratio, before encoding.

    python -m fastnst.style_bank --styles DIR --out styles.pt [--vgg vgg_normalised.pth]

The file is a ``torch.save`` of tensors, strings and ints only, so it loads
with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from tqdm import tqdm

from fastnst import kernels
from fastnst.networks import FEATURE_CHANNELS

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
DEFAULT_STYLE_SIZE = 256
FORMAT_VERSION = 1


@dataclass
class StyleBank:
    mean: torch.Tensor            # (S, 512) float32: relu4_1 channel means
    std: torch.Tensor             # (S, 512) float32: relu4_1 channel stds (unbiased, eps as kernels.adain_stats)
    names: list[str]              # S style file names, relative to the encoded folder
    image_size: int = DEFAULT_STYLE_SIZE
    skipped: list[str] = field(default_factory=list)  # files that could not be read when the bank was built

    def __post_init__(self):
        if self.mean.ndim != 2 or self.mean.shape != self.std.shape or self.mean.shape[0] != len(self.names):
            raise ValueError(
                f"style bank: mean {tuple(self.mean.shape)}, std {tuple(self.std.shape)} and "
                f"{len(self.names)} names do not describe the same (S, C) styles"
            )
        if len(self.names) == 0:
            raise ValueError("style bank: holds no styles")

    def __len__(self) -> int:
        return len(self.names)

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "format_version": FORMAT_VERSION,
                "mean": self.mean.float().cpu().contiguous(),
                "std": self.std.float().cpu().contiguous(),
                "names": list(self.names),
                "image_size": int(self.image_size),
                "skipped": list(self.skipped),
            },
            path,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "StyleBank":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"style bank {path} does not exist; build one with python -m fastnst.style_bank")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"style bank {path} could not be read: {exc}") from exc
        missing = [key for key in ("mean", "std", "names") if not isinstance(state, dict) or key not in state]
        if missing:
            raise ValueError(f"style bank {path} lacks {', '.join(missing)}: not a fastnst style bank")
        if state["mean"].shape[-1] != FEATURE_CHANNELS:
            raise ValueError(f"style bank {path}: {state['mean'].shape[-1]} channels, expected {FEATURE_CHANNELS} (relu4_1)")
        return cls(
            mean=state["mean"].float(),
            std=state["std"].float(),
            names=list(state["names"]),
            image_size=int(state.get("image_size", DEFAULT_STYLE_SIZE)),
            skipped=list(state.get("skipped", [])),
        )


def list_style_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"style folder {folder} does not exist or is not a folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_style_image(path: Path, image_size: int) -> torch.Tensor:
    """(1, 3, h, w) float in [0, 1], shorter side ``image_size``; raises on unreadable files."""
    with Image.open(path) as image:
        image.draft("RGB", (image_size, image_size))  # JPEG: decode big paintings at reduced scale
        image = image.convert("RGB")
        image = TF.resize(image, image_size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        return TF.pil_to_tensor(image).unsqueeze(0).float().div_(255)


class _StyleImages(torch.utils.data.Dataset):
    """Decodes style images (in loader workers); a broken file yields its error instead of a tensor."""

    def __init__(self, paths: list[Path], image_size: int):
        self.paths, self.image_size = paths, image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            return index, load_style_image(self.paths[index], self.image_size), None
        except Exception as exc:  # PIL raises several types for broken files; skip and list, never silently
            return index, None, f"{type(exc).__name__}: {exc}"


@torch.no_grad()
def encode_style_folder(
    folder: str | os.PathLike,
    encoder: torch.nn.Module,
    image_size: int = DEFAULT_STYLE_SIZE,
    device: str | torch.device = "cpu",
    workers: int = 0,
) -> StyleBank:
    """Encode every JPEG/PNG under ``folder``; unreadable files are skipped and listed in ``bank.skipped``.

    ``workers`` processes decode and resize images while the encoder runs (0: decode in this process).
    """
    folder = Path(folder)
    paths = list_style_images(folder)
    if not paths:
        raise FileNotFoundError(f"style folder {folder} holds no .jpg/.jpeg/.png images")
    encoder = encoder.to(device).eval()
    # batch_size=None: images keep their own sizes, one encoder call each.
    loader = torch.utils.data.DataLoader(_StyleImages(paths, image_size), batch_size=None, num_workers=workers)
    means, stds, names, skipped = [], [], [], []
    for index, image, error in tqdm(loader, total=len(paths), desc="encoding styles", unit="img"):
        name = paths[index].relative_to(folder).as_posix()
        if image is None:
            skipped.append(name)
            tqdm.write(f"skipped unreadable style image {paths[index]}: {error}", file=sys.stderr)
            continue
        mean, std = kernels.adain_stats(encoder(image.to(device)))
        means.append(mean.cpu())
        stds.append(std.cpu())
        names.append(name)
    if not names:
        raise ValueError(f"style folder {folder}: none of its {len(paths)} images could be read")
    return StyleBank(torch.cat(means), torch.cat(stds), names, image_size=image_size, skipped=skipped)


def main(argv: list[str] | None = None) -> None:
    from fastnst.weights import load_encoder

    parser = argparse.ArgumentParser(prog="python -m fastnst.style_bank", description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", required=True, type=Path, help="folder of style images (searched recursively)")
    parser.add_argument("--out", required=True, type=Path, help="style bank file to write (.pt)")
    parser.add_argument("--vgg", type=Path, default=None, help="vgg_normalised.pth or torchvision vgg19 weights")
    parser.add_argument("--image-size", type=int, default=DEFAULT_STYLE_SIZE, help="shorter side of a style image, px")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="image decoding processes")
    args = parser.parse_args(argv)
    bank = encode_style_folder(args.styles, load_encoder(args.vgg), args.image_size, args.device, args.workers)
    bank.save(args.out)
    print(f"wrote {len(bank)} styles to {args.out}")
    if bank.skipped:
        print(f"skipped {len(bank.skipped)} unreadable image(s):", *bank.skipped, sep="\n  ", file=sys.stderr)


if __name__ == "__main__":
    main()
