"""A picture of what the Stylizer does: originals, stylized at several alphas, the style used.

    python -m fastnst.preview --out preview.png --images DIR --styles DIR \
        --vgg vgg_normalised.pth --decoder decoder.pth --alphas 0 0.25 0.5 1

Without ``--images`` / ``--styles`` it draws small generated pictures (shapes
for content, stripes/checks/blobs for styles), so it runs anywhere; without
weights (or with `fastnst.weights --random` files) the networks are random and the figure says so in its title.

``--styles`` is a folder of style images, or a style bank: a ``.pt`` from
``python -m fastnst.style_bank`` or relu4_1 feature maps (``.npy``, e.g. the
paper authors' ``style_feats_adain_1000.npy``). A bank holds statistics, not
pictures, so its column shows the style's name. With what
``python -m train.data.download --for cifar10 --data-root data`` fetched:

    python -m fastnst.preview --vgg data/adain/vgg_normalised.pth --decoder data/adain/decoder.pth \
        --styles data/style_feats_adain_1000.npy --resolution 224 --out docs/img/preview.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision.transforms.functional as TF  # noqa: E402

from fastnst import kernels  # noqa: E402
from fastnst.cli import (  # noqa: E402
    FileFormatError, MissingFileError, add_debug_flag, add_device_flag, program_name, run_cli,
)
from fastnst.style_bank import DEFAULT_STYLE_SIZE, StyleBank, list_style_images, load_style_image  # noqa: E402
from fastnst.stylizer import Stylizer  # noqa: E402
from fastnst.weights import load_decoder, load_encoder  # noqa: E402


def generated_contents(count: int, size: int, seed: int = 0) -> torch.Tensor:
    """(count, 3, size, size) uint8: a coloured disc and bar on a gradient, different per image."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size] / size
    images = []
    for _ in range(count):
        background = rng.uniform(0.2, 0.8, 3)[:, None, None] * (0.6 + 0.4 * ys)[None]
        image = np.broadcast_to(background, (3, size, size)).copy()
        cy, cx, radius = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        image[:, (ys - cy) ** 2 + (xs - cx) ** 2 < radius**2] = rng.uniform(0, 1, 3)[:, None]
        top = rng.uniform(0.05, 0.6)
        image[:, (ys > top) & (ys < top + 0.12) & (xs > 0.1) & (xs < 0.9)] = rng.uniform(0, 1, 3)[:, None]
        images.append(image)
    return torch.from_numpy(np.stack(images) * 255).round().to(torch.uint8)


def generated_styles(count: int, size: int = 128, seed: int = 0) -> list[torch.Tensor]:
    """``count`` (3, size, size) float textures in [0, 1]: stripes, checks and smooth blobs in turn."""
    rng = np.random.default_rng(seed + 1)
    ys, xs = np.mgrid[0:size, 0:size] / size
    styles = []
    for index in range(count):
        colours = rng.uniform(0, 1, (2, 3))
        frequency = rng.uniform(4, 12)
        if index % 3 == 0:
            pattern = 0.5 + 0.5 * np.sin(2 * np.pi * frequency * (xs * np.cos(index) + ys * np.sin(index)))
        elif index % 3 == 1:
            pattern = ((np.floor(xs * frequency) + np.floor(ys * frequency)) % 2).astype(float)
        else:
            noise = rng.normal(size=(8, 8))
            pattern = np.asarray(TF.resize(torch.from_numpy(noise)[None], [size, size], antialias=True))[0]
            pattern = (pattern - pattern.min()) / (np.ptp(pattern) + 1e-8)
        image = colours[0][:, None, None] * pattern + colours[1][:, None, None] * (1 - pattern)
        styles.append(torch.from_numpy(image).float())
    return styles


@torch.no_grad()
def style_bank_from_images(styles: list[torch.Tensor], encoder, names: list[str], image_size: int) -> StyleBank:
    means, stds = [], []
    for style in styles:
        style = TF.resize(style, image_size, antialias=True).unsqueeze(0)
        mean, std = kernels.adain_stats(encoder(style))
        means.append(mean)
        stds.append(std)
    return StyleBank(torch.cat(means), torch.cat(stds), names, image_size=image_size)


def pick_from_bank(bank: StyleBank, count: int, seed: int) -> tuple[StyleBank, list[str]]:
    """``count`` styles of ``bank`` drawn without replacement (repeated if the bank is smaller), and their names."""
    chosen = torch.randperm(len(bank), generator=torch.Generator().manual_seed(seed))
    chosen = chosen[torch.arange(count) % len(chosen)]
    names = [bank.names[i] for i in chosen.tolist()]
    return StyleBank(bank.mean[chosen], bank.std[chosen], names, image_size=bank.image_size), names


def random_weights_note(random: list[str]) -> str:
    """The words every stylization figure uses for networks with random weights (``random``: their names)."""
    return f"RANDOM {' and '.join(random)} weights: not the paper's look"


