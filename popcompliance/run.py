"""`python -m popcompliance.run` (what `make run` calls): the whole product in the foreground.

It prepares the database (migrate, then the admin account), then starts and watches three
children until Ctrl-C or SIGTERM:

    web     manage.py runserver on 127.0.0.1:$PORT
    worker  celery worker, threads pool (scans wait on the network, not the CPU)
    beat    celery beat (the dispatcher every minute, housekeeping)

Every line a child prints is prefixed with its name. Each child runs in its own process group,
so the terminal's Ctrl-C reaches only this supervisor, which then sends each child SIGTERM
(the worker finishes its running scans first), reaps them all and exits 0. A second Ctrl-C, or
a child still running after STOP_GRACE seconds, is killed. If a child dies on its own, the
others are stopped and the supervisor exits 1, naming it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
# Threads in the one worker. bench/pipeline.py --embedded (SQLite + filesystem broker, 1,000
# emulated servers, 2 cores) measured 19.5 servers/s at 8, 29.3 at 16, 28.6 at 32: beyond 16
# the worker is CPU-bound. Against real servers that time out, more threads would help more.
WORKER_CONCURRENCY = 16
# How long the worker may take to finish its running scans after Ctrl-C.
STOP_GRACE = 30.0
_print_lock = threading.Lock()


def say(message: str) -> None:
    """A line from the supervisor itself, in the same stream as the children's."""
    with _print_lock:
        print(f"{'run':<6} | {message}", flush=True)


def prepare() -> None:
    """Create the embedded defaults' folders, migrate, and make sure an admin can log in."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "popcompliance.settings")
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    for folder in embedded_folders():
        folder.mkdir(parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=1)
    if connection.vendor == "sqlite":
        # Readers (the web) then never wait for the worker's writes, and writers queue on the
        # busy timeout set in settings. The mode is stored in the database file.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
    call_command("ensure_admin")
    # The children open their own connections; do not keep one idle for the whole run.
    connection.close()


def embedded_folders() -> list[Path]:
    """Folders the embedded defaults write into: var/, and the filesystem broker's queues
    (kombu does not create them and the worker fails without them)."""
    from django.conf import settings

    folders = [Path(settings.VAR_DIR)]
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        options: dict[str, str] = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        keys = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")
        folders += [Path(options[key]) for key in keys if key in options]
    return folders


def commands(port: int, beat_schedule: str) -> dict[str, list[str]]:
    """The three children's command lines, by name."""
    celery = [sys.executable, "-m", "celery", "-A", "popcompliance"]
    return {
        # --insecure serves the static files without DEBUG; production uses compose instead.
        "web": [
            sys.executable, "manage.py", "runserver", "--noreload", "--insecure",
            f"127.0.0.1:{port}",
        ],
        # One worker on one machine: gossip, mingle and event heartbeats talk to other workers
        # and would only leave files behind in the filesystem broker.
        "worker": [
            *celery, "worker", "--pool", "threads", "--concurrency", str(WORKER_CONCURRENCY),
            "--loglevel", "info", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ],
        "beat": [*celery, "beat", "--schedule", beat_schedule, "--loglevel", "info"],
    }  # fmt: skip


class Child:
    """One supervised process, in its own process group, its output copied with a prefix."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        assert self.process.stdout is not None
        self.pump = threading.Thread(target=self._copy, args=(self.process.stdout,), daemon=True)
        self.pump.start()

    def _copy(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            with _print_lock:
                print(f"{self.name:<6} | {line}", flush=True)

    def exited(self) -> bool:
        """Whether the child has exited, without reaping it: until it is reaped, its pid keeps
        naming its process group, so helpers it left behind can still be killed by group."""
        if self.process.returncode is not None:
            return True
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self.process.pid, flags) is not None

    def signal(self, signum: int) -> None:
        """Signal the child's whole process group, unless it is reaped already."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def reap(self) -> None:
        """Kill whatever is left in its group, collect its exit status, flush its output."""
        self.signal(signal.SIGKILL)
        self.process.wait()
        self.pump.join(timeout=5)

    @property
    def how_it_ended(self) -> str:
        status = self.process.returncode
        if status is not None and status < 0:
            return f"killed by {signal.Signals(-status).name}"
        return f"exit status {status}"


class Supervisor:
    """Starts the children, waits for a stop request or a death, then stops them all."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.requests = 0
        self.wake = threading.Event()

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requests += 1
        if self.requests > 1:
            # Asked twice: do not wait for running scans.
            for child in self.children:
                child.signal(signal.SIGKILL)
        self.wake.set()

    def run(self, lines: dict[str, list[str]], url: str) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        for name, command in lines.items():
            if not self.requests:
                self.children.append(Child(name, command))
        say(f"PopCompliance on {url} (web, worker, beat); Ctrl-C stops them.")
        dead = self.watch()
        if dead is not None:
            dead.reap()
            others = ", ".join(c.name for c in self.children if not c.exited()) or "nothing"
            say(f"{dead.name} stopped on its own ({dead.how_it_ended}); stopping {others}.")
        self.stop_all()
        return 0 if dead is None else 1

    def watch(self) -> Child | None:
        """Block until a stop is requested (None) or a child exits (that child)."""
        while not self.requests:
            for child in self.children:
                if child.exited():
                    return child
            self.wake.wait(0.2)
        return None

    def stop_all(self) -> None:
        """SIGTERM everyone, wait up to STOP_GRACE, then kill what is left; reap all."""
        for child in self.children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for child in self.children:
            while not child.exited() and time.monotonic() < deadline:
                time.sleep(0.1)
            if not child.exited():
                say(f"{child.name} did not stop within {STOP_GRACE:.0f} s; killing it.")
            child.reap()
        say("stopped.")


def main() -> int:
    """Prepare, then supervise until asked to stop; the process exit status."""
    try:
        prepare()
    except KeyboardInterrupt:
        return 130
    from django.conf import settings

    url = f"http://127.0.0.1:{settings.PORT}/"
    lines = commands(settings.PORT, settings.CELERY_BEAT_SCHEDULE_FILENAME)
    return Supervisor().run(lines, url)


if __name__ == "__main__":
    sys.exit(main())
