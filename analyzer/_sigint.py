"""Ctrl-C before a command runs, told apart from Ctrl-C during its run (``analyzer.entry``).

A command answers Ctrl-C with one line, ``interrupted``, and exit code 130
(``cli._common.handle_errors``, after the command's own clean-up). Before it runs -- most of
the first second goes to importing typer, polars, pyarrow and the command modules, then typer
parses the arguments -- Python's ``KeyboardInterrupt`` would end the command line with a
traceback (during the imports) or silently (typer turns one it sees into exit 130). So the
``analyzer`` command makes SIGINT raise :class:`Interrupted` until a command runs, and answers
it with the same line; a command runs with ``KeyboardInterrupt`` as usual.

An exception raised where Python cannot propagate it -- a weakref callback (the import
system's module locks have one), a ``__del__`` -- is printed as "Exception ignored in ..."
with a traceback, and the interrupt is lost. :func:`install` also hooks those
(``sys.unraisablehook``): an interrupt that lands there is sent again a moment later, from a
timer thread, so it reaches the code that was running instead.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["INTERRUPTED_EXIT", "Interrupted", "deferred", "install", "keyboard_interrupts"]

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for a job ended by Ctrl-C
_REDELIVERY_DELAY = 0.005  # seconds: the callback that swallowed it has returned by then


class Interrupted(BaseException):
    """Ctrl-C outside a command's run. Not a ``KeyboardInterrupt`` (typer would swallow it),
    nor an ``Exception`` (no ``except Exception`` on the way may take it for an error)."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def _send_again() -> None:
    # as a signal would: to whichever handler is installed then (none after the command)
    timer = threading.Timer(_REDELIVERY_DELAY, _thread.interrupt_main)
    timer.daemon = True
    timer.start()


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    if isinstance(unraisable.exc_value, (Interrupted, KeyboardInterrupt)):
        _send_again()
        return
    sys.__unraisablehook__(unraisable)


def install() -> None:
    """From now on SIGINT raises :class:`Interrupted` (the ``analyzer`` command's first act),
    and an interrupt swallowed by a callback is sent again."""
    sys.unraisablehook = _unraisable
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


@contextmanager
def deferred() -> Iterator[None]:
    """Within: a Ctrl-C waits, and is raised (by the handler installed before) on leaving.

    For imports of extensions that cannot be interrupted: DuckDB's (nanobind) aborts the whole
    process with "Critical nanobind error" when an exception lands while it registers its
    types. Only the main thread receives signals, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if seen:
            signal.raise_signal(signal.SIGINT)
