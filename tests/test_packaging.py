"""The package's layout is static, the wheel holds all of it and claims no generic top-level name (it installs
beside packages importable as `kernels` and `train`)."""
import ast
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A checkout on PYTHONPATH would shadow the stubs, and its egg-info would tell pip fastnst is installed.
INSTALLED_ENVIRONMENT = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "FASTNST_DEBUG")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")  # the wheel is built without build isolation (no index in tests)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, cwd=out)
    (wheel_path,) = out.glob("fastnst-*.whl")
    return wheel_path


def _package_sources() -> set[str]:
    """Every .py file of every package under fastnst/ (kernels/ and train/ through their links), and the presets."""
    sources = set()
    for folder, _, files in os.walk(ROOT / "fastnst", followlinks=True):
        if "__init__.py" in files:
            sources |= {(Path(folder) / name).relative_to(ROOT).as_posix() for name in files if name.endswith(".py")}
    return sources | {path.relative_to(ROOT).as_posix() for path in (ROOT / "fastnst" / "train" / "presets").glob("*.yaml")}


def test_kernels_and_train_are_fastnst_subpackages_through_links():
    for name in ("kernels", "train"):
        link = ROOT / "fastnst" / name
        assert link.is_symlink() and os.readlink(link) == f"../{name}", name
    assert {"fastnst/kernels/adain.py", "fastnst/train/run.py", "fastnst/train/data/pipeline.py"} <= _package_sources()


def test_wheel_holds_every_package_of_the_source_tree(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"fastnst"}
    missing = _package_sources() - set(names)
    assert not missing, f"not in the wheel: {sorted(missing)}"


def test_checkout_folders_are_not_fastnst_subpackages(wheel):
    """Only fastnst/ and its two links are the package: not bench/, tests/, or the build/ a wheel build leaves."""
    for name in ("fastnst.bench", "fastnst.tests", "fastnst.docs", "fastnst.build", "fastnst.fastnst"):
        result = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True,
                                env={**INSTALLED_ENVIRONMENT, "PYTHONPATH": str(ROOT)})
        assert f"No module named '{name}'" in result.stderr, (name, result.stderr[-500:])


def test_the_package_imports_itself_only_as_fastnst():
    """`import train.x` in the package would load train/x.py a second time, as another module object."""
    for source in sorted(_package_sources()):
        if source.endswith(".py"):
            for node in ast.walk(ast.parse((ROOT / source).read_text(encoding="utf-8"))):
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
                assert not [n for n in names if n.split(".")[0] in ("kernels", "train", "bench", "tests")], (source, names)
