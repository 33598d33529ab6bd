"""Other spellings of the same capture, as other producers and tools write it.

Hubble: ``envelope`` is ``hubble observe -o json`` / the exporter (the default). ``bare`` is
the legacy output (``HUBBLE_COMPAT=legacy-json-output``): the Flow object alone. ``camel`` is
protojson with default JSON names, as grpcurl and gRPC-web clients print (``node_name`` ->
``nodeName``). ``cri`` is the exporter writing to stdout, wrapped by the container runtime's
log format (``<time> stdout F <json>``). ``array`` is one JSON array, as some tools save it.

Goldmane: ``result`` is ``Flows/Stream`` through grpcurl (``{"id", "flow"}`` per line, the
default); ``bare`` is the Flow object alone. Whisker: ``lines`` is one ``/flows`` item per
line (``jq -c '.items[]'``, the default); ``items`` is the ``/flows`` response itself,
``{"total": ..., "items": [...]}``. The other formats have one spelling, ``lines``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

__all__ = ["STYLES", "HUBBLE_STYLES", "restyle", "native_style"]

STYLES: dict[str, tuple[str, ...]] = {
    "hubble": ("envelope", "bare", "camel", "cri", "array"),
    "goldmane": ("result", "bare"),
    "whisker": ("lines", "items"),
    "calico": ("lines",),
    "goldmane-emitter": ("lines",),
}
HUBBLE_STYLES = STYLES["hubble"]

# A JSON string is followed by ':' only when it is a key, so this touches keys alone; enum
# values (TO_ENDPOINT) are upper case and never match.
_SNAKE_KEY = re.compile(r'"([a-z][a-z0-9]*(?:_[a-z0-9]+)+)":')


def native_style(fmt: str) -> str:
    """The spelling a format has by default (its first style)."""
    return STYLES[fmt][0]


def _camel(match: re.Match[str]) -> str:
    head, *rest = match.group(1).split("_")
    return '"' + head + "".join(part.capitalize() for part in rest) + '":'


def _bare(line: str) -> str:
    if not line.startswith('{"flow":'):
        return line
    # The envelope's own keys come after the flow object: {"flow":{...},"node_name":..}
    return line[8 : line.rfind(',"node_name":"')] + "\n"


def _cri(line: str) -> str:
    at = line.rfind('"time":"') + 8
    return line[at : line.index('"', at)] + " stdout F " + line


def _goldmane_bare(line: str) -> str:
    # {"id":"7","flow":{...}}\n -> {...}\n
    return line[line.index('"flow":') + 7 : line.rstrip().rfind("}")] + "\n"


def _map_lines(chunks: Iterator[str], fix: Callable[[str], str]) -> Iterator[str]:
    for chunk in chunks:
        yield "".join(fix(line) for line in chunk.splitlines(keepends=True))


def _joined(chunks: Iterator[str], head: str, sep: str, tail: str) -> Iterator[str]:
    """One JSON document: ``head`` + the lines separated by ``sep`` + ``tail``."""
    first = True
    for chunk in chunks:
        lines = chunk.splitlines()
        if not lines:
            continue
        yield (head if first else sep) + sep.join(lines)
        first = False
    yield head.rstrip("\n") + tail.lstrip("\n") if first else tail


def restyle(chunks: Iterator[str], style: str, fmt: str = "hubble") -> Iterator[str]:
    """Rewrite chunks of the format's native lines into ``style``."""
    if style == native_style(fmt):
        return chunks
    if fmt == "hubble":
        if style == "camel":
            return (_SNAKE_KEY.sub(_camel, chunk) for chunk in chunks)
        if style == "bare":
            return _map_lines(chunks, _bare)
        if style == "cri":
            return _map_lines(chunks, _cri)
        if style == "array":
            return _joined(chunks, "[\n", ",\n", "\n]\n")
    if fmt == "goldmane" and style == "bare":
        return _map_lines(chunks, _goldmane_bare)
    if fmt == "whisker" and style == "items":
        # As curl prints the response: one line.
        return _joined(chunks, '{"total":{"totalPages":1},"items":[', ",", "]}\n")
    raise ValueError(f"{fmt}/{style}")
