"""Stylize a data set once, offline: every image K times, each with a random style and alpha.

    python -m fastnst.stylize_dataset --input edm_1m.npz --out cache/edm-224 --source synthetic \\
        --styles styles.pt --vgg vgg_normalised.pth --decoder decoder.pth --variants 4

The peers are bethgelab's stylize-datasets and Stylized-ImageNet: the style transfer is paid once,
at full device efficiency, and training reads the results (``train.run --stylize-cache``).

Work. Image i's variant k gets a style drawn uniformly from the bank (with replacement, as the
Stylizer draws them) and an alpha drawn uniformly from the source's range (``--source synthetic``:
the paper's (0.1, 1); ``real``: (1, 1); ``--alpha`` overrides), all from ``--seed`` before any
work starts. It is stylized by ``fastnst.Stylizer.stylize``, the training path itself: upsampled
to ``--resolution`` (224, the authors' setting, by default; ``native`` keeps the image size),
encoded once per image, decoded once per variant, resized back to the image size, clamped and
rounded to uint8. On CUDA: large batches, channels_last, bf16 autocast, compiled networks,
pinned host buffers and copies that overlap the next batch's work.

Output: a folder ``OUT/`` of plain .npy files, memory-mappable with ``np.load(mmap_mode="r")``
(``open_stylized_dataset`` does it and checks the folder):

    images.npy        uint8 (N, K, H, W, 3): variant k of image i
    style_index.npy   int32 (N, K): row of the style bank used
    alpha.npy         float32 (N, K): stylization strength used
    labels.npy        int64 (N,): the input's labels
    meta.json         settings, counts, sha256 of the weight files and the style bank, labels hash,
                      a fingerprint of the input pixels, timing

Resumable. The work is done in chunks of ``--chunk-size`` images inside ``OUT.partial/``; after
each chunk the image file is flushed to disk and a journal (``journal.json``, replaced atomically
and fsynced) records it. A killed run, started again with the same command, redoes only the
chunks the journal lacks (with other settings it refuses, naming them). Only when every chunk is
done is ``OUT.partial`` renamed to ``OUT``: nothing half-written ever carries the final name.

Inputs read here: an EDM-style .npz (``image`` uint8 NHWC, ``label``) or an image folder (one
subfolder per class, labels in sorted folder order, files found recursively; a TinyImageNet root
is read through its ``train/``). The training data sets in their own formats (CIFAR pickles,
TinyImageNet, the EDM sets, memory-mapped) go through ``python -m train.stylize_cache``, which
reads them exactly as the training loader does and calls ``stylize_dataset`` here: this package
never imports ``fastnst.train``. ``stylize_dataset()`` itself takes any uint8 (N, H, W, 3) array
and labels.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from fastnst.cli import (
    DefaultsHelpFormatter, UsageError, add_debug_flag, add_device_flag, program_name, run_cli, style_resolution,
)

FORMAT_VERSION = 1
IMAGES_FILE, STYLE_INDEX_FILE, ALPHA_FILE, LABELS_FILE = "images.npy", "style_index.npy", "alpha.npy", "labels.npy"
META_FILE, JOURNAL_FILE = "meta.json", "journal.json"
PARTIAL_SUFFIX = ".partial"
SOURCES = ("synthetic", "real")
DEFAULT_VARIANTS = 4
DEFAULT_CHUNK_SIZE = 4096   # images per journaled chunk: a killed run loses at most one chunk of work
FINGERPRINT_IMAGES = 256    # images hashed to tell one pixel set from another (cheap, order-sensitive)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

# Test seam: called with the number of batches written so far in this run, after each batch reaches
# the image file and before its chunk is journaled (the resume test kills the process from here).
_batch_written_hook: Callable[[int], None] | None = None


class StylizeDatasetError(UsageError):
    """Bad input or settings for stylize_dataset; the message names the file or flag."""


# ----------------------------------------------------------------------------------------- settings


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
    images_stylized: int        # stylized images written by this call (image x variant)
    seconds: float              # wall time of this call's stylization
    meta: dict = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.images_stylized / self.seconds if self.seconds > 0 else 0.0


def default_alpha(source: str) -> tuple[float, float]:
    from fastnst.stylizer import PAPER_ALPHA_REAL, PAPER_ALPHA_SYNTHETIC

    return PAPER_ALPHA_SYNTHETIC if source == "synthetic" else PAPER_ALPHA_REAL


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


# ----------------------------------------------------------------------------------------- hashes


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def labels_sha256(labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(labels, dtype="<i8").tobytes()).hexdigest()


def pixels_fingerprint(images: np.ndarray) -> str:
    """sha256 of up to 256 images spread over the set, with their indices: tells sets and orders apart."""
    count = len(images)
    picks = np.unique(np.linspace(0, count - 1, min(count, FINGERPRINT_IMAGES)).round().astype(np.int64))
    digest = hashlib.sha256(picks.astype("<i8").tobytes())
    for index in picks:
        digest.update(np.ascontiguousarray(images[int(index)]).tobytes())
    return digest.hexdigest()


def dataset_identity(images: np.ndarray, labels: np.ndarray) -> dict:
    """What a cache records of the images it was made from, to be matched against a data set later."""
    return {"count": int(len(images)), "image_shape": [int(v) for v in images.shape[1:]],
            "labels_sha256": labels_sha256(labels), "pixels_sha256": pixels_fingerprint(images)}


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def identity_mismatches(recorded: dict, current: dict) -> list[str]:
    """``settings.variants: recorded 2, now 3`` for every (nested) key whose value differs."""
    recorded, current = _flatten(recorded), _flatten(current)
    return [f"{key}: recorded {recorded.get(key)!r}, now {current.get(key)!r}"
            for key in sorted(set(recorded) | set(current)) if recorded.get(key) != current.get(key)]


# ----------------------------------------------------------------------------------------- plan


def draw_variants(count: int, variants: int, num_styles: int, alpha_range: tuple[float, float],
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Style rows int32 (count, variants) uniform over the bank, alphas float32 uniform in the range."""
    rng = np.random.default_rng([int(seed), 12])  # 12: this tool's stream, apart from the trainer's
    style_index = rng.integers(0, num_styles, size=(count, variants), dtype=np.int64).astype(np.int32)
    low, high = (float(v) for v in alpha_range)
    alpha = (low + (high - low) * rng.random((count, variants))).astype(np.float32)
    return style_index, alpha


