"""The flow store: a directory of plain Parquet part files plus ``manifest.json``.

::

    STORE/
      manifest.json            one entry per ingested input (content hash, rows, skips, parts)
      flows/part-<id>-<n>.parquet   canonical FLOW_SCHEMA rows; any Parquet reader can read them
      .lock                    held (flock) by the one process writing
      .tmp-<id>/               staging of a running ingest (parts, spooled stdin)

An input ingested with ``--no-keep-flows`` keeps its manifest entry (its content hash makes
the same input a duplicate; its part names key the rollup and the derivation state) but
``flows_kept: false``: its parts were never published. Such a store answers from its rollup
alone: reading its raw rows (``scan``) raises one ``FlowsNotKeptError`` line.

The manifest is the commit. An ingest writes and fsyncs its parts in a staging directory
*outside* ``flows/``, replaces the manifest (the commit point), and only then renames the parts
into ``flows/``. So ``flows/`` never holds a part the manifest does not list, and readers of the
dataset directory (DuckDB, pyarrow, Spark) never see uncommitted rows. A failure before the
commit point leaves the store byte-for-byte as it was. A process killed after it leaves
committed parts in staging: the store's own reads find them there, and the next command that
opens the store with write access moves them into ``flows/`` (``FlowStore.recover``), and
removes what killed ingests left behind (staging directories, spooled stdin).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from analyzer.errors import FlowsNotKeptError, KeptRollupWarning, StoreError
from analyzer.ingest.report import SkipReason
from analyzer.schema import FLOW_COLUMNS, FLOW_POLARS_SCHEMA, empty_flows
from analyzer.store.files import atomic_write, fsync, os_error_text
from analyzer.store.freshness import stale_reason, warn_if_stale
from analyzer.store.rollup import (
    ROLLUP_DIR,
    ROLLUP_ENV,
    Rollup,
    has_state,
    kept_rollup_file,
    publish_rollup,
    read_kept_rollup,
    read_rollup,
    remove_stale,
    rollup_file,
)

__all__ = [
    "MANIFEST",
    "FLOWS_DIR",
    "LOCK",
    "ManifestEntry",
    "FlowStore",
    "STAGING_PREFIX",
    "scan_parts",
]

MANIFEST = "manifest.json"
FLOWS_DIR = "flows"
LOCK = ".lock"
STAGING_PREFIX = ".tmp-"
# 1: ingest_id was the SHA-256 of the file bytes. 2: of the decompressed content, with the file
# bytes' hash in file_sha256. Version 1 manifests are read as they are. 3: some entry did not
# keep its flows (written only then, so an analyzer that cannot honour that refuses the store
# instead of reporting its parts missing).
MANIFEST_VERSION = 3
_KEPT_VERSION = 2
LOCK_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One ingested input."""

    ingest_id: str  # SHA-256 of the decompressed content; also the rows' ``ingest_id`` column
    path: str
    format: str
    rows: int
    skipped: tuple[SkipReason, ...]
    warnings: tuple[str, ...]
    ingested_at: str
    parts: tuple[str, ...]
    size_bytes: int
    # SHA-256 of the file as given (differs from ingest_id for compressed input). Entries of
    # version-1 stores hashed the file bytes only: there both are the same value.
    file_sha256: str = ""
    compression: str | None = None
    # Events the source reported lost (Hubble ``lost_events`` records say how many each). Entries
    # written before this field count one per skipped lost-events record (a lower bound).
    lost_events: int = 0
    # A batch committed by a streaming ingest (``analyzer.live``): where it came from and
    # where to resume (JSON object, kept as given); None for file ingests.
    stream: dict[str, Any] | None = None
    # False: ingested with ``--no-keep-flows``; ``parts`` name rows the rollup and its
    # derivation state hold but no file does.
    kept: bool = True
    # The compacted part now holding this entry's rows (``store compact`` merged them into
    # the part an earlier entry lists); ``parts`` is then empty.
    merged_into: str | None = None

    @property
    def kept_parts(self) -> tuple[str, ...]:
        """The part files this entry has in the store."""
        return self.parts if self.kept else ()

    @property
    def skipped_total(self) -> int:
        return sum(s.count for s in self.skipped)

    @property
    def identities(self) -> frozenset[str]:
        """The hashes under which this input is recognised when ingested again."""
        return frozenset({self.ingest_id, self.file_sha256 or self.ingest_id})

    def to_json(self) -> dict[str, Any]:
        extra: dict[str, Any] = {} if self.stream is None else {"stream": self.stream}
        if not self.kept:
            extra["flows_kept"] = False
        if self.merged_into is not None:
            extra["merged_into"] = self.merged_into
        return extra | {
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
            "file_sha256": self.file_sha256 or self.ingest_id,
            "compression": self.compression,
            "lost_events": self.lost_events,
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
            file_sha256=str(data.get("file_sha256") or data["ingest_id"]),
            compression=str(data["compression"]) if data.get("compression") else None,
            lost_events=int(data["lost_events"]) if "lost_events" in data else _lost_records(data),
            stream=dict(data["stream"]) if isinstance(data.get("stream"), dict) else None,
            kept=data.get("flows_kept", True) is not False,
            merged_into=str(data["merged_into"]) if data.get("merged_into") else None,
        )


