"""The training loader: plain ``(images, labels)`` batches, no DALI in sight for the caller.

``create_train_loader`` wires the sources, the mixing sampler (``sampler.py``, which defines an
epoch), the two DALI stages (``pipeline.py``, with the design note on the split) and the Stylizer.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from fastnst.train.data.errors import BadImageError
from fastnst.train.data.jpeg import decode_rgb, read_jpeg_bytes
from fastnst.train.data.sampler import BatchPlan, MixedSampler
from fastnst.train.data.sources import ArraySource, JpegSource, load_train_source
from fastnst.train.data.stats import dataset_info
from fastnst.train.data.synthetic import load_synthetic

log = logging.getLogger(__name__)

# stylizer(images uint8 (N, 3, H, W), is_synthetic bool (N,)) -> uint8 (N, 3, H, W)
StylizerFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_RESIDENT_FRACTION = 0.25  # keep a pixel array on the GPU when it takes at most this share of its memory


def _dali_to_torch(outputs, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Copy a dense DALI batch into a fresh torch tensor (DALI reuses its buffers on the next run)."""
    dense = outputs.as_tensor()
    tensor = torch.empty(tuple(dense.shape()), dtype=dtype, device=device)
    from nvidia.dali.plugin.pytorch import feed_ndarray

    stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
    return feed_ndarray(dense, tensor, cuda_stream=stream)


def _seed_for(*parts: int) -> int:
    return int(np.random.default_rng(list(parts)).integers(2**31 - 1))


