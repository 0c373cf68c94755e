"""The Stylizer's augmentation served from ``stylize_dataset`` caches: no networks while training.

    from fastnst import CachedStylizer, open_stylized_dataset
    stylizer = CachedStylizer({"synthetic": open_stylized_dataset("cache/edm-224"),
                               "real": open_stylized_dataset("cache/real-224")},
                              prob_synthetic=0.5, prob_real=0.1, nst_probability=0.95, seed=seed + rank)
    stylizer.set_epoch(epoch)
    images, plan = stylizer(images, is_synthetic, source_index=indices)

Which samples are chosen and which of those are stylized is drawn exactly as ``fastnst.Stylizer``
draws it (``fastnst.stylizer.draw_samples``: the same stream, per sample, reseeded from (seed,
epoch)), so the per-source frequencies, ``nst_probability`` and the "TAorStyle" choice downstream
are unchanged: with the same seed the two give the same ``plan.chosen`` and ``plan.rows``. A
stylized sample then takes one of its image's K stored variants, uniformly (the draw the Stylizer
turns into alpha picks the variant), instead of running encoder and decoder; its style and alpha
are the ones stored with that variant (``plan.style_index``, ``plan.alpha``).

What differs from on-the-fly style transfer: each image has K fixed stylizations instead of a
fresh one at every draw, and alpha is fixed per variant (docs/stylizer.md, section 6).

The caches are moved to the GPU once when they fit (a quarter of its memory each, like the
loader's pixel arrays), else gathered from the memory-mapped file per batch (sorted reads, a
pinned asynchronous copy).
"""
from __future__ import annotations

import numpy as np
import torch

from fastnst.cache_format import SOURCES, StylizedDataset
from fastnst.resident import maybe_resident, to_device
from fastnst.stylizer import StylePlan, _check_probability, _epoch_seed, draw_samples


