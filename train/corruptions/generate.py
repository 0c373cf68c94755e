"""``python -m train.corruptions.generate --data DIR --out DIR``: an image folder's -C set, written once.

    python -m train.corruptions.generate --data my_images --out my_images/val-c            # 224 px, as ImageNet-C
    python -m train.corruptions.generate --data my_images --out my_images/val-c --image-size 64 --train-crop pad

Reads ``DIR/val/<class>/<image>`` (or ``DIR/<class>/<image>``), brings each image to the model's test view
(``train.data.imagefolder.eval_image``: the shorter side resized, the centre square cut, as ``train.run``'s
evaluation with the same ``--image-size`` and ``--train-crop``), and writes the 15 benchmark corruptions and
the 4 extra ones at severities 1-5 as ImageNet-C is laid out and saved: ``OUT/<corruption>/<severity>/<class>/
<image>.jpg``, JPEG quality 85 (``make_imagenet_c.py:119``). The parameters are the official table of the image
size (224 px: ImageNet-C's; another size: the nearest official one, ``train.corruptions.params``). ``train.run``
and ``train.evaluate`` read the folder as official files (``--corrupted-root``; an image folder's default is
``DATA_ROOT/val-c``), and check that it was made for their test view (``OUT/fastnst-c.json``).

Resumable: each (corruption, severity) is written into ``<severity>.partial`` and renamed when complete, so a
rerun with the same settings skips the finished ones and redoes at most one. The clean test images are held in
memory while it runs (N x side^2 x 3 bytes: 7.5 GB for ImageNet's 50,000 at 224 px).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from fastnst.atomic import write_json_atomic
from fastnst.cli import UsageError, add_debug_flag, add_device_flag, positive_int, program_name, run_cli
from fastnst.train.corruptions import ALL_CORRUPTIONS, SEVERITIES, corrupt, frost_source, seeded_generator, table_size
from fastnst.train.corruptions.frost import default_frost_dir
from fastnst.train.data.corrupted import GENERATED_META
from fastnst.train.data.errors import DataFormatError, MissingDataError
from fastnst.train.data.generic_input import class_folder_names, list_labelled_files
from fastnst.train.data.imagefolder import DEFAULT_IMAGE_SIZE, eval_image
from fastnst.train.data.jpeg import decode_files
from fastnst.train.evaluate import STORED_JPEG_QUALITY, parse_corruptions
from fastnst.train.data.stats import IMAGEFOLDER, dataset_info

# make_imagenet_c.py:119: Image.save(quality=85, optimize=True); train.evaluate's generated sets repeat it
JPEG_QUALITY = STORED_JPEG_QUALITY[IMAGEFOLDER]


def test_folder(data: Path) -> Path:
    """``DIR/val`` of an image-folder root, else ``DIR`` itself when it holds class folders."""
    if (data / "val").is_dir():
        return data / "val"
    if not (data / "train").is_dir() and class_folder_names(data):
        return data
    raise MissingDataError(f"--data {data}: no val/<class>/<image> folder (the test set) in it")


def output_names(paths: list[Path], folder: Path) -> list[Path]:
    """Each file's path under ``folder`` (class folder included), as a JPEG name (``a.png`` -> ``a.jpg``); two
    files may not map to one name."""
    names = [path.relative_to(folder) for path in paths]
    names = [name if name.suffix.lower() in (".jpg", ".jpeg") else name.with_suffix(".jpg") for name in names]
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise DataFormatError(f"--data {folder}: two images would both be written as {twice}; rename one")
    return names


def settings(args: argparse.Namespace, folder: Path, classes: list[str], frost_dir) -> dict:
    """What the folder is made of; a rerun into the same --out must have the same."""
    info = dataset_info(IMAGEFOLDER, {"image_size": args.image_size, "class_names": classes,
                                      "train_crop": args.train_crop})
    return {"source": str(folder.resolve()), "classes": classes, "image_size": info.image_size,
            "eval_resize": info.eval_resize, "table": table_size(info.image_size), "seed": args.seed,
            "batch_size": args.batch_size, "jpeg_quality": JPEG_QUALITY, "frost": frost_source(frost_dir)}


def _claim(out: Path, wanted: dict) -> None:
    meta = out / GENERATED_META
    if meta.is_file():
        found = json.loads(meta.read_text())
        changed = [key for key in wanted if found.get(key) != wanted[key]]
        if changed:
            raise UsageError(f"--out {out} holds a set made with other settings ("
                             + ", ".join(f"{key}: {found.get(key)!r} there, {wanted[key]!r} now" for key in changed[:3])
                             + "); pass another --out, or delete it to start again")
    elif out.is_dir() and any(out.iterdir()):
        raise UsageError(f"--out {out} is not empty and holds no {GENERATED_META}: pass an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(meta, wanted, indent=1)


def _write(images: torch.Tensor, names: list[Path], folder: Path, pool: ThreadPoolExecutor) -> None:
    pixels = images.permute(0, 2, 3, 1).cpu().numpy()

    def save(index: int) -> None:
        path = folder / names[index]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[index]).save(path, "JPEG", quality=JPEG_QUALITY, optimize=True)

    list(pool.map(save, range(len(names))))


def generate(args: argparse.Namespace) -> dict:
    data, out = Path(args.data), Path(args.out)
    folder = test_folder(data)
    classes = class_folder_names(folder)
    paths, _ = list_labelled_files(folder, classes, every_class=False)
    if not paths:
        raise DataFormatError(f"--data {folder}: no images in its class folders")
    names = output_names(paths, folder)
    frost_dir = args.frost_dir if args.frost_dir is not None else default_frost_dir(data)
    wanted = settings(args, folder, classes, frost_dir)
    corruptions = parse_corruptions(args.corruptions, ALL_CORRUPTIONS) or ALL_CORRUPTIONS
    _claim(out, wanted)
    todo = [(name, severity) for name in corruptions for severity in SEVERITIES
            if not (out / name / str(severity)).is_dir()]
    print(f"{folder}: {len(paths)} images of {len(classes)} classes -> {out} at {wanted['image_size']} px "
          f"(the official {wanted['table']} px table; frost: {wanted['frost']}): {len(todo)} of "
          f"{len(corruptions) * len(SEVERITIES)} sets to write", flush=True)
    if not todo:
        return wanted
    size, resize = wanted["image_size"], wanted["eval_resize"]
    clean = decode_files(paths, size, f"reading {folder}", decode=lambda path: eval_image(path, size, resize))
    clean = torch.from_numpy(clean).permute(0, 3, 1, 2).contiguous().to(args.device)
    bar = tqdm(total=len(todo) * len(paths), unit="img", desc="corrupting", dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        for name, severity in todo:
            bar.set_postfix_str(f"{name} {severity}")
            partial = out / name / f"{severity}.partial"
            shutil.rmtree(partial, ignore_errors=True)  # an interrupted earlier try
            generator = seeded_generator(args.seed, name, severity, clean.device)
            for start in range(0, len(paths), args.batch_size):
                rows = slice(start, start + args.batch_size)
                corrupted = corrupt(clean[rows], name, severity, image_size=size, generator=generator,
                                    frost_dir=frost_dir)
                _write(corrupted, names[rows], partial, pool)
                bar.update(len(corrupted))
            partial.rename(out / name / str(severity))
    bar.close()
    return wanted


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=program_name("train.corruptions.generate"),
                                     description="Write an image folder's -C set (the 15 + 4 corruptions at 5 "
                                     "severities) in ImageNet-C's layout, once, resumably.")
    parser.add_argument("--data", required=True, metavar="DIR", help="image-folder root (its val/ is read) or a "
                        "folder of <class>/<image>")
    parser.add_argument("--out", required=True, metavar="DIR", help="where <corruption>/<severity>/<class>/<image> "
                        "goes (train.run looks in DATA_ROOT/val-c)")
    parser.add_argument("--image-size", type=positive_int, default=DEFAULT_IMAGE_SIZE,
                        help="side of the images, as the run's --image-size (default: 224)")
    parser.add_argument("--train-crop", choices=("random-resized", "pad"), default="random-resized",
                        help="the run's --train-crop, which decides the test view: random-resized: shorter side to "
                        "side x 256/224, centre crop; pad: shorter side to the side (default: random-resized)")
    parser.add_argument("--corruptions", help="comma-separated subset (default: all 19)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random corruptions (default: 0)")
    parser.add_argument("--batch-size", type=positive_int, default=100, help="images per corruption call (default: 100)")
    parser.add_argument("--frost-dir", help="folder with the official frost textures (default: $FASTNST_FROST_DIR, "
                        "else DIR/frost, else a labelled stand-in)")
    add_device_flag(parser)
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    return generate(build_parser().parse_args(argv))


def cli(argv: list[str] | None = None) -> int:
    """``python -m train.corruptions.generate``: expected errors as one line, exit 2."""
    return run_cli(main, argv, prog=program_name("train.corruptions.generate"))


if __name__ == "__main__":
    sys.exit(cli())
