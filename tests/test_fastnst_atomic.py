"""fastnst.atomic: the one atomic write (checkpoints, weights, banks, the cache journal, the JPEG check)."""
from __future__ import annotations

import json

import pytest
import torch

from fastnst.atomic import atomic_write, replace_durably, save_atomic, write_json_atomic
from fastnst.safe_load import safe_torch_load


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "record.json"
    write_json_atomic(path, {"done": [0]})
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_write(path, "w") as f:
            f.write('{"do')
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"done": [0]}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_save_atomic_makes_the_folder_and_a_shareable_file(tmp_path):
    path = tmp_path / "new" / "weights.pt"
    save_atomic({"w": torch.arange(3)}, path)
    assert torch.equal(safe_torch_load(path, "weights")["w"], torch.arange(3))
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_replace_durably_moves_a_file_or_a_folder(tmp_path):
    (tmp_path / "a.part").write_text("new")
    (tmp_path / "a").write_text("old")
    replace_durably(tmp_path / "a.part", tmp_path / "a")
    assert (tmp_path / "a").read_text() == "new" and not (tmp_path / "a.part").exists()
    (tmp_path / "out.partial").mkdir()
    (tmp_path / "out.partial" / "x").write_text("1")
    replace_durably(tmp_path / "out.partial", tmp_path / "out")
    assert (tmp_path / "out" / "x").read_text() == "1"
