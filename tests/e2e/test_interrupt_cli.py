"""Ctrl-C wherever it lands in the first second of a command (importing the command line,
parsing its arguments, starting the anomaly helper, running): one line, ``interrupted``, exit
code 130 -- never a Python traceback (``analyzer.entry``).

The interrupt is sent as a terminal sends it, to the whole process group (the command and its
helper), at delays spread over the start-up. They count from the moment the command's process
has mapped polars' library (seen in ``/proc/PID/maps``): the command line's own imports have
begun, so the signal never lands in the interpreter's start-up (``site``), which runs before
any code of the analyzer and answers Ctrl-C in Python's way. One that arrives after the
command finished changes nothing; that is accepted, a traceback or other output never is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cli_helpers import analyzer_command, store_command_ok

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/maps").is_file(), reason="needs /proc/PID/maps (Linux)"
)

DELAYS = (0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("interrupt")
    store_command_ok("generate", "--out", str(base / "capture"), "--flows", "10000",
                     "--seed", "3")
    store_command_ok("ingest", str(base / "capture" / "flows.jsonl"), "--store",
                     str(base / "store"))
    return base / "store"


def _loading(pid: int) -> bool:
    """Whether the process has mapped polars' library (or ended)."""
    try:
        return "polars" in Path(f"/proc/{pid}/maps").read_text()  # its runtime's .so
    except OSError:  # ended
        return True


def _interrupted_after(delay: float, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "ANALYZER_FOREST_IN_PROCESS"}
    process = subprocess.Popen(
        [*analyzer_command(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, start_new_session=True,  # its own group, as a terminal's foreground job
    )
    deadline = time.monotonic() + 60
    while not _loading(process.pid) and process.poll() is None:
        assert time.monotonic() < deadline, "the command never loaded polars"
        time.sleep(0.001)
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):  # ended already
        os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize(
    "command",
    [("graph", "-o", "json"), ("recommend", "-o", "json"), ("stats",)],
    ids=lambda c: c[0],
)
def test_ctrl_c_in_the_first_second_says_interrupted_in_one_line(
    store: Path, command: tuple[str, ...]
) -> None:
    said = 0
    for delay in DELAYS:
        done = _interrupted_after(delay, *command, "--store", str(store))
        where = f"SIGINT after {delay} s: exit {done.returncode}, stderr {done.stderr!r}"
        assert b"Traceback" not in done.stderr and b"KeyboardInterrupt" not in done.stderr, where
        if done.returncode == 130:  # (after what the command said already, if it ran)
            assert done.stderr.endswith(b"interrupted\n"), where
            assert done.stderr.count(b"interrupted") == 1, where
            said += 1
        else:  # finished before the signal: its normal output
            assert done.returncode == 0 and done.stdout, where
    # the start-up (imports alone take most of a second) is where these land
    assert said >= len(DELAYS) // 2, said


def test_ctrl_c_during_help(store: Path) -> None:
    for delay in (0.0, 0.1, 0.3):
        done = _interrupted_after(delay, "graph", "--help")
        assert b"Traceback" not in done.stderr, (delay, done.stderr)
        if done.returncode == 130:
            assert (done.stdout, done.stderr) == (b"", b"interrupted\n")
        else:
            assert done.returncode == 0 and b"Usage:" in done.stdout, (delay, done)


def test_ctrl_c_during_a_command_still_cleans_up_and_says_it(tmp_path: Path) -> None:
    """Past the start-up, the command's own handling (``handle_errors``) answers, after the
    command's clean-up: an ingest interrupted while it works leaves no staging directory."""
    store_command_ok("generate", "--out", str(tmp_path / "capture"), "--flows", "200000",
                     "--seed", "4")
    flows = tmp_path / "capture" / "flows.jsonl"
    for delay in (1.0, 2.0):
        store = tmp_path / f"store-{delay}"
        done = _interrupted_after(delay, "ingest", str(flows), "--store", str(store))
        assert b"Traceback" not in done.stderr, done.stderr
        if done.returncode == 130:
            assert done.stderr.endswith(b"interrupted\n"), done.stderr
            assert not list(store.glob(".tmp-*"))  # (none either when no store was made)
        else:
            assert done.returncode == 0, done.stderr


SWALLOWED = textwrap.dedent("""
    import signal, sys, time, weakref
    from analyzer._sigint import Interrupted, install, keyboard_interrupts

    install()

    class Held:
        pass

    def swallowing(_):  # as the import system's module-lock callbacks: cannot propagate
        signal.raise_signal(signal.SIGINT)
        for _ in range(100):
            pass

    held = Held()
    ref = weakref.ref(held, swallowing)
    try:
        if sys.argv[1] == "during-command":
            with keyboard_interrupts():
                try:
                    del held
                    time.sleep(10)
                    print("lost")
                except KeyboardInterrupt:
                    print("KeyboardInterrupt")
        else:
            del held
            time.sleep(10)
            print("lost")
    except Interrupted:
        print("Interrupted")
""")


@pytest.mark.parametrize(("when", "raised"), [("start-up", "Interrupted"),
                                              ("during-command", "KeyboardInterrupt")])
def test_an_interrupt_swallowed_by_a_callback_is_sent_again(when: str, raised: str) -> None:
    """CI once saw Ctrl-C land in a weakref callback of the import system: Python printed
    "Exception ignored in ..." with a traceback and the command went on. The interrupt must
    reach the code that was running instead, silently."""
    done = subprocess.run([sys.executable, "-c", SWALLOWED, when], capture_output=True,
                          timeout=60, check=True)
    assert (done.stdout.decode().strip(), done.stderr) == (raised, b"")
