"""Stopping the servers the tests start: each runs in a process group of its own."""

from __future__ import annotations

import os
import signal
import subprocess

# How long a server may take to exit after SIGTERM before its group is killed.
STOP_GRACE = 2.0


def wait_or_kill_group(process: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """Wait `grace` seconds for `process` to exit, then kill its whole process group: a master
    still waiting on a child that is starting up would otherwise hold the test run."""
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        # Not yet reaped, so its id still names only its own group.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