# ----------------------------------------------------------------------------------------- files


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())


def partial_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


# ----------------------------------------------------------------------------------------- reading


@dataclass
class StylizedDataset:
    """A finished ``stylize_dataset`` folder, memory-mapped read-only."""

    path: Path
    images: np.ndarray       # uint8 (N, K, H, W, 3)
    style_index: np.ndarray  # int32 (N, K)
    alpha: np.ndarray        # float32 (N, K)
    labels: np.ndarray       # int64 (N,)
    meta: dict

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def variants(self) -> int:
        return int(self.images.shape[1])

    def mismatches(self, images: np.ndarray, labels: np.ndarray) -> list[str]:
        """How this cache differs from the data set ``images``/``labels`` (count, size, labels, pixels)."""
        recorded = self.meta["dataset"]
        differences = []
        if recorded["count"] != len(images):
            differences.append(f"count: cache {recorded['count']} images, data set {len(images)}")
        elif list(images.shape[1:]) != recorded["image_shape"]:
            differences.append(f"image size: cache {recorded['image_shape']}, data set {list(images.shape[1:])}")
        else:
            if labels_sha256(labels) != recorded["labels_sha256"]:
                differing = int((np.asarray(self.labels) != np.asarray(labels)).sum())
                differences.append(f"labels: {differing} of {len(labels)} differ")
            if pixels_fingerprint(images) != recorded["pixels_sha256"]:
                differences.append("pixels: the images (or their order) are not the ones the cache was made from")
        return differences


