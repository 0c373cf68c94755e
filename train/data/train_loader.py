"""The training loader: plain ``(images, labels, is_synthetic)`` batches, no DALI in sight for the caller.

``create_train_loader`` wires the sources, the authors' epoch (``sampler.py``), stage 1 (pixel
gather or image decoding, and an image folder's random-resized crops), the Stylizer, stage 2
(``pipeline.py``, with the design note on the order and the cut) fed with host-drawn augmentations
(``draws.py``), and the double-buffered hand-over to the training stream (``prefetch.py``). Where DALI
is not installed (or with ``augment_backend="torch"``) the two stages run in torch instead, on the same
draws: image files decoded by torchvision (JPEG) and PIL (the rest; ``jpeg.decode_images``), an image folder's
random-resized crops by torchvision's ``resized_crop``, stage 2 batched (``augment_torch.py``).
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from fastnst.resident import maybe_resident, to_device
from fastnst.train.config import Augmentation
from fastnst.train.data.backend import resolve_backend
from fastnst.train.data.draws import (TA_EQUALIZE_OP, TA_IDENTITY_OP, AugmentDraws, crop_generator, draw_augmentations,
                                      draw_resized_crops, step_generator)
from fastnst.train.data.errors import BadImageError
from fastnst.train.data.jpeg import decode_images, read_image_bytes
from fastnst.train.data.jpeg_check import check_file, check_files
from fastnst.train.data.prefetch import StreamHandoff, prefetched
from fastnst.train.data.sampler import BatchPlan, MixedSampler
from fastnst.train.data.sources import ArraySource, FileSource, load_train_source
from fastnst.train.data.stats import DatasetInfo, dataset_info
from fastnst.train.data.synthetic import load_synthetic

log = logging.getLogger(__name__)

# stylizer(images uint8 (N, 3, H, W), is_synthetic bool (N,) CPU, source_index=int64 (N,) CPU) ->
# (uint8 (N, 3, H, W), plan), where plan.chosen is a (N,) CPU bool tensor: the samples chosen for style
# transfer (fastnst.Stylizer or fastnst.CachedStylizer, which reads stored variants by source_index; StylePlan).
StylizerFn = Callable[..., tuple]


@contextmanager
def rank_zero_first():
    """Under torch.distributed, rank 0 runs the block first and the others after it: for the JPEG check,
    one process decodes every file and writes the verdicts, the others then only read them (instead of
    every rank decoding all of them at once and racing to write one cache file)."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    first = not distributed or torch.distributed.get_rank() == 0
    if not first:
        torch.distributed.barrier()
    yield
    if distributed and first:
        torch.distributed.barrier()


def _dali_to_torch(outputs, dtype: torch.dtype, device: torch.device, stream) -> torch.Tensor:
    """Copy a dense DALI batch into a fresh torch tensor (DALI reuses its buffers), on ``stream``."""
    from nvidia.dali.plugin.pytorch import feed_ndarray

    dense = outputs.as_tensor()
    tensor = torch.empty(tuple(dense.shape()), dtype=dtype, device=device)
    return feed_ndarray(dense, tensor, cuda_stream=stream)


# Batches of uint8 pixels before the Stylizer: numpy arrays on the CPU, tensors on a GPU. Host copies
# stay in numpy: a torch CPU copy of a batch opens an OpenMP region, and with DALI's threads busy on
# the same cores its spinning workers made each batch copy take tens of milliseconds on 2 cores.
Pixels = np.ndarray | torch.Tensor


