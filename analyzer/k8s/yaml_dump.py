"""A faster YAML dumper that writes exactly what ``yaml.safe_dump_all`` writes.

With the C emitter (libyaml) the time of dumping policy manifests goes to PyYAML's pure-Python
representer (a generic dispatch, alias bookkeeping and a few attribute lookups per value) and
to the resolver the emitter calls back for every scalar (a list of regular expressions per
value). A report of 15,000 policies spent about ten seconds there. ``FastSafeDumper`` keeps
the emitter and builds the same node tree directly for the plain values manifests are made of
(dict, list, str, int, bool, None), and remembers the resolver's answer per scalar value. A
document holding anything else (a float, a date, a tuple, the same list twice, which PyYAML
writes as an anchor and an alias) goes through PyYAML's own representer unchanged, so the
output is the same bytes in every case (``tests/unit/k8s/test_yaml_dump.py`` compares them).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["FastSafeDumper", "PlainSafeDumper"]

PlainSafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
# Scalar tags the resolver answers, per (value, implicit); bounded so memory stays flat.
_RESOLVED: dict[tuple[str, tuple[bool, bool]], str] = {}
_RESOLVED_LIMIT = 200_000


class _Unsupported(Exception):
    """A value the direct path does not build; the whole document takes PyYAML's path."""


class FastSafeDumper(PlainSafeDumper):  # type: ignore[valid-type,misc]
    """``CSafeDumper`` (or ``SafeDumper``) with a direct representer for plain values."""

    def represent(self, data: Any) -> None:
        if self.default_style is None:
            try:
                node = self._node(data, set())
            except _Unsupported:
                pass
            else:
                self.serialize(node)
                return
        super().represent(data)

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is not ScalarNode or type(value) is not str:
            return super().resolve(kind, value, implicit)
        key = (value, tuple(implicit))
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_RESOLVED) >= _RESOLVED_LIMIT:
                _RESOLVED.clear()
            _RESOLVED[key] = tag
        return tag

    def _node(self, data: Any, seen: set[int]) -> Node:
        # The same branches, in the same order, as SafeRepresenter's represent_* methods.
        kind = type(data)
        if kind is str:
            return ScalarNode(_STR, data)
        if kind is bool:
            return ScalarNode(_BOOL, "true" if data else "false")
        if kind is int:
            return ScalarNode(_INT, str(data))
        if data is None:
            return ScalarNode(_NULL, "null")
        if kind is dict:
            return self._mapping(data, seen)
        if kind is list:
            return self._sequence(data, seen)
        raise _Unsupported

    def _container(self, data: Any, seen: set[int]) -> None:
        # PyYAML writes a container met twice as an anchor and an alias: leave that to it.
        if id(data) in seen:
            raise _Unsupported
        seen.add(id(data))

    def _style(self, children: list[Node]) -> bool:
        if self.default_flow_style is not None:
            return bool(self.default_flow_style)
        return all(isinstance(n, ScalarNode) and not n.style for n in children)

    def _mapping(self, data: dict[Any, Any], seen: set[int]) -> MappingNode:
        self._container(data, seen)
        items = list(data.items())
        if self.sort_keys:
            try:
                items = sorted(items)
            except TypeError:
                pass
        pairs = [(self._node(k, seen), self._node(v, seen)) for k, v in items]
        node = MappingNode(_MAP, pairs)
        node.flow_style = self._style([n for pair in pairs for n in pair])
        return node

    def _sequence(self, data: list[Any], seen: set[int]) -> SequenceNode:
        self._container(data, seen)
        values = [self._node(item, seen) for item in data]
        node = SequenceNode(_SEQ, values)
        node.flow_style = self._style(values)
        return node
