"""The `analyzer` command line: a thin typer app.

Each command lives in its own module with a ``register(app)`` function and calls one library
function; the registry below is an explicit list, not discovery.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from typing import Annotated

from analyzer.anomaly.forest_helper import start as start_forest_helper

# The commands that fit the isolation forest. Their helper process (anomaly.forest_helper)
# starts here, before the command modules below import polars, pyarrow and the store code
# (~0.5 s): scikit-learn's import then runs on the other core meanwhile.
SCORING_COMMANDS = frozenset({"recommend", "anomalies", "audit", "report"})


def _start_helper_for(argv: Sequence[str]) -> None:
    # (not for help, nor for an audit told not to score: the helper would only be killed)
    if len(argv) > 1 and argv[1] in SCORING_COMMANDS:
        if not {"-h", "--help", "--no-anomalies"} & set(argv):
            start_forest_helper()


_start_helper_for(sys.argv)

import typer  # noqa: E402

from analyzer import __version__  # noqa: E402
from analyzer.cli import (  # noqa: E402
    anomalies_cmd,
    audit_cmd,
    diff_cmd,
    drift_cmd,
    generate_cmd,
    graph_cmd,
    ingest_cmd,
    policy_cmds,
    recommend_cmd,
    report_cmd,
    store_cmd,
)
from analyzer.cli._common import HelpCommand  # noqa: E402

__all__ = ["app"]

app = typer.Typer(
    name="analyzer",
    help=(
        "Least-privilege Kubernetes NetworkPolicies from observed flow logs "
        "(Cilium Hubble, Calico), and an audit of the policies you already have."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Plain click help (kubectl/git style: `--namespace NAMESPACE`), not Rich panels, which
    # print Python types as placeholders (`<bool>`, `<list[str]>`) and truncate option names.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"analyzer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Least-privilege NetworkPolicies from Hubble and Calico flow logs."""
    _fewer_collections()


# CPython's cycle collector (thresholds 700, 10, 10) runs a full collection each time the
# heap has grown by a quarter, walking every live object: a command holds millions (policies,
# frames turned into rows, the report model), so the report at 10,000 workloads spent 17 of
# its 51 CPU seconds there. Data is freed by reference counting; cycles are rare and still
# collected, a hundred times less often.
GC_THRESHOLDS = (100_000, 50, 100)


def _fewer_collections() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


for _module in (
    ingest_cmd,
    generate_cmd,
    graph_cmd,
    recommend_cmd,
    policy_cmds,
    diff_cmd,
    drift_cmd,
    audit_cmd,
    anomalies_cmd,
    report_cmd,
    store_cmd,
):
    _module.register(app)
for _info in app.registered_commands:
    _info.cls = HelpCommand  # kubectl/git-style help for every command
