"""Stylize a data set once, offline: every image K times, each with a random style and alpha.

    result = stylize_dataset(images, labels, "cache/edm-224", StylizeOptions(style_bank="styles.pt", ...))

``images``: any uint8 (N, H, W, 3) array, a memmap too; the command line is ``python -m train.stylize_cache``.
The peers are bethgelab's stylize-datasets and Stylized-ImageNet: the style transfer is paid once,
at full device efficiency, and training reads the results (``train.run --stylize-cache``).

Image i's variant k gets a style uniform over the bank and an alpha uniform in the source's range,
all drawn from ``seed`` first, and is made by ``fastnst.Stylizer.stylize``, the training path itself
(docs/stylizer.md, section 6). The output folder is ``fastnst.cache_format``'s; the work is done in
journaled chunks (``fastnst.cache_journal``): a killed run continues where it stopped.

Under torchrun (a process group started, e.g. by ``fastnst.distributed.setup``; each rank passes its
own device) the ranks share the chunks not yet done, round robin, and write them into the one output
folder; rank 0 creates it and publishes it. The draws are made from ``seed`` for the whole set before
the work starts, and a chunk is made of the same batches whoever makes it, so the files are the same
for any number of ranks (bit for bit on the CPU, ``tests/test_fastnst_stylize_dataset_distributed.py``),
and a killed run resumes with any number of ranks.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from fastnst import distributed
from fastnst.atomic import atomic_write, write_json_atomic
from fastnst.cache_format import (
    ALPHA_FILE, FORMAT_VERSION, IMAGES_FILE, LABELS_FILE, META_FILE, SOURCES, STYLE_INDEX_FILE,
    StylizeDatasetError, dataset_identity, partial_path, sha256_file,
)
from fastnst.cache_journal import Journal, identity_mismatches
from fastnst.resident import to_device
from fastnst.stylizer import PAPER_ALPHA_REAL, PAPER_ALPHA_SYNTHETIC, STYLIZE_PRECISION, build_stylizer
from fastnst.weights import seeded_initialisation

DEFAULT_VARIANTS = 4
DEFAULT_CHUNK_SIZE = 4096   # images per journaled chunk: a killed run loses at most one chunk of work
PAPER_ALPHA = {"synthetic": PAPER_ALPHA_SYNTHETIC, "real": PAPER_ALPHA_REAL}  # alpha range by source

# Test seam: called with the number of batches written so far in this run, after each batch reaches
# the image file and before its chunk is journaled (the resume test kills the process from here).
_batch_written_hook: Callable[[int], None] | None = None


@dataclass
class StylizeOptions:
    """Everything that decides the output, plus how the work is run (device, batch, chunk)."""

    style_bank: str                                  # fastnst.StyleBank file
    vgg: str | None = None                           # encoder weights; None: random (a warning says so)
    decoder: str | None = None                       # decoder weights; None: random
    source: str = "synthetic"                        # "synthetic" or "real": picks the default alpha range
    alpha: tuple[float, float] | None = None         # (low, high); None: the source's paper range
    variants: int = DEFAULT_VARIANTS                 # K stylized variants per image
    resolution: int | None = 224                     # stylization side in px; None: native size
    downsample: str = "bilinear"                     # resizing back to the image size (Stylizer's option)
    precision: str = "auto"                          # the networks' dtype: a STYLIZE_PRECISION name
    seed: int = 0
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    compile: bool = True                             # torch.compile the networks on CUDA
    batch_size: int | None = None                    # images per device batch; None: by device and resolution
    chunk_size: int = DEFAULT_CHUNK_SIZE             # images per journaled chunk (rounded to whole batches)
    max_chunks: int | None = None                    # stop after this many chunks in this call (resume later)
    progress: bool = True


@dataclass
class StylizeResult:
    path: Path                  # OUT when complete, OUT.partial when stopped early
    complete: bool
    images_stylized: int        # stylized images written by this call (image x variant), all ranks together
    seconds: float              # wall time of this call's stylization (until the slowest rank is done)
    meta: dict = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.images_stylized / self.seconds if self.seconds > 0 else 0.0


def default_batch_size(device: torch.device, resolution: int | None, image_size: int) -> int:
    """Images per device batch: large on CUDA (x K variants through the decoder), small on a CPU."""
    side = resolution or image_size
    if device.type == "cuda":
        return 128 if side >= 128 else 512
    return 4 if side >= 128 else 32


def _check_options(options: StylizeOptions) -> None:
    if options.source not in SOURCES:
        raise StylizeDatasetError(f"--source must be one of {', '.join(SOURCES)}, got {options.source!r}")
    if int(options.variants) < 1:
        raise StylizeDatasetError(f"--variants must be at least 1, got {options.variants}")
    if options.resolution is not None and int(options.resolution) < 8:
        raise StylizeDatasetError(f"--resolution must be 'native' or at least 8 px, got {options.resolution}")
    if options.precision not in STYLIZE_PRECISION:
        raise StylizeDatasetError(f"--stylize-precision must be one of {', '.join(STYLIZE_PRECISION)}, "
                                  f"got {options.precision!r}")
    if options.batch_size is not None and int(options.batch_size) < 1:
        raise StylizeDatasetError(f"--batch-size must be at least 1, got {options.batch_size}")
    if int(options.chunk_size) < 1:
        raise StylizeDatasetError(f"--chunk-size must be at least 1, got {options.chunk_size}")
    if options.max_chunks is not None and int(options.max_chunks) < 1:
        raise StylizeDatasetError(f"--max-chunks must be at least 1, got {options.max_chunks}")
    if options.alpha is not None:
        low, high = (float(v) for v in options.alpha)
        if not 0.0 <= low <= high <= 1.0:
            raise StylizeDatasetError(f"--alpha must be LOW HIGH with 0 <= LOW <= HIGH <= 1, got {options.alpha}")
    if not options.style_bank:
        raise StylizeDatasetError("--styles: a style bank file is needed (python -m fastnst.style_bank)")
    for flag, path in (("--styles", options.style_bank), ("--vgg", options.vgg), ("--decoder", options.decoder)):
        if path is not None and not Path(path).is_file():
            raise StylizeDatasetError(f"{flag} {path} does not exist or is not a file")


# ----------------------------------------------------------------------------------------- plan


def draw_variants(count: int, variants: int, num_styles: int, alpha_range: tuple[float, float],
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Style rows int32 (count, variants) uniform over the bank, alphas float32 uniform in the range."""
    rng = np.random.default_rng([int(seed), 12])  # 12: this tool's stream, apart from the trainer's
    style_index = rng.integers(0, num_styles, size=(count, variants), dtype=np.int64).astype(np.int32)
    low, high = (float(v) for v in alpha_range)
    alpha = (low + (high - low) * rng.random((count, variants))).astype(np.float32)
    return style_index, alpha


