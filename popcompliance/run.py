"""`python -m popcompliance.run` (what `make run` calls): the whole product in the foreground.

It keeps the embedded state private (var/ 0700, files 0600), makes sure SECRET_KEY and the
credentials key exist (popcompliance.local_secrets), prepares the database (migrate, then the
admin account; their output goes to var/run.log), then starts and watches three children
until Ctrl-C or SIGTERM:

    web     gunicorn on 127.0.0.1:$PORT, static files by whitenoise
    worker  celery worker, threads pool (scans wait on the network, not the CPU)
    beat    celery beat (the dispatcher every minute, housekeeping)

Once the web answers it prints where to sign in, the admin account and where email goes: the
lines a user looks for. Every line a child prints is prefixed with its name. Each child runs in
its own process group, so the terminal's Ctrl-C reaches only this supervisor, which then sends
each child SIGTERM (the worker finishes its running scans first), reaps them all and exits 0.
A second Ctrl-C, or a child still running after STOP_GRACE seconds, is killed. A child that
dies on its own is started again after a delay that doubles with each quick death.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

from django.core.management import CommandError

from popcompliance import local_secrets
from popcompliance.env import ConfigurationError, env_str

ROOT = Path(__file__).resolve().parent.parent
# Threads in the one worker. bench/pipeline.py --embedded (SQLite + filesystem broker, 1,000
# emulated servers, 2 cores) measured 19.5 servers/s at 8, 29.3 at 16, 28.6 at 32: beyond 16
# the worker is CPU-bound. Against real servers that time out, more threads would help more.
WORKER_CONCURRENCY = 16
# gunicorn processes × threads: a handful of users and the progress polling of a scan.
WEB_PROCESSES = 2
WEB_THREADS = 4
# How long the worker may take to finish its running scans after Ctrl-C.
STOP_GRACE = 30.0
# A dead child is started again after 1 s, then 2, 4 … at most this long while it keeps dying;
# once it has run STABLE_AFTER seconds, its next death counts as the first again.
MAX_RESTART_DELAY = 60
STABLE_AFTER = 120.0
# How long the summary waits for the web to listen, and the SMTP server to accept.
WEB_START_WAIT = 30.0
SMTP_PROBE_TIMEOUT = 1.0
LOG_NAME = "run.log"
# The summary waits for the children's start-up output to pause this long, so it comes last.
QUIET_BEFORE_SUMMARY = 1.0
_print_lock = threading.Lock()
# When any child last printed a line (monotonic).
_last_output = [time.monotonic()]


def say(message: str) -> None:
    """A line from the supervisor itself, in the same stream as the children's."""
    with _print_lock:
        print(f"{'run':<6} | {message}", flush=True)


def provide_secrets(folder: Path) -> str | None:
    """Put SECRET_KEY and POPC_CREDENTIALS_KEY in the environment (for this process and the
    children) unless it has them; what to tell the user when they were generated now."""
    values, generated = local_secrets.ensure(folder)
    for name, value in values.items():
        if not local_secrets.overridden(name):
            os.environ[name] = value
    if not generated:
        return None
    return (
        f"Generated SECRET_KEY and the credentials key in {folder / local_secrets.FILE_NAME} "
        "(readable by you only); keep that file with the database."
    )


def prepare(folder: Path, log: TextIO) -> tuple[list[str], list[str]]:
    """Create the embedded defaults' folders, migrate, and make sure an admin can log in;
    what to tell the user about the passwords moved, and about the admin account."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "popcompliance.settings")
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    for path in embedded_folders():
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
    # The first migrate under a new credentials key moves the stored monitoring passwords to it
    # and prints so (inventory.rekeying): that line is for the user, the rest for the log.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        call_command("migrate", interactive=False, verbosity=1, stdout=log)
    log.write(printed.getvalue())
    notes = [line for line in printed.getvalue().splitlines() if line.startswith("Moved ")]
    if connection.vendor == "sqlite":
        make_private(Path(connection.settings_dict["NAME"]))
        # Readers (the web) then never wait for the worker's writes, and writers queue on the
        # busy timeout set in settings. The mode is stored in the database file.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
    admin = io.StringIO()
    call_command("ensure_admin", stdout=admin)
    # The children open their own connections; do not keep one idle for the whole run.
    connection.close()
    return notes, admin.getvalue().splitlines()


def make_private(database: Path) -> None:
    """The SQLite database and its journals, readable by their owner only (an install made
    before files were created private may have them 0644)."""
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        if path.exists():
            path.chmod(0o600)


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


def email_line() -> str:
    """Where alert emails go, and a warning when they cannot leave."""
    from django.conf import settings

    server = f"SMTP {settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
    default = "" if env_str("EMAIL_HOST") else " (EMAIL_HOST is not set: the default)"
    try:
        with socket.create_connection(
            (settings.EMAIL_HOST, settings.EMAIL_PORT), timeout=SMTP_PROBE_TIMEOUT
        ):
            pass
    except OSError as exc:
        return (
            f"Email: {server}{default} is not reachable ({exc.strerror or exc}): alerts wait "
            "in the outbox until it is. Set EMAIL_HOST and EMAIL_PORT to your mail relay."
        )
    return f"Email goes to {server}{default}."


def commands(port: int, beat_schedule: str) -> dict[str, list[str]]:
    """The three children's command lines, by name."""
    # --quiet: no banners; the summary says what runs where.
    celery = [sys.executable, "-m", "celery", "-A", "popcompliance", "--quiet"]
    return {
        "web": [
            sys.executable, "-m", "gunicorn", "popcompliance.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", str(WEB_PROCESSES), "--threads", str(WEB_THREADS),
            "--graceful-timeout", "10", "--access-logfile", "-", "--no-control-socket",
        ],
        # One worker on one machine: gossip, mingle and event heartbeats talk to other workers
        # and would only leave files behind in the filesystem broker.
        "worker": [
            *celery, "worker", "--hostname", "worker@%h", "--pool", "threads",
            "--concurrency", str(WORKER_CONCURRENCY), "--loglevel", "info",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ],
        "beat": [*celery, "beat", "--schedule", beat_schedule, "--loglevel", "info"],
    }  # fmt: skip


