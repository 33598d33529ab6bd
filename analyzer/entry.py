"""The ``analyzer`` command (console script; ``python -m analyzer``): the typer app of
``analyzer.cli``, with Ctrl-C answered in one line wherever it lands.

This module imports nothing heavy: the first thing the command does is make SIGINT raise
``_sigint.Interrupted``, and only then import the command line (typer, polars, pyarrow: most
of the first second). An interrupt there, or while typer parses the arguments, prints
``interrupted`` and exits with 130, as one during a command does (``cli._common.handle_errors``,
which hands SIGINT back to ``KeyboardInterrupt`` for the command's run). What is left: the
milliseconds in which the Python interpreter starts (``site`` and the ``.pth`` files of
site-packages), before any code of the analyzer runs: a Ctrl-C there is CPython's own
(docs/architecture.md, "Ctrl-C").
"""

from __future__ import annotations

import signal
import sys

from analyzer._sigint import INTERRUPTED_EXIT, Interrupted, install

__all__ = ["main"]


def main() -> None:
    """Run the command line (``sys.argv``); exits with the command's code."""
    install()
    try:
        from analyzer.cli import app

        app()
    except Interrupted:
        try:
            sys.stderr.write("interrupted\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr closed (a closed pipe): the exit code still says it
        raise SystemExit(INTERRUPTED_EXIT) from None
    finally:
        # the command is over: a Ctrl-C now would only interrupt the interpreter's shutdown
        # (ending the anomaly helper) with a traceback
        signal.signal(signal.SIGINT, signal.SIG_IGN)