def draw_grid(originals: torch.Tensor, stylized: list[torch.Tensor], column_titles: list[str],
              styles: list[torch.Tensor | str], title: str, out: Path, row_labels: list[str] | None = None) -> Path:
    """Rows: images (``row_labels`` beside them). Columns: original, each batch of ``stylized`` (its title from
    ``column_titles``), the style image (or its name)."""
    rows, columns = originals.shape[0], len(stylized) + 2
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.6 * rows + 0.6), squeeze=False)
    headers = ["original", *column_titles, "style"]
    for row in range(rows):
        pictures = [originals[row], *[batch[row] for batch in stylized], styles[row]]
        for column, picture in enumerate(pictures):
            axis = axes[row, column]
            if isinstance(picture, str):  # a style known only by its statistics: show its name
                axis.text(0.5, 0.5, picture.replace("[", "\n["), ha="center", va="center", fontsize=6, wrap=True)
            else:
                picture = picture.float() / 255 if picture.dtype == torch.uint8 else picture
                axis.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(headers[column], fontsize=9)
            if column == 0 and row_labels is not None:
                axis.set_ylabel(row_labels[row], fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def _read_image(path: Path, size: int) -> torch.Tensor:
    try:
        return load_style_image(path, size)
    except OSError as error:  # PIL's UnidentifiedImageError and truncated files are OSErrors
        raise FileFormatError(f"image {path} cannot be read ({type(error).__name__}); remove it or pick "
                              "another folder") from error


def make_preview(args: argparse.Namespace) -> Path:
    encoder, decoder = load_encoder(args.vgg), load_decoder(args.decoder)
    if args.images is not None:
        paths = list_style_images(args.images, "--images folder")[: args.num_images]
        if not paths:
            raise MissingFileError(f"--images {args.images} holds no .jpg/.jpeg/.png images")
        contents = torch.stack([
            TF.center_crop(TF.resize((_read_image(p, args.image_size)[0] * 255).round().to(torch.uint8),
                                     args.image_size, antialias=True), args.image_size)
            for p in paths])
    else:
        contents = generated_contents(args.num_images, args.image_size, args.seed)
    count = contents.shape[0]
    if args.styles is not None and args.styles.is_file():
        bank, styles = pick_from_bank(StyleBank.load(args.styles), count, args.seed)
    else:
        if args.styles is not None:
            style_paths = list_style_images(args.styles, "--styles folder")
            if not style_paths:
                raise MissingFileError(f"--styles {args.styles} holds no .jpg/.jpeg/.png images")
            style_paths = [style_paths[i % len(style_paths)] for i in range(count)]
            styles = [_read_image(p, 128)[0] for p in style_paths]
            names = [p.name for p in style_paths]
        else:
            styles = generated_styles(count, seed=args.seed)
            names = [f"generated-{i}" for i in range(count)]
        bank = style_bank_from_images(styles, encoder, names, args.style_size)
    stylizer = Stylizer(bank, encoder, decoder, resolution=args.resolution).to(args.device)
    style_index = torch.arange(count)
    stylized = [stylizer.stylize(contents.to(args.device), style_index, torch.full((count,), alpha)).cpu()
                for alpha in args.alphas]
    # no file, or a `fastnst.weights --random` file: the loaders mark both
    random = [name for name, network in (("encoder", encoder), ("decoder", decoder)) if network.random_weights]
    weights = random_weights_note(random) if random else f"{args.vgg.name} + {args.decoder.name}"
    resolution = f"upsampled to {args.resolution} px" if args.resolution else "native resolution"
    title = f"fastnst Stylizer, {args.image_size} px images, {resolution}; {weights}"
    return draw_grid(contents, stylized, [f"alpha={alpha:g}" for alpha in args.alphas], styles, title, args.out)


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(prog=program_name("fastnst.preview"), description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("preview.png"), help="PNG file to write")
    parser.add_argument("--images", type=Path, default=None, help="folder of content images (default: generated)")
    parser.add_argument("--styles", type=Path, default=None,
                        help="folder of style images, or a style bank (.pt) or relu4_1 features (.npy) "
                        "(default: generated)")
    parser.add_argument("--vgg", type=Path, default=None, help="vgg_normalised.pth or torchvision vgg19 weights")
    parser.add_argument("--decoder", type=Path, default=None, help="decoder.pth")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0])
    parser.add_argument("--num-images", type=int, default=4, help="rows of the grid")
    parser.add_argument("--image-size", type=int, default=32, help="content side, px (CIFAR: 32, TinyImageNet: 64)")
    parser.add_argument("--style-size", type=int, default=DEFAULT_STYLE_SIZE, help="style shorter side, px")
    parser.add_argument("--resolution", type=int, default=None, help="stylize at this side (paper: 224); native if unset")
    add_device_flag(parser)
    parser.add_argument("--seed", type=int, default=0)
    add_debug_flag(parser)
    out = make_preview(parser.parse_args(argv))
    print(f"wrote {out}")
    return out


def cli(argv=None) -> int:
    return run_cli(main, argv, prog=program_name("fastnst.preview"))


if __name__ == "__main__":
    sys.exit(cli())
