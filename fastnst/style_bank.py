"""The style bank: relu4_1 (mean, std) of each style image, computed once and stored.

AdaIN only uses a style image through the per-channel mean and standard
deviation of its relu4_1 features, so a bank of S styles is two (S, 512)
float32 tensors plus the file names. Style images (JPEG/PNG, any size, in
one folder or nested folders as in the WikiArt / painter-by-numbers layout)
are converted to RGB and resized so that their shorter side is
``image_size`` pixels (default 256, the crop size the AdaIN decoder was
trained at), keeping the aspect ratio, before encoding.

    python -m fastnst.style_bank --styles DIR --out styles.pt [--vgg vgg_normalised.pth]
    python -m fastnst.style_bank --features style_feats_adain_1000.npy --out styles.pt

A bank can also come from precomputed relu4_1 feature maps: the paper authors publish theirs as
``style_feats_adain_1000.npy`` (Zenodo 16279015), an (N, 512, h, w) array of raw maps, one per
painting. ``bank_from_features`` reduces each map to its (mean, std) with ``kernels.adain_stats``,
the op's own convention (unbiased variance, eps on the variance), reading the file memory-mapped.
``StyleBank.load`` accepts such a ``.npy`` too: it converts it once and caches the bank beside it
(``<name>.bank.pt``), so the 1.6 GB file is read once, not at every run.

The file is a ``torch.save`` of tensors, strings and ints only, so it loads
with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from tqdm import tqdm

from fastnst import kernels
from fastnst.atomic import save_atomic
from fastnst.cli import FileFormatError, MissingFileError, add_debug_flag, add_device_flag, program_name, run_cli
from fastnst.networks import FEATURE_CHANNELS
from fastnst.safe_load import safe_torch_load

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
DEFAULT_STYLE_SIZE = 256
FORMAT_VERSION = 1
FEATURES_SUFFIX = ".npy"         # precomputed relu4_1 maps (N, 512, h, w), e.g. style_feats_adain_1000.npy
CACHED_BANK_SUFFIX = ".bank.pt"  # the bank converted from <name>.npy is cached as <name>.bank.pt beside it
RELU4_1_STRIDE = 8               # relu4_1 maps are 1/8 of the image side (three 2x poolings)


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
        save_atomic(
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
        """A bank file, or relu4_1 features (``.npy``), converted once and cached (``load_features_bank``)."""
        path = Path(path)
        if path.suffix == FEATURES_SUFFIX:
            return load_features_bank(path)
        if not path.is_file():
            raise MissingFileError(f"style bank {path} does not exist; build one with python -m fastnst.style_bank")
        state = safe_torch_load(path, "style bank")
        missing = [key for key in ("mean", "std", "names") if not isinstance(state, dict) or key not in state]
        if missing:
            raise FileFormatError(f"style bank {path} lacks {', '.join(missing)}: not a fastnst style bank")
        if state["mean"].shape[-1] != FEATURE_CHANNELS:
            raise FileFormatError(f"style bank {path}: {state['mean'].shape[-1]} channels, expected {FEATURE_CHANNELS} "
                                  "(relu4_1)")
        return cls(
            mean=state["mean"].float(),
            std=state["std"].float(),
            names=list(state["names"]),
            image_size=int(state.get("image_size", DEFAULT_STYLE_SIZE)),
            skipped=list(state.get("skipped", [])),
        )


def read_style_features(path: str | os.PathLike) -> np.ndarray:
    """The (N, 512, h, w) float array of ``path``, memory-mapped; raises with the file's name if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"style features {path} do not exist (the authors' file is fetched by "
                                "python -m train.data.download style-feats --data-root DIR)")
    try:
        features = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as exc:  # bad header, truncated file, a pickled object array
        raise FileFormatError(f"style features {path} could not be read as a .npy array: {exc}") from exc
    if features.ndim != 4 or features.shape[1] != FEATURE_CHANNELS or features.dtype.kind != "f" or not len(features):
        raise FileFormatError(f"style features {path}: expected float relu4_1 maps of shape (N, {FEATURE_CHANNELS}, h, w), "
                         f"got {features.dtype} {features.shape}")
    return features


