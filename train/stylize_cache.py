"""``python -m train.stylize_cache``: stylize a data set K times, offline, for ``train.run --stylize-cache``.

    python -m train.stylize_cache --dataset cifar10 --data-root data --source synthetic \\
        --synthetic data/cifar10_edm_1m.npz --styles styles.pt --vgg vgg_normalised.pth \\
        --decoder decoder.pth --out cache/cifar10-synthetic-224
    python -m train.stylize_cache --dataset cifar10 --data-root data --source real ... --out cache/cifar10-real-224
    python -m train.stylize_cache --input images.npz --source synthetic --styles styles.pt ... --out cache/x
    torchrun --nproc_per_node=8 -m train.stylize_cache --dataset cifar10 ...   # one shard per GPU, one output

``--dataset``: a training source, read as the training loader reads it, so row i of the cache is the
loader's sample i of that source; ``--input``: an EDM-style .npz or an image folder (``generic_input``).
The settings default to the data set's preset (built-in defaults with ``--input``), ``--config FILE``
over it, flags over both; a synthetic set, style bank or weights given nowhere are taken from where
``python -m train.data.download`` put them under ``--data-root``, as ``train.run`` takes them. The
work, the output folder and its resumable chunks are ``fastnst.stylize_dataset``'s; under torchrun
each rank (one per GPU, gloo on CPUs) makes its share of the chunks into the same folder, and the
result is the same as one process's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from fastnst import distributed
from fastnst.cache_format import SOURCES
from fastnst.cli import (
    DefaultsHelpFormatter, UsageError, add_debug_flag, add_device_flag, program_name, run_cli, style_resolution,
)
from fastnst.stylize_dataset import DEFAULT_CHUNK_SIZE, DEFAULT_VARIANTS, StylizeOptions, StylizeResult, stylize_dataset
from fastnst.train.config import DEFAULTS, ConfigError, add_option_flag, load_preset, load_yaml, stylizer_resolution
from fastnst.train.data import dataset_info, default_synthetic_path
from fastnst.train.data.generic_input import read_input
from fastnst.train.data.jpeg import decode_files
from fastnst.train.data.sources import FileSource, load_train_source
from fastnst.train.data.stats import DATASETS
from fastnst.train.data import manifest
from fastnst.train.data.synthetic import load_synthetic, synthetic_item
from fastnst.train.fetched import DEFAULT_DATA_ROOT, STYLIZATION_ITEMS


def fetched_file(item: str, data_root: str | Path) -> str | None:
    """Where ``python -m train.data.download ITEM`` put the item's file under ``data_root``, if it is there."""
    found = manifest.find(item, data_root) if item in manifest.ITEMS else None
    return str(found) if found is not None and found.is_file() else None


def download_hint(item: str, data_root: str | Path) -> str:
    return manifest.download_command(item, data_root=data_root) if item in manifest.ITEMS else "(no download)"


