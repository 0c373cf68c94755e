"""Measure how close train.corruptions is to the official -C generation code.

Not a test and not a project dependency: it runs the corruption functions of
the official scripts themselves (``make_cifar_c.py`` / ``make_tinyimagenet_c.py`` / ``make_imagenet_c.py``
of github.com/hendrycks/robustness, folder ImageNet-C/create_c/, which you
download; we do not ship them) next to ours on the same natural images, and
prints a Markdown table.

The official code needs scikit-image, opencv-python-headless, scipy and Wand
(with ImageMagick 6); install them anywhere, e.g.
``pip install --target /tmp/refdeps scikit-image opencv-python-headless scipy Wand``
and pass ``--extra-path /tmp/refdeps`` (appended to sys.path, so the project's own
numpy/torch stay in charge). Frost needs the official textures (``--frost-dir``).

    python bench/corruption_fidelity.py --official-script make_cifar_c.py --image-size 32 \
        --frost-dir path/to/frost --extra-path /tmp/refdeps --num-images 200

Columns: for deterministic corruptions, ``pixel MAD`` is the mean absolute difference
between ours and the official output on the same input (uint8 levels). For random
ones the pixels cannot match, so we compare the mean absolute distance from the clean
image ("ours" vs "official") over all images; ``gap`` is their relative difference.
Speckle noise and spatter also get a pixel MAD on the same random draws: the official
function runs with ``np.random.normal`` returning the noise / liquid layer ours drew.
``--corruptions speckle_noise,gaussian_blur,spatter,saturate`` limits the run.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from fastnst.train.corruptions import ALL_CORRUPTIONS, SEVERITIES, corrupt
from fastnst.train.corruptions import _ops
from fastnst.train.corruptions.params import PARAMS

DETERMINISTIC = {"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression", "gaussian_blur", "saturate"}
START_MARKER = "# /////////////// Distortion Helpers ///////////////"
END_MARKER = "# /////////////// End Distortions ///////////////"


def load_official_functions(script: Path) -> dict:
    """Exec only the helper and distortion definitions of an official script, with shims
    for today's libraries (skimage's ``multichannel`` became ``channel_axis``; numpy 2
    dropped ``np.float_`` and binary ``np.fromstring``)."""
    text = script.read_text()
    if START_MARKER not in text or END_MARKER not in text:
        raise ValueError(f"{script}: does not look like make_cifar_c.py / make_tinyimagenet_c.py / make_imagenet_c.py (markers missing)")
    section = text[text.index(START_MARKER) : text.index(END_MARKER)]
    np.float_ = np.float64  # the scripts' plasma_fractal allocates with it
    namespace = {"np": np, "__name__": "official_corruptions"}
    exec(compile(section, str(script), "exec"), namespace)
    skimage_gaussian = namespace["gaussian"]

    def gaussian(image, sigma=1, multichannel=None, **kwargs):
        if multichannel:
            kwargs["channel_axis"] = -1
        return skimage_gaussian(image, sigma=sigma, **kwargs)

    namespace["gaussian"] = gaussian
    numpy_shim = type(sys)("numpy_shim")
    numpy_shim.__dict__.update(np.__dict__)
    numpy_shim.fromstring = lambda data, dtype: np.frombuffer(data, dtype)
    namespace["np"] = numpy_shim
    return namespace


def natural_images(count: int, size: int, seed: int) -> np.ndarray:
    """uint8 (N, size, size, 3): random crops of scikit-image's bundled photographs, resized."""
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket(),
              skimage.data.immunohistochemistry(), skimage.data.hubble_deep_field()]
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        side = int(rng.integers(min(photo.shape[:2]) // 4, min(photo.shape[:2])))
        top = int(rng.integers(0, photo.shape[0] - side + 1))
        left = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        images.append(np.asarray(crop.resize((size, size), Image.BICUBIC)))
    return np.stack(images)


def run_official(functions: dict, name: str, severity: int, images: np.ndarray, frost_dir: Path | None) -> np.ndarray:
    np.random.seed(severity)
    function = functions[name]
    outputs = []
    with contextlib.chdir(frost_dir) if name == "frost" else contextlib.nullcontext():
        for image in images:
            outputs.append(np.uint8(function(Image.fromarray(image), severity)))
    return np.stack(outputs)


class _GivenNormal:
    """Stands in for numpy.random inside the official functions: normal() returns given draws."""

    def __init__(self, draws):
        self.draws = iter(draws)

    def normal(self, size=None, loc=0.0, scale=1.0):
        return next(self.draws)


def same_draw_mad(functions: dict, name: str, severity: int, images: np.ndarray, image_size: int) -> float:
    """Pixel MAD between ours and the official function fed the same random draws (speckle, spatter)."""
    params = PARAMS[image_size][name][severity - 1]
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    ours = corrupt(tensor, name, severity, generator=torch.Generator().manual_seed(severity))
    # corrupt() draws its standard normals first: redraw them from the same seed
    redraw = torch.Generator().manual_seed(severity)
    if name == "speckle_noise":
        normal = torch.randn(tensor.shape, generator=redraw)
        draws = [params * n for n in normal.permute(0, 2, 3, 1).double().numpy()]
    else:
        liquid = params[0] + params[1] * torch.randn(len(images), image_size, image_size, generator=redraw, dtype=torch.float64)
        draws = [layer.copy() for layer in liquid.numpy()]
    numpy_module = functions["np"]
    numpy_random = numpy_module.random
    numpy_module.random = _GivenNormal(draws)
    try:
        official = np.stack([np.uint8(np.nan_to_num(functions[name](Image.fromarray(image), severity))) for image in images])
    finally:
        numpy_module.random = numpy_random
    return float(np.abs(ours.permute(0, 2, 3, 1).numpy().astype(np.float64) - official).mean())


def motion_same_angle(functions: dict, images: np.ndarray, radius: float, sigma: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Official ImageMagick motion blur and ours at one fixed angle: a pixel-level check of the kernel."""
    official = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        blurred = functions["MotionImage"](blob=buffer.getvalue())
        blurred.motion_blur(radius=radius, sigma=sigma, angle=angle)
        official.append(np.asarray(Image.open(io.BytesIO(blurred.make_blob("png"))).convert("RGB")))
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    ours = _ops.motion_blur(tensor, radius, sigma, torch.full((len(images),), float(angle), dtype=torch.float64))
    return np.stack(official), _ops.to_uint8_like_imagemagick(ours).permute(0, 2, 3, 1).numpy()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-script", type=Path, required=True, help="make_cifar_c.py, make_tinyimagenet_c.py or make_imagenet_c.py")
    parser.add_argument("--image-size", type=int, choices=(32, 64, 224), required=True)
    parser.add_argument("--frost-dir", type=Path, required=True, help="folder with frost1.png ... frost5.jpg")
    parser.add_argument("--extra-path", action="append", default=[], help="folder appended to sys.path for the reference libraries")
    parser.add_argument("--num-images", type=int, default=200)
    parser.add_argument("--out", type=Path, help="write the table (Markdown) and a JSON next to it")
    parser.add_argument("--corruptions", default=",".join(ALL_CORRUPTIONS), help="comma-separated subset")
    args = parser.parse_args(argv)
    sys.path.extend(args.extra_path)
    functions = load_official_functions(args.official_script)
    os.environ["FASTNST_FROST_DIR"] = str(args.frost_dir.resolve())

    clean = natural_images(args.num_images, args.image_size, seed=0)
    clean_tensor = torch.from_numpy(clean).permute(0, 3, 1, 2).contiguous()
    rows, records = [], []
    names = [name for name in ALL_CORRUPTIONS if name in args.corruptions.split(",")]
    for name in tqdm(names, desc="corruptions"):
        for severity in SEVERITIES:
            started = time.perf_counter()
            official = run_official(functions, name, severity, clean, args.frost_dir.resolve()).astype(np.float64)
            official_seconds = time.perf_counter() - started
            started = time.perf_counter()
            ours = corrupt(clean_tensor, name, severity, generator=torch.Generator().manual_seed(severity))
            ours_seconds = time.perf_counter() - started
            ours = ours.permute(0, 2, 3, 1).numpy().astype(np.float64)
            distance_ours = np.abs(ours - clean).mean()
            distance_official = np.abs(official - clean).mean()
            record = {
                "corruption": name, "severity": severity, "deterministic": name in DETERMINISTIC,
                "distance_ours": distance_ours, "distance_official": distance_official,
                "gap": (distance_ours - distance_official) / max(distance_official, 1e-9),
                "pixel_mad": np.abs(ours - official).mean() if name in DETERMINISTIC else None,
                "official_images_per_s": len(clean) / official_seconds, "ours_images_per_s": len(clean) / ours_seconds,
            }
            if name in ("speckle_noise", "spatter"):
                record["pixel_mad_same_draws"] = same_draw_mad(functions, name, severity, clean, args.image_size)
            records.append(record)
            pixel = (f"{record['pixel_mad']:.3f}" if record["pixel_mad"] is not None
                     else f"same draws: {record['pixel_mad_same_draws']:.3f}" if "pixel_mad_same_draws" in record else "random")
            rows.append(f"| {name} | {severity} | {pixel} | {distance_ours:.2f} | {distance_official:.2f} | {100 * record['gap']:+.1f}% |")
    for severity, (radius, sigma) in enumerate([(6, 1), (9, 2.5), (12, 3)] if "motion_blur" in names else [], start=1):
        official, ours = motion_same_angle(functions, clean[:50], radius, sigma, angle=-30.0 + 20 * severity)
        mad = np.abs(official.astype(np.float64) - ours).mean()
        records.append({"corruption": "motion_blur_same_angle", "radius": radius, "sigma": sigma, "pixel_mad": mad})
        rows.append(f"| motion_blur, fixed angle, radius {radius} sigma {sigma} | - | {mad:.3f} | | | |")

    import cv2  # a reference library, from --extra-path

    from fastnst.train.corruptions.frost import FROST_FILES, _load_textures_cpu
    from fastnst.train.corruptions.params import frost_texture_scale

    scale = frost_texture_scale(args.image_size)
    for name, texture in [] if "frost" not in names else zip(FROST_FILES, _load_textures_cpu(str(args.frost_dir.resolve()), scale)):
        reference = cv2.resize(cv2.imread(str(args.frost_dir / name)), (0, 0), fx=scale, fy=scale)[..., ::-1]
        mad = np.abs(texture.permute(1, 2, 0).numpy() - reference).mean()
        records.append({"corruption": "frost_texture", "file": name, "pixel_mad": mad})
        rows.append(f"| frost texture {name} resized by {scale} | - | {mad:.3f} | | | |")

    header = [f"Fidelity at {args.image_size} px, {len(clean)} natural images (crops of scikit-image photos), CPU.", "",
              "| corruption | severity | pixel MAD vs official | distance from clean, ours | official | gap |",
              "| --- | --- | --- | --- | --- | --- |"]
    table = "\n".join(header + rows)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(records, indent=1, default=float))


if __name__ == "__main__":
    main()
