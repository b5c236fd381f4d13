"""What the benchmarks share: a throwaway PostgreSQL database, the emulator in its own process
and stopping a process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]


@contextlib.contextmanager
def postgres_database(name: str, keep: bool = False) -> Iterator[str]:
    """A fresh database for the run, dropped afterwards (even if other processes still hold it)
    unless `keep`; yields its URL."""
    os.environ["PGOPTIONS"] = "-c client_min_messages=warning"  # no "does not exist, skipping"
    subprocess.run(["dropdb", *PG, "--if-exists", "--force", name], check=True)
    subprocess.run(["createdb", *PG, name], check=True)
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        from django.db import connections

        connections.close_all()
        if keep:
            print(f"kept the database {name}: dropdb {' '.join(PG)} --force {name}")
        else:
            subprocess.run(["dropdb", *PG, "--if-exists", "--force", name], check=True)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group led by `process` (started with start_new_session=True), then
    SIGKILL it if it has not exited within 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def start_lab(*arguments: str) -> subprocess.Popen[str]:
    """`python -m pop3lab` with `arguments` in a process of its own (so the emulator gets a
    core), returned once it says `ready`; the caller terminates it."""
    command = [sys.executable, "-m", "pop3lab", *arguments]
    lab = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert lab.stdout is not None
    for line in lab.stdout:
        if line.strip() == "ready":
            return lab
    raise SystemExit(f"the emulator did not start (exit status {lab.wait()})")
