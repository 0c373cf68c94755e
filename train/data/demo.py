"""A small generated, learnable data set in the real CIFAR-10 on-disk layout, plus an EDM-style synthetic .npz.

Ten classes of procedurally drawn patterns (disc, square, triangle, ring, cross, three stripe
orientations, checkerboard, two blobs) with random position, size, colours and pixel noise: a small
WRN learns it in minutes, and the colours/texture vary independently of the class, so style
transfer neither gives the answer away nor destroys it. The "synthetic" set is drawn from the same
generator with another seed, standing in for diffusion samples. The demo's style bank is encoded
from procedurally drawn "paintings" (``make_demo_style_bank``).

    python -m train.data.demo --data-root DIR [--seed 0]   # the demo's data set alone, as train.run writes it
"""
from __future__ import annotations

import argparse
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from fastnst.cli import add_debug_flag, program_name, run_cli
from fastnst.train.data.sources import DEMO_FOLDER

CLASS_NAMES = ["disc", "square", "triangle", "ring", "cross", "horizontal_stripes", "vertical_stripes",
               "diagonal_stripes", "checkerboard", "two_blobs"]
IMAGE_SIZE = 32
DEMO_NUM_STYLES = 12
DEMO_STYLE_SIZE = 64
# The sizes of the demo's data set (train.run's and this module's command): small enough for a 2-core CPU.
DEMO_SIZES = {"num_train": 1000, "num_test": 500, "num_synthetic": 1000}


def _class_masks(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 32, 32) float masks in [0, 1]: the foreground of each sample's class pattern."""
    n = len(labels)
    coords = np.arange(IMAGE_SIZE, dtype=np.float32)
    y, x = coords[None, :, None], coords[None, None, :]
    cy, cx = (rng.uniform(10, 22, (2, n, 1, 1))).astype(np.float32)
    radius = rng.uniform(6, 11, (n, 1, 1)).astype(np.float32)
    period = rng.uniform(5, 9, (n, 1, 1)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    dy, dx = y - cy, x - cx
    distance = np.sqrt(dy ** 2 + dx ** 2)
    patterns = [
        distance < radius,                                                   # disc
        (np.abs(dy) < radius * 0.8) & (np.abs(dx) < radius * 0.8),          # square
        (dy < radius * 0.7) & (dy > -radius) & (np.abs(dx) < (dy + radius) * 0.6),  # triangle
        (distance < radius) & (distance > radius * 0.55),                    # ring
        (np.abs(dy) < radius * 0.3) | (np.abs(dx) < radius * 0.3),          # cross
        np.sin(2 * np.pi * y / period + phase) > 0,                          # horizontal stripes
        np.sin(2 * np.pi * x / period + phase) > 0,                          # vertical stripes
        np.sin(2 * np.pi * (x + y) / (1.4 * period) + phase) > 0,            # diagonal stripes
        (np.sin(2 * np.pi * x / period + phase) > 0) ^ (np.sin(2 * np.pi * y / period + phase) > 0),  # checkerboard
        (np.sqrt((y - cy + 6) ** 2 + (x - cx + 6) ** 2) < radius * 0.5)
        | (np.sqrt((y - cy - 6) ** 2 + (x - cx - 6) ** 2) < radius * 0.5),  # two blobs
    ]
    masks = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for label, pattern in enumerate(patterns):
        chosen = labels == label
        masks[chosen] = np.broadcast_to(pattern, (n, IMAGE_SIZE, IMAGE_SIZE))[chosen]
    return masks


def generate_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 32, 32, 3) images of the given classes: pattern in one colour on another, plus noise."""
    n = len(labels)
    mask = _class_masks(labels, rng)[..., None]
    foreground = rng.uniform(0, 255, (n, 1, 1, 3)).astype(np.float32)
    background = rng.uniform(0, 255, (n, 1, 1, 3)).astype(np.float32)
    # Keep foreground and background apart so every pattern stays visible.
    too_close = np.abs(foreground - background).sum(-1, keepdims=True) < 150
    foreground = np.where(too_close, 255 - background, foreground)
    images = mask * foreground + (1 - mask) * background
    images += rng.normal(0, 18, images.shape).astype(np.float32)
    return np.clip(images, 0, 255).astype(np.uint8)


def _balanced_labels(count: int, rng: np.random.Generator) -> np.ndarray:
    labels = np.arange(count) % len(CLASS_NAMES)
    return rng.permutation(labels).astype(np.int64)


def _write_batch(path: Path, images: np.ndarray, labels: np.ndarray, batch_label: str) -> None:
    """Write one batch exactly as the official CIFAR-10 python files: planar (N, 3072) uint8 + list labels."""
    planar = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))
    batch = {b"batch_label": batch_label.encode(), b"labels": labels.tolist(), b"data": planar,
             b"filenames": [f"{i:06d}.png".encode() for i in range(len(images))]}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def make_demo_dataset(root: str | Path, num_train: int = 5000, num_test: int = 1000, num_synthetic: int = 5000,
                      seed: int = 0) -> Path:
    """Write ``<root>/demo/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`` and
    ``<root>/demo/synthetic.npz`` (``image`` uint8 NHWC, ``label``); returns ``<root>/demo``.

    Read it back with dataset name ``"demo"`` and ``data_root=root``.
    """
    if num_train < 5 * len(CLASS_NAMES) or num_test < 1:
        raise ValueError(f"num_train must be at least {5 * len(CLASS_NAMES)} (5 batches, every class), "
                         f"num_test at least 1; got {num_train}, {num_test}")
    rng = np.random.default_rng(seed)
    folder = Path(root) / DEMO_FOLDER
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True, exist_ok=True)
    train_labels = _balanced_labels(num_train, rng)
    train_images = generate_images(train_labels, rng)
    for i, rows in enumerate(np.array_split(np.arange(num_train), 5), start=1):
        _write_batch(batches / f"data_batch_{i}", train_images[rows], train_labels[rows], f"training batch {i} of 5")
    test_labels = _balanced_labels(num_test, rng)
    _write_batch(batches / "test_batch", generate_images(test_labels, rng), test_labels, "testing batch 1 of 1")
    with open(batches / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [name.encode() for name in CLASS_NAMES], b"num_cases_per_batch": num_train // 5,
                     b"num_vis": 3072}, f, protocol=2)
    synthetic_rng = np.random.default_rng([seed, 1])
    synthetic_labels = _balanced_labels(num_synthetic, synthetic_rng)
    np.savez(folder / "synthetic.npz", image=generate_images(synthetic_labels, synthetic_rng), label=synthetic_labels)
    return folder


def draw_style_images(folder: Path, count: int, size: int, seed: int) -> list[Path]:
    """Procedural "paintings": stripes, checkers, rings, dots and smooth colour fields, as PNG files."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    paths = []
    for index in range(count):
        colours = rng.uniform(0, 255, (3, 3)).astype(np.float32)
        angle, period = rng.uniform(0, np.pi), rng.uniform(0.05, 0.3)
        along = x * np.cos(angle) + y * np.sin(angle)
        kind = index % 5
        if kind == 0:    # stripes
            weight = (np.sin(2 * np.pi * along / period) + 1) / 2
        elif kind == 1:  # checkerboard
            weight = ((np.floor(x / period) + np.floor(y / period)) % 2).astype(np.float32)
        elif kind == 2:  # concentric rings
            weight = (np.sin(2 * np.pi * np.hypot(x - 0.5, y - 0.5) / period) + 1) / 2
        elif kind == 3:  # dots
            weight = (np.hypot((x % period) / period - 0.5, (y % period) / period - 0.5) < 0.3).astype(np.float32)
        else:            # smooth colour field: bilinear upsampling of a coarse random grid
            coarse = Image.fromarray(rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8))
            field = np.asarray(coarse.resize((size, size), Image.BILINEAR), dtype=np.float32)
            paths.append(folder / f"style_{index:02d}.png")
            Image.fromarray(field.astype(np.uint8)).save(paths[-1])
            continue
        image = colours[0] * weight[..., None] + colours[1] * (1 - weight[..., None])
        image += rng.normal(0, 12, image.shape)  # a little texture everywhere
        paths.append(folder / f"style_{index:02d}.png")
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(paths[-1])
    return paths