def open_stylized_dataset(path: str | os.PathLike) -> StylizedDataset:
    """Open a finished cache folder; a clear error for a missing, incomplete or foreign folder."""
    path = Path(path)
    if not path.is_dir():
        if partial_path(path).is_dir():
            raise StylizeDatasetError(f"stylized data set {path} is incomplete ({partial_path(path)} holds a "
                                      "stopped run): run the same stylize_dataset command again to finish it")
        raise StylizeDatasetError(f"stylized data set {path} does not exist (make one with python -m "
                                  "fastnst.stylize_dataset or python -m train.stylize_cache)")
    names = (META_FILE, IMAGES_FILE, STYLE_INDEX_FILE, ALPHA_FILE, LABELS_FILE)
    missing = [name for name in names if not (path / name).is_file()]
    if missing:
        raise StylizeDatasetError(f"{path} lacks {', '.join(missing)}: not a stylized data set")
    try:
        meta = json.loads((path / META_FILE).read_text())
        images = np.load(path / IMAGES_FILE, mmap_mode="r")
        style_index = np.load(path / STYLE_INDEX_FILE)
        alpha = np.load(path / ALPHA_FILE)
        labels = np.load(path / LABELS_FILE)
    except (ValueError, OSError) as error:
        raise StylizeDatasetError(f"{path}: could not be read ({error})") from error
    if meta.get("format_version") != FORMAT_VERSION:
        raise StylizeDatasetError(f"{path}: format version {meta.get('format_version')}, this fastnst reads "
                                  f"{FORMAT_VERSION}")
    count, variants = len(labels), int(meta["settings"]["variants"])
    if images.dtype != np.uint8 or images.ndim != 5 or images.shape[:2] != (count, variants) \
            or style_index.shape != (count, variants) or alpha.shape != (count, variants):
        raise StylizeDatasetError(f"{path}: inconsistent files (images {images.dtype} {images.shape}, style_index "
                                  f"{style_index.shape}, alpha {alpha.shape}, {count} labels, {variants} variants)")
    return StylizedDataset(path, images, style_index, alpha, labels, meta)


# ----------------------------------------------------------------------------------------- the work


def _build_stylizer(options: StylizeOptions, device: torch.device):
    from fastnst.stylizer import build_stylizer

    # Random networks (no weight file) are seeded, so that a resumed run builds the same ones.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        return build_stylizer(options.style_bank, options.vgg, options.decoder, device=device,
                              resolution=options.resolution, downsample=options.downsample,
                              compile=options.compile, seed=options.seed)


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


