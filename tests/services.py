"""Real services for the tests: a private Redis, a check that PostgreSQL answers, and real
Celery worker and beat processes running against the test database.

- `redis_server` (session): a `redis-server` of our own on a free loopback port, nothing
  persisted (`--save "" --appendonly no`), restartable on the same port. The machine's Redis
  on 6379 is never used.
- `redis_broker` (per test): that Redis, running and empty, with the in-process Celery app
  publishing to it (so `delay_on_commit` in a `transactional_db` test lands there).
- `celery_processes` (per test, implies `transactional_db`): starts `celery -A popcompliance
  worker` / `beat` children against the test database, the private Redis and the tests' DNS
  server (`lab_dns`), and kills their process groups at teardown, whatever happened.
- A collection hook stops the run with a clear message when tests need PostgreSQL and it does
  not answer.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

from tests.dnsserver import DnsServer
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
REDIS_NOT_INSTALLED = (
    "redis-server is not installed: apt-get install redis-server "
    "(make test does this when run as root)"
)
# Seconds a child process gets to come up before the test fails with its log.
STARTUP_TIMEOUT = 30.0
# The scanner's per-connection timeout in the workers: short, since everything is on loopback.
WORKER_SCAN_TIMEOUT = 3


def _kill_group(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal a child started in its own session and everything it forked (pool processes).

    The leader is reaped only after the signal, so its id still names its group."""
    with contextlib.suppress(ProcessLookupError):  # the group is already gone
        os.killpg(process.pid, sig)
    if sig == signal.SIGKILL:
        process.wait(timeout=10)


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- Redis -----------------------------------------------------------------------------------


class RedisServer:
    """A private `redis-server` on 127.0.0.1:`port` that keeps nothing on disk.

    `stop()` then `start()` restarts it on the same port with no data, as a real Redis without
    persistence comes back after a crash. Touches only loopback and `directory`.
    """

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
        if binary is None:
            raise RuntimeError(REDIS_NOT_INSTALLED)
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> RedisServer:
        """Run redis-server and wait until it answers PING."""
        log = self.directory / "redis.log"
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        command += ["--logfile", str(log), "--daemonize", "no"]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._answers():
            if not self.running or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start; its log ends with:\n{_tail(log)}")
            time.sleep(0.02)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGKILL emulates a crash); its data is gone either way."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        _kill_group(process, sig)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _kill_group(process)

    def _answers(self) -> bool:
        try:
            with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5) as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The tests' own Redis for the whole session."""
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_broker(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RedisServer]:
    """The private Redis, running (a test may have stopped it) and empty, as the broker of the
    in-process Celery app for this test."""
    from popcompliance.celery import app

    if not redis_server.running:
        redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    # Celery reads CELERY_BROKER_URL from the environment before its settings.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    saved = {key: app.conf[key] for key in ("broker_url", "broker_transport_options")}
    app.conf.update(broker_url=redis_server.url, broker_transport_options={})
    _forget_connections(app)
    try:
        yield redis_server
    finally:
        app.conf.update(saved)
        _forget_connections(app)


def _forget_connections(app: Any) -> None:
    """Drop the app's cached connection and producer pools, which were built for the broker URL
    of their time (the same reset Celery does after a fork)."""
    app._pool = None
    app.amqp._producer_pool = None


def queued_tasks(server: RedisServer, queue: str = "celery") -> list[tuple[str, list[Any], dict]]:
    """(task name, args, kwargs) of each message waiting in `queue`, oldest first."""
    with server.client() as client:
        raw = client.lrange(queue, 0, -1)
    tasks = []
    for item in reversed(raw):  # kombu pushes on the left and pops on the right
        message = json.loads(item)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        tasks.append((message["headers"]["task"], args, kwargs))
    return tasks


