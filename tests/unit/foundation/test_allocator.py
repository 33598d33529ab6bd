"""The jemalloc setting analyzer/_allocator.py gives polars is one jemalloc accepts.

jemalloc reads ``_RJEM_MALLOC_CONF`` once, when polars loads; an option it does not know (or a
build without background threads) is not an error but a line on stderr and the option ignored,
so a setting that silently stopped applying would only show as a higher ingest peak.
"""

from __future__ import annotations

import os
import subprocess
import sys

from analyzer import _allocator

_RUN = (
    "import analyzer, polars as pl; "
    "print(pl.DataFrame({'a': list(range(100_000))}).sum().item())"
)


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _RUN], env=env, capture_output=True, text=True, check=True
    )


def test_the_setting_is_applied_and_accepted() -> None:
    env = {k: v for k, v in os.environ.items() if k != _allocator.ENV}
    done = _run(env)
    assert done.stdout.strip() == str(sum(range(100_000)))
    assert "<jemalloc>" not in done.stderr, done.stderr
    seen = subprocess.run(
        [sys.executable, "-c", f"import analyzer, os; print(os.environ['{_allocator.ENV}'])"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert seen.stdout.strip() == _allocator.setting()


def test_an_unknown_option_would_be_reported() -> None:
    # what the first test relies on: jemalloc names an option it ignores on stderr
    env = {**os.environ, _allocator.ENV: f"{_allocator.setting()},no_such_option:1"}
    assert "<jemalloc>" in _run(env).stderr


def test_one_arena_per_two_cpus() -> None:
    assert [_allocator.setting(n).split("narenas:")[1].split(",")[0] for n in (1, 2, 3, 64)] \
        == ["1", "1", "1", "32"]