class TrainLoader:
    """Iterates one epoch of ``(images, labels)``: float32 normalized (N, 3, H, W) channels_last, int64.

    ``len()`` is the number of steps per epoch; call ``set_epoch(e)`` before each epoch (the batches
    and all augmentation draws are a function of (seed, epoch, rank)). ``num_skipped`` counts bad
    images skipped with ``on_bad_image="skip"``; ``last_epoch_seconds`` the data time of an epoch.
    """

    def __init__(self, dataset: str, real: ArraySource | JpegSource, synthetic: ArraySource | None,
                 sampler: MixedSampler, *, stylizer: StylizerFn | None, trivial_augment: bool,
                 random_erasing_prob: float, device: str, seed: int, on_bad_image: str):
        self.dataset, self.info = dataset, dataset_info(dataset)
        self.real, self.synthetic, self.sampler = real, synthetic, sampler
        self.stylizer, self.trivial_augment, self.random_erasing_prob = stylizer, trivial_augment, random_erasing_prob
        self.device, self.seed, self.on_bad_image = torch.device(device), seed, on_bad_image
        self.epoch, self.num_skipped, self.bad_paths = 0, 0, set()
        self.on_gpu = self.device.type == "cuda"
        self._real_pixels = self._maybe_resident(real.images) if isinstance(real, ArraySource) else None
        self._synthetic_pixels = self._maybe_resident(synthetic.images) if synthetic is not None else None

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    # --- where the pixels live ---------------------------------------------------------------
    def _maybe_resident(self, images: np.ndarray) -> np.ndarray | torch.Tensor:
        """On a GPU, upload a pixel array once (as airbench does) when it fits comfortably."""
        if not self.on_gpu:
            return images
        if images.nbytes > _RESIDENT_FRACTION * torch.cuda.get_device_properties(self.device).total_memory:
            return images  # too big: gathered on the host per batch
        resident = torch.empty(images.shape, dtype=torch.uint8, device=self.device)
        chunk = 1 << 16  # rows per copy: a memory-mapped file is paged in once, never held twice in RAM
        for start in range(0, len(images), chunk):
            resident[start:start + chunk].copy_(torch.from_numpy(np.ascontiguousarray(images[start:start + chunk])))
        return resident

    @staticmethod
    def _gather(pixels: np.ndarray | torch.Tensor, indices: np.ndarray) -> np.ndarray | torch.Tensor:
        if isinstance(pixels, torch.Tensor):
            return pixels.index_select(0, torch.from_numpy(indices).to(pixels.device))
        return pixels[np.sort(indices)][np.argsort(np.argsort(indices))]  # sorted reads are kinder to a memmap

    # --- stage 1 input -----------------------------------------------------------------------
    def _array_batch(self, plan: BatchPlan):
        real_rows, synthetic_rows = ~plan.is_synthetic, plan.is_synthetic
        labels = np.empty(len(plan.indices), dtype=np.int64)
        labels[real_rows] = self.real.labels[plan.indices[real_rows]]
        if synthetic_rows.any():
            labels[synthetic_rows] = self.synthetic.labels[plan.indices[synthetic_rows]]
        parts = {False: self._gather(self._real_pixels, plan.indices[real_rows])}
        if synthetic_rows.any():
            parts[True] = self._gather(self._synthetic_pixels, plan.indices[synthetic_rows])
        if self.on_gpu:  # resident parts are CUDA tensors already; others go up once per batch
            parts = {k: torch.as_tensor(v, device=self.device) for k, v in parts.items()}
            images = torch.empty((len(labels), *parts[False].shape[1:]), dtype=torch.uint8, device=self.device)
            for kind, part in parts.items():
                images[torch.from_numpy(np.flatnonzero(plan.is_synthetic == kind)).to(self.device)] = part
        else:
            images = np.empty((len(labels), *parts[False].shape[1:]), dtype=np.uint8)
            for kind, part in parts.items():
                images[plan.is_synthetic == kind] = part
        return {"images": images}, labels

    def _read_real_jpeg(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Encoded bytes of real image ``index``; a bad file is skipped (a random other one taken) or raised."""
        for _ in range(100):
            path = self.real.paths[index]
            if path not in self.bad_paths:
                try:
                    return read_jpeg_bytes(path), index
                except (BadImageError, OSError) as error:
                    self._bad_image(path, error)
            index = int(rng.integers(len(self.real)))
        raise BadImageError(f"{self.real.paths[index].parent}: too many bad images; check the data set")

    def _bad_image(self, path: Path, error: Exception) -> None:
        if self.on_bad_image == "stop":
            raise error if isinstance(error, BadImageError) else BadImageError(f"{path}: {error}") from error
        self.bad_paths.add(path)
        self.num_skipped += 1
        log.warning("skipping bad image %s (%s); %d skipped so far", path, error, self.num_skipped)

    def _jpeg_batch(self, plan: BatchPlan, step: int):
        rng = np.random.default_rng([self.seed, 3, self.epoch, step])  # replacements for bad files
        data, labels = [], np.empty(len(plan.indices), dtype=np.int64)
        paths = []  # the file behind each sample, for error reports
        for position, (index, synthetic) in enumerate(zip(plan.indices, plan.is_synthetic)):
            if synthetic:
                data.append(np.ascontiguousarray(self.synthetic.images[index]).reshape(-1))
                labels[position] = self.synthetic.labels[index]
                paths.append(None)
            else:
                encoded, index = self._read_real_jpeg(int(index), rng)
                data.append(encoded)
                labels[position] = self.real.labels[index]
                paths.append(self.real.paths[index])
        inputs = {"data": data}
        if self.synthetic is not None:
            inputs["is_synthetic"] = plan.is_synthetic.copy()
        return inputs, labels, paths

    def _find_undecodable(self, paths: list[Path | None]) -> int:
        """After a DALI decode error: find the culprit files of the batch with PIL; report or skip them."""
        found = 0
        for path in paths:
            if path is None:
                continue
            try:
                decode_rgb(path, self.info.image_size)
            except BadImageError as error:
                found += 1
                self._bad_image(path, error)
        return found

    # --- the epoch ---------------------------------------------------------------------------
    def _stage_seed(self, stage: int, restart: int = 0) -> int:
        return _seed_for(self.seed, self.epoch, self.sampler.rank, stage, restart)

    def _build_crop(self, restart: int = 0):
        from fastnst.train.data import pipeline as stages  # DALI is imported when a loader runs, not with train.data

        options = stages.pipeline_options(self.sampler.batch_size, str(self.device), self._stage_seed(1, restart))
        if isinstance(self.real, JpegSource):
            crop = stages.jpeg_crop_pipeline(image_size=self.info.image_size, on_gpu=self.on_gpu,
                                             mixed_with_pixels=self.synthetic is not None, **options)
        else:
            crop = stages.array_crop_pipeline(image_size=self.info.image_size,
                                              source_device="gpu" if self.on_gpu else "cpu", **options)
        crop.build()
        return crop

    def _build_augment(self):
        from fastnst.train.data import pipeline as stages

        augment = stages.augment_normalize_pipeline(
            image_size=self.info.image_size, source_device="gpu" if self.on_gpu else "cpu", mean=self.info.mean,
            std=self.info.std, trivial_augment_wide=self.trivial_augment, random_erasing_prob=self.random_erasing_prob,
            **stages.pipeline_options(self.sampler.batch_size, str(self.device), self._stage_seed(2)))
        augment.build()
        return augment

    def _stage1_inputs(self, plan: BatchPlan, step: int):
        """(DALI inputs, labels, the file of each sample or None) of one batch."""
        if isinstance(self.real, JpegSource):
            return self._jpeg_batch(plan, step)
        return (*self._array_batch(plan), [])

    def _feed(self, pipe, inputs: dict) -> None:
        stream = torch.cuda.current_stream(self.device).cuda_stream if self.on_gpu else None
        for name, value in inputs.items():
            on_device = isinstance(value, torch.Tensor) and value.is_cuda
            pipe.feed_input(name, value, cuda_stream=stream if on_device else None)

    def _schedule(self, crop, plans: list[BatchPlan], step: int):
        batch = self._stage1_inputs(plans[step], step)
        self._feed(crop, batch[0])
        crop.schedule_run()
        return batch

    def crop_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Stage 1 alone: (uint8 NHWC cropped/flipped images, is_synthetic (CPU), labels) per step.

        Batch i + 1 is fed and scheduled before batch i is handed on, so DALI's threads (or the GPU)
        decode and crop it while the caller stylizes and trains on batch i.
        """
        plans = self.sampler.epoch(self.epoch)
        crop = self._build_crop()
        pending = self._schedule(crop, plans, 0)
        for step, plan in enumerate(plans):
            inputs, labels, paths = pending
            try:
                (images,) = crop.outputs()
            except RuntimeError as error:
                # DALI names no file, and its pipeline is unusable after an error: find the file, rebuild.
                if not self._find_undecodable(paths):  # raises on "stop"
                    raise
                log.warning("DALI could not decode a batch (%s); retrying without the bad files", error)
                crop = self._build_crop(restart=step + 1)
                inputs, labels, paths = self._schedule(crop, plans, step)
                (images,) = crop.outputs()
            images = _dali_to_torch(images, torch.uint8, self.device)  # copied before DALI reuses the buffer
            if step + 1 < len(plans):
                pending = self._schedule(crop, plans, step + 1)
            # Flags stay on the host: the Stylizer reads them there to size its subset, without a device sync.
            is_synthetic = torch.from_numpy(plan.is_synthetic)
            yield images, is_synthetic, torch.from_numpy(labels).to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        augment = self._build_augment()
        started = time.perf_counter()
        for images_nhwc, is_synthetic, labels in self.crop_batches():
            if self.stylizer is not None:
                # NHWC memory seen as NCHW channels_last: no copy either way when the stylizer keeps the layout.
                images_nchw = images_nhwc.permute(0, 3, 1, 2)
                stylized = self.stylizer(images_nchw, is_synthetic)
                if stylized.dtype != torch.uint8 or stylized.shape != images_nchw.shape:
                    raise TypeError(f"stylizer must return uint8 {tuple(images_nchw.shape)}, "
                                    f"got {stylized.dtype} {tuple(stylized.shape)}")
                images_nhwc = stylized.permute(0, 2, 3, 1).contiguous()
            self._feed(augment, {"images": images_nhwc if self.on_gpu else images_nhwc.numpy()})
            (normalized,) = augment.run()
            images = _dali_to_torch(normalized, torch.float32, self.device).permute(0, 3, 1, 2)
            yield images, labels
        self.last_epoch_seconds = time.perf_counter() - started


def create_train_loader(dataset: str, data_root: str | Path, batch_size: int, *, synthetic_path: str | Path | None = None,
                        synthetic_ratio: float = 0.0, stylizer: StylizerFn | None = None, trivial_augment: bool = True,
                        random_erasing_prob: float = 0.3, device: str = "cpu", rank: int = 0, world_size: int = 1,
                        seed: int = 0, on_bad_image: str = "skip") -> TrainLoader:
    """The training loader of ``dataset`` under ``data_root`` (see ``sampler.py`` for what an epoch is).

    Args:
        batch_size: samples per step on this rank (real + synthetic).
        synthetic_path: EDM-style .npz (``image`` uint8 NHWC, ``label``), memory-mapped; needed when
            ``synthetic_ratio > 0``.
        synthetic_ratio: share of synthetic samples in every batch, in [0, 1).
        stylizer: called on each batch after crop/flip as ``stylizer(uint8 (N,3,H,W), is_synthetic (N,))``
            (images on ``device`` as a channels_last view, flags a CPU bool tensor) and must return uint8
            of the same shape (e.g. ``fastnst.Stylizer``); None: no style transfer.
        trivial_augment: TrivialAugmentWide per sample after the stylizer.
        random_erasing_prob: per-sample probability of Random Erasing, after TrivialAugmentWide.
        device: "cpu" (DALI CPU operators) or "cuda[:i]" (GPU decoding and operators, data kept on it).
        rank, world_size: this process's shard (torchrun); an epoch covers the data once across ranks.
        seed: the batches and augmentations of epoch e are a function of (seed, e, rank).
        on_bad_image: "skip" (log it, count it in ``loader.num_skipped``, take another image) or "stop"
            (raise BadImageError naming the file).
    """
    if on_bad_image not in ("skip", "stop"):
        raise ValueError(f"--on-bad-image must be 'skip' or 'stop', got {on_bad_image!r}")
    if synthetic_ratio > 0 and synthetic_path is None:
        raise ValueError(f"--synthetic-ratio {synthetic_ratio} needs --synthetic FILE")
    info = dataset_info(dataset)
    real = load_train_source(dataset, data_root)
    synthetic = None
    if synthetic_path is not None and synthetic_ratio > 0:
        synthetic = ArraySource(*load_synthetic(synthetic_path, info.image_size, info.num_classes))
    sampler = MixedSampler(len(real), len(synthetic) if synthetic else 0, batch_size, synthetic_ratio,
                           rank=rank, world_size=world_size, seed=seed)
    return TrainLoader(dataset, real, synthetic, sampler, stylizer=stylizer, trivial_augment=trivial_augment,
                       random_erasing_prob=random_erasing_prob, device=device, seed=seed, on_bad_image=on_bad_image)