# --- PostgreSQL ------------------------------------------------------------------------------


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop at once, with what to do, when tests need PostgreSQL and it does not answer,
    instead of one cryptic connection error per test."""
    if session.config.option.collectonly or not any(map(_needs_database, session.items)):
        return
    from django.conf import settings

    database = settings.DATABASES["default"]
    if "postgresql" not in database["ENGINE"]:
        return
    problem = _postgres_problem(database)
    if problem:
        pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)


def _needs_database(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    return "django_db_setup" in fixtures or item.get_closest_marker("django_db") is not None


def _postgres_problem(database: dict[str, Any]) -> str:
    """What is wrong with the test PostgreSQL, or "" when it answers."""
    import psycopg

    host, port = database.get("HOST") or "127.0.0.1", database.get("PORT") or 5432
    try:
        psycopg.connect(
            host=host,
            port=port,
            user=database.get("USER") or "postgres",
            password=database.get("PASSWORD") or None,
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except psycopg.OperationalError as error:
        reason = str(error).strip().splitlines()[0]
        versions = sorted(p.name for p in Path("/etc/postgresql").glob("*")) or ["15"]
        return (
            f"The tests need PostgreSQL on {host}:{port}, which did not answer ({reason}).\n"
            "Install it with `apt-get install postgresql` and start it with "
            f"`pg_ctlcluster {versions[-1]} main start` (make test does both when run as root), "
            "let user postgres in without a password from 127.0.0.1 (trust in pg_hba.conf), "
            "or point POPC_TEST_DATABASE_URL at a PostgreSQL you can use."
        )
    return ""


# --- Celery worker and beat ------------------------------------------------------------------


class Child:
    """One `celery` process (and its pool), its output in `log_path`."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> re.Match[str]:
        """Wait until the log matches the regular expression `pattern`; its match."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log())
            if found:
                return found
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited; its log:\n{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} never logged {pattern!r}; its log:\n{_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the process and its pool, as when a machine dies: nothing is acknowledged."""
        _kill_group(self.process)


class CeleryProcesses:
    """Starts real worker and beat processes; `stop_all()` kills every one it started.

    The children use tests.settings with the test database (`database_url`), the private Redis
    and the tests' DNS server, never the machine's resolver. Extra keyword arguments become
    environment variables (e.g. POPC_VISIBILITY_TIMEOUT=2, POPC_DISPATCH_EVERY=1).
    """

    def __init__(
        self, directory: Path, redis_server: RedisServer, resolver: str, database_url: str
    ) -> None:
        self.directory = directory
        self.children: list[Child] = []
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("CELERY_")
        }
        self.env.update(
            DJANGO_SETTINGS_MODULE="tests.settings",
            POPC_TEST_DATABASE_URL=database_url,
            DATABASE_URL=database_url,
            REDIS_URL=redis_server.url,
            POPC_DNS_RESOLVER=resolver,
            POPC_SCAN_TIMEOUT=str(WORKER_SCAN_TIMEOUT),
            # The workers scan the emulated servers on loopback (see tests/settings.py).
            POPC_SCAN_ALLOW_NETWORKS="0.0.0.0/0,::/0",
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
        )

    def worker(
        self, name: str = "w1", concurrency: int = 2, queues: str | None = None, **env: object
    ) -> Child:
        """A worker named `name@host` (consuming `queues`, comma-separated, when given: a probe
        location's worker); returns once it is ready to consume."""
        command = ["worker", "-n", f"{name}@%h", "-c", str(concurrency), "-P", "prefork"]
        if queues:
            command += ["-Q", queues]
        # Mingle and gossip only slow start-up and add broker traffic the tests do not need.
        command += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
        child = self._spawn(name, command, env)
        child.wait_for_log(r"\bready\.")
        return child

    def beat(self, **env: object) -> Child:
        """Beat with its own schedule file; returns once it has started."""
        command = ["beat", "-s", str(self.directory / "beat-schedule")]
        child = self._spawn("beat", command, env)
        child.wait_for_log(r"beat: Starting")
        return child

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `predicate` (it may query the database) until true; fail with the logs."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {c.name}:\n{_tail(c.log_path)}" for c in self.children)
                raise AssertionError(f"not within {timeout:g} s: {what}\n{logs}")
            time.sleep(0.1)

    def stop_all(self) -> None:
        for child in self.children:
            child.kill()

    def _spawn(self, name: str, command: list[str], env: dict[str, object]) -> Child:
        log_path = self.directory / f"{name}.log"
        full_env = {**self.env, **{key: str(value) for key, value in env.items()}}
        with log_path.open("ab") as log:
            # Its own session, so that stop_all() can kill the pool processes with it.
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "popcompliance", *command, "-l", "INFO"],
                cwd=ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child


def database_url() -> str:
    """The URL of the database this test uses (pytest-django's test database)."""
    from django.db import connection

    db = connection.settings_dict
    if "sqlite" in db["ENGINE"]:
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "postgres", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def celery_processes(
    transactional_db: None, redis_broker: RedisServer, lab_dns: DnsServer, tmp_path: Path
) -> Iterator[CeleryProcesses]:
    """Real Celery processes for this test, killed before its database is flushed."""
    processes = CeleryProcesses(tmp_path, redis_broker, lab_dns.address, database_url())
    try:
        yield processes
    finally:
        processes.stop_all()