def equalize_chosen(images: Pixels, draws: AugmentDraws) -> Pixels:
    """TrivialAugmentWide's equalize, torchvision's own (a histogram per image and channel), on the uint8 NHWC
    samples that drew it, in place; they get the identity in stage 2. Used with random-resized crops, where
    stage 2's geometry is only the flip, which equalize commutes with (it maps each pixel by its channel's
    histogram); the DALI formulation compares every pixel with 256 levels (``trivial_augment.equalize``)."""
    from torchvision.transforms.v2.functional import equalize

    rows = np.flatnonzero(draws.ta_op == TA_EQUALIZE_OP)
    if len(rows) == 0:
        return images
    pixels = torch.from_numpy(images) if isinstance(images, np.ndarray) else images  # shares the memory
    index = torch.from_numpy(rows).to(pixels.device)
    pixels[index] = equalize(pixels[index].permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    draws.ta_op[rows] = TA_IDENTITY_OP
    return images


class _Stage:
    """A built DALI pipeline plus the number of runs submitted and not yet collected."""

    def __init__(self, pipe):
        self.pipe, self.pending = pipe, 0

    def submit(self, inputs: dict, stream) -> None:
        for name, value in inputs.items():
            on_device = isinstance(value, torch.Tensor) and value.is_cuda
            if isinstance(value, torch.Tensor) and not on_device:
                value = value.numpy()
            self.pipe.feed_input(name, value, cuda_stream=stream if on_device else None)
        self.pipe.schedule_run()
        self.pending += 1

    def collect(self, stream):
        self.pending -= 1
        return self.pipe.outputs(cuda_stream=stream)

    def drain(self) -> None:
        """Discard runs left over by an epoch the caller stopped early, so the next epoch starts clean."""
        while self.pending:
            self.collect(None)


class _TorchStage:
    """A stage in torch with ``_Stage``'s calls: the work is done when collected (on the caller's stream)."""

    def __init__(self, function: Callable):
        self.function = function
        self.submitted: list[dict] = []

    def submit(self, inputs: dict, stream) -> None:
        self.submitted.append(inputs)

    def collect(self, stream):
        return self.function(**self.submitted.pop(0))

    def drain(self) -> None:
        self.submitted.clear()


@dataclass
class _InFlight:
    labels: torch.Tensor        # int64 (B,) on the device
    is_synthetic: torch.Tensor  # bool (B,) on the host


class TrainLoader:
    """Iterates one epoch of ``(images, labels, is_synthetic)``: float32 normalized (N, 3, H, W)
    channels_last and int64 on the device, and the host bool flags of the synthetic samples (the
    trainer keeps Mixup / CutMix partners within a source with them).

    ``len()`` is the number of steps per epoch; call ``set_epoch(e)`` before each epoch (the batches
    and all augmentation draws are a function of (seed, epoch, rank)). ``num_skipped`` counts bad
    images skipped with ``on_bad_image="skip"``; ``last_epoch_seconds`` is the data time of an epoch
    and ``build_seconds`` the total time spent building DALI pipelines (once per run, not per epoch).
    ``backend``: "dali" or "torch", the library of stage 1's decoding and of stage 2. ``max_steps``: serve
    only the first ``max_steps`` batches of each epoch (None: all).
    """

    def __init__(self, dataset: str, real: ArraySource | FileSource, synthetic: ArraySource | None,
                 sampler: MixedSampler, *, stylizer: StylizerFn | None, augmentation: Augmentation, device: str,
                 seed: int, on_bad_image: str, max_steps: int | None = None, info: DatasetInfo | None = None):
        self.dataset, self.info = dataset, info or dataset_info(dataset)
        self.real, self.synthetic, self.sampler = real, synthetic, sampler
        self.stylizer, self.augmentation = stylizer, augmentation
        self.backend = resolve_backend(augmentation.augment_backend)
        # Random-resized crops are cut in stage 1 (before the Stylizer, which needs one size per batch); stage 2
        # then only flips. Otherwise stage 2 cuts the padded crop of images that already have the right size.
        self.resized_crops = augmentation.train_crop == "random-resized"
        self.crop_padding = 0 if self.resized_crops else augmentation.padding_for(self.info.image_size)
        # the size every decoded file must have before any crop (None: any, for random-resized crops)
        self.file_image_size = None if self.resized_crops else self.info.image_size
        # Which sources skip TrivialAugment for a sample the Stylizer chose ("TAorStyle"), indexed by is_synthetic.
        self._ta_or_style = np.array([augmentation.ta_or_style_real, augmentation.ta_or_style_synthetic])
        self.device, self.seed, self.on_bad_image = torch.device(device), seed, on_bad_image
        self.epoch, self.num_skipped, self.bad_paths = 0, 0, set()
        self.max_steps = max_steps
        self.build_seconds = 0.0
        self.on_gpu = self.device.type == "cuda"
        self._streams = StreamHandoff(self.device)
        self._decode_stage: _Stage | _TorchStage | None = None
        self._crop_stage: _Stage | None = None
        self._augment_stage: _Stage | _TorchStage | None = None
        self._real_pixels = maybe_resident(real.images, self.device) if isinstance(real, ArraySource) else None
        self._synthetic_pixels = maybe_resident(synthetic.images, self.device) if synthetic is not None else None

    def __len__(self) -> int:
        return min(len(self.sampler), self.max_steps or len(self.sampler))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    # --- where the pixels live ---------------------------------------------------------------
    def _gather(self, pixels: np.ndarray | torch.Tensor, rows: np.ndarray) -> Pixels:
        """uint8 NHWC rows of a pixel array: on the GPU when there is one, else a host array."""
        if isinstance(pixels, torch.Tensor):
            return pixels.index_select(0, to_device(rows.astype(np.int64), self.device))
        gathered = pixels[np.sort(rows)][np.argsort(np.argsort(rows))]  # sorted reads are kinder to a memmap
        return to_device(gathered, self.device) if self.on_gpu else gathered

    def _gather_cropped(self, pixels: np.ndarray | torch.Tensor, rows: np.ndarray, step: int, source: int) -> Pixels:
        """``_gather``, then (random-resized crops) each row's window resized to the image size, in stage 1."""
        gathered = self._gather(pixels, rows)
        if not self.resized_crops:
            return gathered
        height, width = pixels.shape[1:3]
        start, shape = draw_resized_crops(crop_generator(self.seed, self.epoch, self.sampler.rank, step, source),
                                          np.full(len(rows), height), np.full(len(rows), width),
                                          self.augmentation.crop_scale)
        if self.backend == "torch":
            from fastnst.train.data.augment_torch import resized_crops

            cropped = resized_crops(gathered, start, shape, self.info.image_size)
            return cropped if self.on_gpu else cropped.numpy()
        if self._crop_stage is None:
            self._crop_stage = self._build(lambda stages: stages.crop_resize_pipeline,
                                           source_device="gpu" if self.on_gpu else "cpu",
                                           crop_size=self.info.image_size)
        self._crop_stage.submit({"images": gathered, "crop_start": start, "crop_shape": shape}, self._streams.stream)
        (cropped,) = self._crop_stage.collect(self._streams.stream)
        if not self.on_gpu:
            return np.array(cropped.as_tensor())  # a copy: DALI reuses its buffers
        return _dali_to_torch(cropped, torch.uint8, self.device, self._streams.stream)

    def _labels(self, plan: BatchPlan) -> np.ndarray:
        labels = np.empty(len(plan.indices), dtype=np.int64)
        real_rows, synthetic_rows = ~plan.is_synthetic, plan.is_synthetic
        labels[real_rows] = self.real.labels[plan.indices[real_rows]]
        if synthetic_rows.any():
            labels[synthetic_rows] = self.synthetic.labels[plan.indices[synthetic_rows]]
        return labels

    def _assemble(self, plan: BatchPlan, real_images: Pixels | None, step: int) -> Pixels:
        """The batch's uint8 NHWC images in plan order: real rows (gathered or decoded) and synthetic rows."""
        parts = {False: real_images, True: None}
        if plan.is_synthetic.any():
            parts[True] = self._gather_cropped(self._synthetic_pixels, plan.indices[plan.is_synthetic], step, 1)
        present = {kind: part for kind, part in parts.items() if part is not None}
        if len(present) == 1:
            return next(iter(present.values()))
        shape = (len(plan.indices), self.info.image_size, self.info.image_size, 3)
        if not self.on_gpu:
            images = np.empty(shape, dtype=np.uint8)
            for kind, part in present.items():
                images[plan.is_synthetic == kind] = part
            return images
        images = torch.empty(shape, dtype=torch.uint8, device=self.device)
        for kind, part in present.items():
            positions = np.flatnonzero(plan.is_synthetic == kind)
            if positions[-1] - positions[0] + 1 == len(positions):  # a block (all but a padded DDP batch)
                images[positions[0]:positions[-1] + 1] = part
            else:
                images[to_device(positions, self.device)] = part
        return images

    # --- stage 1: image files ----------------------------------------------------------------
    def _read_real_file(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Encoded bytes of real image ``index``; a bad file is skipped (a random other one taken) or raised."""
        for _ in range(100):
            path = self.real.paths[index]
            if path not in self.bad_paths:
                try:
                    return read_image_bytes(path), index
                except BadImageError as error:
                    self._bad_image(path, error)
            index = int(rng.integers(len(self.real)))
        raise BadImageError(f"{self.real.paths[index].parent}: too many bad images; check the data set")

    def skip_bad_image(self, path: Path, why: str) -> None:
        """Never serve ``path`` (a file found bad before training): counted and logged as a skip."""
        self._bad_image(path, BadImageError(why))

    def _bad_image(self, path: Path, error: Exception) -> None:
        if self.on_bad_image == "stop":
            raise error if isinstance(error, BadImageError) else BadImageError(f"{path}: {error}") from error
        self.bad_paths.add(path)
        self.num_skipped += 1
        why = str(error).removeprefix(f"{path}: ")
        log.warning("skipping bad image %s (%s); %d skipped so far", path, why, self.num_skipped)

    def _find_undecodable(self, paths: list[Path]) -> int:
        """After a DALI decode error: find the culprit files of the batch (the pre-training check, again)."""
        found = 0
        for path in paths:
            why = check_file(path, self.file_image_size)
            if why is not None:
                found += 1
                self._bad_image(path, BadImageError(why))
        return found

    def _build(self, make, **arguments) -> _Stage:
        from fastnst.train.data import pipeline as stages  # DALI is imported when a loader runs, not with train.data

        started = time.perf_counter()
        pipe = make(stages)(**arguments, **stages.pipeline_options(self.sampler.batch_size, str(self.device)))
        pipe.build()
        self.build_seconds += time.perf_counter() - started
        return _Stage(pipe)

    def _decoder(self) -> _Stage | _TorchStage:
        if self._decode_stage is None and self.backend == "torch":
            self._decode_stage = _TorchStage(self._decode_in_torch)
        if self._decode_stage is None:
            self._decode_stage = self._build(lambda stages: stages.decode_pipeline, on_gpu=self.on_gpu,
                                             crop_size=self.info.image_size if self.resized_crops else None)
        return self._decode_stage

    def _decode_in_torch(self, data: list[np.ndarray], crop_start: np.ndarray | None = None,
                         crop_shape: np.ndarray | None = None) -> Pixels:
        """Stage 1 in torch: the files decoded (``jpeg.decode_images``), then each one's window resized (random-resized
        crops) or, with the padded crop, stacked; a file not of the image size raises RuntimeError, as with DALI."""
        images, size = decode_images(data, self.device), self.info.image_size
        if crop_start is not None:
            from fastnst.train.data.augment_torch import resized_crops

            batch = resized_crops(images, crop_start, crop_shape, size)
        else:
            wrong = sum(tuple(image.shape) != (3, size, size) for image in images)
            if wrong:
                raise RuntimeError(f"{wrong} decoded images are not {size}x{size}x3")
            batch = torch.stack(images).permute(0, 2, 3, 1)
        return batch.contiguous() if self.on_gpu else np.ascontiguousarray(batch.numpy())

    def _submit_decode(self, plans: list[BatchPlan], step: int) -> list[Path]:
        """Read this step's real image files and queue their decoding; returns the files, in order."""
        plan = plans[step]
        rng = np.random.default_rng([self.seed, 3, self.epoch, self.sampler.rank, step])  # replacements for bad files
        encoded, paths, indices = [], [], []
        for position in np.flatnonzero(~plan.is_synthetic):
            data, index = self._read_real_file(int(plan.indices[position]), rng)
            plan.indices[position] = index  # a skipped file's replacement, so that the label follows it
            encoded.append(data)
            paths.append(self.real.paths[index])
            indices.append(index)
        if encoded:
            inputs = {"data": encoded}
            if self.resized_crops:  # drawn after the replacements: each window fits the file it crops
                sizes = self.real.sizes[indices]
                inputs["crop_start"], inputs["crop_shape"] = draw_resized_crops(
                    crop_generator(self.seed, self.epoch, self.sampler.rank, step, 0), sizes[:, 0], sizes[:, 1],
                    self.augmentation.crop_scale)
            self._decoder().submit(inputs, None)
        return paths

    def _collect_decode(self, plans: list[BatchPlan], step: int, paths: list[Path]) -> Pixels | None:
        """The decoded real images of ``step`` (uint8 NHWC on the device); a bad file is found and named."""
        if not paths:
            return None
        decoded, failure = self._decoded_or_failure(len(paths))
        if failure is not None:
            # Files are checked before training (jpeg_check), so this is a file that went bad since. A pipeline
            # that raised is treated as dead and is dropped now, before anything else (not left to exit time);
            # the culprit is found with PIL and reported outside any ``except``, so no traceback keeps it alive.
            self._decode_stage = None
            if not self._find_undecodable(paths):  # raises BadImageError on "stop"
                decoder = "DALI" if self.backend == "dali" else "torchvision (JPEG) and PIL"
                raise RuntimeError(f"{decoder} could not decode a batch of {len(paths)} images, though each of them "
                                   f"decodes on its own (first: {paths[0]}): {failure}")
            log.warning("could not decode a batch (%s); retrying without the bad files", failure)
            return self._collect_decode(plans, step, self._submit_decode(plans, step))
        if self.backend == "torch":
            return decoded
        if not self.on_gpu:
            return np.array(decoded.as_tensor())  # a copy: DALI reuses its buffers
        return _dali_to_torch(decoded, torch.uint8, self.device, self._streams.stream)

    def _decoded_or_failure(self, count: int):
        """(decoded batch, None) or (None, why): DALI's exception, and the frames of the failed pipeline
        that its traceback holds, end here."""
        size = self.info.image_size
        try:
            decoded = self._decoder().collect(self._streams.stream)
        except RuntimeError as error:
            return None, " ".join(str(error).split())[-500:]
        if self.backend == "torch":  # _decode_in_torch checked the sizes
            return decoded, None
        (decoded,) = decoded
        shapes = decoded.shape()
        wrong = [index for index, shape in enumerate(shapes) if list(shape) != [size, size, 3]]
        if len(shapes) != count or wrong:
            return None, f"{len(wrong)} decoded images are not {size}x{size}x3"
        return decoded, None

    # --- stage 2 -----------------------------------------------------------------------------
    def _augmenter(self) -> _Stage | _TorchStage:
        if self._augment_stage is None and self.backend == "torch":
            from fastnst.train.data.augment_torch import TorchAugment  # torchvision's functions, imported when used

            self._augment_stage = _TorchStage(TorchAugment(
                self.info.image_size, self.info.mean, self.info.std, self.augmentation.trivial_augment,
                self.augmentation.random_erasing_prob > 0))
        if self._augment_stage is None:
            self._augment_stage = self._build(
                lambda stages: stages.augment_pipeline, image_size=self.info.image_size,
                source_device="gpu" if self.on_gpu else "cpu", mean=self.info.mean, std=self.info.std,
                trivial_augment_wide=self.augmentation.trivial_augment,
                random_erasing=self.augmentation.random_erasing_prob > 0)
        return self._augment_stage

    def _stylize(self, images_nhwc: Pixels, plan: BatchPlan) -> tuple[Pixels, np.ndarray]:
        """The Stylizer on the uncropped batch -> (uint8 NHWC images, which samples it chose)."""
        on_host = isinstance(images_nhwc, np.ndarray)
        # NHWC memory seen as NCHW channels_last: no copy either way when the stylizer keeps the layout.
        images_nchw = (torch.from_numpy(images_nhwc) if on_host else images_nhwc).permute(0, 3, 1, 2)
        # Flags stay on the host: the Stylizer reads them there to size its subset, without a device sync.
        stylized, style_plan = self.stylizer(images_nchw, torch.from_numpy(plan.is_synthetic),
                                             source_index=torch.from_numpy(plan.indices))
        if stylized.dtype != torch.uint8 or stylized.shape != images_nchw.shape:
            raise TypeError(f"stylizer must return uint8 {tuple(images_nchw.shape)}, "
                            f"got {stylized.dtype} {tuple(stylized.shape)}")
        stylized = stylized.permute(0, 2, 3, 1)
        stylized = np.ascontiguousarray(stylized.numpy()) if on_host else stylized.contiguous()
        return stylized, style_plan.chosen.cpu().numpy().astype(bool)

    def _enqueue(self, plans: list[BatchPlan], step: int, decode_paths: dict) -> _InFlight:
        """Queue all of ``step``'s work: stage 1, the Stylizer, stage 2 (submitted to DALI, not waited for)."""
        plan = plans[step]
        real_images = None
        if isinstance(self.real, FileSource):
            real_images = self._collect_decode(plans, step, decode_paths.pop(step))
            if step + 1 < len(plans):  # decode the next batch in DALI's threads meanwhile
                decode_paths[step + 1] = self._submit_decode(plans, step + 1)
        elif (~plan.is_synthetic).any():
            real_images = self._gather_cropped(self._real_pixels, plan.indices[~plan.is_synthetic], step, 0)
        images = self._assemble(plan, real_images, step)
        labels = to_device(self._labels(plan), self.device)
        chosen = np.zeros(len(plan.indices), dtype=bool)
        if self.stylizer is not None:
            images, chosen = self._stylize(images, plan)
        draws = draw_augmentations(
            step_generator(self.seed, self.epoch, self.sampler.rank, step), len(plan.indices), self.info.image_size,
            padding=self.crop_padding, skip_trivial_augment=chosen & self._ta_or_style[plan.is_synthetic.astype(int)],
            erasing_probability=self.augmentation.random_erasing_prob,
            erasing_scale=self.augmentation.random_erasing_scale)
        if self.resized_crops and self.augmentation.trivial_augment and self.backend == "dali":
            images = equalize_chosen(images, draws)  # the torch suite's equalize is torchvision's already
        if self.backend == "torch":
            feed = {"draws": draws}
        else:
            feed = draws.feed(self.augmentation.trivial_augment, self.augmentation.random_erasing_prob > 0)
        self._augmenter().submit({"images": images, **feed}, self._streams.stream)
        return _InFlight(labels, torch.from_numpy(plan.is_synthetic.copy()))

    def _collect(self, in_flight: _InFlight):
        images = self._augment_stage.collect(self._streams.stream)
        if self.backend == "dali":
            (normalized,) = images
            images = _dali_to_torch(normalized, torch.float32, self.device, self._streams.stream).permute(0, 3, 1, 2)
        return images, in_flight.labels, in_flight.is_synthetic, self._streams.ready()

    # --- the epoch ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        plans = self.sampler.epoch(self.epoch)[:len(self)]
        for stage in (self._decode_stage, self._crop_stage, self._augment_stage):
            if stage is not None:
                stage.drain()
        decode_paths = {}
        if isinstance(self.real, FileSource) and plans:
            decode_paths[0] = self._submit_decode(plans, 0)
        started = time.perf_counter()
        yield from prefetched(len(plans), lambda step: self._enqueue(plans, step, decode_paths), self._collect,
                              self._streams)
        self.last_epoch_seconds = time.perf_counter() - started


def create_train_loader(dataset: str, data_root: str | Path, batch_size: int, *, synthetic_path: str | Path | None = None,
                        synthetic_ratio: float = 0.0, stylizer: StylizerFn | None = None,
                        augmentation: Augmentation = Augmentation(), device: str = "cpu", rank: int = 0,
                        world_size: int = 1, seed: int = 0, on_bad_image: str = "skip",
                        max_steps_per_epoch: int | None = None, info: DatasetInfo | None = None) -> TrainLoader:
    """The training loader of ``dataset`` under ``data_root`` (see ``sampler.py`` for what an epoch is).

    Per sample, in the authors' order: the Stylizer on the raw image, then flip + crop of the
    zero-padded image, TrivialAugmentWide (skipped for a sample the Stylizer chose when its
    source is "TAorStyle"), Random Erasing (0-valued boxes), normalization. With random-resized crops
    (``augmentation.train_crop``, an image folder's ImageNet-style training) the crop comes first, in
    stage 1, and the Stylizer sees the crops: images of many sizes make no batch (docs/imagefolder.md).

    Args:
        batch_size: samples per step on this rank (real + synthetic); the epoch's batches are
            defined for the global batch ``batch_size * world_size``.
        synthetic_path: EDM-style .npz (``image`` uint8 NHWC, ``label``), memory-mapped, or for an image
            folder a folder of class subfolders; needed when ``synthetic_ratio > 0``.
        synthetic_ratio: share of synthetic samples in an epoch and in every batch, in [0, 1).
        stylizer: called on each batch before any augmentation as ``stylizer(uint8 (N,3,H,W), is_synthetic (N,),
            source_index=(N,))`` (images on ``device`` as a channels_last view, flags and each sample's index
            in its source as CPU tensors); returns
            ``(uint8 images of the same shape, plan)`` with ``plan.chosen`` a (N,) CPU bool tensor of the
            samples it chose (``fastnst.Stylizer`` and its ``StylePlan``); None: no style transfer.
        augmentation: crop padding, TrivialAugmentWide, Random Erasing and "TAorStyle" per source
            (``train.config.Augmentation``, checked when made; a run's: ``Augmentation.from_config(config)``).
        device: "cpu" (CPU operators) or "cuda[:i]" (GPU decoding and operators, data kept on it,
            work queued on a side stream and handed over by event).
        rank, world_size: this process's shard (torchrun); an epoch covers the data once across ranks.
        seed: the batches and augmentations of epoch e are a function of (seed, e, rank).
        on_bad_image: what to do with an image file that does not decode. Every training file is decoded
            once before training (``jpeg_check``, verdicts cached beside the data), so DALI never sees a known
            bad file: "skip" (log it, count it in ``loader.num_skipped``, serve another image in its
            place) or "stop" (raise BadImageError naming the file, here, before any training step).
            A file that goes bad during training is found and handled the same way.
        max_steps_per_epoch: serve only each epoch's first N batches (timings, smoke tests); None: all of them.
        info: the data set's facts; an image folder's are its run's (``dataset_info(dataset, config)``).
    """
    if on_bad_image not in ("skip", "stop"):
        raise ValueError(f"--on-bad-image must be 'skip' or 'stop', got {on_bad_image!r}")
    if synthetic_ratio > 0 and synthetic_path is None:
        raise ValueError(f"--synthetic-ratio {synthetic_ratio} needs --synthetic FILE")
    info = info or dataset_info(dataset)
    real = load_train_source(dataset, data_root, info)
    synthetic = None
    if synthetic_path is not None and synthetic_ratio > 0:
        synthetic = ArraySource(*load_synthetic(
            synthetic_path, None if augmentation.train_crop == "random-resized" else info.image_size,
            info.num_classes, list(info.class_names) if info.class_names else None))
    sampler = MixedSampler(len(real), len(synthetic) if synthetic else 0, batch_size, synthetic_ratio,
                           rank=rank, world_size=world_size, seed=seed)
    loader = TrainLoader(dataset, real, synthetic, sampler, stylizer=stylizer, augmentation=augmentation,
                         device=device, seed=seed, on_bad_image=on_bad_image, max_steps=max_steps_per_epoch,
                         info=info)
    if isinstance(real, FileSource):
        # A full decode of every file before training (cached): DALI never meets a file no decoder can read, and
        # torchvision's decoders meet only JPEG files that libjpeg-turbo decoded without a warning.
        with rank_zero_first():
            bad, real.sizes = check_files(real.paths, loader.file_image_size, real.folder, f"{dataset} training images")
        if bad and on_bad_image == "stop":
            first = next(iter(bad))
            more = f" ({len(bad) - 1} more bad images; --on-bad-image skip trains without them)" if len(bad) > 1 else ""
            raise BadImageError(f"{bad[first]}{more}")
        for path, why in bad.items():
            loader.skip_bad_image(path, why)
    return loader