def _lost_records(data: dict[str, Any]) -> int:
    """Lost events of an entry written before ``lost_events`` was recorded: its skipped
    lost-events records, one each."""
    return sum(int(s["count"]) for s in data.get("skipped", []) if "lost" in str(s["reason"]))


def _why_raw(root: Path, names: Sequence[str]) -> str:
    """What makes a reader want the raw rows, for ``FlowStore.refuse_without_flows``."""
    if os.environ.get(ROLLUP_ENV, "") not in ("", "0"):
        return f"cannot derive from the raw flows as {ROLLUP_ENV}=1 asks"
    if read_rollup(root, names) is None and read_kept_rollup(root, names) is None:
        reason = stale_reason(root, names) or "the store has no rollup"
        if has_state(root, names):
            reason += (
                f"; run 'analyzer store rebuild --store {root}' to derive it again from the "
                "store's derivation state"
            )
        return f"cannot derive the connections again ({reason})"
    return "cannot read the raw flow rows"


def scan_parts(parts: Sequence[Path], root: Path) -> pl.LazyFrame:
    """The rows of these part files, in this order, in the canonical schema."""
    missing = [p for p in parts if not p.is_file()]
    if missing:
        raise StoreError(f"flow store {root} is damaged: missing {missing[0].name}")
    if not parts:
        return empty_flows().lazy()
    lf = pl.scan_parquet([str(p) for p in parts], missing_columns="insert", extra_columns="ignore")
    return lf.select(pl.col(c).cast(FLOW_POLARS_SCHEMA[c]) for c in FLOW_COLUMNS)


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
        """Open an existing store; StoreError when ``root`` holds none.

        Finishes or removes what a killed ingest left behind when it can (see ``recover``);
        a read-only store is opened as it is.
        """
        store = cls(Path(root))
        if not store.manifest_path.is_file():
            if Path(root).exists() and not Path(root).is_dir():
                raise StoreError(f"{root} is not a flow store (it is a file)")
            raise StoreError(
                f"no flow store at {root} (run `analyzer ingest FILE --store {root}` first)"
            )
        store.manifest()  # validate early
        store._tidy()
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
            raise StoreError(f"cannot create a flow store at {root}: {os_error_text(exc)}") from exc
        return store

    # --- reading ------------------------------------------------------------------------------

    def manifest(self) -> list[ManifestEntry]:
        """One entry per ingested input, oldest first."""
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            version = int(data.get("version", 1))
            entries = [ManifestEntry.from_json(e) for e in data["inputs"]]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"{self.manifest_path} is damaged: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {self.manifest_path}: {os_error_text(exc)}") from exc
        if version > MANIFEST_VERSION:
            raise StoreError(
                f"{self.manifest_path} was written by a newer analyzer (manifest version "
                f"{version}, this one reads up to {MANIFEST_VERSION})"
            )
        return entries

    def _staging_dirs(self) -> list[Path]:
        return sorted(p for p in self.root.glob(f"{STAGING_PREFIX}*") if p.is_dir())

    def dropped(self) -> list[ManifestEntry]:
        """The inputs whose raw flows the store did not keep (``ingest --no-keep-flows``)."""
        return [e for e in self.manifest() if not e.kept]

    def keeps_flows(self) -> bool:
        """Whether the next file ingest keeps its raw flows when not told: as the last file
        ingest did (``--no-keep-flows`` is sticky until ``--keep-flows``)."""
        return next((e.kept for e in reversed(self.manifest()) if e.stream is None), True)

    def refuse_without_flows(self, what: str) -> None:
        """One ``FlowsNotKeptError`` line when some raw flows were not kept: ``what`` says
        what cannot be done ("cannot ...")."""
        entries = self.manifest()
        dropped = sum(1 for e in entries if not e.kept)
        if dropped:
            raise FlowsNotKeptError(
                f"{what}: the flow store at {self.root} did not keep the raw flows of "
                f"{dropped} of its {len(entries)} inputs (ingested with --no-keep-flows); "
                "only its rollup answers (docs/rollup.md)"
            )

    def part_paths(self) -> list[Path]:
        """The files of every committed part. A part committed by an ingest that was killed
        before moving it into ``flows/`` is read from its staging directory. Raises
        ``FlowsNotKeptError`` when some part was not kept: no subset of the rows is served
        as the store's."""
        self.refuse_without_flows(_why_raw(self.root, self.part_names()))
        return self._kept_paths()

    def _kept_paths(self) -> list[Path]:
        paths = []
        staging: list[Path] | None = None
        for part in (p for e in self.manifest() for p in e.kept_parts):
            path = self.flows_dir / part
            if not path.is_file():
                staging = self._staging_dirs() if staging is None else staging
                path = next((d / part for d in staging if (d / part).is_file()), path)
            paths.append(path)
        return paths

    def part_names(self) -> list[str]:
        """The committed parts' names, in manifest order (the order ``scan`` reads them)."""
        return [p for e in self.manifest() for p in e.parts]

    def rollup(self) -> Rollup | None:
        """The connection rollup of the committed parts, when it is fresh (see rollup.py);
        a ``freshness.StaleRollupWarning`` when the store has one that is stale. A store
        without all its raw flows serves the rollup of its parts even when another version
        of the analyzer built it (with a ``KeptRollupWarning``): nothing could derive it
        again."""
        names = self.part_names()
        found = read_rollup(self.root, names)
        if found is None and self.dropped():
            found = read_kept_rollup(self.root, names)
            if found is not None:
                warnings.warn(
                    "the store's rollup was built by another version of the analyzer and its "
                    "raw flows were not kept (--no-keep-flows): it is served as it was built; "
                    "ingests that need a new derivation are refused",
                    KeptRollupWarning,
                    stacklevel=2,
                )
            return found  # else reading the raw rows refuses, saying why
        if found is None:
            warn_if_stale(self.root, names)
        return found

    def scan(self) -> pl.LazyFrame:
        """All rows in the canonical schema (an empty frame for an empty store)."""
        return scan_parts(self.part_paths(), self.root)


    # --- writing (callers hold the lock) ----------------------------------------------------

    @contextmanager
    def lock(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """Exclusive writer lock (flock on ``.lock``); waits up to ``timeout`` seconds."""
        path = self.root / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                f"cannot write to the flow store at {self.root}: {os_error_text(exc)}"
            ) from exc
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
        version = _KEPT_VERSION if all(e.kept for e in entries) else MANIFEST_VERSION
        doc = {"version": version, "inputs": [e.to_json() for e in entries]}
        atomic_write(self.manifest_path, json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")

    def _leftovers(self) -> bool:
        """Whether a killed ingest left anything to finish or remove."""
        if self._staging_dirs() or any(self.root.glob(f".{MANIFEST}.*.tmp")):
            return True
        listed = {p for e in self.manifest() for p in e.kept_parts}
        present = {p.name for p in self.flows_dir.glob("part-*.parquet")}
        return present != listed

    def _tidy(self) -> None:
        """``recover`` when something is left over and the store can be written; otherwise
        leave it (reads see exactly the committed rows either way)."""
        try:
            if not self._leftovers():
                return
            # A staging directory alone may belong to a running ingest: do not wait for it.
            # Committed parts outside flows/ mean a writer is renaming them right now (or was
            # killed doing so): wait for it, then nothing is left to read from staging.
            unpublished = any(not p.is_file() for p in self._kept_paths())
            with self.lock(timeout=LOCK_TIMEOUT if unpublished else 0):
                self.recover()
        except (StoreError, OSError):
            pass  # read-only or busy store: readers still see exactly the committed rows

    def recover(self) -> None:
        """Finish what killed ingests left (callers hold the lock): move committed parts
        still in staging into ``flows/``, delete staging directories (with spooled stdin),
        parts no manifest entry lists, and temporary manifest files."""
        listed = {p for e in self.manifest() for p in e.kept_parts}
        staging = self._staging_dirs()
        moved = False
        for part in sorted(listed):
            target = self.flows_dir / part
            if target.is_file():
                continue
            for directory in staging:
                if (directory / part).is_file():
                    os.replace(directory / part, target)
                    moved = True
                    break
        if moved:
            fsync(self.flows_dir)
        for path in self.flows_dir.glob("part-*.parquet"):
            if path.name not in listed:
                path.unlink(missing_ok=True)
        self._recover_rollup(staging)
        for directory in staging:
            shutil.rmtree(directory, ignore_errors=True)
        for tmp in self.root.glob(f".{MANIFEST}.*.tmp"):
            tmp.unlink(missing_ok=True)

    def _recover_rollup(self, staging: Sequence[Path]) -> None:
        """Publish a rollup a killed ingest staged for the parts now committed; drop rollups
        of other parts or versions (but a store without all its raw flows and without a
        rollup of this version keeps the one ``rollup.json`` names for its parts, whatever
        its version: ``kept_rollup_file``)."""
        names = self.part_names()
        current = rollup_file(self.root, names).name
        for directory in staging:
            if (directory / current).is_file():
                publish_rollup(self.root, directory / current, names)
                return
        if (self.root / ROLLUP_DIR).is_dir():
            if (
                self.dropped()
                and read_rollup(self.root, names, switchable=False) is None
                and (kept := kept_rollup_file(self.root, names)) is not None
            ):
                current = kept.name  # maybe another version's: nothing could derive it again
            remove_stale(self.root, current.removeprefix("connections-").removesuffix(".parquet"))

    def commit(
        self, staged: Path, new_entries: Sequence[ManifestEntry], rollup: Path | None = None
    ) -> bool:
        """Append ``new_entries`` to the manifest (the commit point), then move their fsynced
        parts from ``staged`` into ``flows/``, then publish ``rollup`` (a staged rollup of the
        store's parts after this commit, see ``rollup.stage_rollup``) when given.

        Returns False when a part could not be moved after the commit: the caller must then
        keep ``staged`` (the data is committed; ``recover`` moves it later). A rollup that
        cannot be published leaves the old one, which is stale: readers derive from the flows.
        """
        entries = self.manifest()
        fsync(staged)
        try:
            self.write_manifest([*entries, *new_entries])
        except OSError:
            # Failed before the rename: nothing is committed. After it (syncing the
            # directory): committed, and the parts must be published, not thrown away.
            ids = {e.ingest_id for e in self.manifest()}
            if not all(e.ingest_id in ids for e in new_entries):
                raise
        try:
            for entry in new_entries:
                for part in entry.kept_parts:
                    os.replace(staged / part, self.flows_dir / part)
            fsync(self.flows_dir)
        except OSError:
            return False
        if rollup is not None:
            try:
                publish_rollup(self.root, rollup, self.part_names())
            except OSError:
                # Committed: ``recover`` publishes it from ``staged`` later (a store
                # without raw flows has no other way to get it back).
                return False
        return True
