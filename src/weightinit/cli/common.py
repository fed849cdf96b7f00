"""What every ``weightinit`` subcommand shares: argument checks, the one-line error, extras, progress.

A user mistake on the command line ends in one line on stderr and exit status 2, never a traceback:
argument types (:func:`shape_arg`, :func:`positive_int`) are checked by argparse, output paths
(:func:`check_output_path`) before any work starts, missing optional dependencies (:func:`require`)
with the extra that installs them, and anything else a subcommand raises as :class:`CLIError`.

:class:`Steps` shows progress on stderr: a rich progress bar on a terminal, one line per step
otherwise (logs and CI show where a long run is).
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import time
from typing import NoReturn

__all__ = [
    "Parser",
    "say",
    "CLIError",
    "shape_arg",
    "positive_int",
    "nonnegative_int",
    "positive_float",
    "check_output_path",
    "torch_device",
    "require",
    "Steps",
]


class CLIError(Exception):
    """A user mistake: ``main`` prints ``weightinit <command>: <message>`` and exits with status 2."""


def say(message: str, file=None) -> None:
    """Print ``message`` on ``file`` (default stderr), escaping what the stream cannot encode.

    Command lines can hold undecodable bytes (Python hands them over as lone surrogates such as
    ``"\\udcff"``); echoing one back in an error must not raise ``UnicodeEncodeError``.
    """
    file = sys.stderr if file is None else file
    encoding = getattr(file, "encoding", None) or "utf-8"
    try:
        message.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        message = message.encode(encoding if encoding else "utf-8", "backslashreplace").decode(encoding, "replace")
    print(message, file=file)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``prog: error: message (see prog --help)``, status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def _print_message(self, message, file=None):  # argparse's one writer (help, usage, errors)
        if message:
            say(message.rstrip("\n"), sys.stderr if file is None else file)


def parse_shape(text: str, option: str = "--shape") -> tuple[int, ...]:
    """``"3,32,32"`` -> ``(3, 32, 32)``; ``""`` or ``"()"`` -> ``()``.  Empty parts, non-integers and
    negative sizes are errors (``3,,4`` is not ``(3, 4)``).

    >>> parse_shape("(3, 4)")
    (3, 4)
    """
    body = text.strip()
    if body[:1] in "([" and body[-1:] in ")]":
        body = body[1:-1].strip()
    if not body:
        return ()
    parts = [p.strip() for p in body.split(",")]
    if parts[-1] == "" and len(parts) > 1:  # one trailing comma, as in "(3,)"
        parts = parts[:-1]
    dims = []
    for p in parts:
        try:
            d = int(p)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{option} must be comma-separated non-negative integers such as 512,256; got {text!r} "
                f"({'an empty part' if not p else repr(p) + ' is not an integer'})"
            ) from None
        if d < 0:
            raise argparse.ArgumentTypeError(f"{option} sizes must be >= 0; got {text!r}")
        dims.append(d)
    return tuple(dims)


def shape_arg(option: str):
    """An argparse ``type=`` for a shape option named ``option``."""

    def parse(text: str) -> tuple[int, ...]:
        return parse_shape(text, option)

    parse.__name__ = "shape"
    return parse


def _int_arg(minimum: int, what: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {what}; got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer {what}; got {v}")
        return v

    parse.__name__ = "integer"
    return parse


positive_int = _int_arg(1, ">= 1")
nonnegative_int = _int_arg(0, ">= 0")


def positive_float(text: str) -> float:
    """An argparse ``type=`` for a finite number > 0 (``nan``, ``inf``, ``0`` and ``-1`` are refused)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0; got {text!r}")
    return v


positive_float.__name__ = "number"


def check_output_path(path: str | None, option: str) -> None:
    """Raise :class:`CLIError` unless ``path``'s folder exists and is writable (checked before the run)."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CLIError(f"{option} {path!r} is a folder; give a file name")
    if not os.path.isdir(folder):
        raise CLIError(f"{option} {path!r}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise CLIError(f"{option} {path!r}: the folder {folder!r} is not writable")


def torch_device(text: str, option: str = "--device") -> str:
    """``text`` as a torch device this machine has (``cpu``, ``cuda``, ``cuda:1``); else :class:`CLIError`.

    Checked before any work: a CUDA device on a machine without CUDA (or with fewer GPUs) is a user
    mistake, not an internal error halfway through a run.
    """
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise CLIError(f"{option} must be a torch device such as cpu or cuda:0; got {text!r}") from None
    if dev.type == "cpu":
        return "cpu"
    if dev.type != "cuda":
        raise CLIError(f"{option} must be cpu or a CUDA device such as cuda:0; got {text!r}")
    if not torch.cuda.is_available():
        raise CLIError(f"{option} {text!r}: this machine has no CUDA device (torch {torch.__version__})")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise CLIError(f"{option} {text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return str(dev)


def require(command: str, extra: str, *modules: str) -> None:
    """Import ``modules``; if one is missing raise :class:`CLIError` naming the extra that installs it."""
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise CLIError(
                f"needs {m.split('.')[0]}, which is not installed ({e}); install it with: "
                f"pip install 'weightinit[{extra}]'"
            ) from None


class Steps:
    """Progress over ``total`` steps on stderr: a rich bar on a terminal, else one line per step.

    >>> import io
    >>> s = Steps(2, "demo", stream=io.StringIO())
    >>> s.advance("first"); s.advance("second"); s.close()
    >>> print(s.stream.getvalue().strip())
    demo [1/2] first
    demo [2/2] second
    """

    def __init__(self, total: int | None, label: str, stream=None, bar: bool | None = None):
        self.total, self.label, self.done = (None if total is None else max(int(total), 1)), label, 0
        self.stream = sys.stderr if stream is None else stream
        self.t0 = time.perf_counter()
        self._bar = None
        use_bar = bar if bar is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        if use_bar:
            try:
                from rich.console import Console
                from rich.progress import Progress

                self._bar = Progress(console=Console(file=self.stream), transient=True)
                self._bar.start()
                self._task = self._bar.add_task(label, total=self.total)
            except ImportError:  # pragma: no cover - rich is in the doctor extra
                self._bar = None

    def start(self, what: str) -> None:
        """Say what the next step is (a bar shows it; lines print it only when it ends)."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.label}: {what}")

    def advance(self, what: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=f"{self.label}: {what}")
        else:
            count = f"{self.done}" if self.total is None else f"{min(self.done, self.total)}/{self.total}"
            print(f"{self.label} [{count}] {what}".rstrip(), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def nbytes(shape: tuple[int, ...], itemsize: int) -> float:
    """Bytes of an array of ``shape`` (as a float: no overflow)."""
    return float(math.prod(float(d) for d in shape)) * itemsize
