"""Every error a user can cause is one line, ``prog: error: ...``, exit 2; tracebacks only for bugs or --debug.

The matrix below plants one fault per error class in every command line and runs the module as
``python -m`` does (``runpy``, ``__main__``), in this process: cheap, and it goes through the same
``if __name__ == "__main__": sys.exit(cli())`` as a user's shell. A few cases also run in a real
subprocess, where an interpreter's own traceback printing and exit status are what is checked.
"""
from __future__ import annotations

import importlib
import os
import runpy
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest
import torch

from fastnst.cli import FileFormatError, MissingFileError, UsageError, UserError, one_line, run_cli
from fastnst.networks import Decoder, VGGEncoder
from fastnst.style_bank import StyleBank
from fastnst.train.config import ConfigError
from fastnst.train.data import BadImageError, DataFormatError, MissingDataError
from fastnst.train.data.download import ChecksumError
from fastnst.train.models import create_model
from fastnst.train.trainer import TrainingDiverged
from fastnst.weights import WeightsError
from tests.data_formats import write_cifar10

ROOT = Path(__file__).resolve().parent.parent


class HostilePayload:
    """Unpickling this would run a shell command: what a booby-trapped .pth holds."""

    def __reduce__(self):
        return (os.system, ("echo owned",))


def write_hostile(path: Path) -> Path:
    torch.save({"0.weight": torch.zeros(1), "payload": HostilePayload()}, path)
    return path


def assert_one_error_line(err: str, prog: str, *fragments: str, output_before: bool = False) -> str:
    """stderr is exactly ``prog: error: ...`` (or ends with it, after progress output), names the fragments."""
    lines = err.strip().splitlines()
    assert lines, "nothing on stderr"
    assert "Traceback" not in err, err
    if not output_before:
        assert len(lines) == 1, err
    assert lines[-1].startswith(f"{prog}: error: "), err
    assert sum("error:" in line for line in lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])
    return lines[-1]


# ----------------------------------------------------------------------------- the handler itself

def test_user_errors_are_the_types_callers_already_catch():
    for error_type, builtin in ((ConfigError, ValueError), (DataFormatError, ValueError), (BadImageError, ValueError),
                                (WeightsError, ValueError), (ChecksumError, ValueError),
                                (MissingDataError, FileNotFoundError), (MissingFileError, FileNotFoundError),
                                (TrainingDiverged, RuntimeError)):
        assert issubclass(error_type, UserError) and issubclass(error_type, builtin), error_type


def test_run_cli_passes_results_and_turns_user_errors_into_one_line(capsys):
    assert run_cli(lambda argv: {"report": 1}, [], prog="p") == 0
    assert run_cli(lambda argv: 1, [], prog="p") == 1  # an exit status of the command's own (a regression)

    def fails(argv):
        raise DataFormatError("data/x.npy: not a readable .npy file\n(truncated)")

    assert run_cli(fails, [], prog="python -m x") == 2
    assert capsys.readouterr().err == "python -m x: error: data/x.npy: not a readable .npy file (truncated)\n"

    def diverges(argv):
        raise TrainingDiverged("loss became NaN")

    assert run_cli(diverges, [], prog="p") == 3


def test_bugs_keep_their_traceback_and_debug_shows_it_for_user_errors(monkeypatch):
    def bug(argv):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_cli(bug, [], prog="p")

    def fails(argv):
        raise UsageError("bad flag")

    with pytest.raises(UsageError):
        run_cli(fails, ["--debug"], prog="p")
    monkeypatch.setenv("FASTNST_DEBUG", "1")
    with pytest.raises(UsageError):
        run_cli(fails, [], prog="p")


def test_a_closed_pipe_ends_the_command_quietly(capfd):
    """``python -m train.run --print-config | head``: no BrokenPipeError traceback, the shell's 141."""
    def prints_into_a_closed_pipe(argv):
        raise BrokenPipeError(32, "Broken pipe")

    assert run_cli(prints_into_a_closed_pipe, [], prog="p") == 141
    assert capfd.readouterr().err == ""