def read_source(dataset: str, data_root: str | Path, source: str,
                synthetic_path: str | Path | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The training source's images (uint8 NHWC, in the loader's order), labels and a description."""
    info = dataset_info(dataset)
    if source == "synthetic":
        synthetic_path = (synthetic_path or default_synthetic_path(dataset, data_root)
                          or fetched_file(synthetic_item(dataset), data_root))
        if synthetic_path is None:
            raise ConfigError("--source synthetic needs --synthetic FILE (the EDM .npz train.run is given), or "
                              f"`{download_hint(synthetic_item(dataset), data_root)}` to fetch it into --data-root")
        images, labels = load_synthetic(synthetic_path, info.image_size, info.num_classes)
        return images, labels, {"dataset": dataset, "source": source, "path": str(synthetic_path)}
    real = load_train_source(dataset, data_root)
    if isinstance(real, FileSource):  # decoded once, in the loader's file order
        images = decode_files(real.paths, info.image_size, f"{dataset} train")
        return images, real.labels, {"dataset": dataset, "source": source, "path": str(data_root)}
    return real.images, real.labels, {"dataset": dataset, "source": source, "path": str(data_root)}


def stylization_settings(args: argparse.Namespace) -> dict:
    """Defaults < the data set's preset < --config < flags, for the keys the cache depends on."""
    values = {**DEFAULTS, **(load_preset(args.dataset) if args.dataset else {}),
              **(load_yaml(args.config) if args.config else {})}
    for key in ("styles", "vgg", "decoder"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
        elif values[key] is None:  # as train.run: what train.data.download put under --data-root
            values[key] = fetched_file(STYLIZATION_ITEMS[key], args.data_root)
    for key in ("style_resolution", "stylize_precision"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    alpha = args.alpha if args.alpha is not None else values[f"alpha_{args.source}"]
    if values["styles"] is None:
        raise ConfigError("--styles FILE is needed (a style bank: python -m fastnst.style_bank), or "
                          f"`{download_hint('style-feats', args.data_root)}` to fetch the authors' into --data-root")
    return {"style_bank": values["styles"], "vgg": values["vgg"], "decoder": values["decoder"],
            "source": args.source, "alpha": tuple(float(v) for v in alpha),
            "resolution": stylizer_resolution(values), "precision": values["stylize_precision"]}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=program_name("train.stylize_cache"), description=__doc__.split("\n\n")[0],
                                     formatter_class=DefaultsHelpFormatter)
    add = parser.add_argument
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--dataset", choices=sorted(DATASETS), help="a training set (with --data-root and --source)")
    what.add_argument("--input", type=Path, help="anything else: an EDM-style .npz (image, label) or an image "
                      "folder (class subfolders)")
    add("--data-root", default=DEFAULT_DATA_ROOT, metavar="DIR", help="folder holding the data set and the "
        "downloads (as for train.run)")
    add("--source", required=True, choices=SOURCES, help="which training source to stylize; picks the alpha range "
        "(synthetic U(0.1, 1), real 1, or the preset's)")
    add("--synthetic", metavar="FILE", help="the EDM .npz (for --dataset and --source synthetic; default: the one "
        "train.data.download put under --data-root; demo: its own)")
    add("--config", metavar="FILE", help="YAML options over the preset (as for train.run)")
    add("--styles", metavar="FILE", help="style bank (default: --config's, else the authors' features under "
        "--data-root, as train.run)")
    add("--vgg", metavar="FILE", help="vgg_normalised.pth (default: --config's, else DATA_ROOT/adain/; "
        "none there: random weights)")
    add("--decoder", metavar="FILE", help="AdaIN decoder.pth (default: --config's, else DATA_ROOT/adain/; "
        "none there: random weights)")
    add("--alpha", type=float, nargs=2, metavar=("LOW", "HIGH"), help="alpha range (default: the preset's "
        "alpha_synthetic / alpha_real)")
    add("--style-resolution", metavar="PX|native", help="stylization side (default: the preset's, else 224)",
        type=style_resolution)
    add("--out", required=True, type=Path, help="output folder (written as OUT.partial, renamed when complete)")
    add("--variants", type=int, default=DEFAULT_VARIANTS, metavar="K", help="stylized variants per image")
    add("--seed", type=int, default=0, help="seed of the style and alpha draws")
    add("--downsample", choices=["bilinear", "area"], default="bilinear",
        help="resizing back to the image size (bilinear: the authors')")
    add_option_flag(parser, "stylize_precision", default=None)  # None: the preset's, else the built-in default
    add_device_flag(parser)  # under torchrun: its type; each rank takes cuda:LOCAL_RANK
    add("--compile", action=argparse.BooleanOptionalAction, default=True, help="torch.compile the networks on CUDA")
    add("--batch-size", type=int, default=None, help="images per device batch (default: 128 on CUDA at >= 128 px, "
        "512 below; 4 / 32 on a CPU)")
    add("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="images per journaled (resumable) chunk")
    add("--max-chunks", type=int, default=None, help="stop after this many chunks (per rank under torchrun); run again to "
        "continue")
    add("--no-progress", action="store_true", help="no progress bar")
    add_debug_flag(parser)
    return parser


def report(result: StylizeResult) -> None:
    if result.complete and result.images_stylized:
        settings = result.meta["settings"]
        resolution = settings["resolution"]
        total = result.meta["dataset"]["count"] * settings["variants"]
        ranks = result.meta.get("last_call", {}).get("ranks", 1)
        on_ranks = f" x {ranks} ranks" if ranks > 1 else ""
        # After a resume this call made only part of the set: say so, or the time and img/s read as the whole set's.
        resumed = "" if result.images_stylized == total else (
            f" (resumed: {result.images_stylized} of the {total} stylized images made by this call)")
        print(f"stylized {result.meta['dataset']['count']} images x {settings['variants']} variants at "
              f"{resolution if resolution == 'native' else f'{resolution} px'}{resumed} in {result.seconds:.1f} s: "
              f"{result.images_per_second:.1f} img/s ({result.meta['device']}{on_ranks}); wrote {result.path}")
    elif result.images_stylized:
        print(f"{result.images_stylized} stylized images in {result.seconds:.1f} s: "
              f"{result.images_per_second:.1f} img/s")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.input is not None and args.synthetic is not None:
        raise UsageError("--synthetic names the EDM set of a --dataset; with --input, the input is what is stylized")
    ranks = distributed.setup(torch.device(args.device).type) if distributed.launched() else None
    try:
        return _stylize(args, device=str(ranks.device) if ranks else args.device, is_main=not ranks or ranks.is_main)
    finally:
        distributed.cleanup()


def _stylize(args: argparse.Namespace, device: str, is_main: bool) -> int:
    options = StylizeOptions(**stylization_settings(args), variants=args.variants, seed=args.seed,
                             downsample=args.downsample, device=device, compile=args.compile,
                             batch_size=args.batch_size, chunk_size=args.chunk_size, max_chunks=args.max_chunks,
                             progress=not args.no_progress)
    if args.input is not None:
        images, labels = read_input(args.input, progress=not args.no_progress and is_main)
        input_info = {"path": str(args.input)}
    else:
        images, labels, input_info = read_source(args.dataset, args.data_root, args.source, args.synthetic)
    result = stylize_dataset(images, labels, args.out, options, input_info=input_info)
    if is_main:
        report(result)
    return 0


def cli(argv: list[str] | None = None) -> int:
    """Errors a user can cause (bad input, a bank or weight file that is not one) are one line, exit 2."""
    return run_cli(main, argv, prog=program_name("train.stylize_cache"))


if __name__ == "__main__":
    sys.exit(cli())
