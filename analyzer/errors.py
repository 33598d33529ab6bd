"""Errors the library raises; the CLI turns each into one line and an exit code.

::

    AnalyzerError                 exit 1
    ├── UsageError                exit 2  (bad option values the parser could not catch)
    ├── IngestError               a flow file that cannot be read at all
    │   └── UnknownFormatError    no reader recognises the content
    ├── SchemaError               a frame that does not match the canonical flow schema
    ├── StoreError                the flow store is missing, locked or damaged
    ├── PolicyError               a policy that cannot be loaded (file, policy, field path)
    ├── InventoryError            an inventory file that cannot be read
    ├── VerificationError         recommended policies would deny observed legitimate traffic
    └── ConfigError               inconsistent settings

The library never prints, exits or raises anything else for bad user input.

Notes that change no answer (a stale rollup: slower, same output) are Python warnings of
``AnalyzerNote`` subclasses; the CLI prints each distinct one once per command as ``note: ...``
on stderr (``cli._common.handle_errors``).
"""

from __future__ import annotations

__all__ = [
    "AnalyzerError",
    "AnalyzerNote",
    "StaleRollupWarning",
    "KeptRollupWarning",
    "ConfigError",
    "FlowsNotKeptError",
    "IngestError",
    "InventoryError",
    "PolicyError",
    "SchemaError",
    "StoreError",
    "UnknownFormatError",
    "UsageError",
    "VerificationError",
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_FINDINGS",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_FINDINGS = 3


class AnalyzerError(Exception):
    """Base class: a problem the user can act on, described in one line."""

    exit_code: int = EXIT_ERROR


class UsageError(AnalyzerError):
    """An option value that is syntactically fine but cannot be used."""

    exit_code = EXIT_USAGE


class IngestError(AnalyzerError):
    """A flow input that cannot be read at all."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class UnknownFormatError(IngestError):
    """No reader recognises the content of an input."""


class SchemaError(AnalyzerError):
    """A frame that does not match the canonical flow schema."""


class StoreError(AnalyzerError):
    """The flow store is missing, locked by another writer, or damaged."""


class FlowsNotKeptError(StoreError):
    """What was asked needs raw flow rows the store did not keep (``ingest --no-keep-flows``):
    only its rollup answers (docs/rollup.md, "Stores without raw flows")."""


class PolicyError(AnalyzerError):
    """A policy document that cannot be loaded, located by file, policy and field path."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        policy: str | None = None,
        field_path: str | None = None,
    ) -> None:
        self.file = file
        self.policy = policy
        self.field_path = field_path
        where = ": ".join(p for p in (file, policy, field_path) if p)
        super().__init__(f"{where}: {message}" if where else message)


class InventoryError(AnalyzerError):
    """An inventory (kubectl get pods,namespaces -o json|yaml) that cannot be read."""


class VerificationError(AnalyzerError):
    """Recommended policies would deny observed legitimate connections."""


class ConfigError(AnalyzerError):
    """Settings that contradict each other."""


class AnalyzerNote(UserWarning):
    """Something a person should know that changes no result (printed as ``note: ...``)."""


class KeptRollupWarning(AnalyzerNote):
    """A store without raw flows serves a rollup built by another version of the analyzer:
    it cannot be derived again (``FlowStore.rollup``)."""


class StaleRollupWarning(AnalyzerNote):
    """The store has a connection rollup, but not the one of its current parts, bucket
    schedule and code: commands derive from the raw flows (``store.freshness``)."""
