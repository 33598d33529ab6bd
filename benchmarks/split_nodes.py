"""Split a generated Hubble JSONL capture into one file per node (``node_name``), the way a
cluster's exporters write them: both ends of a connection then sit in different files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

__all__ = ["split_by_node"]


def split_by_node(source: Path, out: Path) -> list[Path]:
    """Write ``out/<node>.jsonl`` per node of ``source``; returns the files, sorted."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, IO[str]] = {}
    try:
        with source.open(encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                flow = record.get("flow", record)
                node = str(flow.get("node_name") or "unknown").replace("/", "_")
                if node not in files:
                    files[node] = (out / f"{node}.jsonl").open("w", encoding="utf-8")
                files[node].write(line)
    finally:
        for handle in files.values():
            handle.close()
    return sorted(out / f"{node}.jsonl" for node in files)


if __name__ == "__main__":
    for path in split_by_node(Path(sys.argv[1]), Path(sys.argv[2])):
        print(path)