class Child:
    """One supervised process, in its own process group, its output copied with a prefix."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.started_at = time.monotonic()
        self.spoke = threading.Event()
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
                _last_output[0] = time.monotonic()
            self.spoke.set()

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
    """Starts the children, restarts any that dies, and stops them all when asked."""

    def __init__(self, lines: dict[str, list[str]]) -> None:
        self.lines = lines
        self.children: dict[str, Child] = {}
        self.restarts = dict.fromkeys(lines, 0)
        # Deaths in a row, each after a short run: they set the delay before the next start.
        self.quick_deaths = dict.fromkeys(lines, 0)
        # Dead children waiting for their delay: name → when to start them again (monotonic).
        self.due: dict[str, float] = {}
        self.requests = 0
        self.wake = threading.Event()

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requests += 1
        if self.requests > 1:
            # Asked twice: do not wait for running scans.
            for child in self.children.values():
                child.signal(signal.SIGKILL)
        self.wake.set()

    def run(self, port: int, summary: list[str]) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        for name in self.lines:
            if not self.requests:
                self.children[name] = Child(name, self.lines[name])
        listening = self.wait_for_start(port)
        # Stopped before the children were up: no summary to read.
        if not self.requests:
            for line in summary:
                say(line)
            if not listening:
                say(f"The web does not answer on port {port} yet: see its lines above.")
        self.watch()
        self.stop_all()
        return 0

    def wait_for_start(self, port: int) -> bool:
        """Until the web accepts connections and every child has printed its start-up lines
        (at most WEB_START_WAIT seconds, or until a stop is requested); whether the web did."""
        deadline = time.monotonic() + WEB_START_WAIT
        listening = False
        while not self.requests and time.monotonic() < deadline:
            if not listening:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    listening = True
            self.tend()
            spoke = all(child.spoke.is_set() for child in self.children.values())
            if listening and spoke and time.monotonic() - _last_output[0] >= QUIET_BEFORE_SUMMARY:
                break
            self.wake.wait(0.2)
        return listening

    def watch(self) -> None:
        """Until a stop is requested: restart every child that dies, after its delay."""
        while not self.requests:
            self.tend()
            self.wake.wait(0.2)

    def tend(self) -> None:
        """Start again each child whose delay is over; schedule each that died."""
        for name, child in self.children.items():
            if name in self.due:
                if time.monotonic() >= self.due[name]:
                    del self.due[name]
                    self.children[name] = Child(name, self.lines[name])
            elif child.exited():
                self.schedule_restart(child)

    def schedule_restart(self, dead: Child) -> None:
        dead.reap()
        name = dead.name
        ran_stably = time.monotonic() - dead.started_at >= STABLE_AFTER
        self.quick_deaths[name] = 1 if ran_stably else self.quick_deaths[name] + 1
        delay = min(2 ** (self.quick_deaths[name] - 1), MAX_RESTART_DELAY)
        self.restarts[name] += 1
        self.due[name] = time.monotonic() + delay
        say(
            f"{name} died ({dead.how_it_ended}); restarting in {delay} s "
            f"(restart {self.restarts[name]})."
        )

    def stop_all(self) -> None:
        """SIGTERM everyone, wait up to STOP_GRACE, then kill what is left; reap all."""
        for child in self.children.values():
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for child in self.children.values():
            while not child.exited() and time.monotonic() < deadline:
                time.sleep(0.1)
            if not child.exited():
                say(f"{child.name} did not stop within {STOP_GRACE:.0f} s; killing it.")
            child.reap()
        say("stopped.")


def main() -> int:
    """Prepare, then supervise until asked to stop; the process exit status."""
    # Everything this run and its children create (the database, the broker's messages, the
    # secrets, beat's schedule) is readable by the user only.
    os.umask(0o077)
    try:
        summary = start_up()
    except KeyboardInterrupt:
        return 130
    except (CommandError, ConfigurationError) as exc:
        say(f"Cannot start: {exc}")
        return 1
    from django.conf import settings

    lines = commands(settings.PORT, settings.CELERY_BEAT_SCHEDULE_FILENAME)
    return Supervisor(lines).run(settings.PORT, summary)


def start_up() -> list[str]:
    """The private var folder, the secrets, the database; what to tell the user once the
    children run."""
    folder = local_secrets.var_dir()
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    log_path = folder / LOG_NAME
    generated = provide_secrets(folder)
    say(f"Preparing the database (details in {log_path}).")
    with log_path.open("a") as log:
        moved, admin = prepare(folder, log)
    from django.conf import settings

    url = f"http://127.0.0.1:{settings.PORT}/"
    return [
        *([generated] if generated else []),
        *moved,
        f"PopCompliance runs on {url} (web, worker, beat); Ctrl-C stops them.",
        *admin,
        email_line(),
    ]


if __name__ == "__main__":
    sys.exit(main())