@torch.no_grad()
def bank_from_features(path: str | os.PathLike, batch_size: int = 16,
                       device: str | torch.device = "cpu") -> StyleBank:
    """(mean, std) of each relu4_1 map in ``path`` (an (N, 512, h, w) .npy), as ``kernels.adain_stats`` computes them.

    The file is memory-mapped and read ``batch_size`` maps at a time. ``image_size`` is recorded as
    8 x the maps' shorter side (the style images' side; 28x28 maps come from 224 px images).
    """
    path = Path(path)
    features = read_style_features(path)
    count = len(features)
    means, stds = [], []
    with tqdm(total=count, unit="style", desc=f"converting {path.name}", disable=count < 64) as progress:
        for start in range(0, count, batch_size):
            chunk = torch.from_numpy(np.array(features[start:start + batch_size])).to(device)  # one read, writable
            mean, std = kernels.adain_stats(chunk)
            means.append(mean.cpu())
            stds.append(std.cpu())
            progress.update(len(chunk))
    mean, std = torch.cat(means), torch.cat(stds)
    bad = ~(torch.isfinite(mean).all(dim=1) & torch.isfinite(std).all(dim=1))
    if bad.any():
        raise FileFormatError(f"style features {path}: map {int(bad.nonzero()[0])} holds non-finite values "
                         f"({int(bad.sum())} of {count} maps)")
    names = [f"{path.name}[{index}]" for index in range(count)]
    return StyleBank(mean, std, names, image_size=RELU4_1_STRIDE * min(features.shape[2:]))


def cached_bank_path(features_path: str | os.PathLike) -> Path:
    """Where the bank converted from ``features_path`` is cached: ``<name>.bank.pt`` beside it."""
    features_path = Path(features_path)
    return features_path.with_name(features_path.stem + CACHED_BANK_SUFFIX)


def _cache_is_fresh(cache: Path, source: Path) -> bool:
    return cache.is_file() and cache.stat().st_mtime >= source.stat().st_mtime


def load_features_bank(path: str | os.PathLike) -> StyleBank:
    """The bank of the relu4_1 features in ``path``: from its cache if that is newer, else converted and cached.

    Processes that start together (DDP ranks) take a lock on the features file: one converts, the
    others wait and read its cache. A folder that cannot be written only costs the conversion again
    next time (with a warning).
    """
    import fcntl

    path = Path(path)
    read_style_features(path)  # the file's own errors first
    cache = cached_bank_path(path)
    if _cache_is_fresh(cache, path):
        return StyleBank.load(cache)
    with open(path, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if _cache_is_fresh(cache, path):  # another process converted it while we waited
                return StyleBank.load(cache)
            bank = bank_from_features(path)
            try:
                bank.save(cache)
            except OSError as exc:
                warnings.warn(f"style bank cache {cache} could not be written ({exc}); the features will be "
                              "converted again next time", stacklevel=2)
            return bank
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def list_style_images(folder: str | os.PathLike, what: str = "style folder") -> list[Path]:
    """Every .jpg/.jpeg/.png under ``folder``, sorted; ``what`` names the folder in the error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"{what} {folder} does not exist or is not a folder")
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
        raise MissingFileError(f"style folder {folder} holds no .jpg/.jpeg/.png images")
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
        raise FileFormatError(f"style folder {folder}: none of its {len(paths)} images could be read")
    return StyleBank(torch.cat(means), torch.cat(stds), names, image_size=image_size, skipped=skipped)


def main(argv: list[str] | None = None) -> StyleBank:
    from fastnst.weights import load_encoder

    parser = argparse.ArgumentParser(prog=program_name("fastnst.style_bank"), description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--styles", type=Path, help="folder of style images (searched recursively)")
    source.add_argument("--features", type=Path,
                        help="precomputed relu4_1 maps (N, 512, h, w) .npy, e.g. the authors' style_feats_adain_1000.npy")
    parser.add_argument("--out", required=True, type=Path, help="style bank file to write (.pt)")
    parser.add_argument("--vgg", type=Path, default=None, help="vgg_normalised.pth or torchvision vgg19 weights")
    parser.add_argument("--image-size", type=int, default=DEFAULT_STYLE_SIZE, help="shorter side of a style image, px")
    add_device_flag(parser)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="image decoding processes")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.features is not None:
        bank = bank_from_features(args.features, device=args.device)
        bank.save(args.out)
        print(f"wrote {len(bank)} styles to {args.out}")
        return bank
    bank = encode_style_folder(args.styles, load_encoder(args.vgg), args.image_size, args.device, args.workers)
    bank.save(args.out)
    print(f"wrote {len(bank)} styles to {args.out}")
    if bank.skipped:
        print(f"skipped {len(bank.skipped)} unreadable image(s):", *bank.skipped, sep="\n  ", file=sys.stderr)
    return bank


def cli(argv: list[str] | None = None) -> int:
    return run_cli(main, argv, prog=program_name("fastnst.style_bank"))


if __name__ == "__main__":
    sys.exit(cli())
