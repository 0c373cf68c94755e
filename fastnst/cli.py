"""The one error handler of every fastnst command line: an error the user can fix is one line, exit 2.

Every command has the same two entry points::

    def main(argv=None):      # does the work and returns its result (tests call it); raises on errors
        ...
    def cli(argv=None) -> int:  # the console script / ``python -m``: errors become messages and exit codes
        return run_cli(main, argv, prog=program_name("train.evaluate"))

    if __name__ == "__main__":
        sys.exit(cli())

An exception is *expected* when its class inherits ``UserError``: a bad flag, a missing or
malformed file, data in the wrong format. ``run_cli`` prints ``prog: error: <message>`` on one
line of stderr and returns ``exit_code`` (2, as argparse's own usage errors). Anything else is
a bug: it propagates with its traceback (exit 1). ``--debug`` (every command has it, see
``add_debug_flag``) or ``FASTNST_DEBUG=1`` shows the traceback of expected errors too. Warnings are
one line too, ``prog: warning: <message>`` (``warning_line``), without the source line that raised them.
A ``--device`` this machine lacks is one line in every command (``check_device``).

Modules register their error classes by inheriting one of the classes below (``ConfigError``,
``DataFormatError``, ``MissingDataError``, ``WeightsError``, ``BenchFileError`` ... do), so that
callers can still catch them as the built-in type they extend (``ValueError``, ``FileNotFoundError``).
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

DEBUG_FLAG = "--debug"
DEBUG_ENVIRONMENT = "FASTNST_DEBUG"
SCRIPT_PREFIX = "fastnst-"  # console scripts (pyproject.toml [project.scripts])


class UserError(Exception):
    """Base of the errors a user can cause and fix; the message says what, which file or flag, and how."""

    exit_code = 2


class UsageError(UserError, ValueError):
    """Options that are invalid or do not fit together (a checkpoint of another data set, a bad value)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named (or that a command needs) does not exist."""


class FileFormatError(UserError, ValueError):
    """A file exists but does not hold what it should (truncated, another format, refused as unsafe)."""


class DeviceUnavailableError(UserError, RuntimeError):
    """A --device this machine does not have. Not a ValueError, so that when the ``device`` argparse type
    raises it argparse lets it pass (instead of printing its usage block) and ``run_cli`` says it in one line."""


def one_line(error: BaseException | str) -> str:
    """The error's message on one line (messages are written for one line; this guarantees it)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__


def debug_requested(argv: Sequence[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENVIRONMENT, "") not in ("", "0")


def add_debug_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--debug``: read by ``run_cli`` from the command line itself, so it works even for errors while parsing."""
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help=f"show the full traceback of an error (also: {DEBUG_ENVIRONMENT}=1)")


def add_device_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--device``: CUDA when available, else the CPU; checked by the ``device`` type."""
    import torch

    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", type=device,
                        help="a torch device name (default: cuda when available, else cpu)")


def program_name(module: str) -> str:
    """How the user started this command: ``fastnst-train`` (console script) or ``python -m <module>``.

    ``module`` is the checkout's name (``train.run``); run as ``python -m fastnst.train.run`` the
    installed name is shown instead. Used both as argparse's ``prog`` and as the error prefix.
    """
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if script.startswith(SCRIPT_PREFIX):
        return script
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name == f"fastnst.{module}":
        return f"python -m {spec.name}"
    return f"python -m {module}"


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``(default: X)`` after a flag's help, except where there is no default (None, False) or the help
    already says what the default is: no ``(default: None)`` after "default: the preset's"."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text or "omitted" in text:
            return text
        return super()._get_help_string(action)


# ---------------------------------------------------------------------------- argparse value types

def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def check_device(text: str, *, instead: str = "cpu") -> None:
    """A CUDA ``--device`` only where CUDA is there (else torch fails later, deep inside, with a traceback
    about drivers): every command's one check, raising DeviceUnavailableError (one line, exit 2)."""
    import torch

    parsed = torch.device(text)
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(f"--device {text} was given but no CUDA device is available; "
                                         f"pass --device {instead}")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"--device {text}: there are only {torch.cuda.device_count()} CUDA devices")


def device(text: str) -> str:
    """argparse type of a --device flag: a torch device name that this machine has (``check_device``)."""
    import torch

    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a device such as cpu, cuda or cuda:1, got {text!r}") from None
    check_device(text)
    return text


def style_resolution(text: str) -> int | str:
    """argparse type of every --style-resolution / --resolution: 'native' or a side of at least 8 px."""
    if text == "native":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a side in pixels or 'native', got {text!r}") from None
    if value < 8:
        raise argparse.ArgumentTypeError(f"expected at least 8 px, got {value}")
    return value


def run_cli(main: Callable[[list[str]], object], argv: Sequence[str] | None = None, *, prog: str) -> int:
    """Call ``main(argv)`` and turn its outcome into an exit status.

    An int result is the status itself (``bench.compare``'s 1 for a regression); any other
    result (a report dict, a path) means success, 0. A ``UserError`` is printed as one line,
    ``prog: error: ...``, and gives its ``exit_code``; with ``--debug`` it is raised instead.
    Other exceptions are bugs and keep their traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    default_format = warnings.formatwarning
    if not debug_requested(argv):  # --debug keeps Python's format: file, line and the source line
        warnings.formatwarning = warning_line(prog)
    try:
        result = main(argv)
    except BrokenPipeError:  # `... | head` closed our stdout: not an error of the command
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 141  # 128 + SIGPIPE, as a shell reports it
    except UserError as error:
        if debug_requested(argv):
            raise
        sys.stdout.flush()  # what the command printed before the error comes first
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr, flush=True)
        return error.exit_code
    finally:
        warnings.formatwarning = default_format
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def warning_line(prog: str) -> Callable[..., str]:
    """A ``warnings.formatwarning`` that writes a warning as errors are written, ``prog: warning: <message>``
    on one line: no file name, line number or source line of the code that warned."""
    def format_warning(message, category, filename, lineno, line=None) -> str:
        return f"{prog}: warning: {one_line(message)}\n"

    return format_warning
