"""YAML and JSON documents from untrusted files: the C parser where available, bounded shapes.

PyYAML's C loader (libyaml) reads a 50 MB policy file many times faster than the pure-Python
one; both give the same objects, so the C classes are used whenever PyYAML was built with
libyaml, and the pure ones otherwise. Manifests from a file are data a person or a script may
have damaged or forged, so two shapes are refused before any code walks them:

* nesting deeper than :data:`MAX_DEPTH` levels (a Kubernetes object is about 15 deep): deeper
  structures otherwise end in a ``RecursionError`` somewhere downstream, or in the pure
  parser itself;
* aliases that expand to more than :data:`MAX_EXPANDED_NODES` nodes ("billion laughs": a
  few kilobytes of YAML that every reader would walk as a billion values).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import yaml

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPANDED_NODES",
    "SafeDumper",
    "SafeLoader",
    "ShapeError",
    "check_shape",
    "load_json",
    "load_yaml_all",
    "safe_dump",
    "safe_dump_all",
]

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

MAX_DEPTH = 100
MAX_EXPANDED_NODES = 5_000_000


class ShapeError(ValueError):
    """A document nested too deeply or expanding too far; the message is one line."""


def load_yaml_all(text: str) -> list[Any]:
    """Every document of a YAML stream, shape-checked.

    Raises
    ------
    yaml.YAMLError
        Not YAML.
    ShapeError
        Nested deeper than :data:`MAX_DEPTH` or expanding past :data:`MAX_EXPANDED_NODES`.
    """
    try:
        docs = list(yaml.load_all(text, Loader=SafeLoader))
    except RecursionError as exc:  # the pure-Python composer recurses per level
        raise ShapeError(f"nested more than {MAX_DEPTH} levels deep") from exc
    check_shape(docs)
    return docs


def load_json(text: str) -> Any:
    """One JSON document, shape-checked (raises ``json.JSONDecodeError`` or ShapeError)."""
    try:
        doc = json.loads(text)
    except RecursionError as exc:
        raise ShapeError(f"nested more than {MAX_DEPTH} levels deep") from exc
    check_shape([doc])
    return doc


def check_shape(docs: Iterable[Any]) -> None:
    """Refuse documents nested deeper than MAX_DEPTH or expanding past MAX_EXPANDED_NODES.

    Works on the object graph without recursion, once per distinct container (YAML aliases
    share objects), so a hostile document costs time in its size, not in its expansion.
    """
    for doc in docs:
        height, expanded = _measure(doc)
        if height > MAX_DEPTH:
            raise ShapeError(f"nested more than {MAX_DEPTH} levels deep")
        if expanded > MAX_EXPANDED_NODES:
            raise ShapeError(
                f"aliases expand to more than {MAX_EXPANDED_NODES:,} values (a YAML bomb?)"
            )


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [v for v in node.values() if isinstance(v, dict | list)]
    if isinstance(node, list):
        return [v for v in node if isinstance(v, dict | list)]
    return []


def _measure(root: Any) -> tuple[int, int]:
    """(height, expanded size) of a document; a cycle counts as too deep."""
    if not isinstance(root, dict | list):
        return 0, 1
    height: dict[int, int] = {}
    size: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            in_progress.discard(key)
            kids = _children(node)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0)
            size[key] = len(node) + 1 + sum(size[id(k)] for k in kids)
            if height[key] > MAX_DEPTH or size[key] > MAX_EXPANDED_NODES:
                return height[key], size[key]  # enough to refuse; stop early
            continue
        if key in height:
            continue
        if key in in_progress:  # an alias that contains itself
            return MAX_DEPTH + 1, 1
        in_progress.add(key)
        stack.append((node, True))
        if len(in_progress) > MAX_DEPTH:
            return MAX_DEPTH + 1, 1
        stack.extend((k, False) for k in _children(node) if id(k) not in height)
    return height[id(root)], size[id(root)]


def safe_dump_all(documents: Iterable[Any], **options: Any) -> str:
    """``yaml.safe_dump_all`` through the C emitter where available."""
    return str(yaml.dump_all(documents, Dumper=SafeDumper, **options))


def safe_dump(document: Any, **options: Any) -> str:
    """``yaml.safe_dump`` through the C emitter where available."""
    return str(yaml.dump(document, Dumper=SafeDumper, **options))
