"""What every command shares: the store option, output formats, and error handling."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from analyzer.errors import AnalyzerError

__all__ = ["DEFAULT_STORE", "StoreOption", "handle_errors", "warn", "OutputFormat"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_STORE = Path(".analyzer-store")

StoreOption = Annotated[
    Path,
    typer.Option(
        "--store",
        envvar="ANALYZER_STORE",
        help="Flow store directory (default ./.analyzer-store, or $ANALYZER_STORE).",
        show_default=False,
    ),
]


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    dot = "dot"


def warn(message: str) -> None:
    """One line for a person on stderr; scripts read stdout."""
    typer.echo(message, err=True)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn an AnalyzerError into one line on stderr and its exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except AnalyzerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(code=130) from None
        except BrokenPipeError:
            # `analyzer ... | head` closes stdout early; that is not an error.
            sys.stderr.close()
            raise typer.Exit(code=0) from None

    return wrapper
