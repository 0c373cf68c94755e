"""The batched, on-device style-transfer augmentation of the paper.

Per sample, with probability ``prob_synthetic`` (synthetic images, the
paper's lambda_s) or ``prob_real`` (original images, lambda_o), an image is
chosen; a chosen image is re-textured (with probability ``nst_probability``,
the authors' 0.95) by AdaIN style transfer with a style drawn uniformly from
the bank and a strength alpha drawn uniformly from the sample's source range:

    T(c, s, alpha) = D((1 - alpha) * E(c) + alpha * AdaIN(E(c), s))

Only the chosen subset runs through encoder -> ``kernels.adain`` -> decoder;
results are clamped to the image range and scattered back, so unselected
samples are bit-identical to the input. ``stylizer(images, is_synthetic)``
returns ``(images, plan)``: the plan says per sample which were chosen (the
training loader skips TrivialAugment for those under the authors' "TAorStyle"
strategy, stylized or not) and which rows were stylized, with which style and alpha.

Resolution. The public AdaIN decoder was trained on 256 px crops. The
authors' code (``experiments/style_transfer.py`` of their training repo)
upsamples every chosen 32/64 px image bilinearly to 224x224, stylizes, and
resizes bilinearly back: ``resolution=224`` (``PAPER_RESOLUTION``, the
default) reproduces that. ``resolution=None`` stylizes at native size, about
49x (32 px) or 12x (64 px) cheaper; at 32 px the relu4_1 map is then 4x4, so
the texture is coarser, and whether it buys the same robustness is unmeasured.
See docs/stylizer.md for the trade-off and measurements.

Randomness is drawn on the CPU from a seeded ``torch.Generator`` (reseeded
by ``set_epoch`` from (seed, epoch)): the subset size is known on the host
without a device sync, and results do not depend on the device. Pass
``is_synthetic`` as a CPU tensor to keep the GPU stream free of syncs.

Speed on CUDA, by default: the networks run channels_last end to end (their
reflection pads keep the layout, see ``fastnst.networks``), compiled with
``torch.compile`` (``compile=True``; the CPU always runs them eagerly), and the
subset is padded to a multiple of 16 rows (``bucket_size``) whether compiled or
not, so cuDNN's plans and the compiled kernels see a handful of batch sizes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fastnst import kernels
from fastnst.style_bank import StyleBank

PAPER_RESOLUTION = 224
PAPER_PROB_SYNTHETIC = 0.4
PAPER_PROB_REAL = 0.1
PAPER_ALPHA_SYNTHETIC = (0.1, 1.0)
PAPER_ALPHA_REAL = (1.0, 1.0)
# Subset rows are padded to a multiple of this on CUDA (bucket_size=None): cuDNN benchmark mode and
# compiled graphs then tune a handful of batch sizes, not one per subset size.
CUDA_BUCKET_SIZE = 16  # at the cifar10 preset (batch 256): 5 subset shapes for +10 % rows; 64 would pad +67 %
# The networks' compute dtype by name (--stylize-precision; auto: DEFAULT_AUTOCAST). The authors stylize in float32
# (in data loading, outside autocast: experiments/data.py:476-477, 492-493). bf16 moved the stylized pixels by
# 0.14-0.18 uint8 levels on average, 99th percentile 1 (python -m bench.stylize_precision, docs/recipe.md's Deviations):
# below the one level that would have made float32 the default, so CUDA runs bf16 and the CPU float32 (faster there).
STYLIZE_PRECISION = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16}
DEFAULT_AUTOCAST = {"cuda": torch.bfloat16}


@dataclass
class StylePlan:
    """What one call stylizes: batch rows, their style rows in the bank and their alphas (all CPU)."""

    rows: torch.Tensor          # (K,) int64 indices into the batch: the stylized samples
    style_index: torch.Tensor   # (K,) int64 indices into the style bank
    alpha: torch.Tensor         # (K,) float32 stylization strength
    num_synthetic: int          # how many of the K rows are synthetic images
    chosen: torch.Tensor        # (N,) bool: samples chosen for style transfer (a superset of ``rows``: the
                                # authors' NSTTransform stylizes a chosen image with probability 0.95)

    @property
    def stylized(self) -> torch.Tensor:
        """(N,) bool: the samples actually stylized."""
        mask = torch.zeros_like(self.chosen)
        mask[self.rows] = True
        return mask


@dataclass
class SampleDraws:
    """One batch's per-sample draws, before they become a plan (the Stylizer's and the CachedStylizer's)."""

    chosen: torch.Tensor    # (N,) bool: chosen for style transfer, with the probability of the sample's source
    stylized: torch.Tensor  # (N,) bool: chosen and stylized (with probability nst_probability)
    uniform: torch.Tensor   # (N,) float32 in [0, 1): becomes alpha (CachedStylizer: the stored variant)
    style: torch.Tensor     # (N,) int64 in [0, num_styles)


