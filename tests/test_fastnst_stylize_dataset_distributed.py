"""train.stylize_cache under torchrun: 2 CPU processes (gloo) write the same cache as 1 process, and a
killed 2-rank run resumes, launched as a user would (``torch.distributed.run``).

Every process runs with one thread, as in test_train_distributed.py, so that equal work gives equal bits.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from data_formats import write_synthetic_npz
from lively_networks import write_stylizer_files
from fastnst import cache_format as fmt
from fastnst.cache_journal import JOURNAL_FILE, Journal, rank_journal_file

REPO_ROOT = Path(__file__).resolve().parent.parent
COUNT, CHUNK, BATCH, VARIANTS = 20, 4, 2, 2  # 5 chunks of 2 batches: rank 0 makes chunks 0, 2, 4, rank 1 chunks 1, 3
DATA_FILES = (fmt.IMAGES_FILE, fmt.STYLE_INDEX_FILE, fmt.ALPHA_FILE, fmt.LABELS_FILE)

ENTRY = textwrap.dedent("""
    import os, signal, sys, time
    import fastnst.stylize_dataset as sd
    from fastnst.cache_journal import Journal
    from fastnst.train.stylize_cache import cli
    kill_rank, kill_at = int(os.environ.get("KILL_RANK", "-1")), int(os.environ.get("KILL_AT", "0"))
    if int(os.environ.get("RANK", "0")) == kill_rank:  # die like a killed process, in the middle of a chunk
        sd._batch_written_hook = lambda written: os.kill(os.getpid(), signal.SIGKILL) if written == kill_at else None
    if int(os.environ.get("RANK", "0")) == 1:  # the other ranks read the journals late (as under load)
        read_done = Journal.done.fget
        Journal.done = property(lambda journal: (time.sleep(1), read_done(journal))[1])
    sys.exit(cli(sys.argv[1:]))
""")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("stylize_ddp")
    write_stylizer_files(folder)
    write_synthetic_npz(folder / "set.npz", count=COUNT, size=32)
    (folder / "entry.py").write_text(ENTRY)
    return {"folder": folder, "entry": str(folder / "entry.py")}


def launch(files, out, processes: int, kill_rank: int | None = None, kill_at: int = 0):
    """``torchrun --nproc_per_node=N -m train.stylize_cache ...`` (N = 1: the plain command, no torchrun)."""
    folder = files["folder"]
    args = ["--input", str(folder / "set.npz"), "--out", str(out), "--source", "synthetic",
            "--styles", str(folder / "styles.pt"), "--vgg", str(folder / "vgg.pth"), "--decoder", str(folder / "decoder.pth"),
            "--variants", str(VARIANTS), "--style-resolution", "native", "--batch-size", str(BATCH),
            "--chunk-size", str(CHUNK), "--device", "cpu", "--no-progress"]
    launcher = ([] if processes == 1 else
                ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"])
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1",
           "KILL_RANK": str(-1 if kill_rank is None else kill_rank), "KILL_AT": str(kill_at)}
    return subprocess.run([sys.executable, *launcher, files["entry"], *args], env=env, cwd=folder,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def reference(files, tmp_path_factory):
    """One process, uninterrupted."""
    out = tmp_path_factory.mktemp("reference") / "cache"
    done = launch(files, out, processes=1)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def assert_same_cache(out: Path, reference: Path) -> dict:
    for name in DATA_FILES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    meta, expected = (json.loads((folder / fmt.META_FILE).read_text()) for folder in (out, reference))
    for key in ("format_version", "dataset", "settings", "input"):
        assert meta[key] == expected[key], key
    assert sorted(path.name for path in out.iterdir()) == sorted(path.name for path in reference.iterdir())
    return meta


def test_two_ranks_write_the_same_cache_as_one_process(files, reference, tmp_path):
    out = tmp_path / "cache"
    done = launch(files, out, processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = assert_same_cache(out, reference)
    assert meta["last_call"]["ranks"] == 2 and meta["last_call"]["stylized_images"] == COUNT * VARIANTS
    assert done.stdout.count("img/s") == 1 and "x 2 ranks" in done.stdout  # rank 0 reports, once


def test_a_killed_two_rank_run_resumes(files, reference, tmp_path):
    out = tmp_path / "cache"
    # Rank 1 dies in its third batch: chunk 1 (batches 1, 2) journaled, chunk 3 half written.
    killed = launch(files, out, processes=2, kill_rank=1, kill_at=3)
    assert killed.returncode != 0
    partial = fmt.partial_path(out)
    assert not out.exists() and partial.is_dir()
    assert json.loads((partial / rank_journal_file(1)).read_text())["done"] == [1]
    assert set(json.loads((partial / JOURNAL_FILE).read_text())["done"]) <= {0, 2, 4}  # rank 0's own share

    resumed = launch(files, out, processes=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    meta = assert_same_cache(out, reference)
    assert meta["last_call"]["stylized_images"] <= (COUNT - CHUNK) * VARIANTS  # chunk 1 was not made again
    assert not partial.exists() and not list(out.glob("journal*"))


def test_the_journals_of_every_rank_say_what_is_done(tmp_path):
    """Whatever world size wrote them, and whatever world size resumes: the union of the ranks' journals."""
    folder = tmp_path / "work.partial"
    start = lambda rank: Journal.start_or_resume(folder, {"seed": 0}, 6, lambda f: (f / "x.npy").touch(),  # noqa: E731
                                                 own_files={"x.npy"}, rank=rank)
    rank0 = start(0)
    start(2).mark_done(5)  # a rank of an earlier, wider run
    rank1 = start(1)
    rank1.mark_done(1)
    rank0.mark_done(0)
    assert rank0.done == rank1.done == {0, 1, 5}
    assert start(1).done == {0, 1, 5} and start(1).own_done == {1}  # a resumed rank keeps its own record
    rank1.mark_done(3)
    assert json.loads((folder / rank_journal_file(1)).read_text())["done"] == [1, 3]
    assert json.loads((folder / JOURNAL_FILE).read_text())["done"] == [0]
    rank0.publish(tmp_path / "work")
    assert sorted(path.name for path in (tmp_path / "work").iterdir()) == ["x.npy"]