def test_one_line_never_returns_an_empty_message():
    assert one_line(FileFormatError("")) == "FileFormatError"


# ----------------------------------------------------------------------------- one planted fault per CLI and class

@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny CIFAR-10 root, the same with truncated files, checkpoints, weights and a style bank."""
    root = tmp_path_factory.mktemp("planted")
    good = root / "good"
    write_cifar10(good, per_batch=20, num_test=20)
    broken = root / "broken"
    write_cifar10(broken, per_batch=20, num_test=20)
    for name in ("data_batch_1", "test_batch"):
        path = broken / "cifar-10-batches-py" / name
        path.write_bytes(path.read_bytes()[:500])
    model = create_model("wrn16_2", 10)
    checkpoint = root / "cifar10.pt"
    torch.save({"config": {"dataset": "cifar10", "model": "wrn16_2", "num_classes": 10},
                "model": model.state_dict(), "swa_model": None}, checkpoint)
    torch.save(VGGEncoder().state_dict(), root / "vgg.pth")
    torch.save(Decoder().state_dict(), root / "decoder.pth")
    StyleBank(torch.rand(2, 512), torch.rand(2, 512) + 0.1, ["a.png", "b.png"], image_size=32).save(root / "styles.pt")
    (root / "empty").mkdir()
    (root / "images").mkdir()
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "earlier_run").mkdir()
    (root / "earlier_run" / "metrics.jsonl").write_text('{"epoch": 1}\n')
    for name in ("hostile.pth", "hostile_checkpoint.pt"):
        write_hostile(root / name)
    return {"root": root, "good": good, "broken": broken, "checkpoint": checkpoint, "vgg": root / "vgg.pth",
            "decoder": root / "decoder.pth", "styles": root / "styles.pt", "empty": root / "empty",
            "images": root / "images", "earlier_run": root / "earlier_run", "hostile": root / "hostile.pth",
            "hostile_checkpoint": root / "hostile_checkpoint.pt"}


TRAIN = ["--dataset", "cifar10", "--synthetic-ratio", "0", "--model", "wrn16_2", "--epochs", "1", "--batch-size", "16",
         "--style-resolution", "native", "--no-evaluate-corruptions"]

# (module, command line with {placeholders} from `files`, what the message must name), one row per planted fault.
CASES = {
    "run-truncated-cifar": ("train.run", TRAIN + ["--no-stylize", "--data-root", "{broken}", "--out", "{root}/r1"],
                            ["cifar-10-batches-py", "not a readable CIFAR python batch"]),
    "run-missing-style-bank": ("train.run", TRAIN + ["--data-root", "{good}", "--styles", "{root}/absent.pt",
                                                     "--vgg", "{vgg}", "--decoder", "{decoder}", "--out", "{root}/r2"],
                               ["style bank", "absent.pt", "does not exist"]),
    # (A data set smaller than a batch is no error: the authors' epoch has one short batch then, sampler.py.)
    "run-out-holds-a-run": ("train.run", TRAIN + ["--no-stylize", "--data-root", "{good}", "--out", "{earlier_run}"],
                            ["already holds a run", "--resume", "--overwrite"]),
    "evaluate-missing-checkpoint": ("train.evaluate", ["--checkpoint", "{root}/absent.pt"],
                                    ["checkpoint", "absent.pt", "does not exist"]),
    "evaluate-other-dataset": ("train.evaluate", ["--checkpoint", "{checkpoint}", "--dataset", "cifar100",
                                                  "--data-root", "{good}"],
                               ["--dataset cifar100", "trained on cifar10"]),
    "evaluate-truncated-test-set": ("train.evaluate", ["--checkpoint", "{checkpoint}", "--data-root", "{broken}",
                                                       "--max-images", "4"],
                                    ["test_batch", "not a readable CIFAR python batch"]),
    "evaluate-hostile-checkpoint": ("train.evaluate", ["--checkpoint", "{hostile_checkpoint}"],
                                    ["not a plain tensor checkpoint", "NOT loaded", "trusted source"]),
    "evaluate-unknown-corruption": ("train.evaluate", ["--checkpoint", "{checkpoint}", "--data-root", "{good}",
                                                       "--corruptions", "fogg"], ["--corruptions", "fogg"]),
    "style-bank-empty-folder": ("fastnst.style_bank", ["--styles", "{empty}", "--out", "{root}/s.pt", "--vgg", "{vgg}"],
                                ["holds no .jpg/.jpeg/.png images"]),
    "style-bank-hostile-weights": ("fastnst.style_bank", ["--styles", "{images}", "--out", "{root}/s.pt",
                                                          "--vgg", "{hostile}"],
                                   ["hostile.pth", "not a plain tensor checkpoint"]),
    "preview-missing-images": ("fastnst.preview", ["--images", "{root}/absent", "--vgg", "{vgg}",
                                                   "--decoder", "{decoder}", "--out", "{root}/p.png"],
                               ["--images folder", "absent"]),
    "preview-broken-image": ("fastnst.preview", ["--images", "{images}", "--vgg", "{vgg}", "--decoder", "{decoder}",
                                                 "--out", "{root}/p.png"], ["broken.png", "cannot be read"]),
    "train-decoder-missing-content": ("fastnst.train_decoder", ["--content", "{root}/absent", "--styles", "{images}",
                                                                "--vgg", "{vgg}", "--decoder-init", "{decoder}",
                                                                "--out", "{root}/d"], ["image folder", "absent"]),
    "train-decoder-wrong-weights": ("fastnst.train_decoder", ["--content", "{images}", "--styles", "{images}",
                                                              "--vgg", "{decoder}", "--out", "{root}/d"],
                                    ["decoder.pth", "missing key"]),
    "weights-out-is-a-file": ("fastnst.weights", ["--random", "--out", "{vgg}"], ["is a file"]),
    "compare-missing-run": ("bench.compare", ["{root}/absent.json"], ["absent.json: no such file"]),
    "plot-missing-results": ("bench.plot", ["{root}/absent.json", "--out", "{root}/plot.png"],
                             ["absent.json: no such file"]),
}


def _fill(argv: list[str], files: dict[str, Path]) -> list[str]:
    return [arg.format(**files) for arg in argv]


def run_as_main(module: str, argv: list[str], monkeypatch) -> int:
    """``python -m module argv`` in this process; the exit status."""
    monkeypatch.setattr(sys, "argv", [module, *argv])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: "found in sys.modules" (the tests imported it)
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_module(f"fastnst.{module}" if module.startswith("train.") else module, run_name="__main__")
    return exit_info.value.code


@pytest.mark.parametrize("case", list(CASES))
def test_planted_fault_is_one_line_and_exit_2(case, files, monkeypatch, capsys):
    module, argv, fragments = CASES[case]
    code = run_as_main(module, _fill(argv, files), monkeypatch)
    err = capsys.readouterr().err
    assert code == 2, err
    assert_one_error_line(err, f"python -m {module}", *fragments)


def test_download_checksum_mismatch_is_one_line(tmp_path, monkeypatch, capsys):
    """ChecksumError from a local file:// 'download' (no network): one line, exit 2, no partial file."""
    from fastnst.train.data import download, manifest
    from fastnst.train.data.manifest import Checksum, Item, RemoteFile

    source = tmp_path / "served" / "toy.npy"
    source.parent.mkdir()
    source.write_bytes(b"not the published file")
    monkeypatch.setattr(manifest, "ITEMS", {"toy": Item("toy", "a toy file", (RemoteFile(
        (source.as_uri(),), "toy.npy", "file", "toy/toy.npy",
        checksums=(Checksum("md5", "0" * 32, "official", "test"),)),), datasets=("toyset",))})
    assert download.cli(["toy", "--data-root", str(tmp_path / "data")]) == 2
    assert_one_error_line(capsys.readouterr().err, "python -m train.data.download", "md5", "toy.npy",
                          output_before=True)  # the progress bar comes first
    assert not [path for path in (tmp_path / "data").rglob("*") if path.is_file() and path.suffix != ".log"]