def draw_samples(generator: torch.Generator, is_synthetic: torch.Tensor, prob_synthetic: float, prob_real: float,
                 nst_probability: float, num_styles: int) -> SampleDraws:
    """Per-sample draws for one batch from ``generator``; a fixed amount of the stream per sample."""
    count = is_synthetic.shape[0]
    choose_draw = torch.rand(count, generator=generator)
    uniform = torch.rand(count, generator=generator)
    style = torch.randint(num_styles, (count,), generator=generator)
    transfer_draw = torch.rand(count, generator=generator)  # drawn last: the draws above predate it
    chosen = choose_draw < torch.where(is_synthetic, prob_synthetic, prob_real)
    return SampleDraws(chosen, chosen & (transfer_draw < nst_probability), uniform, style)


def _check_probability(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def _check_alpha_range(name: str, value) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"{name} must be (low, high) with 0 <= low <= high <= 1, got {value}")
    return low, high


def bucketed_count(count: int, bucket_size: int) -> int:
    """``count`` rounded up to a multiple of ``bucket_size`` (0 stays 0)."""
    return -(-int(count) // int(bucket_size)) * int(bucket_size)


def _epoch_seed(seed: int, epoch: int) -> int:
    # SeedSequence mixes (seed, epoch) so that neighbouring seeds/epochs give unrelated streams.
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _repeat_rows(features: torch.Tensor, times: int) -> torch.Tensor:
    """Each row ``times`` times in a row, keeping channels_last (``repeat_interleave`` returns NCHW)."""
    if not features.is_contiguous(memory_format=torch.channels_last):
        return features.repeat_interleave(times, dim=0)
    count, channels, height, width = features.shape
    rows_nhwc = features.permute(0, 2, 3, 1).unsqueeze(1).expand(-1, times, -1, -1, -1)
    return rows_nhwc.reshape(count * times, height, width, channels).permute(0, 3, 1, 2)


class Stylizer(nn.Module):
    """Batch augmentation: ``stylizer(images, is_synthetic)`` with images (N, 3, H, W) uint8 or float in [0, 1].

    Args:
        style_bank: relu4_1 statistics of the style images (``StyleBank``).
        encoder, decoder: networks from ``fastnst.weights``; random (with a loud warning) when None.
        prob_synthetic, prob_real: per-sample stylization probability by source (paper: 0.4 / 0.1 on CIFAR-10).
        alpha_synthetic, alpha_real: (low, high) of the uniform alpha by source (paper: (0.1, 1.0) / (1.0, 1.0)).
        resolution: an int resizes to that square side first (default: the paper's 224); None stylizes
            at native size (fast, not the paper's setting).
        seed: base of the random stream; ``set_epoch`` reseeds from (seed, epoch). Use seed + rank under DDP.
        compile: True (default), False or a ``torch.compile`` mode string: on CUDA, encoder and decoder run
            compiled (batch-dynamic; the AdaIN op stays outside the compiled region). The CPU always runs
            them eagerly (as fast there, and no C++ build per shape), so the default means "compiled on
            CUDA, eager on the CPU".
        bucket_size: the stylized subset is padded to a multiple of this, so compiled kernels and cuDNN
            plans see a handful of shapes, not one per batch. None (default): ``CUDA_BUCKET_SIZE`` (16) on CUDA,
            compiled or eager, and 1 (no padding) on the CPU; an int applies on every device.
        downsample: "bilinear" (the authors' code) or "area" (antialiased) when resizing back from ``resolution``.
        autocast_dtype: the networks' compute dtype: torch.float32, or torch.bfloat16 (autocast, on the CPU too);
            None: ``DEFAULT_AUTOCAST`` per device type (see ``STYLIZE_PRECISION``).
        nst_probability: share of the chosen samples that are actually stylized (the authors' NSTTransform
            ``probability``, 0.95 in all their strategies: ``experiments/custom_transforms.py:33``); default 1.
    """

    def __init__(
        self,
        style_bank: StyleBank,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        prob_synthetic: float = PAPER_PROB_SYNTHETIC,
        prob_real: float = PAPER_PROB_REAL,
        alpha_synthetic: tuple[float, float] = PAPER_ALPHA_SYNTHETIC,
        alpha_real: tuple[float, float] = PAPER_ALPHA_REAL,
        resolution: int | None = PAPER_RESOLUTION,
        seed: int = 0,
        *,
        compile: bool | str = True,
        bucket_size: int | None = None,
        downsample: str = "bilinear",
        autocast_dtype: torch.dtype | None = None,
        nst_probability: float = 1.0,  # 1: prob_* alone is the stylized share; train.run passes the recipe's 0.95
    ):
        super().__init__()
        from fastnst.weights import load_decoder, load_encoder

        self.prob_synthetic = _check_probability("prob_synthetic", prob_synthetic)
        self.prob_real = _check_probability("prob_real", prob_real)
        self.nst_probability = _check_probability("nst_probability", nst_probability)
        self.alpha_synthetic = _check_alpha_range("alpha_synthetic", alpha_synthetic)
        self.alpha_real = _check_alpha_range("alpha_real", alpha_real)
        if resolution is not None and int(resolution) < 8:
            raise ValueError(f"resolution must be None (native) or at least 8 px, got {resolution}")
        self.resolution = None if resolution is None else int(resolution)
        if downsample not in ("bilinear", "area"):
            raise ValueError(f"downsample must be 'bilinear' or 'area', got {downsample!r}")
        self.downsample = downsample
        self.autocast_dtype = autocast_dtype
        if bucket_size is not None and int(bucket_size) < 1:
            raise ValueError(f"bucket_size must be at least 1, got {bucket_size}")
        self.bucket_size = None if bucket_size is None else int(bucket_size)

        self.style_names = list(style_bank.names)
        self.register_buffer("style_mean", style_bank.mean.float().clone(), persistent=False)
        self.register_buffer("style_std", style_bank.std.float().clone(), persistent=False)
        encoder = encoder if encoder is not None else load_encoder(None)
        decoder = decoder if decoder is not None else load_decoder(None)
        self.encoder = encoder.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.decoder = decoder.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        # not self.compile: that name is nn.Module's own method.
        self.compile_mode: bool | str = compile if isinstance(compile, str) else bool(compile)
        # Compiled wrappers, made at the first CUDA call (a CPU-only user never imports dynamo), are kept
        # outside the module tree so state_dict keys stay those of the networks.
        self._compiled: dict[str, nn.Module] = {}

        self.seed = int(seed)
        self.epoch = 0
        self.generator = torch.Generator(device="cpu")
        self.set_epoch(0)

    def compute_dtype(self, device) -> torch.dtype:
        """The networks' dtype on ``device``: the one given, else the device type's default."""
        if self.autocast_dtype is not None:
            return self.autocast_dtype
        return DEFAULT_AUTOCAST.get(torch.device(device).type, torch.float32)

    # -- randomness --------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Reseed from (seed, epoch): epoch e draws the same plans whenever it is replayed (resume)."""
        self.epoch = int(epoch)
        self.generator.manual_seed(_epoch_seed(self.seed, self.epoch))

    def draw(self, is_synthetic: torch.Tensor) -> StylePlan:
        """Per-sample choice, style and alpha for one batch; consumes a fixed amount of the stream per sample."""
        is_synthetic = is_synthetic.to("cpu", torch.bool)
        draws = draw_samples(self.generator, is_synthetic, self.prob_synthetic, self.prob_real,
                             self.nst_probability, len(self.style_names))
        rows = draws.stylized.nonzero().squeeze(1)
        low = torch.where(is_synthetic, self.alpha_synthetic[0], self.alpha_real[0])
        high = torch.where(is_synthetic, self.alpha_synthetic[1], self.alpha_real[1])
        alpha = (low + (high - low) * draws.uniform)[rows].float()
        return StylePlan(rows, draws.style[rows], alpha, int(is_synthetic[rows].sum()), draws.chosen)

    # -- the work ----------------------------------------------------------------------------------------
    def bucket_for(self, device: torch.device) -> int:
        """Rows of the stylized subset are padded to a multiple of this on ``device``."""
        if self.bucket_size is not None:
            return self.bucket_size
        return CUDA_BUCKET_SIZE if torch.device(device).type == "cuda" else 1

    def _network(self, name: str, device: torch.device) -> nn.Module:
        # Compiled graphs only on CUDA: on the CPU eager is as fast and avoids a C++ build per shape.
        if not self.compile_mode or device.type != "cuda":
            return getattr(self, name)
        if name not in self._compiled:
            mode = self.compile_mode if isinstance(self.compile_mode, str) else None
            self._compiled[name] = torch.compile(getattr(self, name), dynamic=True, mode=mode)
        return self._compiled[name]

    @torch.no_grad()  # not inference_mode: the output feeds a classifier that is trained on it
    def stylize(self, images: torch.Tensor, style_index: torch.Tensor, alpha: torch.Tensor,
                variants: int = 1) -> torch.Tensor:
        """Stylize every image of ``images`` (B, 3, H, W) with given bank rows and alphas; same dtype out.

        ``variants`` > 1: each image is stylized that many times, with its own style and alpha each
        time, and encoded once (the encoder is about half the work). ``style_index`` and ``alpha``
        then hold B * variants entries, image-major, and so does the output: row ``i * variants + k``
        is image i's k-th variant.
        """
        count, _, height, width = images.shape
        device = images.device
        variants = int(variants)
        if variants < 1 or style_index.shape != (count * variants,) or alpha.shape != (count * variants,):
            raise ValueError(f"Stylizer.stylize: {count} images x {variants} variants need that many style "
                             f"indices and alphas, got {tuple(style_index.shape)} and {tuple(alpha.shape)}")
        style_index = style_index.to(device, non_blocking=True)
        alpha = alpha.to(device, torch.float32, non_blocking=True)
        padded = bucketed_count(count, self.bucket_for(device))
        if padded > count:  # repeat the first row: padded rows are computed and dropped
            fill = padded - count
            images = torch.cat([images, images[:1].expand(fill, -1, -1, -1)])
            style_index = torch.cat([style_index, style_index[:1].expand(fill * variants)])
            alpha = torch.cat([alpha, alpha[:1].expand(fill * variants)])

        # One pass: float32 and channels_last (the gathered rows come back NCHW from index_select).
        content = images.to(torch.float32, memory_format=torch.channels_last)
        if images.dtype == torch.uint8:
            content = content.div_(255)
        if self.resolution is not None and (height, width) != (self.resolution, self.resolution):
            content = F.interpolate(content, size=(self.resolution, self.resolution), mode="bilinear",
                                    align_corners=False)
        compute_dtype = self.compute_dtype(device)
        with torch.autocast(device.type, dtype=compute_dtype, enabled=compute_dtype != torch.float32):
            features = self._network("encoder", device)(content)
            if variants > 1:
                features = _repeat_rows(features, variants)
            features = kernels.adain(features, self.style_mean[style_index], self.style_std[style_index], alpha)
            output = self._network("decoder", device)(features)
        output = output[:count * variants].float()
        if output.shape[-2:] != (height, width):  # upsampled, or a side not divisible by 8
            mode = self.downsample if self.resolution is not None else "bilinear"
            output = F.interpolate(output, size=(height, width), mode=mode,
                                   **({"align_corners": False} if mode == "bilinear" else {}))
        output = output.clamp_(0.0, 1.0)
        if images.dtype == torch.uint8:
            return output.mul_(255).round_().to(torch.uint8)
        return output.to(images.dtype)

    def forward(self, images: torch.Tensor, is_synthetic: torch.Tensor,
                source_index: torch.Tensor | None = None) -> tuple[torch.Tensor, StylePlan]:
        """Stylize a random per-sample subset of ``images`` -> (images, the plan that was applied).

        ``source_index`` (each sample's index in its source, passed by the training loader) is not
        needed here; ``fastnst.CachedStylizer``, which has the same call, reads its stored variants by it.

        Unstylized samples come back bit-identical; the input is never modified, and when no
        sample is stylized it is returned as it is. ``plan.chosen`` marks the chosen samples,
        ``plan.rows`` / ``plan.stylized`` the stylized ones.
        """
        self._check_inputs(images, is_synthetic)
        plan = self.draw(is_synthetic)
        if plan.rows.numel() == 0:
            return images, plan
        rows = plan.rows.to(images.device, non_blocking=True)
        stylized = self.stylize(images.index_select(0, rows), plan.style_index, plan.alpha)
        output = images.clone()
        output.index_copy_(0, rows, stylized)
        return output, plan

    # -- checks ------------------------------------------------------------------------------------------
    @staticmethod
    def _check_inputs(images: torch.Tensor, is_synthetic: torch.Tensor) -> None:
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"Stylizer: images must be a (N, 3, H, W) tensor, got {shape}")
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise ValueError(f"Stylizer: images must be uint8 or float in [0, 1], got {images.dtype}")
        if not torch.is_tensor(is_synthetic) or is_synthetic.shape != (images.shape[0],):
            got = tuple(is_synthetic.shape) if torch.is_tensor(is_synthetic) else type(is_synthetic).__name__
            raise ValueError(f"Stylizer: is_synthetic must be a ({images.shape[0]},) bool tensor, got {got}")
        if is_synthetic.dtype != torch.bool:
            raise ValueError(f"Stylizer: is_synthetic must be a bool tensor, got {is_synthetic.dtype}")

    def extra_repr(self) -> str:
        return (f"styles={len(self.style_names)}, prob_synthetic={self.prob_synthetic}, prob_real={self.prob_real}, "
                f"alpha_synthetic={self.alpha_synthetic}, alpha_real={self.alpha_real}, "
                f"resolution={self.resolution or 'native'}, seed={self.seed}, compile={self.compile_mode!r}, "
                f"bucket_size={self.bucket_size or f'{CUDA_BUCKET_SIZE} on CUDA, 1 on the CPU'}")


def build_stylizer(
    style_bank_path: str | os.PathLike,
    vgg_path: str | os.PathLike | None = None,
    decoder_path: str | os.PathLike | None = None,
    device: str | torch.device = "cuda" if torch.cuda.is_available() else "cpu",
    **options,
) -> Stylizer:
    """A ``Stylizer`` from files: style bank, encoder and decoder weights (see ``fastnst.weights``).

    ``options`` go to ``Stylizer``; its defaults hold: compiled networks and 16-row buckets on CUDA,
    eager networks and no padding on the CPU.
    """
    from fastnst.weights import load_decoder, load_encoder

    bank = StyleBank.load(style_bank_path)
    stylizer = Stylizer(bank, load_encoder(vgg_path), load_decoder(decoder_path), **options)
    return stylizer.to(device)
