"""Flow files in object storage or HDFS: ``s3://``/``s3a://``, ``gs://``, ``hdfs://`` inputs.

A remote input is copied ("spooled") into the ingest's staging directory and then read like a
local file: the readers hash it and parse it from the same bytes, compressed or not, so a file
ingested from a bucket and the same file ingested from disk are the same input (the second is a
duplicate). The copy is removed as soon as the file is loaded; the store itself stays local.

The file systems are pyarrow's (no extra dependency): credentials and endpoints come from the
standard environment of each process that opens a file (``AWS_ACCESS_KEY_ID``, an instance
profile or IRSA, ``AWS_ENDPOINT_URL`` for MinIO/Ceph; ``GOOGLE_APPLICATION_CREDENTIALS``;
``HADOOP_HOME``/``CLASSPATH`` for libhdfs), or from query parameters of the URL that pyarrow
understands (``?endpoint_override=...&scheme=http``). Hadoop's ``s3a``/``s3n`` names are the
same buckets as ``s3``.

A URL names an object, a "directory" (every object under the prefix, hidden names skipped, as
a local directory is walked) or a glob pattern (``*``, ``?``, ``[...]`` within one path
segment, ``**`` across segments), expanded here in sorted order.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from analyzer.errors import IngestError, UsageError
from analyzer.store.staging import spool

__all__ = [
    "REMOTE_SCHEMES",
    "S3Settings",
    "expand_remote",
    "is_remote",
    "is_url",
    "remote_size",
    "spool_remote",
]

# Hadoop's names for S3 and GCS map onto pyarrow's file systems.
_ALIASES = {"s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gs", "gcs": "gs", "hdfs": "hdfs"}
REMOTE_SCHEMES = frozenset(_ALIASES)
_GLOB = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class S3Settings:
    """S3 options given explicitly (by ``--engine spark`` from Spark's own ``fs.s3a.*``
    settings) instead of the environment: a MinIO endpoint, keys. Unset fields keep pyarrow's
    defaults (the standard AWS chain)."""

    endpoint: str | None = None  # host[:port] or a URL; http:// turns TLS off
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    region: str | None = None
    tls: bool | None = None

    def __repr__(self) -> str:  # never print keys (logs, tracebacks)
        return f"S3Settings(endpoint={self.endpoint!r}, region={self.region!r})"

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``pyarrow.fs.S3FileSystem``."""
        out: dict[str, Any] = {}
        endpoint = self.endpoint
        scheme = None if self.tls is None else ("https" if self.tls else "http")
        if endpoint:
            head, sep, rest = endpoint.partition("://")
            if sep:
                scheme, endpoint = head.lower(), rest
            out["endpoint_override"] = endpoint.rstrip("/")
        if scheme:
            out["scheme"] = scheme
        if self.access_key and self.secret_key:
            out["access_key"] = self.access_key
            out["secret_key"] = self.secret_key
            if self.session_token:
                out["session_token"] = self.session_token
        if self.region:
            out["region"] = self.region
        return out


def is_remote(path: str) -> bool:
    """Whether ``path`` is a URL of a file system other than the local one."""
    return _scheme(path) in REMOTE_SCHEMES


def is_url(path: str) -> bool:
    """Whether ``path`` names a scheme (``x://``) other than the local ``file://``."""
    return _scheme(path) not in ("", "file")


def _scheme(path: str) -> str:
    head, sep, _ = path.partition("://")
    return head.lower() if sep and head.isascii() and head.isalnum() else ""


