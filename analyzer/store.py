"""The flow store: a directory of plain Parquet part files plus ``manifest.json``.

::

    STORE/
      manifest.json            one entry per ingested input (content hash, rows, skips, parts)
      flows/part-<id>-<n>.parquet   canonical FLOW_SCHEMA rows; any Parquet reader can read them
      .lock                    held (flock) by the one process writing

Writes are atomic: parts are written to a temporary directory inside the store, fsynced, and
renamed into ``flows/``; the manifest is replaced last. A failure before that point removes the
temporary files, so the store stays byte-for-byte as it was. Readers use only the parts the
manifest lists, so a crash between the renames and the manifest leaves no half-visible ingest.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from analyzer.errors import StoreError
from analyzer.ingest.report import SkipReason
from analyzer.schema import FLOW_COLUMNS, FLOW_POLARS_SCHEMA, empty_flows

if TYPE_CHECKING:
    from analyzer.ingest.pipeline import IngestSummary

__all__ = [
    "ingest",
    "MANIFEST",
    "FLOWS_DIR",
    "ManifestEntry",
    "FlowStore",
    "atomic_write",
    "fsync_dir",
]

MANIFEST = "manifest.json"
FLOWS_DIR = "flows"
LOCK = ".lock"
MANIFEST_VERSION = 1


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One ingested input."""

    ingest_id: str  # SHA-256 of the input's bytes; also the rows' ``ingest_id`` column
    path: str
    format: str
    rows: int
    skipped: tuple[SkipReason, ...]
    warnings: tuple[str, ...]
    ingested_at: str
    parts: tuple[str, ...]
    size_bytes: int

    @property
    def skipped_total(self) -> int:
        return sum(s.count for s in self.skipped)

    def to_json(self) -> dict[str, Any]:
        return {
            "ingest_id": self.ingest_id,
            "path": self.path,
            "format": self.format,
            "rows": self.rows,
            "skipped": [
                {"reason": s.reason, "count": s.count, "first_lines": list(s.first_lines)}
                for s in self.skipped
            ],
            "warnings": list(self.warnings),
            "ingested_at": self.ingested_at,
            "parts": list(self.parts),
            "size_bytes": self.size_bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ManifestEntry:
        return cls(
            ingest_id=str(data["ingest_id"]),
            path=str(data["path"]),
            format=str(data["format"]),
            rows=int(data["rows"]),
            skipped=tuple(
                SkipReason(
                    str(s["reason"]), int(s["count"]), tuple(int(n) for n in s["first_lines"])
                )
                for s in data.get("skipped", [])
            ),
            warnings=tuple(str(w) for w in data.get("warnings", [])),
            ingested_at=str(data.get("ingested_at", "")),
            parts=tuple(str(p) for p in data.get("parts", [])),
            size_bytes=int(data.get("size_bytes", 0)),
        )


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a fsynced temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


class FlowStore:
    """A flow store directory. Construct with ``open`` or ``open_or_create``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def flows_dir(self) -> Path:
        return self.root / FLOWS_DIR

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @classmethod
    def open(cls, root: Path) -> FlowStore:
        """Open an existing store; StoreError when ``root`` holds none."""
        store = cls(Path(root))
        if not store.manifest_path.is_file():
            if Path(root).exists() and not Path(root).is_dir():
                raise StoreError(f"{root} is not a flow store (it is a file)")
            raise StoreError(
                f"no flow store at {root} (run `analyzer ingest FILE --store {root}` first)"
            )
        store.manifest()  # validate early
        return store

    @classmethod
    def open_or_create(cls, root: Path) -> FlowStore:
        """Open the store at ``root``, creating an empty one if there is none."""
        store = cls(Path(root))
        if store.manifest_path.is_file():
            return cls.open(root)
        try:
            store.flows_dir.mkdir(parents=True, exist_ok=True)
            with store.lock():
                if not store.manifest_path.is_file():
                    store.write_manifest([])
        except OSError as exc:
            raise StoreError(f"cannot create a flow store at {root}: {exc.strerror}") from exc
        return store

    # --- reading ------------------------------------------------------------------------------

    def manifest(self) -> list[ManifestEntry]:
        """One entry per ingested input, oldest first."""
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            return [ManifestEntry.from_json(e) for e in data["inputs"]]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{self.manifest_path} is damaged: {exc}") from exc

    def part_paths(self) -> list[Path]:
        return [self.flows_dir / p for e in self.manifest() for p in e.parts]

    def scan(self) -> pl.LazyFrame:
        """All rows in the canonical schema (an empty frame for an empty store)."""
        parts = self.part_paths()
        missing = [p for p in parts if not p.is_file()]
        if missing:
            raise StoreError(f"flow store {self.root} is damaged: missing {missing[0].name}")
        if not parts:
            return empty_flows().lazy()
        lf = pl.scan_parquet(
            [str(p) for p in parts], missing_columns="insert", extra_columns="ignore"
        )
        return lf.select(pl.col(c).cast(FLOW_POLARS_SCHEMA[c]) for c in FLOW_COLUMNS)

    # --- writing (callers hold the lock) ----------------------------------------------------

    @contextmanager
    def lock(self, timeout: float = 600.0) -> Iterator[None]:
        """Exclusive writer lock (flock on ``.lock``); waits up to ``timeout`` seconds."""
        path = self.root / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreError(
                            f"flow store {self.root} is busy: another ingest has held its lock "
                            f"for more than {timeout:.0f} s"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def write_manifest(self, entries: Sequence[ManifestEntry]) -> None:
        doc = {"version": MANIFEST_VERSION, "inputs": [e.to_json() for e in entries]}
        atomic_write(self.manifest_path, json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")

    def remove_orphans(self) -> None:
        """Delete part files no manifest entry lists (left by a crash mid-commit)."""
        listed = {p for e in self.manifest() for p in e.parts}
        for path in self.flows_dir.glob("part-*.parquet"):
            if path.name not in listed:
                path.unlink(missing_ok=True)
        for tmp in self.root.glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)

    def commit(self, staged: Path, new_entries: Sequence[ManifestEntry]) -> None:
        """Move fsynced parts from ``staged`` into ``flows/`` and append to the manifest."""
        entries = self.manifest()
        for entry in new_entries:
            for part in entry.parts:
                os.replace(staged / part, self.flows_dir / part)
        fsync_dir(self.flows_dir)
        self.write_manifest([*entries, *new_entries])


def ingest(
    store_dir: Path,
    inputs: Sequence[str],
    fmt: str = "auto",
    progress: Callable[[int], None] | bool | None = None,
) -> IngestSummary:
    """Ingest flow files, directories or ``-`` (stdin) into the store at ``store_dir``.

    ``progress``, when callable, is called with the number of input bytes consumed since the
    last call (a bool is accepted and means no callback: the library never prints).
    All-or-nothing: on error the store is left exactly as it was. See
    ``analyzer.ingest.pipeline.run_ingest``.
    """
    from analyzer.ingest.pipeline import run_ingest

    callback = progress if callable(progress) else None
    return run_ingest(Path(store_dir), inputs, fmt, callback)
