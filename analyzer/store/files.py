"""Durable writes (fsync, atomic replace) and OS errors as the few words a one-line message
needs (disk full, read-only file system, ...)."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

__all__ = ["atomic_write", "fsync", "os_error_text"]

_OS_ERROR_TEXT = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def os_error_text(exc: OSError) -> str:
    """A short reason for an OS error (pyarrow's messages carry the errno only in the text)."""
    code = exc.errno
    if code is None:
        text = str(exc)
        code = next((c for c in _OS_ERROR_TEXT if f"errno {c}]" in text.lower()), None)
    if code in _OS_ERROR_TEXT:
        return _OS_ERROR_TEXT[code]
    return exc.strerror or str(exc).splitlines()[0]


def fsync(path: Path) -> None:
    """Flush a file's data, or a directory's entries (a rename, a new file), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` via a fsynced temporary file and a rename (readers see the old
    content or the new one, never a part); ``mode`` sets the permission bits."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync(path.parent)
