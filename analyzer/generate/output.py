"""Write a generated capture to disk: the flow file, inventory, ground truth and policies."""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from analyzer.errors import UsageError
from analyzer.generate.scenario import Scenario

__all__ = ["FORMATS", "GenerateResult", "generate", "write_flows"]

FORMATS: tuple[str, ...] = ("hubble", "calico", "goldmane", "goldmane-emitter", "whisker")


def _chunks(scenario: Scenario, fmt: str, flows: int) -> Iterator[str]:
    if fmt == "hubble":
        from analyzer.generate.hubble import hubble_lines

        yield from hubble_lines(scenario, flows)
        return
    if fmt in FORMATS:
        from analyzer.generate.aggregate import aggregate_lines

        yield from aggregate_lines(scenario, flows, fmt)
        return
    raise UsageError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def _counted(chunks: Iterator[str], progress: Callable[[int], None]) -> Iterator[str]:
    lines = 0
    for chunk in chunks:
        lines += chunk.count("\n")
        progress(lines)
        yield chunk


def _write(out: Path, chunks: Iterator[str], compress: bool) -> None:
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(open(out, "wb"))
        write: Callable[[bytes], int] = raw.write
        if compress:
            # mtime=0 and no file name in the header: the same input gives the same bytes.
            gz = stack.enter_context(
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
            )
            write = gz.write
        for chunk in chunks:
            write(chunk.encode())


def write_flows(
    scenario: Scenario,
    out: Path,
    fmt: str = "hubble",
    flows: int = 100_000,
    *,
    style: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Stream ``flows`` records of ``scenario`` in ``fmt`` to the file ``out``.

    ``out`` ending in ``.gz`` is gzip-compressed (deterministically). The file is written in
    chunks, so memory does not grow with ``flows``. ``style`` picks another spelling of the
    format (see :mod:`analyzer.generate.spellings`; None is the native one). ``progress`` is
    called with the number of lines written so far after each chunk. Returns ``out``.

    Raises
    ------
    UsageError
        Unknown format or style, or ``flows`` too small to show every path of the scenario once.
    """
    from analyzer.generate.spellings import STYLES, native_style, restyle

    if fmt not in STYLES:
        raise UsageError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if style is None or (fmt == "hubble" and style == "envelope"):
        style = native_style(fmt)
    if style not in STYLES[fmt]:
        raise UsageError(
            f"style {style!r} does not apply to {fmt}; choose from {', '.join(STYLES[fmt])}"
        )
    chunks = restyle(_chunks(scenario, fmt, flows), style, fmt)
    first = next(chunks, "")  # validate (and raise) before creating the file
    # Written beside and renamed at the end: an interrupted run leaves no half file behind.
    partial = out.with_name(f".{out.name}.partial")
    try:
        everything: Iterator[str] = itertools.chain([first], chunks)
        if progress is not None:
            everything = _counted(everything, progress)
        _write(partial, everything, compress=out.suffix == ".gz")
        os.replace(partial, out)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return out


@dataclass(frozen=True, slots=True)
class GenerateResult:
    """What :func:`generate` wrote."""

    files: tuple[Path, ...]
    flows: int
    format: str
    legit_paths: int
    attack_paths: int
    workloads: int
    pods: int


def _remove_stale_flow_files(out_dir: Path, keep: Path) -> None:
    # A flow file of an earlier run in another spelling would be ingested too by
    # `analyzer ingest DIR`; only the generator's own file names are touched.
    for name in ("flows.jsonl", "flows.jsonl.gz", "flows.json", "flows.json.gz"):
        old = out_dir / name
        if old != keep and old.is_file():
            try:
                old.unlink()
            except OSError as exc:
                raise UsageError(f"cannot remove the earlier {old}: {exc.strerror or exc}") from exc


def _dump(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def generate(
    scenario: Scenario,
    out_dir: Path,
    *,
    fmt: str = "hubble",
    flows: int = 100_000,
    compress: bool = False,
    style: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> GenerateResult:
    """Write flows, ``inventory.json``, ``truth.json``, ``existing-policies.yaml`` and
    ``policies-truth.json`` for ``scenario`` into ``out_dir`` (created if missing).

    ``progress`` is passed to :func:`write_flows`.
    """
    from analyzer.generate.policies import existing_policies_yaml, policies_truth

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out_dir}: {exc.strerror or exc}") from exc
    if not out_dir.is_dir():
        raise UsageError(f"{out_dir} is not a directory")
    name = "flows.json" if style in ("array", "items") else "flows.jsonl"
    flow_file = out_dir / (name + ".gz" if compress else name)
    write_flows(scenario, flow_file, fmt, flows, style=style, progress=progress)
    _remove_stale_flow_files(out_dir, keep=flow_file)
    header: dict[str, object] = {"format": fmt, "flows": flows}
    if style is not None:
        header["style"] = style
    files = [
        flow_file,
        _dump(out_dir / "inventory.json", scenario.inventory()),
        _dump(out_dir / "truth.json", {**header, **scenario.truth()}),
    ]
    policies = out_dir / "existing-policies.yaml"
    policies.write_text(existing_policies_yaml(scenario), encoding="utf-8")
    files.append(policies)
    files.append(_dump(out_dir / "policies-truth.json", policies_truth(scenario)))
    return GenerateResult(
        files=tuple(files), flows=flows, format=fmt,
        legit_paths=len(scenario.legit_paths), attack_paths=len(scenario.attack_paths),
        workloads=len(scenario.workloads), pods=len(scenario.pods),
    )  # fmt: skip
