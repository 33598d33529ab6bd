"""When applied policies were generated: their ``analyzer.io/observed-window`` annotations.

``analyzer recommend`` writes the observation window its policies were built from on every
allow policy and on each namespace's default-deny (``analyzer/recommend/render.py``). Its end is
when the policies were generated: traffic first seen after it is traffic they never saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analyzer.policy.load import read_documents
from analyzer.recommend.render import ANNOTATION_PREFIX

__all__ = ["GeneratedPolicy", "read_generated", "WINDOW_ANNOTATION"]

WINDOW_ANNOTATION = f"{ANNOTATION_PREFIX}/observed-window"
_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class GeneratedPolicy:
    """A policy ``analyzer recommend`` wrote, and the window it was built from."""

    key: str  # namespace/name
    first: datetime | None
    last: datetime | None


def _files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES
            )
        elif path.is_file():
            yield path


def _documents(docs: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        if isinstance(doc, list):
            yield from _documents(doc)
        elif isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List"):
            yield from _documents(doc.get("items") or [])
        elif isinstance(doc, dict):
            yield doc


def _time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_generated(paths: Sequence[str | Path]) -> tuple[GeneratedPolicy, ...]:
    """Every policy under ``paths`` that carries an observed-window annotation (the loader has
    already refused files that cannot be read)."""
    out = []
    for file in _files(paths):
        for doc in _documents(read_documents(file)):
            meta = doc.get("metadata")
            if not isinstance(meta, dict) or not isinstance(meta.get("annotations"), dict):
                continue
            window = meta["annotations"].get(WINDOW_ANNOTATION)
            if not isinstance(window, str) or "/" not in window:
                continue
            first, _, last = window.partition("/")
            key = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
            out.append(GeneratedPolicy(key, _time(first), _time(last)))
    return tuple(sorted(out, key=lambda g: g.key))
