"""``--format auto``: decide layout (NDJSON, array, pretty-printed) and format from a file's head.

The decision is per file, from up to ``SAMPLE_RECORDS`` records of the first ``HEAD_BYTES``:
each record votes for the first format whose ``sniff`` accepts it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from typing import Any

from analyzer.errors import IngestError, UnknownFormatError, UsageError
from analyzer.ingest import calico, goldmane, hubble, whisker
from analyzer.ingest._format import FormatSpec
from analyzer.ingest._jsonstream import BAD, NOT_UTF8, iter_json_values

__all__ = ["FORMATS", "HEAD_BYTES", "detect", "spec_for", "expand"]

HEAD_BYTES = 1 << 16
SAMPLE_RECORDS = 200
FORMATS: dict[str, FormatSpec] = {
    "hubble": hubble.SPEC,
    "calico": calico.SPEC,
    "goldmane": goldmane.SPEC,
    "whisker": whisker.SPEC,
}
# Sniffing order: the more specific shapes first.
_SNIFF_ORDER = ("goldmane", "whisker", "calico", "hubble")
_CRI = re.compile(rb"^\d{4}-\d\d-\d\dT\S+ (?:stdout|stderr) [FP] ?")
_CAMEL_KEY = re.compile(r'"([a-z]+[A-Z][A-Za-z0-9]*)"\s*:')
_CAMEL_OK = frozenset({"ipVersion"})  # camelCase in the proto itself


def spec_for(fmt: str) -> FormatSpec:
    try:
        return FORMATS[fmt]
    except KeyError:
        names = ", ".join(["auto", *FORMATS])
        raise UsageError(f"unknown format {fmt!r} (choose one of {names})") from None


def expand(value: Any) -> list[Any]:
    """Containers that wrap records: JSON arrays, Whisker ``{"items": []}``, Goldmane
    ``{"flows": []}`` (grpcurl of Flows/List)."""
    if isinstance(value, list):
        return [v for item in value for v in expand(item)]
    if isinstance(value, dict):
        for key in ("items", "flows"):
            inner = value.get(key)
            if isinstance(inner, list) and len(value) <= 3:
                return [v for item in inner for v in expand(item)]
    return [value]


def _layout(head: bytes, name: str) -> str:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        raise IngestError("empty: no flow records", path=name)
    if b"\x00" in head[:8192]:
        raise IngestError("binary data, not JSON flow records", path=name)
    first_line = text.split(b"\n", 1)[0].strip()
    if text[:1] == b"[":
        return "array"
    if text[:1] == b"{":
        if b"\n" not in text:
            return "ndjson"
        try:
            json.loads(first_line)
            return "ndjson"
        except (ValueError, RecursionError):
            pass
        for _, value in iter_json_values(_once(text), max_value_chars=len(text) + 1):
            return "stream" if value is not BAD else "ndjson"
        return "ndjson"
    if _CRI.match(first_line) or first_line.startswith((b"data:", b"event:", b"id:")):
        return "cri"  # wrapped lines: container log or saved Server-Sent Events
    for line in text.split(b"\n")[:50]:
        if line.strip()[:1] == b"{" or _CRI.match(line):
            return "cri" if _CRI.match(line) else "ndjson"
    raise UnknownFormatError("not JSON flow records (the content is not JSON)", path=name)


def _once(data: bytes) -> Any:
    chunks = [data]
    return lambda: chunks.pop() if chunks else b""


def _sample(head: bytes, layout: str) -> list[Any]:
    values: list[Any] = []
    if layout in ("array", "stream"):
        for _, value in iter_json_values(_once(head), max_value_chars=len(head) + 1):
            if value is not BAD and value is not NOT_UTF8:
                values.extend(expand(value))
            if len(values) >= SAMPLE_RECORDS:
                break
        return values
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]  # the last line of a head may be cut
    for line in lines[:SAMPLE_RECORDS]:
        line = line.strip()
        m = _CRI.match(line)
        if m:
            line = line[m.end() :].strip()
        elif line.startswith(b"data:"):
            line = line[5:].strip()
        if line[:1] not in (b"{", b"["):
            continue
        try:
            values.extend(expand(json.loads(line)))
        except (ValueError, RecursionError):
            continue
    return values


def _vote(values: list[Any]) -> str | None:
    votes: Counter[str] = Counter()
    for value in values:
        for fmt in _SNIFF_ORDER:
            if FORMATS[fmt].sniff(value):
                votes[fmt] += 1
                break
    return votes.most_common(1)[0][0] if votes else None


def detect(head: bytes, fmt: str = "auto", *, name: str = "") -> tuple[str, FormatSpec]:
    """Return ``(layout, spec)`` for an input whose first bytes are ``head``.

    Layout is ``ndjson``, ``cri`` (container-log-wrapped NDJSON), ``array`` or ``stream``.
    The spec's fast path is dropped when the head shows spellings only the slow path reads.
    """
    layout = _layout(head, name)
    values = _sample(head, layout)
    if not values and layout in ("ndjson", "cri"):
        raise UnknownFormatError(
            "not JSON flow records: none of the first lines is a valid JSON object", path=name
        )
    if fmt == "auto":
        found = _vote(values)
        if found is None:
            raise UnknownFormatError(
                "no reader recognises this content (looked for Hubble, Calico flows.log, "
                "Goldmane and Whisker records); pass --format to force one",
                path=name,
            )
        fmt = found
    spec = spec_for(fmt)
    if spec.name == "hubble":
        bare = sum(1 for v in values if isinstance(v, dict) and hubble.is_bare_flow(v))
        if bare > len(values) // 2:
            spec = hubble.BARE_SPEC
    camel = set(_CAMEL_KEY.findall(head.decode("utf-8", errors="replace"))) - _CAMEL_OK
    native = layout == "ndjson" or (layout == "cri" and spec.fast_reads_markers)
    if not native or camel:
        spec = dataclasses.replace(spec, fast_read=None, fast_reads_markers=False)
    return layout, spec
