"""The crash-safe record of a stylized cache in the making: which chunks of the work are done.

The work is done in chunks inside ``OUT.partial/``. After each chunk the caller flushes the chunk's
pixels to disk, then ``mark_done`` records the chunk in ``journal.json`` (replaced atomically). A
killed run, started again with the same identity (input and settings), redoes only the chunks the
journal lacks; with another identity it is refused, naming the differences. ``publish`` renames
``OUT.partial`` to ``OUT`` once every chunk is done: nothing half-written ever carries the final name.

Under torchrun each rank does its own share of the chunks and records them in its own file
(rank 0 in ``journal.json``, rank r in ``journal.rank<r>.json``), so no two processes ever write the
same file; the chunks done are those of every file, whatever the world size that wrote them, so a
killed run resumes with any number of ranks.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from fastnst.atomic import replace_durably, write_json_atomic
from fastnst.cache_format import FORMAT_VERSION, StylizeDatasetError

JOURNAL_FILE = "journal.json"
RANK_JOURNAL_GLOB = "journal.rank*.json"  # ranks 1.. of a torchrun: {"done": [...]}


def rank_journal_file(rank: int) -> str:
    return JOURNAL_FILE if rank == 0 else f"journal.rank{rank}.json"


def identity_mismatches(recorded: dict, current: dict, prefix: str = "") -> list[str]:
    """``settings.variants: recorded 2, now 3`` for every (nested) key whose value differs."""
    differences = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differences += identity_mismatches(old, new, f"{prefix}{key}.")
        elif old != new:
            differences.append(f"{prefix}{key}: recorded {old!r}, now {new!r}")
    return differences


class Journal:
    """``journal.json`` of a work folder: the job's identity, its number of chunks and those done
    (with the chunks recorded by the other ranks' files)."""

    def __init__(self, folder: Path, record: dict, rank: int = 0):
        self.folder, self.record, self.rank = folder, record, rank
        self.own_done: set[int] = set(record["done"])  # what this rank's file records
        if rank:
            path = folder / rank_journal_file(rank)
            self.own_done = set(json.loads(path.read_text())["done"]) if path.is_file() else set()

    @classmethod
    def start_or_resume(cls, folder: Path, identity: dict, num_chunks: int, create_files: Callable[[Path], None],
                        own_files: set[str], rank: int = 0) -> "Journal":
        """Continue the job in ``folder``, or start it: ``create_files(folder)`` writes the job's files
        (named in ``own_files``), then the journal is written, its presence saying they are complete.
        Under torchrun rank 0 calls this first, the other ranks after it (they find the folder made)."""
        path = folder / JOURNAL_FILE
        if folder.is_dir() and not path.is_file():
            # atomic_write's temporary files are ".<name>.<random>.tmp"
            foreign = sorted(p.name for p in folder.iterdir()
                             if p.name not in own_files and not (p.name.startswith(".") and p.name.endswith(".tmp")))
            if foreign:
                raise StylizeDatasetError(f"{folder} exists and holds files this tool did not write "
                                          f"({', '.join(foreign[:3])}): move it away or choose another --out")
            shutil.rmtree(folder)  # a run killed while creating its files: nothing of it is done yet
        if folder.is_dir():
            journal = cls(folder, json.loads(path.read_text()), rank)
            differences = identity_mismatches(journal.record["identity"], identity)
            if differences:
                raise StylizeDatasetError(f"{folder} holds a stopped run with other settings or input ("
                                          + "; ".join(differences) + f"): rerun with its settings, or delete {folder}")
            return journal
        folder.mkdir(parents=True)
        create_files(folder)
        journal = cls(folder, {"format_version": FORMAT_VERSION, "identity": identity, "num_chunks": num_chunks,
                               "done": []})
        journal._write()
        return journal

    @property
    def done(self) -> set[int]:
        """The chunks done, by any rank (read afresh: other ranks write while this one works)."""
        done = set(json.loads((self.folder / JOURNAL_FILE).read_text())["done"]) | self.own_done
        for path in self.folder.glob(RANK_JOURNAL_GLOB):
            done |= set(json.loads(path.read_text())["done"])
        return done

    def mark_done(self, chunk: int) -> None:
        """Call once the chunk's data is on disk."""
        self.own_done.add(int(chunk))
        if self.rank == 0:
            self.record["done"] = sorted(self.own_done)
            self._write()
        else:
            write_json_atomic(self.folder / rank_journal_file(self.rank), {"done": sorted(self.own_done)}, indent=2)

    def publish(self, out: Path) -> None:
        """Rename the finished work folder to ``out``; the journals go along, then are removed (a kill
        in between leaves harmless extra files)."""
        replace_durably(self.folder, out)
        for path in [*out.glob(RANK_JOURNAL_GLOB), out / JOURNAL_FILE]:
            path.unlink()

    def _write(self) -> None:
        write_json_atomic(self.folder / JOURNAL_FILE, self.record, indent=2)