# ----------------------------------------------------------------------------------------- the work


def _build_stylizer(options: StylizeOptions, device: torch.device):
    # Random networks (no weight file) are seeded, so that a resumed run builds the same ones.
    with seeded_initialisation(options.seed):
        return build_stylizer(options.style_bank, options.vgg, options.decoder, device=device,
                              resolution=options.resolution, downsample=options.downsample,
                              compile=options.compile, seed=options.seed,
                              autocast_dtype=STYLIZE_PRECISION[options.precision])


class _Writer:
    """Device batches -> the image file. On CUDA, batch b's copy to the host overlaps batch b+1's work."""

    def __init__(self, target: np.ndarray, device: torch.device):
        self.target, self.device = target, device
        self.pending: list[tuple[slice, torch.Tensor, torch.cuda.Event | None]] = []

    def submit(self, rows: slice, stylized_nhwc: torch.Tensor) -> None:
        if self.device.type == "cuda":
            host = torch.empty(stylized_nhwc.shape, dtype=torch.uint8, pin_memory=True)
            host.copy_(stylized_nhwc, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self.pending.append((rows, host, done))
            if len(self.pending) > 1:  # the previous batch: its copy has had a whole batch of time
                self._write(*self.pending.pop(0))
        else:
            self._write(rows, stylized_nhwc, None)

    def _write(self, rows: slice, host: torch.Tensor, done) -> None:
        if done is not None:
            done.synchronize()
        target = self.target[rows]
        target[...] = host.numpy().reshape(target.shape)

    def drain(self) -> None:
        while self.pending:
            self._write(*self.pending.pop(0))


def _settings(options: StylizeOptions, stylizer, device: torch.device, batch_size: int, chunk_size: int) -> dict:
    """What decides the output bits (a resume must match all of it)."""
    on_cuda = device.type == "cuda"
    return {
        "source": options.source, "variants": int(options.variants), "seed": int(options.seed),
        "alpha": [float(v) for v in (options.alpha or PAPER_ALPHA[options.source])],
        "resolution": stylizer.resolution or "native", "downsample": stylizer.downsample,
        "device_type": device.type, "compute_dtype": str(stylizer.compute_dtype(device)),
        "compiled": bool(options.compile and on_cuda), "batch_size": int(batch_size), "chunk_size": int(chunk_size),
        "num_styles": len(stylizer.style_names),
        "style_bank_sha256": sha256_file(options.style_bank),
        "vgg_sha256": sha256_file(options.vgg) if options.vgg else None,
        "decoder_sha256": sha256_file(options.decoder) if options.decoder else None,
        # no file, or a `fastnst.weights --random` file (the loaders mark those networks)
        "random_weights": options.vgg is None or options.decoder is None
                          or any(getattr(net, "random_weights", False) for net in (stylizer.encoder, stylizer.decoder)),
    }


def _check_input(images, labels) -> None:
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) != 4 or shape[-1] != 3 or getattr(images, "dtype", None) != np.uint8:
        raise StylizeDatasetError(f"images must be a uint8 (N, H, W, 3) array, got "
                                  f"{getattr(images, 'dtype', type(images).__name__)} {shape}")
    if shape[0] == 0:
        raise StylizeDatasetError("the input holds no images")
    if np.asarray(labels).shape != (shape[0],):
        raise StylizeDatasetError(f"{shape[0]} images but labels of shape {np.asarray(labels).shape}")


