"""The package's layout is static, the wheel holds all of it and claims no generic top-level name (it installs
beside packages importable as `kernels` and `train`), and the op and the Stylizer need none of the extras."""
import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A checkout on PYTHONPATH would shadow the stubs, and its egg-info would tell pip fastnst is installed.
INSTALLED_ENVIRONMENT = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "FASTNST_DEBUG")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # The wheel is built without build isolation (no index in tests), by this Python's setuptools.
    setuptools = pytest.importorskip("setuptools")
    (required,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    minimum = int(required.removeprefix("setuptools>="))
    if int(setuptools.__version__.split(".")[0]) < minimum:
        pytest.skip(f"the build needs {required} (pyproject.toml); this Python has setuptools {setuptools.__version__}")
    out = tmp_path_factory.mktemp("wheel")
    # From a copy of what the build reads: setuptools builds in the source tree, and a build/ left there
    # (by an earlier build) would carry deleted files, and packages no longer found, into the wheel.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("fastnst", "kernels", "train"):
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, cwd=out)
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


def test_checkout_folders_are_not_fastnst_subpackages():
    """Only fastnst/ and its two links are the package: not bench/, tests/, docs/ or a build/ a wheel build leaves."""
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


# The [train] extra's distributions and the modules they provide: nothing the op and the Stylizer import.
TRAIN_EXTRA_MODULES = {"nvidia-dali-cuda130": "nvidia.dali", "pyyaml": "yaml", "tensorboard": "tensorboard",
                       "matplotlib": "matplotlib"}
WITHOUT_TRAIN_EXTRA = """
import sys

BLOCKED = BLOCKED_MODULES


class NotInstalled:  # as if the [train] extra were not installed
    def find_spec(self, name, path=None, target=None):
        if any(name == blocked or name.startswith(blocked + ".") for blocked in BLOCKED):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NotInstalled())
import torch
from fastnst import StyleBank, Stylizer, kernels
from fastnst.networks import Decoder, VGGEncoder

x = torch.rand(2, 3, 5, 4) + 0.1
out = kernels.adain(x, torch.rand(2, 3), torch.rand(2, 3) + 0.5, 0.5)
assert out.shape == x.shape and torch.isfinite(out).all()
bank = StyleBank(torch.rand(3, 512), torch.rand(3, 512) + 0.2, ["a.jpg", "b.jpg", "c.jpg"])
stylizer = Stylizer(bank, VGGEncoder().eval(), Decoder().eval(), prob_synthetic=1.0, prob_real=1.0, resolution=None)
images, plan = stylizer(torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8), torch.tensor([True, False]))
assert images.shape == (2, 3, 16, 16) and images.dtype == torch.uint8
for blocked in BLOCKED:
    assert not any(name == blocked or name.startswith(blocked + ".") for name in sys.modules), blocked
print("ok")
"""


def test_op_and_stylizer_work_without_the_train_extra(tmp_path):
    """A plain `pip install fastnst` (no [train]: no DALI, PyYAML, TensorBoard or matplotlib) gives a working op
    and Stylizer: here those modules fail to import, and the op and one Stylizer call run on the CPU."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    assert set(extras) == set(TRAIN_EXTRA_MODULES)
    probe = WITHOUT_TRAIN_EXTRA.replace("BLOCKED_MODULES", repr(tuple(TRAIN_EXTRA_MODULES.values())))
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env={**INSTALLED_ENVIRONMENT, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[Path, Path]:
    """A fresh venv holding the wheel, stub `kernels` and `train` packages, and this environment's dependencies:
    (its python, its site-packages)."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    for stub in ("kernels", "train"):  # stand-ins for the Hugging Face kernel hub client and PyPI's `train`
        (site / stub).mkdir()
        (site / stub / "__init__.py").write_text(f"STUB = {stub!r}\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, env=INSTALLED_ENVIRONMENT)
    # torch and the other dependencies come from this environment, as a plain path (its .pth files stay inert,
    # so the editable checkout of fastnst is not visible there).
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site


def test_installs_beside_packages_named_kernels_and_train(installed, tmp_path):
    python, site = installed
    probe = textwrap.dedent("""
        import kernels, train
        assert (kernels.STUB, train.STUB) == ("kernels", "train")
        import torch
        from fastnst import kernels as fused
        import fastnst.train.run
        from fastnst.train.config import load_preset
        assert load_preset("cifar10")["dataset"] == "cifar10"   # package data from the wheel, not the stub
        assert fused.__file__.startswith(SITE), fused.__file__
        x = torch.rand(2, 3, 4, 5) + 0.1
        out = fused.adain(x, torch.rand(2, 3), torch.rand(2, 3) + 0.5, 0.5)
        assert out.shape == x.shape
        print("ok")
    """).replace("SITE", repr(str(site)))
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env=INSTALLED_ENVIRONMENT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_console_scripts_report_user_errors_in_one_line(installed, tmp_path):
    python, _ = installed
    scripts = python.parent
    for name in ("fastnst-train", "fastnst-evaluate", "fastnst-download", "fastnst-style-bank", "fastnst-preview",
                 "fastnst-train-decoder", "fastnst-weights"):
        assert (scripts / name).is_file(), (name, sorted(path.name for path in scripts.iterdir()))
    environment = INSTALLED_ENVIRONMENT
    result = subprocess.run([str(scripts / "fastnst-evaluate"), "--checkpoint", str(tmp_path / "absent.pt")],
                            capture_output=True, text=True, cwd=tmp_path, env=environment)
    assert result.returncode == 2
    assert result.stderr == f"fastnst-evaluate: error: checkpoint {tmp_path / 'absent.pt'} does not exist or is not a file\n"
    result = subprocess.run([str(scripts / "fastnst-train"), "--print-config", "--epochs", "2"],
                            capture_output=True, text=True, cwd=tmp_path, env=environment)
    assert result.returncode == 0, result.stderr
    assert "epochs: 2" in result.stdout and "# flag" in result.stdout
