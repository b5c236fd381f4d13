"""`make run`: the supervisor (popcompliance.run) as a real process on the embedded defaults.

It runs with the product's settings (not tests.settings): SQLite and the filesystem broker in
tmp_path, a free port, DNS only to the tests' server. Terminal Ctrl-C is imitated by SIGINT to
the supervisor's process group. Also `manage.py ensure_admin`, which it calls on every start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.http import HttpRequest

from pop3lab.certs import root_ca_pem
from pop3lab.config import EndpointConfig
from tests.conftest import SERVICE_NAME, Emulated, free_port
from tests.dnsserver import DnsServer

ROOT = Path(__file__).resolve().parent.parent


class Supervised:
    """`python -m popcompliance.run` in its own process group, its output in a log file."""

    def __init__(self, tmp_path: Path, resolver: str) -> None:
        self.port = free_port("127.0.0.1")
        self.database = tmp_path / "popcompliance.sqlite3"
        self.log_path = tmp_path / "run.log"
        ca_file = tmp_path / "lab-root.pem"
        ca_file.write_bytes(root_ca_pem())
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "POPC_"))}
        self.env = {
            **inherited,
            "DJANGO_SETTINGS_MODULE": "popcompliance.settings",
            "DATABASE_URL": f"sqlite:///{self.database}",
            "POPC_VAR_DIR": str(tmp_path / "var"),
            "PORT": str(self.port),
            "POPC_DNS_RESOLVER": resolver,
            "POPC_CA_FILE": str(ca_file),
            "POPC_SCAN_TIMEOUT": "3",
            # The lab's servers listen on loopback, which the guard refuses unless allowed.
            "POPC_SCAN_ALLOW_NETWORKS": "127.0.0.0/8",
            # Beat's first dispatch comes one interval after it starts.
            "POPC_DISPATCH_EVERY": "2",
        }
        self.env.pop("REDIS_URL", None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "popcompliance.run"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"not {what} within {timeout:g} s; output:\n{self.log()}")
            time.sleep(0.2)

    def page_status(self, path: str) -> int:
        try:
            url = f"http://127.0.0.1:{self.port}{path}"
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except OSError:
            return 0

    def sql(self, query: str) -> list[tuple[object, ...]]:
        with contextlib.closing(sqlite3.connect(self.database, timeout=20)) as db:
            return db.execute(query).fetchall()

    def add_server(self, host: str, pop3_port: int, pop3s_port: int) -> None:
        """Add a due server as an admin would, through the product's models."""
        code = (
            "from popcompliance.inventory.models import Server; "
            f"Server.objects.create(name='lab', host='{host}', service_name='{SERVICE_NAME}', "
            f"pop3_port={pop3_port}, pop3s_port={pop3s_port})"
        )
        command = [sys.executable, "manage.py", "shell", "-c", code]
        subprocess.run(command, cwd=ROOT, env=self.env, check=True, timeout=60)

    def children(self) -> dict[int, str]:
        """The supervisor's child processes, pid → command line."""
        found = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rpartition(")")[2].split()
                if int(fields[1]) == self.process.pid:
                    cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                    found[int(stat.parent.name)] = cmdline.decode(errors="replace")
        return found

    def kill_everything(self, pids: list[int]) -> None:
        """Cleanup whatever happened: the supervisor's group and its children's groups."""
        for pgid in [self.process.pid, *pids]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def role(command: str) -> str:
    """Which child a command line is: web, worker or beat."""
    words = command.split()
    return "web" if "runserver" in words else next(w for w in words if w in ("worker", "beat"))


def gone(pid: int) -> bool:
    """No such process, nor a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def started(tmp_path: Path, lab_dns: DnsServer) -> Iterator[Supervised]:
    """The supervisor, up: the web answers (so migrations and the admin account are done)."""
    supervised = Supervised(tmp_path, lab_dns.address)
    pids: list[int] = []
    try:
        supervised.wait_until(
            lambda: supervised.page_status("/admin/login/") == 200, 60, "serving /admin/login/"
        )
        pids = list(supervised.children())
        yield supervised
    finally:
        supervised.kill_everything(pids or list(supervised.children()))


@pytest.mark.slow
def test_it_serves_scans_a_due_server_and_stops_everything_on_ctrl_c(
    started: Supervised, emulated: Emulated
) -> None:
    endpoint = emulated.start(EndpointConfig())
    started.add_server(endpoint.address, endpoint.pop3_port or 9, endpoint.pop3s_port or 9)
    query = "SELECT compliant, error FROM compliance_scanrun WHERE purpose = 'scheduled'"
    started.wait_until(lambda: bool(started.sql(query)), 90, "scanned by beat and the worker")
    assert started.sql(query) == [(1, "")]
    children = started.children()
    assert sorted(role(command) for command in children.values()) == ["beat", "web", "worker"]

    os.killpg(started.process.pid, signal.SIGINT)

    assert started.process.wait(timeout=60) == 0
    assert all(gone(pid) for pid in children)
    output = started.log()
    assert {"web    | ", "worker | ", "beat   | "} <= {line[:9] for line in output.splitlines()}
    assert "run    | stopped." in output


@pytest.mark.slow
def test_when_a_child_dies_it_stops_the_others_and_exits_1_naming_it(started: Supervised) -> None:
    children = started.children()
    worker = next(pid for pid, command in children.items() if role(command) == "worker")

    os.kill(worker, signal.SIGKILL)

    assert started.process.wait(timeout=60) == 1
    assert all(gone(pid) for pid in children)
    assert "worker stopped on its own (killed by SIGKILL)" in started.log()


@pytest.mark.django_db
def test_ensure_admin_creates_admin_with_a_password_shown_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("USERNAME", "PASSWORD", "EMAIL"):
        monkeypatch.delenv(f"DJANGO_SUPERUSER_{name}", raising=False)
    call_command("ensure_admin")
    password = capsys.readouterr().out.split(" with password ")[1].split()[0]
    # With a request, as the login throttle (django-axes) requires of every authenticate().
    assert authenticate(HttpRequest(), username="admin", password=password).is_superuser

    call_command("ensure_admin")

    assert password not in capsys.readouterr().out


@pytest.mark.django_db
def test_ensure_admin_takes_the_account_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "ops")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "correct horse battery")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "ops@example.test")

    call_command("ensure_admin")

    assert authenticate(HttpRequest(), username="ops", password="correct horse battery")
    assert get_user_model().objects.get(username="ops").email == "ops@example.test"
    assert "correct horse battery" not in capsys.readouterr().out
