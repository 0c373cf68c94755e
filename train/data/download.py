"""``python -m train.data.download``: fetch, verify and put in place what the paper's runs read.

    python -m train.data.download --list --data-root data      # the table (train/data/manifest.py), what is there
    python -m train.data.download --for cifar10 --data-root data   # everything a CIFAR-10 run reads (~8 GB)
    python -m train.data.download --all --data-root data       # every downloadable item (~27 GB)
    python -m train.data.download cifar10 adain-vgg --data-root data   # single items

How a file is fetched:

* Resumable: bytes go to ``<name>.part``; an interrupted run leaves that file and the next run asks
  the server for the rest (HTTP Range), or starts over when the server ignores the Range header.
  A ``.part`` file is the only partial thing ever left behind and nothing reads it: delete it to
  start from scratch. A file never appears under its final name until it is complete and verified.
* Verified: size and checksums of the manifest (and, for Zenodo and Hugging Face files, the
  distributor's checksum read from their API); a mismatch deletes the download. Every fetched
  file's sha256 is logged and appended to ``DATA_ROOT/download-log.jsonl``.
* Mirrors: the manifest's other URLs are tried when one cannot be reached.
* Extracted atomically: into a staging folder beside the target, then each top-level entry is
  renamed into place, so a crash never leaves half a data set.
* Errors a user can meet (no network, HTTP errors, a bad checksum, a full disk) are one line naming
  the file, the URL and the reason; the exit status is then 2.

Nothing here runs at import or in tests against the internet (tests use a server on 127.0.0.1).
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from fastnst.atomic import replace_durably
from fastnst.cli import add_debug_flag, program_name, run_cli
from fastnst.train.data import manifest
from fastnst.train.data.errors import DataFormatError, MissingDataError
from fastnst.train.data.manifest import Checksum, ChecksumApi, Item, RemoteFile

log = logging.getLogger(__name__)

DOWNLOAD_LOG = "download-log.jsonl"
_SHOW_PROGRESS_FROM = 32 << 20  # bytes: smaller files are fetched and hashed without a progress bar
# tarfile's "data" filter (no links out of the folder, no devices) where Python has it (3.11.4+, 3.12); on older
# 3.11 the member names are still checked (_safe_members).
TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


class DownloadError(MissingDataError):
    """A file could not be fetched (no network, an HTTP error, a full disk); names the file, URL and reason."""


class ChecksumError(DataFormatError):
    """A downloaded file does not match its published size or checksum (it is deleted)."""


# ----------------------------------------------------------------------------- checksums

def file_digests(path: str | Path, algorithms) -> dict[str, str]:
    """Hex digests of ``path`` for each of ``algorithms`` ("md5", "sha256", "git-blob-sha1"), in one read."""
    path = Path(path)
    size = path.stat().st_size
    hashers = {}
    for algorithm in set(algorithms):
        if algorithm == "git-blob-sha1":  # the object id git gives this file's bytes
            hashers[algorithm] = hashlib.sha1(b"blob %d\0" % size)
        else:
            hashers[algorithm] = hashlib.new(algorithm)
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, desc=f"checking {path.name}",
                                     disable=size < _SHOW_PROGRESS_FROM, leave=False) as progress:
        while chunk := f.read(1 << 22):
            for hasher in hashers.values():
                hasher.update(chunk)
            progress.update(len(chunk))
    return {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def file_digest(path: str | Path, algorithm: str) -> str:
    return file_digests(path, [algorithm])[algorithm]


def verify(path: Path, *, name: str, url: str, size: int | None = None,
           checksums: tuple[Checksum, ...] = ()) -> dict[str, str]:
    """Check size and checksums; a failed binding check deletes ``path`` and raises ChecksumError.

    Binding: the official checksums, or, where there is none, the third-party ones. Anything else
    (third-party next to an official one, cross-checks) only logs a warning when it disagrees.
    """
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        path.unlink()
        raise ChecksumError(f"{name}: {actual_size} bytes, but {url} is published as {size} bytes; "
                            f"the download was deleted, run the command again")
    digests = file_digests(path, {c.algorithm for c in checksums} | {"sha256"})
    binding = [c for c in checksums if c.role == "official"] or [c for c in checksums if c.role == "third-party"]
    for check in binding:
        if digests[check.algorithm] != check.value.lower():
            path.unlink()
            raise ChecksumError(f"{name}: {check.algorithm} {digests[check.algorithm]} does not match the "
                                f"{check.role} {check.value} ({check.source}), downloaded from {url}; "
                                f"the download was deleted, run the command again")
    for check in checksums:
        if check not in binding and digests[check.algorithm] != check.value.lower():
            log.warning("%s: %s %s differs from %s (%s, %s); the binding checksum matched, so the file is kept",
                        name, check.algorithm, digests[check.algorithm], check.value, check.role, check.source)
    if binding:
        log.info("%s: verified (%s)", name, ", ".join(f"{c.algorithm} {c.role}" for c in binding))
    else:
        log.warning("%s: no published checksum to verify against; its sha256 is %s", name, digests["sha256"])
    return digests


def read_published_checksum(api: ChecksumApi, timeout: float = 60.0) -> tuple[Checksum | None, int | None]:
    """The distributor's checksum and size of one file from the Zenodo or Hugging Face API; (None, None) on failure."""
    try:
        request = urllib.request.Request(api.url, headers={"Accept": "application/json", "User-Agent": "fastnst"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.load(response)
        if api.kind == "zenodo":
            files = payload["files"]
            if isinstance(files, dict):  # the /files endpoint's {"entries": [...]} form
                files = files.get("entries", files)
            entries = files.values() if isinstance(files, dict) else files
            entry = next(e for e in entries if (e.get("key") or e.get("filename")) == api.key)
            algorithm, _, value = entry["checksum"].partition(":")
            return Checksum(algorithm, value, "official", f"Zenodo API {api.url}"), entry.get("size")
        entry = next(e for e in payload if e.get("path") == api.key)  # huggingface tree listing
        lfs = entry["lfs"]
        return Checksum("sha256", lfs.get("oid") or lfs["sha256"], "official",
                        f"Hugging Face LFS, {api.url}"), lfs.get("size", entry.get("size"))
    except StopIteration:
        reason = f"{api.key} is not listed there"
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError, KeyError, TypeError,
            AttributeError) as error:
        reason = _reason(error)
    log.warning("%s: could not read the published checksum from %s (%s); its sha256 will be logged instead",
                api.key, api.url, reason)
    return None, None


# ----------------------------------------------------------------------------- transfer

class _TransferFailed(Exception):
    """One URL failed; the message is the reason, for the one-line error."""


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        if not isinstance(error.reason, BaseException):
            return str(error.reason)
        error = error.reason
    text = str(error) or type(error).__name__
    return text if isinstance(error, OSError) else f"{type(error).__name__}: {text}"


def _transfer(url: str, partial: Path, *, label: str, timeout: float, chunk_size: int) -> None:
    """Append the rest of ``url`` to ``partial`` (from the start if the server ignores Range)."""
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": "fastnst-download"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and have:  # nothing left to send: the partial file is complete (verified next)
            return
        raise _TransferFailed(_reason(error)) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise _TransferFailed(_reason(error)) from None
    with response:
        resumed = have > 0 and response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            raise _TransferFailed(f"answered the Range request with {response.headers.get('Content-Range')!r}")
        if have and not resumed:
            log.info("%s: %s ignored the Range request; downloading from the start", label, url)
            have = 0
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        received = have
        try:
            with open(partial, "ab" if resumed else "wb") as f, \
                    tqdm(total=expected, initial=have, unit="B", unit_scale=True, desc=label,
                         disable=(expected or 0) < _SHOW_PROGRESS_FROM) as progress:
                while chunk := response.read(chunk_size):
                    f.write(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:  # reset, timeout, disk full mid-transfer
            raise _TransferFailed(_reason(error)) from None
    if expected is not None and received < expected:
        raise _TransferFailed(f"the connection closed after {received} of {expected} bytes")


def _check_free_space(folder: Path, needed: int | None, label: str) -> None:
    if needed is None or needed <= 0:
        return
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DownloadError(f"{label}: needs {_human(needed)} free in {folder}, which has {_human(free)}")


def download_file(urls: str | tuple[str, ...] | list[str], destination: str | Path, *, size: int | None = None,
                  checksums: tuple[Checksum, ...] = (), md5: str | None = None, sha256: str | None = None,
                  extra_space: int = 0, timeout: float = 60.0, chunk_size: int = 1 << 20,
                  record: Path | None = None) -> Path:
    """Fetch the first reachable of ``urls`` to ``destination`` via ``<destination>.part``, resuming it.

    The file appears under its final name only once complete and verified (``verify``). ``md5`` /
    ``sha256`` are shorthands for official checksums. ``extra_space``: bytes needed beyond the download
    (an archive's extraction). A destination that already exists is verified, not fetched again.
    """
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    checksums = tuple(checksums) + tuple(Checksum(algorithm, value, "official", "given")
                                         for algorithm, value in (("md5", md5), ("sha256", sha256)) if value)
    destination = Path(destination)
    new_folders = _missing_folders(destination.parent)  # removed again if nothing lands in them
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists():
        verify(destination, name=str(destination), url=urls[0], size=size, checksums=checksums)
        return destination
    partial = destination.with_name(destination.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    _check_free_space(destination.parent, (size - have if size is not None else 0) + extra_space, str(destination))
    failures = []
    for url in urls:
        try:
            _transfer(url, partial, label=destination.name, timeout=timeout, chunk_size=chunk_size)
            break
        except _TransferFailed as failure:
            failures.append((url, str(failure)))
    else:
        kept = partial.exists() and partial.stat().st_size > 0
        if partial.exists() and not kept:
            partial.unlink()
        if not kept:
            _remove_empty(new_folders)
        if len(failures) == 1:
            message = f"{destination.name}: could not download {failures[0][0]}: {failures[0][1]}"
        else:
            tried = "; ".join(f"{url} ({reason})" for url, reason in failures)
            message = f"{destination.name}: could not download from any of {len(failures)} URLs: {tried}"
        if kept:
            message += (f"; the {partial.stat().st_size} bytes received are kept in {partial} and the same "
                        f"command resumes them")
        raise DownloadError(message)
    url = urls[len(failures)]
    digests = verify(partial, name=str(destination), url=url, size=size, checksums=checksums)
    replace_durably(partial, destination)
    if record is not None:
        with open(record, "a") as f:
            f.write(json.dumps({"file": str(destination), "url": url, "bytes": destination.stat().st_size,
                                "sha256": digests["sha256"], "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                "verified_with": [f"{c.algorithm} {c.role} ({c.source})" for c in checksums]}) + "\n")
    return destination


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; stop at the first that holds something
        try:
            folder.rmdir()
        except OSError:
            return


# ----------------------------------------------------------------------------- extraction

def _safe_members(names: list[str], archive: Path) -> None:
    for name in names:
        target = Path(name)
        if target.is_absolute() or ".." in target.parts:
            raise DataFormatError(f"{archive}: refuses to extract {name!r} outside the target folder")


def extract_archive(archive: str | Path, data_root: str | Path, merge_into: str | None = None) -> list[Path]:
    """Extract a .tar[.gz] or .zip into ``data_root`` atomically: into a staging folder beside the target,
    then each top-level entry renamed into place (an existing entry is kept), so a crash never leaves
    half a data set. ``merge_into``: put the top-level entries into ``data_root/merge_into`` instead (an
    archive of that folder's name is unwrapped first), for an add-on archive of an extracted set."""
    archive, data_root = Path(archive), Path(data_root)
    data_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".extract-{archive.name}.", dir=data_root))
    try:
        show = archive.stat().st_size >= _SHOW_PROGRESS_FROM
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as source:
                    _safe_members(source.namelist(), archive)
                    for member in tqdm(source.infolist(), desc=f"extracting {archive.name}", disable=not show):
                        source.extract(member, staging)
            else:
                with tarfile.open(archive) as source:
                    _safe_members(source.getnames(), archive)
                    for member in tqdm(source.getmembers(), desc=f"extracting {archive.name}", disable=not show):
                        source.extract(member, staging, **TAR_FILTER)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
            raise DataFormatError(f"{archive}: cannot extract ({type(error).__name__}: {error})") from error
        source_folder, destination = staging, data_root
        if merge_into is not None:
            destination = data_root / merge_into
            destination.mkdir(parents=True, exist_ok=True)
            entries = list(staging.iterdir())
            if len(entries) == 1 and entries[0].is_dir() and entries[0].name == destination.name:
                source_folder = entries[0]
        placed = []
        for entry in sorted(source_folder.iterdir()):
            target = destination / entry.name
            if target.exists():
                log.info("%s already exists; keeping it", target)
                continue
            os.replace(entry, target)
            placed.append(target)
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ----------------------------------------------------------------------------- items of the manifest

def _is_present(entry: RemoteFile, data_root: Path) -> bool:
    return any((data_root / path).exists() for path in (entry.target, *entry.also_accepted))


def fetch_file(entry: RemoteFile, data_root: str | Path, *, keep_archive: bool = False,
               timeout: float = 60.0) -> Path:
    """One manifest file into place under ``data_root`` (nothing is fetched if it is already there)."""
    data_root = Path(data_root)
    target = data_root / entry.target
    if _is_present(entry, data_root):
        return next(data_root / p for p in (entry.target, *entry.also_accepted) if (data_root / p).exists())
    checksums, size = entry.checksums, entry.size
    if entry.checksum_api is not None:
        published, published_size = read_published_checksum(entry.checksum_api, timeout)
        checksums += (published,) if published is not None else ()
        size = size if size is not None else published_size
    data_root.mkdir(parents=True, exist_ok=True)
    record = data_root / DOWNLOAD_LOG
    if entry.layout == "file":
        return download_file(entry.urls, target, size=size, checksums=checksums, timeout=timeout, record=record)
    archive = download_file(entry.urls, data_root / entry.file_name, size=size, checksums=checksums,
                            extra_space=size or 0, timeout=timeout, record=record)
    extract_archive(archive, data_root, merge_into=entry.merge_into)
    if not target.exists():
        raise DataFormatError(f"{archive}: extracted, but {target} did not appear; the archive is kept for a look")
    if not keep_archive:
        archive.unlink()
    return target


def fetch_item(name: str, data_root: str | Path, *, keep_archive: bool = False, timeout: float = 60.0) -> list[Path]:
    """Every file of the manifest item ``name`` into place; returns their target paths."""
    if name not in manifest.ITEMS:
        raise ValueError(f"no download known for {name!r}; expected one of {', '.join(manifest.ITEMS)}")
    item = manifest.ITEMS[name]
    if not item.downloadable:
        raise DownloadError(f"{name}: no published download: {item.generate}")
    return [fetch_file(entry, data_root, keep_archive=keep_archive, timeout=timeout) for entry in item.files]


def download_dataset(name: str, data_root: str | Path, *, keep_archive: bool = False) -> Path:
    """Fetch the manifest item ``name`` (e.g. "cifar10", "cifar10-c") into ``data_root``; returns its first target."""
    return fetch_item(name, data_root, keep_archive=keep_archive)[0]


# ----------------------------------------------------------------------------- --list

def _human(size: int | None) -> str:
    if size is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"


def item_size(item: Item) -> tuple[int, bool]:
    """(bytes, exact) summed over the item's files; exact is False where a size is estimated or unknown."""
    total, exact = 0, True
    for entry in item.files:
        total += entry.shown_size or 0
        exact = exact and entry.size is not None
    return total, exact


def _size_text(item: Item) -> str:
    if not item.downloadable:
        return "-"
    total, exact = item_size(item)
    unknown = any(entry.shown_size is None for entry in item.files)
    return ("" if exact else "~") + _human(total) + (" + ?" if unknown else "")


def _checksum_text(item: Item) -> str:
    if not item.downloadable:
        return "-"
    kinds = []
    for entry in item.files:
        official = [c for c in entry.checksums if c.role == "official"]
        third = [c for c in entry.checksums if c.role == "third-party"]
        if official:
            text = f"{official[0].algorithm} official"
        elif entry.checksum_api is not None:
            text = f"{entry.checksum_api.kind} API" + (f" + {third[0].algorithm} 3rd-party" if third else "")
        elif third:
            text = f"{third[0].algorithm} 3rd-party"
        else:
            text = "sha256 logged"
        if text not in kinds:
            kinds.append(text)
    return "; ".join(kinds)


def item_status(item: Item, data_root: str | Path) -> str:
    """"present", "missing", "partial: ...", "generate" or a count of files present, for --list."""
    data_root = Path(data_root)
    if not item.downloadable:
        return "present" if item.generated_into and (data_root / item.generated_into).exists() else "generate"
    present = [_is_present(entry, data_root) for entry in item.files]
    if all(present):
        return "present"
    details = []
    for entry, here in zip(item.files, present):
        if here:
            continue
        download = data_root / (entry.target if entry.layout == "file" else entry.file_name)
        partial = download.with_name(download.name + ".part")
        if partial.exists():
            of = f" of {_human(entry.size)}" if entry.size else ""
            details.append(f"partial: {_human(partial.stat().st_size)}{of} in {partial.name}")
        elif download.exists():
            details.append(f"{download.name} downloaded, not extracted")
    if any(present):
        details.insert(0, f"{sum(present)} of {len(present)} files")
    return ", ".join(details) or "missing"


def _target_text(item: Item) -> str:
    if not item.downloadable:
        return f"{item.generated_into}/"
    targets = list(dict.fromkeys(entry.merge_into or entry.target for entry in item.files))
    if item.files[0].layout != "file":
        return ", ".join(f"{target}/" for target in targets)
    if len(targets) > 1 and len({str(Path(t).parent) for t in targets}) == 1:
        return f"{Path(targets[0]).parent}/ ({len(targets)} files)"
    return ", ".join(targets)


def format_list(items: list[Item], data_root: str | Path, selection: str = "--all") -> str:
    """The manifest as a text table with each item's status under ``data_root``, then the notes.
    ``selection``: the arguments that fetch what is listed (``--all``, ``--for cifar10``, item names)."""
    header = ("item", "size", "checksum", f"target under {data_root}", "status")
    rows = [(item.name, _size_text(item), _checksum_text(item), _target_text(item), item_status(item, data_root))
            for item in items]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4]
             for row in [header, *rows]]
    to_fetch = [item for item, row in zip(items, rows) if item.downloadable and row[4] != "present"]
    if to_fetch:
        total = sum(item_size(item)[0] for item in to_fetch)
        lines.append(f"\nnot yet here: {len(to_fetch)} item{'s' if len(to_fetch) > 1 else ''}, about {_human(total)} "
                     f"({program_name('train.data.download')} {selection} --data-root {data_root}"
                     f"{', or name the items' if selection == '--all' else ''})")
    else:
        lines.append("\nevery downloadable item is here")
    lines.append("\nnotes:")
    for item in items:
        text = f"[generate] {item.generate}" if not item.downloadable else item.note
        if text:
            lines.append(f"  {item.name}: {item.description}. {text}")
    return "\n".join(lines)


def format_markdown(items: list[Item]) -> str:
    """The full manifest as a Markdown table: URLs and mirrors, sizes, checksums and who publishes them."""
    lines = ["| item | URL (mirrors) | size (bytes) | checksum (who publishes it) | target under DATA_ROOT | layout |",
             "| --- | --- | --- | --- | --- | --- |"]
    for item in items:
        if not item.downloadable:
            lines.append(f"| `{item.name}` | **no published download**: {item.generate} | - | - | "
                         f"`{item.generated_into}/` | generate |")
            continue
        for entry in item.files:
            urls = "<br>".join(entry.urls)
            size = f"{entry.size:,}" if entry.size is not None else \
                (f"~{entry.approx_size:,} (estimate)" if entry.approx_size else "not published")
            checks = [f"{c.algorithm} `{c.value}` ({c.role}: {c.source})" for c in entry.checksums]
            if entry.checksum_api is not None:
                checks.append(f"read at download time from the {entry.checksum_api.kind} API (official)")
            if not checks:
                checks.append("none published: sha256 logged")
            target = f"`{entry.target}{'/' if entry.layout != 'file' else ''}`"
            if entry.merge_into:
                target = f"`{entry.merge_into}/` (merged)"
            if entry.also_accepted:
                target += " or " + ", ".join(f"`{p}`" for p in entry.also_accepted)
            lines.append(f"| `{item.name}` | {urls} | {size} | {'<br>'.join(checks)} | {target} | {entry.layout} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line

def _selected(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Item]:
    names = list(args.names)
    for name in names:
        if name not in manifest.ITEMS:
            parser.error(f"unknown item {name!r}; one of: {', '.join(manifest.ITEMS)}")
    if args.all:
        names += [item.name for item in manifest.ITEMS.values() if item.downloadable]
    if args.dataset:
        names += [item.name for item in manifest.items_for(args.dataset)]
    return [manifest.ITEMS[name] for name in dict.fromkeys(names)]


def build_parser() -> argparse.ArgumentParser:
    datasets = sorted({d for item in manifest.ITEMS.values() for d in item.datasets})
    parser = argparse.ArgumentParser(
        prog=program_name("train.data.download"),
        description="Fetch, verify and put in place the external files of the paper's runs "
        "(train/data/manifest.py): data sets, -C sets, AdaIN weights, EDM synthetic sets, the authors' style features.")
    parser.add_argument("names", nargs="*", metavar="ITEM", help=f"items to fetch: {', '.join(manifest.ITEMS)}")
    parser.add_argument("--all", action="store_true", help="every downloadable item")
    parser.add_argument("--for", dest="dataset", choices=datasets, help="every item a run on this data set reads")
    parser.add_argument("--list", action="store_true", help="print the manifest and what is under --data-root")
    parser.add_argument("--markdown", action="store_true", help="with --list: the full table (URLs, checksums)")
    parser.add_argument("--data-root", default="data", help="folder to put everything in (default: data)")
    parser.add_argument("--keep-archive", action="store_true", help="keep downloaded archives after extracting")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a URL is given up")
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    prog = program_name("train.data.download")  # fastnst-download when run as the console script
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    items = _selected(args, parser)
    if args.list or not items:
        shown = items or list(manifest.ITEMS.values())
        selection = f"--for {args.dataset}" if args.dataset and not args.names and not args.all else \
            " ".join(args.names) if args.names and not args.dataset and not args.all else "--all"
        print(format_markdown(shown) if args.markdown else format_list(shown, args.data_root, selection))
        if not items and not args.list:
            print(f"\nnothing fetched: name items, --for DATASET or --all (see {prog} --help)")
        return 0
    failures = 0
    for item in items:
        if not item.downloadable:
            if item.name in args.names:  # asked for by name: say why nothing happened, as an error
                print(f"{prog}: error: {item.name}: no published download: {item.generate}", file=sys.stderr)
                failures += 1
            else:
                print(f"{item.name}: skipped, no published download (see --list)")
            continue
        try:
            paths = fetch_item(item.name, args.data_root, keep_archive=args.keep_archive, timeout=args.timeout)
        except (MissingDataError, DataFormatError) as error:  # DownloadError, ChecksumError, a broken archive
            print(f"{prog}: error: {error}", file=sys.stderr)
            failures += 1
            continue
        except KeyboardInterrupt:
            print(f"{prog}: interrupted; rerun the same command to resume (partial files end in .part)",
                  file=sys.stderr)
            return 130
        print(f"{item.name}: {', '.join(str(p) for p in dict.fromkeys(paths))}", flush=True)
    return 2 if failures else 0


def cli(argv: list[str] | None = None) -> int:
    """``python -m train.data.download`` / ``fastnst-download``: expected errors as one line, exit 2."""
    return run_cli(main, argv, prog=program_name("train.data.download"))


if __name__ == "__main__":
    sys.exit(cli())
