"""Ctrl-C before a command runs, told apart from Ctrl-C during its run (``analyzer.entry``).

A command answers Ctrl-C with one line, ``interrupted``, and exit code 130
(``cli._common.handle_errors``, after the command's own clean-up). Before it runs -- most of
the first second goes to importing typer, polars, pyarrow and the command modules, then typer
parses the arguments -- Python's ``KeyboardInterrupt`` would end the command line with a
traceback (during the imports) or silently (typer turns one it sees into exit 130). So the
``analyzer`` command makes SIGINT raise :class:`Interrupted` until a command runs, and answers
it with the same line; a command runs with ``KeyboardInterrupt`` as usual.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["INTERRUPTED_EXIT", "Interrupted", "install", "keyboard_interrupts"]

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for a job ended by Ctrl-C


class Interrupted(BaseException):
    """Ctrl-C outside a command's run. Not a ``KeyboardInterrupt`` (typer would swallow it),
    nor an ``Exception`` (no ``except Exception`` on the way may take it for an error)."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def install() -> None:
    """From now on SIGINT raises :class:`Interrupted` (the ``analyzer`` command's first act)."""
    signal.signal(signal.SIGINT, _interrupt)


@contextmanager
def keyboard_interrupts() -> Iterator[None]:
    """Within: SIGINT raises ``KeyboardInterrupt`` again, which commands handle (their
    clean-up, a live ingest's last commit). Nothing changes when :func:`install` was not
    called (the library, tests that call the app in-process)."""
    if signal.getsignal(signal.SIGINT) is not _interrupt:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, _interrupt)