def _create_files(folder: Path, images, labels, options: StylizeOptions, identity: dict) -> None:
    """The draws, the labels and an image file to fill, in a new work folder."""
    count, variants = len(images), int(options.variants)
    settings = identity["settings"]
    style_index, alpha = draw_variants(count, variants, settings["num_styles"], settings["alpha"], options.seed)
    for name, array in ((STYLE_INDEX_FILE, style_index), (ALPHA_FILE, alpha),
                        (LABELS_FILE, np.asarray(labels, dtype=np.int64))):
        with atomic_write(folder / name) as f:
            np.save(f, array)
    # The image file, filled chunk by chunk.
    np.lib.format.open_memmap(folder / IMAGES_FILE, mode="w+", dtype=np.uint8, shape=(count, variants, *images.shape[1:]))


def _stylize_chunks(stylizer, images, folder: Path, journal: Journal, chunks: list[int], chunk_size: int,
                    batch_size: int, variants: int, device: torch.device, bar) -> int:
    """Stylize ``chunks`` (indices of runs of whole batches) into the work folder, journaling each; returns
    the images written. Chunks are independent: any subset in any order, e.g. one rank's share, will do."""
    target = np.load(folder / IMAGES_FILE, mmap_mode="r+")
    style_index, alpha = np.load(folder / STYLE_INDEX_FILE), np.load(folder / ALPHA_FILE)
    writer = _Writer(target, device)
    batches_written, stylized = 0, 0
    for chunk in chunks:
        chunk_stop = min((chunk + 1) * chunk_size, len(images))
        for start in range(chunk * chunk_size, chunk_stop, batch_size):
            rows = slice(start, min(start + batch_size, chunk_stop))
            batch_images = to_device(images[rows], device).permute(0, 3, 1, 2)  # a channels_last view
            output = stylizer.stylize(batch_images, torch.from_numpy(style_index[rows].reshape(-1)).long(),
                                      torch.from_numpy(alpha[rows].reshape(-1)), variants=variants)
            writer.submit(rows, output.permute(0, 2, 3, 1).contiguous())
            batches_written += 1
            stylized += (rows.stop - rows.start) * variants
            bar.update((rows.stop - rows.start) * variants)
            if _batch_written_hook is not None:
                _batch_written_hook(batches_written)
        writer.drain()
        target.flush()  # msync: the chunk's pixels are on disk before the journal says so
        journal.mark_done(chunk)
    return stylized


def _already_complete(out: Path, identity: dict, quiet: bool = False) -> StylizeResult:
    meta_path = out / META_FILE
    if not meta_path.is_file():
        raise StylizeDatasetError(f"--out {out} exists and is not a stylized data set: choose another --out")
    recorded = json.loads(meta_path.read_text())
    differences = identity_mismatches({key: recorded.get(key) for key in identity}, identity)
    if differences:
        raise StylizeDatasetError(f"--out {out} already exists and was made differently ("
                                  + "; ".join(differences[:4]) + "): choose another --out or delete it")
    if not quiet:
        print(f"{out} is already complete with these settings; nothing to do")
    return StylizeResult(out, True, 0, 0.0, recorded)