def make_demo_style_bank(bank_path: Path, vgg: str | None, seed: int) -> None:
    """Draw the demo's style images into a folder beside ``bank_path`` (its name without the suffix)
    and encode them into a style bank there, with the encoder of ``vgg`` (without one: the random
    encoder of ``seed``, the one train.run's Stylizer builds from the same seed)."""
    import fastnst
    from fastnst.style_bank import encode_style_folder
    from fastnst.weights import load_encoder, seeded_initialisation

    style_folder = bank_path.with_suffix("")
    draw_style_images(style_folder, DEMO_NUM_STYLES, DEMO_STYLE_SIZE, seed)
    with warnings.catch_warnings(), seeded_initialisation(seed):
        warnings.simplefilter("ignore", fastnst.RandomWeightsWarning)  # the demo's banner says it louder
        encoder = load_encoder(vgg)
    encode_style_folder(style_folder, encoder, image_size=DEMO_STYLE_SIZE, workers=0).save(bank_path)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog=program_name("train.data.demo"),
                                     description="Write the built-in demo's generated data set, as python -m train.run "
                                     "does before the demo trains (DIR/demo/cifar-10-batches-py and DIR/demo/synthetic.npz).")
    parser.add_argument("--data-root", required=True, metavar="DIR", help="the folder to write it into")
    parser.add_argument("--seed", type=int, default=0, help="the demo run's --seed (default: 0)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    folder = make_demo_dataset(args.data_root, seed=args.seed, **DEMO_SIZES)
    print(f"wrote {folder}")
    return folder


def cli(argv: list[str] | None = None) -> int:
    return run_cli(main, argv, prog=program_name("train.data.demo"))


if __name__ == "__main__":
    sys.exit(cli())