# ----------------------------------------------------------------------------- real processes

def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    environment.pop("FASTNST_DEBUG", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=environment,
                          timeout=300)


def test_hostile_weights_in_train_run_subprocess(files, tmp_path):
    result = _python("-m", "train.run", *TRAIN, "--data-root", str(files["good"]), "--styles", str(files["styles"]),
                     "--vgg", str(files["hostile"]), "--decoder", str(files["decoder"]), "--out", str(tmp_path / "run"),
                     cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = assert_one_error_line(result.stderr, "python -m train.run", "hostile.pth", "not a plain tensor checkpoint",
                                 "posix.system", "NOT loaded", "trusted source")
    assert "weights_only" not in line
    assert "owned" not in result.stdout  # the payload never ran


def test_debug_shows_the_traceback_subprocess(tmp_path):
    missing = str(tmp_path / "absent.pt")
    result = _python("-m", "train.evaluate", "--checkpoint", missing, "--debug", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "MissingFileError" in result.stderr and "absent.pt" in result.stderr


def test_style_bank_module_runs_without_a_warning_subprocess(tmp_path):
    """``python -m fastnst.style_bank`` once warned that the module was in sys.modules before it ran
    (the package's __init__ imported it); with every warning an error, --help must still work."""
    result = _python("-W", "error", "-m", "fastnst.style_bank", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "--styles" in result.stdout and "--debug" in result.stdout


def test_every_console_script_names_itself_in_usage_errors(monkeypatch, capsys):
    """Run as ``fastnst-download`` (etc.), argparse's usage errors and the handler's one-line errors
    name the script the user typed, not a ``python -m`` module the user did not run."""
    import importlib
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts
    for script, target in scripts.items():
        module, function = target.split(":")
        monkeypatch.setattr(sys, "argv", [f"/venv/bin/{script}", "--no-such-flag"])
        with pytest.raises(SystemExit) as exit_info:
            getattr(importlib.import_module(module), function)()
        assert exit_info.value.code == 2, script
        usage_error = capsys.readouterr().err.splitlines()[-1]  # after argparse's usage lines
        assert_one_error_line(usage_error, script)  # (a required flag may be named first)


def readme_troubleshooting_message(fault: str) -> str:
    """The message the README's Troubleshooting table shows for ``fault`` (its code span, unquoted)."""
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith(f"| {fault} |"):
            cell = line.split(" | ", 1)[1].rsplit(" |", 1)[0].strip()
            return cell.strip("`")
    raise AssertionError(f"no row {fault!r} in the README's Troubleshooting table")


def assert_matches_readme(actual: str, fault: str) -> None:
    """The README's text, whose '...' stand for elided parts, is the actual message."""
    pieces = readme_troubleshooting_message(fault).split("...")
    position = 0
    for piece in pieces:
        found = actual.find(piece, position)
        assert found >= 0, (piece, actual)
        position = found + len(piece)
    assert actual.startswith(pieces[0]) and actual.endswith(pieces[-1]), actual


def test_readme_shows_the_message_of_a_missing_data_set(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    code = run_as_main("train.run", TRAIN + ["--no-stylize", "--data-root", "data", "--out", "run"], monkeypatch)
    assert code == 2
    assert_matches_readme(capsys.readouterr().err.strip().splitlines()[-1], "data set not downloaded")


@pytest.mark.parametrize("module", ["fastnst.train.stylize_cache"])
def test_help_shows_real_defaults_only(module, monkeypatch, capsys):
    """No ``(default: None)``, and none after a help text that already says what the default is."""
    import importlib

    with pytest.raises(SystemExit):
        importlib.import_module(module).cli(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: None)" not in text
    assert "(default: the preset's) (default:" not in text and "(default: 4)" in text and "(default: 0)" in text


SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
WITHOUT_DEVICE = ("fastnst-download", "fastnst-weights", "fastnst-export")  # no --device: they run on the CPU
# Every command with a --device: how a user calls it, and the command line of the case.
DEVICE_CUDA = {**{script: ["--device", "cuda"] for script in SCRIPTS if script not in WITHOUT_DEVICE},
               "fastnst-repeat": ["--seeds", "0", "--", "--device", "cuda"],  # train.run's, before any seed's work
               "python -m train.corruptions.generate": ["--device", "cuda"]}  # a module without a script


def call_command(command: str, argv: list[str], monkeypatch) -> int:
    """A console script (``fastnst-train``) or ``python -m train.x``, in this process; the exit status."""
    if command.startswith("python -m "):
        return run_as_main(command.removeprefix("python -m "), argv, monkeypatch)
    module, function = SCRIPTS[command].split(":")
    monkeypatch.setattr(sys, "argv", [f"/venv/bin/{command}", *argv])
    return getattr(importlib.import_module(module), function)(argv)


@pytest.mark.parametrize("command", list(DEVICE_CUDA))
def test_device_cuda_without_a_gpu_is_one_line(command, tmp_path, monkeypatch, capsys):
    """--device cuda where there is no CUDA: one line naming the flag, exit 2, as train.run has it (argparse's
    usage block before the line once buried it in train.evaluate and fastnst.style_bank; torch's driver
    traceback from the first .to("cuda") before that), before the command writes anything."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU host
    monkeypatch.chdir(tmp_path)
    assert call_command(command, DEVICE_CUDA[command], monkeypatch) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"{command}: error: --device cuda was given but no CUDA device is available; pass --device cpu"), lines
    assert not any(tmp_path.iterdir())


def test_warnings_are_one_line_without_the_source_line_subprocess(tmp_path):
    """A warning reads as errors do, ``prog: warning: ...``: not Python's ``file:line: Category:`` followed by
    the source line that raised it (``  encoder = load_encoder(...)``)."""
    result = _python("-m", "fastnst.preview", "--out", str(tmp_path / "p.png"), "--num-images", "1", "--alphas", "1",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "RANDOM" in line]
    assert [line.split(" has ")[0] for line in warned] == [
        "python -m fastnst.preview: warning: the VGG-19 encoder", "python -m fastnst.preview: warning: the AdaIN decoder"]
    assert "load_encoder" not in result.stderr and "Warning:" not in result.stderr


def test_a_refused_resume_says_why_before_anything_loads(files, tmp_path, capsys):
    """--resume with a changed option: the real error first and alone (no random-weight warnings from
    weights loaded for nothing, no config.yaml overwritten with the refused options)."""
    from fastnst.atomic import save_atomic
    from fastnst.train.config import parse_config
    from fastnst.train.run import cli
    from fastnst.weights import write_random_weights

    vgg, decoder = write_random_weights(tmp_path / "weights")
    out = tmp_path / "run"
    flags = TRAIN + ["--data-root", str(files["good"]), "--styles", str(files["styles"]), "--vgg", str(vgg),
                     "--decoder", str(decoder), "--out", str(out)]
    earlier = {**parse_config(flags), "lr": 0.05}
    out.mkdir()
    save_atomic({"config": earlier, "model": {}}, out / "checkpoint.pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli(flags + ["--resume"]) == 2
    assert [str(warning.message) for warning in caught] == []
    assert_one_error_line(capsys.readouterr().err, "python -m train.run", "cannot --resume", "lr: 0.05")
    assert not (out / "config.yaml").exists()


def test_readme_shows_the_message_of_nothing_downloaded(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = run_as_main("train.run", ["--dataset", "tinyimagenet", "--out", "run"], monkeypatch)
    assert code == 2
    assert_matches_readme(capsys.readouterr().err.strip().splitlines()[-1], "nothing downloaded (`--dataset tinyimagenet`)")
