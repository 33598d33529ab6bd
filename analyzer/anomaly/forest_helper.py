"""The isolation forest fitted in a helper process that imports scikit-learn on the second core.

Importing scikit-learn costs 1.2-2 CPU seconds (it imports scipy.stats and pandas), and
every command that scores anomalies (``recommend``, ``anomalies``, ``audit``, ``report``)
needs it. A thread cannot hide that cost: an import holds the GIL, and reading the store from
its rollup takes well under a second of GIL-free work (measured: the same total time, see
benchmarks/README.md "Fixed costs at 10M"). A process can. The CLI calls :func:`start` before
it imports polars and the store code; the helper imports the detector meanwhile and then
fits each matrix it is sent. :func:`forest_scores` returns the helper's scores, or None when
no helper runs (library calls, tests in-process, a helper that could not start or died), and
the caller then fits in-process. Both fit the same :class:`EdgeAnomalyDetector` with the same
seed on the same float64 matrix, so the scores are the same numbers either way.

``ANALYZER_FOREST_IN_PROCESS=1`` keeps the fit in the command's own process (measurements).
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["IN_PROCESS_ENV", "forest_scores", "serve", "start", "stop"]

IN_PROCESS_ENV = "ANALYZER_FOREST_IN_PROCESS"
_CHILD = "from analyzer.anomaly.forest_helper import serve; serve()"

_helper: subprocess.Popen[bytes] | None = None


def start() -> None:
    """Start the helper unless one runs or ``ANALYZER_FOREST_IN_PROCESS`` is set; a helper
    that cannot start leaves the fit in-process."""
    global _helper
    if _helper is not None or os.environ.get(IN_PROCESS_ENV):
        return
    # the helper imports the same analyzer as this process, wherever it was found
    path = os.pathsep.join(p for p in sys.path if p)
    env = {**os.environ, "PYTHONPATH": path}
    try:
        # its own process group: a terminal's Ctrl-C goes to the command alone (the helper,
        # still starting, would print a traceback; it ends when the command's pipe closes)
        _helper = subprocess.Popen(
            [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env, process_group=0,
        )
    except OSError:
        return
    atexit.register(stop)


def stop() -> None:
    """End the helper. Killed, not waited for until it ends by itself: a command that
    failed early must not wait for an import it no longer needs."""
    global _helper
    helper, _helper = _helper, None
    if helper is None:
        return
    for pipe in (helper.stdin, helper.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass
    helper.kill()
    helper.wait()


def forest_scores(matrix: np.ndarray, random_state: int) -> np.ndarray | None:
    """The helper's ``EdgeAnomalyDetector(random_state).fit(matrix).anomaly_score(matrix)``;
    None when no helper runs or it failed (the caller fits in-process, and an error in the
    data is raised there, as without a helper)."""
    helper = _helper
    if helper is None or helper.stdin is None or helper.stdout is None:
        return None
    try:
        pickle.dump((matrix, random_state), helper.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        helper.stdin.flush()
        status, value = pickle.load(helper.stdout)
    except Exception:  # noqa: BLE001 - a dead or garbled helper: whatever it sent, fit here
        stop()
        return None
    if status != "ok":
        stop()
        return None
    return value  # type: ignore[no-any-return]


def serve() -> None:
    """The helper's loop: import the detector, then answer each ``(matrix, seed)`` read from
    stdin with ``("ok", scores)`` or ``("error", message)`` on stdout, until end of file."""
    # Ctrl-C is the command's (the helper runs in its own process group; this covers a
    # signal sent to it by pid): the helper ends when the command's end of the pipe closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    try:
        from analyzer.anomaly.detector import EdgeAnomalyDetector
    except Exception as exc:  # noqa: BLE001 - reported to the command, which fits in-process
        failure: str | None = f"{type(exc).__name__}: {exc}"
    else:
        failure = None
    while True:
        try:
            matrix, seed = pickle.load(requests)
        except (EOFError, OSError):
            return
        reply: tuple[str, Any]
        if failure is not None:
            reply = ("error", failure)
        else:
            try:
                detector = EdgeAnomalyDetector(random_state=seed).fit(matrix)
                reply = ("ok", detector.anomaly_score(matrix))
            except Exception as exc:  # noqa: BLE001 - the command fits again and raises it
                reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
        except OSError:  # the command is gone
            return
