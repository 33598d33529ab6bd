"""YAML and JSON documents from untrusted files: the C parser where available, bounded shapes.

PyYAML's C loader (libyaml) reads a 50 MB policy file many times faster than the pure-Python
one; both give the same objects, so the C classes are used whenever PyYAML was built with
libyaml, and the pure ones otherwise. Manifests from a file are data a person or a script may
have damaged or forged, so two shapes are refused before any code walks them:

* nesting deeper than :data:`MAX_DEPTH` levels (a Kubernetes object is about 15 deep): deeper
  structures otherwise end in a ``RecursionError`` somewhere downstream, or in the pure
  parser itself;
* aliases that expand a document past :data:`MAX_EXPANDED_NODES` values and to more than
  :data:`ALIAS_RATIO` times its distinct values ("billion laughs": a few kilobytes of YAML
  that every reader would walk as a billion values). A large file without such aliasing is
  fine, whatever its size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import yaml

from analyzer.k8s.yaml_dump import FastSafeDumper

__all__ = [
    "ALIAS_RATIO",
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
ALIAS_RATIO = 10


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
    # Without an anchor there is no alias: the documents are trees, and depth is all to check.
    check_shape(docs, aliases="&" in text)
    return docs


def load_json(text: str) -> Any:
    """One JSON document, shape-checked (raises ``json.JSONDecodeError`` or ShapeError)."""
    try:
        doc = json.loads(text)
    except RecursionError as exc:
        raise ShapeError(f"nested more than {MAX_DEPTH} levels deep") from exc
    check_shape([doc], aliases=False)
    return doc


def check_shape(docs: Iterable[Any], *, aliases: bool = True) -> None:
    """Refuse documents nested deeper than MAX_DEPTH or expanding past MAX_EXPANDED_NODES.

    Works on the object graph without recursion, once per distinct container (YAML aliases
    share objects), so a hostile document costs time in its size, not in its expansion.
    ``aliases=False`` (JSON, YAML without anchors): plain trees, only the depth is measured,
    level by level, which is several times faster on large files.
    """
    if not aliases:
        for doc in docs:
            if _deeper_than(doc, MAX_DEPTH):
                raise ShapeError(f"nested more than {MAX_DEPTH} levels deep")
        return
    for doc in docs:
        height, expanded, distinct = _measure(doc)
        if height > MAX_DEPTH:
            raise ShapeError(f"nested more than {MAX_DEPTH} levels deep")
        # A large file is fine; a small one that aliases make large is not.
        if expanded > MAX_EXPANDED_NODES and expanded > ALIAS_RATIO * distinct:
            raise ShapeError(
                f"aliases expand {distinct:,} values to {expanded:,} (a YAML bomb?)"
            )


def _deeper_than(root: Any, limit: int) -> bool:
    level = [root] if isinstance(root, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            values = node.values() if isinstance(node, dict) else node
            below.extend(v for v in values if isinstance(v, dict | list))
        level = below
    return False


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [v for v in node.values() if isinstance(v, dict | list)]
    if isinstance(node, list):
        return [v for v in node if isinstance(v, dict | list)]
    return []


def _measure(root: Any) -> tuple[int, int, int]:
    """(height, expanded size, distinct size) of a document; a cycle counts as too deep."""
    if not isinstance(root, dict | list):
        return 0, 1, 1
    height: dict[int, int] = {}
    size: dict[int, int] = {}
    distinct = 0
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
            distinct += len(node) + 1
            continue
        if key in height:
            continue
        if key in in_progress:  # an alias that contains itself
            return MAX_DEPTH + 1, 1, 1
        in_progress.add(key)
        stack.append((node, True))
        if len(in_progress) > MAX_DEPTH:
            return MAX_DEPTH + 1, 1, 1
        stack.extend((k, False) for k in _children(node) if id(k) not in height)
    return height[id(root)], size[id(root)], distinct


def safe_dump_all(documents: Iterable[Any], **options: Any) -> str:
    """``yaml.safe_dump_all``, byte for byte, through the C emitter where available and the
    direct representer of :mod:`analyzer.k8s.yaml_dump`."""
    return str(yaml.dump_all(documents, Dumper=FastSafeDumper, **options))


def safe_dump(document: Any, **options: Any) -> str:
    """``yaml.safe_dump``, byte for byte (see :func:`safe_dump_all`)."""
    return str(yaml.dump(document, Dumper=FastSafeDumper, **options))
