"""Download helpers for users with a network: resumable (HTTP Range), checksum-verified, extracted atomically.

Nothing here runs at import or in tests against the internet (tests use a server on 127.0.0.1).
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from fastnst.train.data.errors import DataFormatError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Archive:
    url: str
    md5: str | None     # as published by the data set's authors
    provides: str       # the folder the archive extracts to, under data_root


ARCHIVES: dict[str, Archive] = {
    "cifar10": Archive("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                       "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py"),
    "cifar100": Archive("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                        "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python"),
    "tinyimagenet": Archive("http://cs231n.stanford.edu/tiny-imagenet-200.zip",
                            "90528d7ca1a48142e341f4ef8d21d0de", "tiny-imagenet-200"),
    "cifar10-c": Archive("https://zenodo.org/records/2535967/files/CIFAR-10-C.tar",
                         "56bf5dcef84df0e2308c6dcbcbbd8499", "CIFAR-10-C"),
    "cifar100-c": Archive("https://zenodo.org/records/3555552/files/CIFAR-100-C.tar",
                          "11f0ed0f1191edbf9fa23466ae6021d3", "CIFAR-100-C"),
    # No published checksum we could confirm; the download logs its sha256 for the user to compare.
    "tinyimagenet-c": Archive("https://zenodo.org/records/2536630/files/Tiny-ImageNet-C.tar", None, "Tiny-ImageNet-C"),
}


class ChecksumError(DataFormatError):
    """A downloaded file does not match its published checksum (it is deleted)."""


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, destination: str | Path, *, md5: str | None = None, sha256: str | None = None,
                  timeout: float = 60.0, chunk_size: int = 1 << 20) -> Path:
    """Fetch ``url`` to ``destination``, resuming a ``<destination>.part`` left by an interrupted run.

    The file appears under its final name only once complete and verified; a checksum mismatch
    deletes the partial file and raises ChecksumError.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416:  # 416: the partial file is already complete
            raise
        response = None
    if response is not None:
        with response:
            resumed = response.status == 206
            if have and not resumed:
                log.info("%s: server ignored the Range request; downloading from the start", url)
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(partial, "ab" if resumed else "wb") as f, \
                    tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=destination.name) as progress:
                while chunk := response.read(chunk_size):
                    f.write(chunk)
                    progress.update(len(chunk))
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is not None and (actual := file_digest(partial, algorithm)) != expected.lower():
            partial.unlink()
            raise ChecksumError(f"{destination}: {algorithm} {actual} does not match the published {expected} "
                                f"(downloaded from {url}); the file was deleted, try again")
    if md5 is None and sha256 is None:
        log.warning("%s: no published checksum to verify against; sha256 %s", destination,
                    file_digest(partial, "sha256"))
    os.replace(partial, destination)
    return destination


def _safe_members(names: list[str], archive: Path) -> None:
    for name in names:
        target = Path(name)
        if target.is_absolute() or ".." in target.parts:
            raise DataFormatError(f"{archive}: refuses to extract {name!r} outside the target folder")


def extract_archive(archive: str | Path, data_root: str | Path) -> list[Path]:
    """Extract a .tar[.gz] or .zip into ``data_root`` atomically: into a temporary folder beside the
    target first, then each top-level entry renamed into place, so a crash never leaves half a data set."""
    archive, data_root = Path(archive), Path(data_root)
    data_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".extract-{archive.name}.", dir=data_root))
    try:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as source:
                    _safe_members(source.namelist(), archive)
                    source.extractall(staging)
            else:
                with tarfile.open(archive) as source:
                    _safe_members(source.getnames(), archive)
                    source.extractall(staging, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
            raise DataFormatError(f"{archive}: cannot extract ({type(error).__name__}: {error})") from error
        placed = []
        for entry in sorted(staging.iterdir()):
            target = data_root / entry.name
            if target.exists():
                log.info("%s already exists; keeping it", target)
                continue
            os.replace(entry, target)
            placed.append(target)
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_dataset(name: str, data_root: str | Path, *, keep_archive: bool = False) -> Path:
    """Download and extract one of ``ARCHIVES`` into ``data_root``; returns the extracted folder."""
    if name not in ARCHIVES:
        raise ValueError(f"no download known for {name!r}; expected one of {', '.join(ARCHIVES)}")
    entry, data_root = ARCHIVES[name], Path(data_root)
    folder = data_root / entry.provides
    if folder.exists():
        return folder
    archive = download_file(entry.url, data_root / entry.url.rsplit("/", 1)[-1], md5=entry.md5)
    extract_archive(archive, data_root)
    if not folder.exists():
        raise DataFormatError(f"{archive}: extracted, but {folder} did not appear")
    if not keep_archive:
        archive.unlink()
    return folder


def main(argv: list[str] | None = None) -> None:
    """``python -m train.data.download NAME... --data-root DIR``"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m train.data.download",
                                     description="Download, verify and extract data sets into --data-root.")
    parser.add_argument("names", nargs="+", choices=sorted(ARCHIVES), metavar="NAME",
                        help=f"one or more of: {', '.join(ARCHIVES)}")
    parser.add_argument("--data-root", default="data", help="folder to extract into (default: data)")
    parser.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive after extracting")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in args.names:
        print(f"{name}: {download_dataset(name, args.data_root, keep_archive=args.keep_archive)}")


if __name__ == "__main__":
    main()