def _filesystem(url: str, s3: S3Settings | None = None) -> tuple[Any, str]:
    """pyarrow's file system for ``url`` and the path inside it."""
    import pyarrow.fs as pafs

    scheme = _scheme(url)
    if scheme not in REMOTE_SCHEMES:
        raise UsageError(
            f"{scheme}:// inputs are not supported (local paths, file://, "
            f"{', '.join(s + '://' for s in sorted(REMOTE_SCHEMES))}): {url}"
        )
    parts = urlsplit(url)
    normal = urlunsplit((_ALIASES[scheme], parts.netloc, parts.path, parts.query, ""))
    try:
        if s3 is not None and _ALIASES[scheme] == "s3":
            fs = pafs.S3FileSystem(**s3.options())
            path = (parts.netloc + parts.path).rstrip("/")
        else:
            fs, path = pafs.FileSystem.from_uri(normal)
    except (OSError, ValueError, ImportError) as exc:
        raise IngestError(f"cannot open this file system: {_one_line(exc)}", path=url) from exc
    return fs, str(path)


def _url_of(url: str, url_path: str, found: str) -> str:
    """The URL of ``found``, a file-system path listed under ``url`` (whose file-system path
    is ``url_path``): same scheme as given (``s3a`` stays ``s3a``), host and query."""
    parts = urlsplit(url)
    stem = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
    tail = url_path.strip("/")
    root = stem[: len(stem) - len(tail)] if tail and stem.endswith(tail) else stem + "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{root}{found.lstrip('/')}{query}"


def expand_remote(url: str, s3: S3Settings | None = None) -> list[tuple[str, bool]]:
    """``(url, named)`` pairs for one remote input, as ``expand_inputs`` gives local ones:
    an object, and each object a pattern matches (as the shell would have named it), is
    named: its errors fail the ingest; objects found under a prefix are not (an unreadable
    one is skipped and reported, as in a local directory)."""
    import pyarrow.fs as pafs

    fs, path = _filesystem(url, s3)
    try:
        if _GLOB & set(path):
            segments = path.split("/")
            first = next(i for i, s in enumerate(segments) if _GLOB & set(s))
            base = "/".join(segments[:first])
            pattern = segments[first:]
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
            found = sorted(
                info.path
                for info in infos
                if info.type == pafs.FileType.File
                and _matches(pattern, info.path[len(base) :].lstrip("/").split("/"))
                and not _hidden(info.path[len(base) :])
            )
            if not found:
                raise IngestError("no file matches this pattern", path=url)
            return [(_url_of(url, path, p), True) for p in found]
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            return [(url, True)]
        if info.type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
            found = sorted(
                i.path
                for i in infos
                if i.type == pafs.FileType.File and not _hidden(i.path[len(path) :])
            )
            return [(_url_of(url, path, p), False) for p in found]
    except OSError as exc:
        raise IngestError(f"cannot list: {_one_line(exc)}", path=url) from exc
    raise IngestError("no such file or directory", path=url)


def _matches(pattern: list[str], segments: list[str]) -> bool:
    """Glob match by path segment: ``**`` spans any number of segments, the rest exactly one
    (``fnmatch`` alone would let ``*`` cross "/")."""
    if not pattern:
        return not segments
    if pattern[0] == "**":
        return any(_matches(pattern[1:], segments[i:]) for i in range(len(segments) + 1))
    return (
        bool(segments)
        and fnmatch.fnmatchcase(segments[0], pattern[0])
        and _matches(pattern[1:], segments[1:])
    )


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/") if part)


def remote_size(url: str, s3: S3Settings | None = None) -> int:
    """The object's size in bytes, or 0 when it cannot be known (used for scheduling only)."""
    try:
        fs, path = _filesystem(url, s3)
        size = fs.get_file_info(path).size
    except (OSError, IngestError, UsageError):
        return 0
    return int(size or 0)


def spool_remote(staged: Path, url: str, s3: S3Settings | None = None) -> Path:
    """Copy the object at ``url`` into ``staged``, as it is (no decompression), in bounded
    memory (``staging.spool``); the caller removes the copy."""
    fs, path = _filesystem(url, s3)
    try:
        source = fs.open_input_stream(path, compression=None)
    except OSError as exc:
        raise IngestError(f"cannot read: {_one_line(exc)}", path=url) from exc
    return spool(staged, source, url)


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