def _to_device(host_nhwc: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 NHWC host rows -> (B, 3, H, W) channels_last view on ``device`` (async from pinned memory)."""
    images = torch.from_numpy(np.require(host_nhwc, requirements=["C", "W"]))  # a read-only memmap is copied
    if device.type == "cuda":
        images = images.pin_memory().to(device, non_blocking=True)
    return images.permute(0, 3, 1, 2)


def _settings(options: StylizeOptions, stylizer, device: torch.device, batch_size: int, chunk_size: int) -> dict:
    """What decides the output bits (a resume must match all of it)."""
    on_cuda = device.type == "cuda"
    return {
        "source": options.source, "variants": int(options.variants), "seed": int(options.seed),
        "alpha": [float(v) for v in (options.alpha or default_alpha(options.source))],
        "resolution": stylizer.resolution or "native", "downsample": stylizer.downsample,
        "device_type": device.type, "compute_dtype": str(stylizer.autocast_dtype if on_cuda else torch.float32),
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


def _start_or_resume(partial: Path, out: Path, identity: dict, images, labels, options, num_styles,
                     num_chunks: int) -> tuple[np.ndarray, dict]:
    """The image file (open for writing) and the journal of ``OUT.partial``, new or continued."""
    journal_path = partial / JOURNAL_FILE
    if partial.is_dir() and not journal_path.is_file():
        ours = {IMAGES_FILE, STYLE_INDEX_FILE, ALPHA_FILE, LABELS_FILE, f".{JOURNAL_FILE}.tmp"}
        foreign = sorted(p.name for p in partial.iterdir() if p.name not in ours)
        if foreign:
            raise StylizeDatasetError(f"{partial} exists and holds files this tool did not write ({', '.join(foreign[:3])})"
                                      ": move it away or choose another --out")
        shutil.rmtree(partial)  # a run killed while creating its files: nothing of it is done yet
    if partial.is_dir():
        journal = json.loads(journal_path.read_text())
        differences = identity_mismatches(journal["identity"], identity)
        if differences:
            raise StylizeDatasetError(f"{partial} holds a stopped run with other settings or input ("
                                      + "; ".join(differences) + f"): rerun with its settings, or delete {partial}")
        return np.load(partial / IMAGES_FILE, mmap_mode="r+"), journal
    partial.mkdir(parents=True)
    count, variants = len(images), int(options.variants)
    style_index, alpha = draw_variants(count, variants, num_styles, identity["settings"]["alpha"], options.seed)
    _save_npy(partial / STYLE_INDEX_FILE, style_index)
    _save_npy(partial / ALPHA_FILE, alpha)
    _save_npy(partial / LABELS_FILE, np.asarray(labels, dtype=np.int64))
    target = np.lib.format.open_memmap(partial / IMAGES_FILE, mode="w+", dtype=np.uint8,
                                       shape=(count, variants, *images.shape[1:]))
    journal = {"format_version": FORMAT_VERSION, "identity": identity, "num_chunks": num_chunks, "done": []}
    _write_json_atomic(journal_path, journal)  # last: its presence says the files above are complete
    return target, journal


def stylize_dataset(images: np.ndarray, labels: np.ndarray, out: str | os.PathLike, options: StylizeOptions,
                    input_info: dict | None = None) -> StylizeResult:
    """Stylize every image of ``images`` (uint8 (N, H, W, 3), e.g. a memmap) ``options.variants`` times into ``out``.

    ``input_info`` (e.g. the data set's name and file) is recorded in meta.json. Resumes a stopped
    run found at ``out`` + ".partial"; returns at once when ``out`` is already complete with the
    same input and settings; refuses an ``out`` made from another input or with other settings.
    """
    _check_input(images, labels)
    _check_options(options)
    out, partial = Path(out), partial_path(out)
    device = torch.device(options.device)
    image_size = int(images.shape[1])
    batch_size = int(options.batch_size or default_batch_size(device, options.resolution, image_size))
    chunk_size = -(-max(int(options.chunk_size), batch_size) // batch_size) * batch_size  # whole batches
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    stylizer = _build_stylizer(options, device)
    identity = {"format_version": FORMAT_VERSION, "dataset": dataset_identity(images, labels),
                "settings": _settings(options, stylizer, device, batch_size, chunk_size)}

    if out.exists():
        meta_path = out / META_FILE
        if not meta_path.is_file():
            raise StylizeDatasetError(f"--out {out} exists and is not a stylized data set: choose another --out")
        recorded = json.loads(meta_path.read_text())
        differences = identity_mismatches({key: recorded.get(key) for key in identity}, identity)
        if differences:
            raise StylizeDatasetError(f"--out {out} already exists and was made differently ("
                                      + "; ".join(differences[:4]) + "): choose another --out or delete it")
        print(f"{out} is already complete with these settings; nothing to do")
        return StylizeResult(out, True, 0, 0.0, recorded)

    count, variants = len(images), int(options.variants)
    num_chunks = -(-count // chunk_size)
    target, journal = _start_or_resume(partial, out, identity, images, labels, options,
                                       len(stylizer.style_names), num_chunks)
    style_index = np.load(partial / STYLE_INDEX_FILE)
    alpha = np.load(partial / ALPHA_FILE)
    done = set(journal["done"])
    todo = [chunk for chunk in range(num_chunks) if chunk not in done]
    if options.max_chunks is not None:
        todo = todo[:int(options.max_chunks)]

    writer = _Writer(target, device)
    done_images = sum(min(chunk_size, count - chunk * chunk_size) for chunk in done)
    bar = tqdm(total=count * variants, initial=done_images * variants, unit="img", desc="stylizing",
               disable=not options.progress, dynamic_ncols=True)
    batches_written, stylized_here = 0, 0
    started = time.perf_counter()
    for chunk in todo:
        chunk_stop = min((chunk + 1) * chunk_size, count)
        for start in range(chunk * chunk_size, chunk_stop, batch_size):
            rows = slice(start, min(start + batch_size, chunk_stop))
            batch_images = _to_device(images[rows], device)
            stylized = stylizer.stylize(batch_images, torch.from_numpy(style_index[rows].reshape(-1)).long(),
                                        torch.from_numpy(alpha[rows].reshape(-1)), variants=variants)
            writer.submit(rows, stylized.permute(0, 2, 3, 1).contiguous())
            batches_written += 1
            stylized_here += (rows.stop - rows.start) * variants
            bar.update((rows.stop - rows.start) * variants)
            if _batch_written_hook is not None:
                _batch_written_hook(batches_written)
        writer.drain()
        target.flush()  # msync: the chunk's pixels are on disk before the journal says so
        journal["done"] = sorted(done | {chunk})
        done.add(chunk)
        _write_json_atomic(partial / JOURNAL_FILE, journal)
    seconds = time.perf_counter() - started
    bar.close()
    del target

    if len(done) < num_chunks:
        print(f"stopped after {len(todo)} chunk(s) (--max-chunks): {len(done)} of {num_chunks} done in {partial}; "
              "run the same command again to continue")
        return StylizeResult(partial, False, stylized_here, seconds, journal)

    meta = {**identity, "input": input_info or {},
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "style_bank": str(options.style_bank), "vgg": options.vgg, "decoder": options.decoder,
            "device": _device_name(device), "torch": torch.__version__, "python": platform.python_version(),
            "last_call": {"seconds": seconds, "stylized_images": stylized_here,
                          "images_per_second": stylized_here / seconds if seconds > 0 else None}}
    _write_json_atomic(partial / META_FILE, meta)
    os.replace(partial, out)  # the journal goes along: a kill before its removal leaves a harmless extra file
    _fsync_dir(out.parent)
    (out / JOURNAL_FILE).unlink()
    return StylizeResult(out, True, stylized_here, seconds, meta)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


# ----------------------------------------------------------------------------------------- generic inputs


def _looks_like_cifar(folder: Path) -> bool:
    return (folder / "data_batch_1").is_file() or ((folder / "train").is_file() and (folder / "meta").is_file())


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An EDM-style .npz: ``image`` uint8 (N, H, W, 3) and ``label`` (N,)."""
    try:
        with np.load(path) as archive:
            missing = [key for key in ("image", "label") if key not in archive.files]
            if missing:
                raise StylizeDatasetError(f"--input {path}: no array {' or '.join(map(repr, missing))} (an EDM-style "
                                          f".npz holds 'image' uint8 NHWC and 'label'; it has {archive.files})")
            return archive["image"], np.asarray(archive["label"]).astype(np.int64).reshape(-1)
    except (OSError, ValueError) as error:
        if isinstance(error, StylizeDatasetError):
            raise
        raise StylizeDatasetError(f"--input {path}: not a readable .npz ({error})") from error


def read_image_folder(folder: Path, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One subfolder per class (sorted names -> labels 0..C-1, files found recursively), or a flat
    folder of images (labels -1). Every image must have the same size."""
    from PIL import Image

    if (folder / "wnids.txt").is_file() and (folder / "train").is_dir():
        folder = folder / "train"  # a TinyImageNet root: its training images
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if classes:
        groups = [(label, sorted(p for p in c.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
                  for label, c in enumerate(classes)]
    else:
        groups = [(-1, sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))]
    paths = [(label, path) for label, files in groups for path in files]
    if not paths:
        raise StylizeDatasetError(f"--input {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    images, labels, first_size = None, np.empty(len(paths), dtype=np.int64), None
    for i, (label, path) in enumerate(tqdm(paths, desc="reading images", unit="img", leave=False,
                                                     disable=not progress)):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except Exception as error:  # PIL raises many types for broken files
            raise StylizeDatasetError(f"--input: cannot decode {path} ({error})") from error
        if images is None:
            first_size = pixels.shape
            images = np.empty((len(paths), *pixels.shape), dtype=np.uint8)
        elif pixels.shape != first_size:
            raise StylizeDatasetError(f"--input: {path} is {pixels.shape[1]}x{pixels.shape[0]}, the first image "
                                      f"{first_size[1]}x{first_size[0]}; resize the folder to one size first")
        images[i], labels[i] = pixels, label
    return images, labels


def read_input(path: str | os.PathLike, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``--input``: an EDM-style .npz or an image folder -> (uint8 NHWC, int64 labels)."""
    path = Path(path)
    if not path.exists():
        raise StylizeDatasetError(f"--input {path} does not exist")
    if path.is_file():
        if path.suffix != ".npz":
            raise StylizeDatasetError(f"--input {path}: expected an .npz file or an image folder")
        return read_npz(path)
    if _looks_like_cifar(path):
        raise StylizeDatasetError(
            f"--input {path} is a CIFAR python-pickle folder: stylize it with python -m train.stylize_cache "
            f"--dataset cifar10|cifar100 --data-root {path.parent} (it reads the training formats)")
    return read_image_folder(path, progress)


# ----------------------------------------------------------------------------------------- command line


def _resolution(text: str) -> int | None:
    side = style_resolution(text)
    return None if side == "native" else side


def add_work_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared with ``python -m train.stylize_cache``: output, variants, seed and how to run."""
    add = parser.add_argument
    add("--out", required=True, type=Path, help="output folder (written as OUT.partial, renamed when complete)")
    add("--variants", type=int, default=DEFAULT_VARIANTS, metavar="K", help="stylized variants per image")
    add("--seed", type=int, default=0, help="seed of the style and alpha draws")
    add("--downsample", choices=["bilinear", "area"], default="bilinear",
        help="resizing back to the image size (bilinear: the authors')")
    add_device_flag(parser)
    add("--compile", action=argparse.BooleanOptionalAction, default=True, help="torch.compile the networks on CUDA")
    add("--batch-size", type=int, default=None, help="images per device batch (default: 128 on CUDA at >= 128 px, "
        "512 below; 4 / 32 on a CPU)")
    add("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="images per journaled (resumable) chunk")
    add("--max-chunks", type=int, default=None, help="stop after this many chunks; run again to continue")
    add("--no-progress", action="store_true", help="no progress bar")


def report(result: StylizeResult) -> None:
    if result.complete and result.images_stylized:
        settings = result.meta["settings"]
        resolution = settings["resolution"]
        total = result.meta["dataset"]["count"] * settings["variants"]
        # After a resume this call made only part of the set: say so, or the time and img/s read as the whole set's.
        resumed = "" if result.images_stylized == total else (
            f" (resumed: {result.images_stylized} of the {total} stylized images made by this call)")
        print(f"stylized {result.meta['dataset']['count']} images x {settings['variants']} variants at "
              f"{resolution if resolution == 'native' else f'{resolution} px'}{resumed} in {result.seconds:.1f} s: "
              f"{result.images_per_second:.1f} img/s ({result.meta['device']}); wrote {result.path}")
    elif result.images_stylized:
        print(f"{result.images_stylized} stylized images in {result.seconds:.1f} s: "
              f"{result.images_per_second:.1f} img/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=program_name("fastnst.stylize_dataset"), description=__doc__.split("\n\n")[0],
                                     formatter_class=DefaultsHelpFormatter)
    add = parser.add_argument
    add("--input", required=True, type=Path, help="EDM-style .npz (image, label) or an image folder "
        "(class subfolders); CIFAR pickles and the training sets: python -m train.stylize_cache")
    add("--styles", required=True, help="style bank file (python -m fastnst.style_bank)")
    add("--vgg", default=None, help="vgg_normalised.pth (omitted: random weights, a warning says so)")
    add("--decoder", default=None, help="AdaIN decoder.pth (omitted: random weights)")
    add("--source", choices=SOURCES, default="synthetic", help="picks the alpha range: synthetic U(0.1, 1), real 1")
    add("--alpha", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None, help="alpha range (overrides --source's)")
    add("--resolution", type=_resolution, default=224, metavar="PX|native", help="stylization side")
    add_work_arguments(parser)
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    options = options_from_args(args, style_bank=args.styles, vgg=args.vgg, decoder=args.decoder,
                                source=args.source, alpha=args.alpha, resolution=args.resolution)
    images, labels = read_input(args.input, progress=not args.no_progress)
    result = stylize_dataset(images, labels, args.out, options, input_info={"path": str(args.input)})
    report(result)
    return 0


def cli(argv: list[str] | None = None) -> int:
    """Errors a user can cause (bad input, a bank or weight file that is not one) are one line, exit 2."""
    return run_cli(main, argv, prog=program_name("fastnst.stylize_dataset"))


def options_from_args(args: argparse.Namespace, **stylization) -> StylizeOptions:
    """``StylizeOptions`` from ``add_work_arguments``' flags plus the stylization settings given."""
    return StylizeOptions(**stylization, variants=args.variants, seed=args.seed, downsample=args.downsample,
                          device=args.device, compile=args.compile, batch_size=args.batch_size,
                          chunk_size=args.chunk_size, max_chunks=args.max_chunks, progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(cli())
