"""OS errors (disk full, read-only file system, ...) as the few words a one-line message needs."""

from __future__ import annotations

import errno

__all__ = ["os_error_text"]

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