class CachedStylizer:
    """``stylizer(images, is_synthetic, source_index) -> (images, plan)``, images read from caches.

    Args:
        caches: source ("synthetic", "real") -> ``StylizedDataset`` whose rows are that source's images
            in the loader's order. A source whose probability is > 0 needs one.
        prob_synthetic, prob_real, nst_probability, seed: as ``fastnst.Stylizer``'s.
        device: where the output images live; a cache that fits is kept there.
    """

    def __init__(self, caches: dict[str, StylizedDataset], prob_synthetic: float, prob_real: float,
                 nst_probability: float = 1.0, seed: int = 0, device: str | torch.device = "cpu"):
        unknown = sorted(set(caches) - set(SOURCES))
        if unknown:
            raise ValueError(f"CachedStylizer: unknown source(s) {unknown}; expected {', '.join(SOURCES)}")
        self.prob_synthetic = _check_probability("prob_synthetic", prob_synthetic)
        self.prob_real = _check_probability("prob_real", prob_real)
        self.nst_probability = _check_probability("nst_probability", nst_probability)
        for source, probability in (("synthetic", self.prob_synthetic), ("real", self.prob_real)):
            if probability > 0 and source not in caches:
                raise ValueError(f"CachedStylizer: prob_{source} is {probability} but there is no cache of the "
                                 f"{source} images (python -m train.stylize_cache --source {source})")
        self.caches = dict(caches)
        self.device = torch.device(device)
        self._pixels = {source: maybe_resident(cache.images, self.device) for source, cache in self.caches.items()}
        # Any bank size gives the same stream; the Stylizer's own is what its style draw is sized by.
        self._num_styles = max((int(cache.meta["settings"]["num_styles"]) for cache in caches.values()), default=1)
        self.seed = int(seed)
        self.epoch = 0
        self.generator = torch.Generator(device="cpu")
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reseed from (seed, epoch): a replayed epoch picks the same samples and variants."""
        self.epoch = int(epoch)
        self.generator.manual_seed(_epoch_seed(self.seed, self.epoch))

    def draw(self, is_synthetic: torch.Tensor, source_index: torch.Tensor) -> tuple[StylePlan, torch.Tensor]:
        """The plan (as the Stylizer's, with the stored style and alpha) and each stylized row's variant."""
        is_synthetic = is_synthetic.to("cpu", torch.bool)
        source_index = source_index.to("cpu", torch.int64)
        draws = draw_samples(self.generator, is_synthetic, self.prob_synthetic, self.prob_real,
                             self.nst_probability, self._num_styles)
        rows = draws.stylized.nonzero().squeeze(1)
        variant = torch.empty(rows.shape, dtype=torch.int64)
        style_index = torch.empty(rows.shape, dtype=torch.int64)
        alpha = torch.empty(rows.shape, dtype=torch.float32)
        for source, synthetic in (("synthetic", True), ("real", False)):
            among = is_synthetic[rows] == synthetic
            if not among.any():
                continue
            cache = self.caches[source]
            picked = (draws.uniform[rows[among]] * cache.variants).long().clamp_(max=cache.variants - 1)
            images = source_index[rows[among]].numpy()
            variant[among] = picked
            style_index[among] = torch.from_numpy(cache.style_index[images, picked.numpy()].astype(np.int64))
            alpha[among] = torch.from_numpy(cache.alpha[images, picked.numpy()])
        plan = StylePlan(rows, style_index, alpha, int(is_synthetic[rows].sum()), draws.chosen)
        return plan, variant

    def _gather(self, source: str, images: np.ndarray, variant: np.ndarray) -> torch.Tensor:
        """uint8 (R, H, W, 3) stored variants on the output device."""
        pixels = self._pixels[source]
        if isinstance(pixels, torch.Tensor):
            index = torch.from_numpy(images * pixels.shape[1] + variant)
            return pixels.flatten(0, 1).index_select(0, index.to(self.device, non_blocking=True))
        order = np.lexsort((variant, images))  # sorted reads are kinder to a memmap
        gathered = np.empty((len(images), *pixels.shape[2:]), dtype=np.uint8)
        gathered[order] = pixels[images[order], variant[order]]
        return to_device(gathered, self.device)

    def __call__(self, images: torch.Tensor, is_synthetic: torch.Tensor,
                 source_index: torch.Tensor | None = None) -> tuple[torch.Tensor, StylePlan]:
        """Replace the stylized samples of ``images`` (N, 3, H, W) uint8 by stored variants -> (images, plan)."""
        if source_index is None:
            raise ValueError("CachedStylizer needs source_index: each sample's index in its source "
                             "(the training loader passes it)")
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"CachedStylizer: images must be uint8 (N, 3, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        plan, variant = self.draw(is_synthetic, source_index)
        output = images
        if plan.rows.numel():
            on_host = images.device.type == "cpu"
            # On the CPU a numpy copy keeps the layout (order "K") and opens no OpenMP region: a torch
            # clone of a small batch cost ~10x a whole gather on 2 busy cores.
            output = torch.from_numpy(np.array(images.numpy(), order="K")) if on_host else images.clone()
            is_synthetic = is_synthetic.to("cpu", torch.bool)
            for source, synthetic in (("synthetic", True), ("real", False)):
                among = is_synthetic[plan.rows] == synthetic
                if not among.any():
                    continue
                stored = self._gather(source, source_index.to("cpu")[plan.rows[among]].numpy(),
                                      variant[among].numpy())
                if stored.shape[1:3] != images.shape[2:]:
                    raise ValueError(f"CachedStylizer: the {source} cache holds {tuple(stored.shape[1:3])} px "
                                     f"images, the batch {tuple(images.shape[2:])}")
                if on_host:
                    output.numpy()[plan.rows[among].numpy()] = stored.numpy().transpose(0, 3, 1, 2)
                else:
                    rows = plan.rows[among].to(images.device, non_blocking=True)
                    output.index_copy_(0, rows, stored.permute(0, 3, 1, 2))
        return output, plan

    def __repr__(self) -> str:
        caches = ", ".join(f"{source}={cache.path} (K={cache.variants})" for source, cache in self.caches.items())
        return (f"CachedStylizer({caches}, prob_synthetic={self.prob_synthetic}, prob_real={self.prob_real}, "
                f"nst_probability={self.nst_probability}, seed={self.seed})")
