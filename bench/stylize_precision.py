"""How far bf16 autocast moves the Stylizer's pixels from float32: the measurement behind the default of
``--stylize-precision`` (docs/recipe.md, Deviations). A measured note, not a test.

The same uint8 images, styles and alphas go through ``Stylizer.stylize`` twice, once in float32 and once under
bf16 autocast (it runs on the CPU too, where the comparison needs no GPU), and the script prints the mean, the
99th percentile and the maximum of |fp32 - bf16| over every pixel and channel, in uint8 levels, per stylization
resolution and alpha. Contents and styles are fastnst.preview's generated pictures; the styles are encoded by
the same encoder. Use a trained decoder (a random one's output is noise, and so would its differences be):

    python -m fastnst.weights --random --out weights
    python -m fastnst.train_decoder --vgg weights/random_vgg_normalised.pth --content DIR --styles DIR \\
        --load-size 40 --image-size 32 --batch-size 4 --max-iter 400 --out decoder_400_cpu_steps
    python -m bench.stylize_precision --vgg weights/random_vgg_normalised.pth \\
        --decoder decoder_400_cpu_steps/decoder.pth
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

from fastnst import RandomWeightsWarning
from fastnst.preview import generated_contents, generated_styles, style_bank_from_images
from fastnst.stylizer import PAPER_ALPHA_SYNTHETIC, STYLIZE_PRECISION, Stylizer
from fastnst.weights import load_decoder, load_encoder


def stylize_both(stylizer: Stylizer, images: torch.Tensor, style_index: torch.Tensor, alpha: torch.Tensor):
    """(float32 output, bf16 output), uint8, of the same call."""
    outputs = []
    for precision in ("fp32", "bf16"):
        stylizer.autocast_dtype = STYLIZE_PRECISION[precision]
        outputs.append(stylizer.stylize(images, style_index, alpha))
    return outputs


def difference_row(fp32: torch.Tensor, bf16: torch.Tensor) -> dict:
    levels = (fp32.int() - bf16.int()).abs().flatten().numpy()
    return {"mean": float(levels.mean()), "p99": float(np.percentile(levels, 99)), "max": int(levels.max()),
            "changed": float((levels > 0).mean())}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vgg", required=True, help="encoder weights (vgg_normalised.pth or a fastnst.weights file)")
    parser.add_argument("--decoder", required=True, help="a trained decoder (python -m fastnst.train_decoder)")
    parser.add_argument("--count", type=int, default=32, help="content images (32 px)")
    parser.add_argument("--styles", type=int, default=16, help="generated style images")
    parser.add_argument("--resolutions", nargs="+", default=["native", "224"], help="stylization sides")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)  # random encoder: said in the output
        encoder, decoder = load_encoder(args.vgg), load_decoder(args.decoder)
    styles = generated_styles(args.styles, 128, seed=args.seed + 1)
    bank = style_bank_from_images(styles, encoder.eval(), [f"style_{i}" for i in range(len(styles))], image_size=128)
    images = generated_contents(args.count, 32, seed=args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    style_index = torch.randint(len(styles), (args.count,), generator=generator)
    low, high = PAPER_ALPHA_SYNTHETIC
    alphas = {"1": torch.ones(args.count), f"U({low:g}, {high:g})": low + (high - low) * torch.rand(args.count,
                                                                                                      generator=generator)}
    print(f"torch {torch.__version__}, CPU, threads {torch.get_num_threads()}; encoder {args.vgg} "
          f"({'RANDOM' if getattr(encoder, 'random_weights', False) else 'trained'}), decoder {args.decoder}; "
          f"{args.count} generated 32 px images, {len(styles)} generated styles")
    print("| resolution | alpha | mean abs diff (levels) | 99th percentile | max | pixels changed |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = []
    for resolution in args.resolutions:
        stylizer = Stylizer(bank, encoder, decoder, resolution=None if resolution == "native" else int(resolution),
                            compile=False)
        for name, alpha in alphas.items():
            row = {"resolution": resolution, "alpha": name,
                   **difference_row(*stylize_both(stylizer, images, style_index, alpha))}
            rows.append(row)
            print(f"| {resolution} | {name} | {row['mean']:.3f} | {row['p99']:.0f} | {row['max']} | "
                  f"{100 * row['changed']:.1f} % |", flush=True)
    return rows


if __name__ == "__main__":
    main()
