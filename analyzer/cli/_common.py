"""What every command shares: the store option, output formats, and error handling."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TextIO, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from analyzer._sigint import INTERRUPTED_EXIT, keyboard_interrupts
from analyzer.errors import AnalyzerError, AnalyzerNote

__all__ = [
    "DEFAULT_STORE",
    "HelpCommand",
    "InventoryOption",
    "NamespaceOption",
    "SinceOption",
    "StagedOption",
    "StoreOption",
    "UntilOption",
    "choice_option",
    "emit_json",
    "handle_errors",
    "ipblock_option",
    "output_option",
    "warn",
]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_STORE = Path(".analyzer-store")

StoreOption = Annotated[
    Path,
    typer.Option(
        "--store",
        metavar="DIR",
        envvar="ANALYZER_STORE",
        help="Flow store directory (default ./.analyzer-store, or $ANALYZER_STORE).",
        show_default=False,
    ),
]


NamespaceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--namespace",
        "-n",
        metavar="NAMESPACE",
        help="Only edges from or to this namespace (repeatable).",
        show_default=False,
    ),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="TIME",
        help="Only flows at or after TIME: RFC 3339 (2026-11-02T09:00:00Z) or a duration "
        "before now (24h, 7d).",
        show_default=False,
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="TIME",
        help="Only flows before TIME: RFC 3339 or a duration before now.",
        show_default=False,
    ),
]
InventoryOption = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        metavar="FILE",
        help="`kubectl get pods,namespaces -A -o json` output (JSON or YAML).",
    ),
]
StagedOption = Annotated[
    bool,
    typer.Option("--staged", help="Evaluate Calico StagedKubernetesNetworkPolicy as enforced."),
]


def _choices(names: Sequence[str]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in names:
            shown = ", ".join(repr(n) for n in names)
            raise typer.BadParameter(f"{value!r} is not one of {shown}.")
        return value

    return parse


def choice_option(
    default: str | None, *names: str, decls: Sequence[str], metavar: str, help: str
) -> Any:
    """An option that takes one of ``names`` (the one helper behind every enumerated option)."""
    return typer.Option(
        default, *decls, metavar=metavar, help=help, parser=_choices(names),
        show_default=default is not None,
    )


def output_option(default: str, *formats: str, help: str) -> Any:
    """``-o/--output FORMAT``, the same option on every command; ``formats`` it supports."""
    return choice_option(
        default, *formats, decls=("--output", "-o"), metavar="FORMAT", help=help
    )


def ipblock_option() -> Any:
    """``--ipblock-mode kubernetes|cilium``."""
    return choice_option(
        "kubernetes",
        "kubernetes",
        "cilium",
        decls=("--ipblock-mode",),
        metavar="MODE",
        help="kubernetes: ipBlock also matches pod IPs (upstream e2e); cilium: only "
        "addresses outside the cluster.",
    )


def emit_json(document: Any) -> None:
    """A JSON document on stdout: indented, keys in the order given, deterministic."""
    typer.echo(json.dumps(document, indent=2, default=str))


class HelpCommand(TyperCommand):
    """Help in the conventions of kubectl and git: ``--namespace NAMESPACE``, ``PATH...``.

    Typer prints Python types as placeholders (``<list[str]>``, ``<path>``, ``{paths}``);
    here arguments show their metavar (or upper-cased name) with ``...`` when repeatable, and
    an option without an explicit metavar shows a word derived from its type.
    """

    # ctx and formatter are click's (typer vendors click in recent versions): duck-typed here.
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            if isinstance(param, TyperOption) and param.metavar is None and not param.is_flag:
                param.metavar = _type_word(param)
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                args.append((_argument_name(param), record[1]))
            else:
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _argument_name(param: TyperArgument) -> str:
    name = param.metavar or (param.name or "ARG").upper()
    return name if param.nargs == 1 or name.endswith("...") else f"{name}..."


def _type_word(param: TyperOption) -> str:
    # click's type names (path, integer, float, ...)
    kind = str(getattr(getattr(param, "type", None), "name", ""))
    words = {"path": "PATH", "file": "FILE", "integer": "N", "float": "NUMBER"}
    if kind in words:
        return words[kind]
    long = next((o for o in param.opts if o.startswith("--")), "--value")
    return long.lstrip("-").upper()


def warn(message: str) -> None:
    """One line for a person on stderr; scripts read stdout."""
    typer.echo(message, err=True)


@contextlib.contextmanager
def _notes_once() -> Iterator[None]:
    """Print each distinct ``AnalyzerNote`` the library raises as one ``note: ...`` line on
    stderr, once per command, when it happens; other warnings are shown as Python shows them."""
    shown: set[str] = set()
    with warnings.catch_warnings():  # restores the filters and showwarning afterwards
        warnings.simplefilter("always", AnalyzerNote)  # every time: deduplicated here
        show = warnings.showwarning

        def note(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if not issubclass(category, AnalyzerNote):
                show(message, category, filename, lineno, file, line)
            elif str(message) not in shown:
                shown.add(str(message))
                warn(f"note: {message}")

        warnings.showwarning = note
        yield


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn an AnalyzerError into one line on stderr and its exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            # Ctrl-C is a KeyboardInterrupt while the command runs (before: analyzer.entry)
            with keyboard_interrupts(), _notes_once():
                return func(*args, **kwargs)
        except AnalyzerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(code=INTERRUPTED_EXIT) from None
        except BrokenPipeError:
            # `analyzer ... | head` closes stdout early; that is not an error.
            sys.stderr.close()
            raise typer.Exit(code=0) from None

    return wrapper
