"""Where streamed bytes come from: standard input, or a file followed like ``tail -F``.

A source never blocks for long: ``read(timeout)`` returns what arrived within ``timeout``
seconds (possibly nothing), so that the loop can commit on time and stop on a signal. The relay
source (``relay.py``) has the same shape.
"""

from __future__ import annotations

import hashlib
import os
import select
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from analyzer.errors import IngestError
from analyzer.store.files import os_error_text

__all__ = ["ByteSource", "Read", "StdinSource", "FileFollower", "READ_BYTES", "HEAD_PRINT_BYTES"]

READ_BYTES = 1 << 20
# A resumed file must hold the bytes it held when the offset was recorded, at its start and
# just before the offset (a file truncated, or replaced, and written again past the old offset
# is another file).
HEAD_PRINT_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Read:
    """What one ``read`` brought."""

    data: bytes = b""
    ended: bool = False  # nothing more will come (stdin closed, relay stream finished)
    new_file: bool = False  # the followed file was rotated or truncated: a new input starts


class ByteSource(Protocol):
    """A stream of bytes holding one record per line."""

    @property
    def label(self) -> str: ...  # "<stdin>", the file's absolute path, "relay://host:port"

    @property
    def kind(self) -> str: ...  # "stdin", "file", "relay"

    def read(self, timeout: float) -> Read: ...

    def resume_point(self, tail_bytes: int, next_line: int) -> dict[str, Any]:
        """Where a later run may resume, given the bytes of an incomplete last line that were
        read but not committed, and the line number after the committed lines."""
        ...

    def notes(self) -> list[str]: ...  # things to tell the user since the last call

    def close(self) -> None: ...


class StdinSource:
    """Standard input (a pipe from ``hubble observe --follow``, a file, a terminal)."""

    label = "<stdin>"
    kind = "stdin"

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._fd = (stream or sys.stdin.buffer).fileno()
        self._bytes = 0

    def read(self, timeout: float) -> Read:
        try:
            ready, _, _ = select.select([self._fd], [], [], timeout)
        except InterruptedError:
            return Read()
        if not ready:
            return Read()
        try:
            data = os.read(self._fd, READ_BYTES)
        except OSError as exc:
            raise IngestError(f"cannot read: {os_error_text(exc)}", path=self.label) from exc
        self._bytes += len(data)
        return Read(data) if data else Read(ended=True)

    def resume_point(self, tail_bytes: int, next_line: int) -> dict[str, Any]:
        return {"bytes": self._bytes - tail_bytes, "line": next_line}

    def notes(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


class FileFollower:
    """A file read from ``offset`` and then followed as it grows, like ``tail -F``: when the
    path is renamed away and recreated (log rotation) the old file is read to its end and the
    new one from its start; when the file shrinks (``copytruncate``) it is read again from 0.
    """

    kind = "file"

    def __init__(
        self,
        path: str | Path,
        *,
        resume: dict[str, Any] | None = None,
        poll_seconds: float = 0.25,
    ) -> None:
        self.path = Path(path).absolute()
        self.label = str(self.path)
        self.poll_seconds = poll_seconds
        if self.path.is_dir():
            raise IngestError("is a directory (--follow reads one file)", path=str(path))
        self._fh = self._open()
        st = os.fstat(self._fh.fileno())
        self._id = (st.st_dev, st.st_ino)
        self._pos = 0
        self.first_line = 1
        self.resumed = False
        self._notes: list[str] = []
        if resume and self._can_resume(resume, st.st_size):
            self._fh.seek(int(resume["offset"]))
            self._pos = int(resume["offset"])
            self.first_line = int(resume.get("line", 1))
            self.resumed = True
            self._notes.append(
                f"resuming at line {self.first_line:,} (byte {self._pos:,}), where the last "
                "commit from this file ended"
            )

    def _open(self) -> BinaryIO:
        try:
            return open(self.path, "rb")  # noqa: SIM115 - closed by close() or on rotation
        except FileNotFoundError as exc:
            raise IngestError("no such file", path=self.label) from exc
        except OSError as exc:
            raise IngestError(f"cannot read: {os_error_text(exc)}", path=self.label) from exc

    def _print(self, start: int, end: int) -> str:
        self._fh.seek(start)
        digest = hashlib.sha256(self._fh.read(max(0, end - start))).hexdigest()
        self._fh.seek(self._pos)
        return digest

    def _prints(self, offset: int) -> tuple[str, str]:
        """Fingerprints of the bytes at the start of the file and just before ``offset``."""
        head = self._print(0, min(offset, HEAD_PRINT_BYTES))
        return head, self._print(max(0, offset - HEAD_PRINT_BYTES), offset)

    def _can_resume(self, resume: dict[str, Any], size: int) -> bool:
        try:
            offset = int(resume["offset"])
            same = [int(resume["dev"]), int(resume["ino"])] == list(self._id)
        except (KeyError, TypeError, ValueError):
            return False
        if not (same and 0 < offset <= size):
            return False
        head, before = self._prints(offset)
        return resume.get("head") == head and resume.get("before") == before

    def read(self, timeout: float) -> Read:
        data = self._fh.read(READ_BYTES)
        if data:
            self._pos += len(data)
            return Read(data)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None  # rotated away and not recreated yet: keep waiting, like tail -F
        except OSError as exc:
            raise IngestError(f"cannot read: {os_error_text(exc)}", path=self.label) from exc
        if st is not None and (st.st_dev, st.st_ino) != self._id:
            # Rotated: the old file was read to its end above; continue with the new one.
            try:
                fh = self._open()
            except IngestError:
                fh = None  # replaced and gone again: try later
            if fh is not None:
                self._fh.close()
                self._fh = fh
                nst = os.fstat(fh.fileno())
                self._id = (nst.st_dev, nst.st_ino)
                self._pos = 0
                return Read(new_file=True)
        elif st is not None and st.st_size < self._pos:
            self._fh.seek(0)  # truncated in place (copytruncate): read it again from 0
            self._pos = 0
            return Read(new_file=True)
        time.sleep(min(timeout, self.poll_seconds))
        return Read()

    def resume_point(self, tail_bytes: int, next_line: int) -> dict[str, Any]:
        offset = self._pos - tail_bytes
        head, before = self._prints(offset)
        return {
            "dev": self._id[0],
            "ino": self._id[1],
            "offset": offset,
            "line": next_line,
            "head": head,
            "before": before,
        }

    def notes(self) -> list[str]:
        out, self._notes = self._notes, []
        return out

    def close(self) -> None:
        self._fh.close()