def stylize_dataset(images: np.ndarray, labels: np.ndarray, out: str | os.PathLike, options: StylizeOptions,
                    input_info: dict | None = None) -> StylizeResult:
    """Stylize every image of ``images`` (uint8 (N, H, W, 3), e.g. a memmap) ``options.variants`` times into ``out``.

    ``input_info`` (e.g. the data set's name and file) is recorded in meta.json. Resumes a stopped
    run found at ``out`` + ".partial"; returns at once when ``out`` is already complete with the
    same input and settings; refuses an ``out`` made from another input or with other settings.
    In a process group every rank calls it with the same arguments but its own ``options.device``;
    ``max_chunks`` then counts each rank's chunks.
    """
    _check_input(images, labels)
    _check_options(options)
    out, partial = Path(out), partial_path(out)
    device = torch.device(options.device)
    ranks = distributed.current(device)
    image_size = int(images.shape[1])
    batch_size = int(options.batch_size or default_batch_size(device, options.resolution, image_size))
    chunk_size = -(-max(int(options.chunk_size), batch_size) // batch_size) * batch_size  # whole batches
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    stylizer = _build_stylizer(options, device)
    identity = {"format_version": FORMAT_VERSION, "dataset": dataset_identity(images, labels),
                "settings": _settings(options, stylizer, device, batch_size, chunk_size)}
    if out.exists():
        return _already_complete(out, identity, quiet=not ranks.is_main)

    count, variants = len(images), int(options.variants)
    num_chunks = -(-count // chunk_size)
    journal = _open_journal(partial, identity, num_chunks, images, labels, options, ranks)
    # Every rank takes rank 0's list of the chunks done, read before any rank works: the shares fit together.
    done = distributed.broadcast_object(sorted(journal.done) if ranks.is_main else None, ranks)
    todo = [chunk for chunk in range(num_chunks) if chunk not in done][ranks.rank::ranks.world_size]
    if options.max_chunks is not None:
        todo = todo[:int(options.max_chunks)]
    mine = sum(min(chunk_size, count - chunk * chunk_size) for chunk in todo) * variants
    if ranks.enabled:  # one bar, rank 0's share
        bar = tqdm(total=mine, unit="img", desc=f"stylizing (rank 0's share of {ranks.world_size})",
                   disable=not (options.progress and ranks.is_main), dynamic_ncols=True)
    else:
        done_images = sum(min(chunk_size, count - chunk * chunk_size) for chunk in done)
        bar = tqdm(total=count * variants, initial=done_images * variants, unit="img", desc="stylizing",
                   disable=not options.progress, dynamic_ncols=True)
    started = time.perf_counter()
    stylized_here = _stylize_chunks(stylizer, images, partial, journal, todo, chunk_size, batch_size, variants,
                                    device, bar)
    bar.close()
    # Summed over ranks; it also waits for the slowest, whose journal is then on disk.
    stylized = int(distributed.all_reduce_sum(torch.tensor([stylized_here], device=device), ranks).item())
    seconds = time.perf_counter() - started

    # Rank 0's reading, on every rank: another rank globbing the work folder could meet it renamed by publish.
    finished = distributed.broadcast_object(sorted(journal.done) if ranks.is_main else None, ranks)
    if len(finished) < num_chunks:
        if ranks.is_main:
            print(f"stopped after {len(todo)} chunk(s)" + (" per rank" if ranks.enabled else "")
                  + f" (--max-chunks): {len(finished)} of {num_chunks} done in {partial}; run the same command "
                  "again to continue")
        return StylizeResult(partial, False, stylized, seconds, journal.record)

    meta = None
    if ranks.is_main:
        meta = {**identity, "input": input_info or {},
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "style_bank": str(options.style_bank), "vgg": options.vgg, "decoder": options.decoder,
                "device": _device_name(device), "torch": torch.__version__, "python": platform.python_version(),
                "last_call": {"seconds": seconds, "stylized_images": stylized, "ranks": ranks.world_size,
                              "images_per_second": stylized / seconds if seconds > 0 else None}}
        write_json_atomic(partial / META_FILE, meta, indent=2)
        journal.publish(out)
    meta = distributed.broadcast_object(meta, ranks)  # the other ranks return once the output is published
    return StylizeResult(out, True, stylized, seconds, meta)


def _open_journal(partial: Path, identity: dict, num_chunks: int, images, labels, options: StylizeOptions,
                  ranks: distributed.DistInfo) -> Journal:
    """Start or resume the work folder: rank 0 first (it creates the files), then the others."""
    def start() -> Journal:
        return Journal.start_or_resume(
            partial, identity, num_chunks, lambda folder: _create_files(folder, images, labels, options, identity),
            own_files={IMAGES_FILE, STYLE_INDEX_FILE, ALPHA_FILE, LABELS_FILE}, rank=ranks.rank)

    journal = start() if ranks.is_main else None
    distributed.barrier(ranks)  # a refusal on rank 0 ends the run (torchrun stops the others waiting here)
    return journal or start()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
