"""The wheel claims no generic top-level name: it installs beside packages importable as `kernels` and `train`."""
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


def test_wheel_has_one_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"fastnst"}
    assert "fastnst/kernels/adain.py" in names
    assert "fastnst/train/run.py" in names
    assert "fastnst/train/presets/cifar10.yaml" in names


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
