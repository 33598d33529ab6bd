"""Other spellings of the same Hubble capture, as other producers write it.

``envelope`` is ``hubble observe -o json`` / the exporter (the default). ``bare`` is the
legacy output (``HUBBLE_COMPAT=legacy-json-output``): the Flow object alone. ``camel`` is
protojson with default JSON names, as grpcurl and gRPC-web clients print (``node_name`` ->
``nodeName``). ``cri`` is the exporter writing to stdout, wrapped by the container runtime's
log format (``<time> stdout F <json>``). ``array`` is one JSON array, as some tools save it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["HUBBLE_STYLES", "restyle"]

HUBBLE_STYLES: tuple[str, ...] = ("envelope", "bare", "camel", "cri", "array")

# A JSON string is followed by ':' only when it is a key, so this touches keys alone; enum
# values (TO_ENDPOINT) are upper case and never match.
_SNAKE_KEY = re.compile(r'"([a-z][a-z0-9]*(?:_[a-z0-9]+)+)":')


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


def restyle(chunks: Iterator[str], style: str) -> Iterator[str]:
    """Rewrite chunks of envelope lines into ``style``; chunk boundaries fall on lines."""
    if style == "envelope":
        yield from chunks
        return
    if style == "camel":
        for chunk in chunks:
            yield _SNAKE_KEY.sub(_camel, chunk)
        return
    if style in ("bare", "cri"):
        fix = _bare if style == "bare" else _cri
        for chunk in chunks:
            yield "".join(fix(line) for line in chunk.splitlines(keepends=True))
        return
    if style == "array":
        first = True
        for chunk in chunks:
            lines = chunk.splitlines()
            if not lines:
                continue
            head = "[\n" if first else ",\n"
            first = False
            yield head + ",\n".join(lines)
        yield "[]\n" if first else "\n]\n"
        return
    raise ValueError(style)
