"""`make run`: the supervisor (popcompliance.run) as a real process on the embedded defaults.

It runs with the product's settings (not tests.settings): SQLite and the filesystem broker in
tmp_path, a free port, DNS only to the tests' server, an SMTP port nobody listens on. Terminal
Ctrl-C is imitated by SIGINT to the supervisor's process group. Also `manage.py ensure_admin`,
which it calls on every start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.http import HttpRequest

from pop3lab.certs import root_ca_pem
from pop3lab.config import EndpointConfig
from popcompliance import run
from tests.conftest import SERVICE_NAME, Emulated, free_port
from tests.dnsserver import DnsServer

ROOT = Path(__file__).resolve().parent.parent


class Supervised:
    """`python -m popcompliance.run` in its own process group, its output in a log file."""

    def __init__(self, tmp_path: Path, resolver: str) -> None:
        self.port = free_port("127.0.0.1")
        self.database = tmp_path / "popcompliance.sqlite3"
        self.var = tmp_path / "var"
        self.log_path = tmp_path / "run.log"
        ca_file = tmp_path / "lab-root.pem"
        ca_file.write_bytes(root_ca_pem())
        own = ("CELERY_", "POPC_", "SECRET_KEY", "EMAIL_", "DJANGO_SUPERUSER_")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(own)}
        self.env = {
            **inherited,
            "DJANGO_SETTINGS_MODULE": "popcompliance.settings",
            "DATABASE_URL": f"sqlite:///{self.database}",
            "POPC_VAR_DIR": str(self.var),
            "PORT": str(self.port),
            "POPC_DNS_RESOLVER": resolver,
            "POPC_CA_FILE": str(ca_file),
            "POPC_SCAN_TIMEOUT": "3",
            # The lab's servers are on loopback, which an operator has to allow explicitly.
            "POPC_SCAN_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",
            # Beat's first dispatch comes one interval after it starts.
            "POPC_DISPATCH_EVERY": "2",
            # A port nobody listens on: the start-up summary must say email cannot leave.
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(free_port("127.0.0.1")),
        }
        self.env.pop("REDIS_URL", None)
        # Every child pid seen, so the cleanup reaches the restarted ones too.
        self.seen: set[int] = set()

    def start(self) -> None:
        """Start the supervisor; its output goes to a fresh log."""
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
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def run_lines(self) -> list[str]:
        """The supervisor's own lines, without their prefix."""
        prefix = "run    | "
        return [line[len(prefix) :] for line in self.log().splitlines() if line.startswith(prefix)]

    def manage(self, *arguments: str, env: dict[str, str] | None = None) -> str:
        command = [sys.executable, "manage.py", *arguments]
        done = subprocess.run(
            command, cwd=ROOT, env=env or self.env, check=True, timeout=60, capture_output=True
        )
        return done.stdout.decode()

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
        self.manage("shell", "-c", code)

    def children(self) -> dict[int, str]:
        """The supervisor's live child processes, pid → command line."""
        found = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rpartition(")")[2].split()
                if int(fields[1]) == self.process.pid:
                    cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                    found[int(stat.parent.name)] = cmdline.decode(errors="replace")
        self.seen |= set(found)
        # A dying process has no command line left.
        found = {pid: command for pid, command in found.items() if command}
        return found

    def child(self, name: str) -> int:
        """The pid of the child of that role, 0 while there is none."""
        pids = [pid for pid, command in self.children().items() if role(command) == name]
        return pids[0] if pids else 0

    def kill_everything(self) -> None:
        """Cleanup whatever happened: the supervisor's group and its children's groups."""
        self.children()
        for pgid in [self.process.pid, *self.seen]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def role(command: str) -> str:
    """Which child a command line is: web, worker or beat."""
    words = command.split()
    return "web" if "gunicorn" in words else next(w for w in words if w in ("worker", "beat"))


def gone(pid: int) -> bool:
    """No such process, nor a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def supervised(tmp_path: Path, lab_dns: DnsServer) -> Iterator[Supervised]:
    """The supervisor, not started yet; whatever it started is killed afterwards."""
    supervised = Supervised(tmp_path, lab_dns.address)
    try:
        yield supervised
    finally:
        if hasattr(supervised, "process"):
            supervised.kill_everything()


def serving(supervised: Supervised) -> None:
    """Wait until the web answers and the start-up summary is out (so migrations, the
    secrets and the admin account are done)."""
    supervised.wait_until(
        lambda: supervised.page_status("/admin/login/") == 200, 60, "serving /admin/login/"
    )
    supervised.wait_until(
        lambda: any(line.startswith("Email") for line in supervised.run_lines()),
        40,
        "done with its start-up summary",
    )
    supervised.children()


@pytest.fixture
def started(supervised: Supervised) -> Supervised:
    supervised.start()
    serving(supervised)
    return supervised


@pytest.mark.slow
def test_a_killed_worker_comes_back_scans_and_ctrl_c_still_stops_everything(
    started: Supervised, emulated: Emulated
) -> None:
    first = started.child("worker")

    os.kill(first, signal.SIGKILL)

    started.wait_until(lambda: started.child("worker") not in (0, first), 30, "a new worker")
    second = started.child("worker")
    os.kill(second, signal.SIGKILL)
    # Quick deaths in a row wait longer each time.
    started.wait_until(lambda: started.child("worker") not in (0, second), 30, "a third worker")
    assert "worker died (killed by SIGKILL); restarting in 1 s (restart 1)." in started.run_lines()
    assert "worker died (killed by SIGKILL); restarting in 2 s (restart 2)." in started.run_lines()
    endpoint = emulated.start(EndpointConfig())
    started.add_server(endpoint.address, endpoint.pop3_port or 9, endpoint.pop3s_port or 9)
    query = "SELECT compliant, error FROM compliance_scanrun WHERE purpose = 'scheduled'"
    started.wait_until(lambda: bool(started.sql(query)), 90, "scanned by beat and the worker")
    assert started.sql(query) == [(1, "")]
    children = started.children()
    assert sorted(role(command) for command in children.values()) == ["beat", "web", "worker"]

    os.killpg(started.process.pid, signal.SIGINT)

    assert started.process.wait(timeout=60) == 0
    assert all(gone(pid) for pid in started.seen)
    output = started.log()
    assert {"web    | ", "worker | ", "beat   | "} <= {line[:9] for line in output.splitlines()}
    assert "No hostname was supplied" not in output
    assert started.run_lines()[-1] == "stopped."


def test_restart_delays_double_up_to_a_cap_and_start_over_after_a_stable_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    supervisor = run.Supervisor({"beat": command})

    def dies(ran_for: float = 0.0) -> str:
        child = run.Child("beat", command)
        child.process.wait()
        child.started_at -= ran_for
        supervisor.schedule_restart(child)
        return capsys.readouterr().out.splitlines()[-1]

    assert dies() == "run    | beat died (exit status 3); restarting in 1 s (restart 1)."
    assert [dies() for _ in range(7)][-2:] == [
        "run    | beat died (exit status 3); restarting in 60 s (restart 7).",
        "run    | beat died (exit status 3); restarting in 60 s (restart 8).",
    ]
    assert dies(ran_for=run.STABLE_AFTER).endswith("restarting in 1 s (restart 9).")
    assert dies().endswith("restarting in 2 s (restart 10).")


def store_monitoring_password(supervised: Supervised, password: str) -> None:
    """An install from before make run kept secrets: migrated and given a monitoring password
    by manage.py with no SECRET_KEY set (the public default), as it used to run."""
    # DEBUG lets manage.py run on the public default key, as every manage.py did then.
    old_install = {**supervised.env, "DEBUG": "true"}
    supervised.manage("migrate", "--verbosity", "0", env=old_install)
    code = (
        "from django.utils import timezone; "
        "from popcompliance.inventory.models import Server; "
        "server = Server(name='old', host='192.0.2.1', service_name='pop.example.test'); "
        f"server.set_monitoring_account('monitor', {password!r}, timezone.now()); "
        "server.save()"
    )
    supervised.manage("shell", "-c", code, env=old_install)


@pytest.mark.slow
def test_first_start_of_an_existing_install_keeps_its_monitoring_password_under_new_secrets(
    supervised: Supervised,
) -> None:
    store_monitoring_password(supervised, "s3cret-monitor")
    assert mode(supervised.database) == 0o644  # as created before

    supervised.start()
    serving(supervised)

    secrets_file = supervised.var / "secrets.env"
    values = dict(line.split("=", 1) for line in secrets_file.read_text().splitlines()[2:])
    assert values.keys() == {"SECRET_KEY", "POPC_CREDENTIALS_KEY"}
    (token,) = supervised.sql("SELECT monitor_password_encrypted FROM inventory_server")[0]
    assert Fernet(values["POPC_CREDENTIALS_KEY"]).decrypt(str(token)) == b"s3cret-monitor"
    lines = supervised.run_lines()
    assert lines[0].startswith("Preparing the database (details in ")
    summary = lines[-5:]
    assert summary[0].startswith(f"Generated SECRET_KEY and the credentials key in {secrets_file}")
    assert summary[1] == "Moved 1 monitoring password(s) to POPC_CREDENTIALS_KEY."
    assert summary[2].startswith(f"PopCompliance runs on http://127.0.0.1:{supervised.port}/")
    assert " with password " in summary[3]
    assert summary[4].startswith(f"Email: SMTP 127.0.0.1:{supervised.env['EMAIL_PORT']} is not")
    assert "alerts wait in the outbox" in summary[4]
    assert "Running migrations:" not in supervised.log()
    assert "Running migrations:" in (supervised.var / "run.log").read_text()
    private_files = [supervised.database, secrets_file, supervised.var / "run.log"]
    assert {path.name: mode(path) for path in private_files} == dict.fromkeys(
        (path.name for path in private_files), 0o600
    )
    folders = [supervised.var, *(supervised.var / "broker").iterdir()]
    assert {path.name: mode(path) for path in folders} == dict.fromkeys(
        (path.name for path in folders), 0o700
    )
    # Served by gunicorn and whitenoise: a path out of the static folder is simply not there.
    assert supervised.page_status("/static/css/app.css") == 200
    assert supervised.page_status("/static/%2e%2e/popcompliance/settings.py") == 404
    assert supervised.page_status("/static/..%2fmanage.py") == 404

    os.killpg(supervised.process.pid, signal.SIGTERM)
    assert supervised.process.wait(timeout=60) == 0
    supervised.start()
    serving(supervised)

    again = supervised.run_lines()
    assert not any(line.startswith(("Generated", "Moved")) for line in again)
    assert (
        "Admin account 'admin' exists; its password is unchanged "
        "(`manage.py ensure_admin --reset` sets a new one)." in again
    )
    assert secrets_file.read_text().splitlines()[2:] == [f"{k}={v}" for k, v in values.items()]
    supervised.manage("shell", "-c", "from popcompliance.inventory.models import Server; "
        "assert Server.objects.get().monitoring_credentials().password == 's3cret-monitor'",
        env={**supervised.env, **values})  # fmt: skip


@pytest.mark.slow
def test_a_reachable_smtp_server_is_named_and_an_admin_password_given_is_not_shown(
    supervised: Supervised,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as smtp:
        supervised.env["EMAIL_PORT"] = str(smtp.getsockname()[1])
        supervised.env["DJANGO_SUPERUSER_PASSWORD"] = "ops-Secret-4-make-run"
        supervised.start()
        serving(supervised)
    summary = supervised.run_lines()[-3:]
    assert summary[1] == "Created admin account 'admin'; its password is the one set."
    assert summary[2] == f"Email goes to SMTP 127.0.0.1:{supervised.env['EMAIL_PORT']}."
    assert "ops-Secret-4-make-run" not in supervised.log()


def test_a_bad_setting_stops_the_start_with_its_reason(supervised: Supervised) -> None:
    supervised.env["POPC_SCAN_TIMEOUT"] = "ten"

    supervised.start()

    assert supervised.process.wait(timeout=60) == 1
    reason = "Cannot start: POPC_SCAN_TIMEOUT must be a whole number, not 'ten'"
    assert supervised.run_lines()[-1] == reason
    assert "Traceback" not in supervised.log()


def test_make_run_installs_the_runtime_packages_only_and_make_test_the_tools_too(
    tmp_path: Path,
) -> None:
    def planned(target: str) -> str:
        # A fresh virtualenv's path, so nothing counts as installed; -n only prints the plan.
        command = ["make", "--no-print-directory", "-n", f"VENV={tmp_path / 'venv'}", target]
        # Run from `make test`, the parent make's settings would reach this one: leave them out.
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        done = subprocess.run(
            command, cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
        return done.stdout

    run_plan, test_plan = planned("run"), planned("test")

    assert "-r requirements.txt >>var/run.log 2>&1" in run_plan
    assert "requirements-dev.txt" not in run_plan
    assert run_plan.rstrip().endswith("-m popcompliance.run")
    assert "-r requirements.txt" in test_plan
    assert "-r requirements-dev.txt" in test_plan


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
def test_ensure_admin_reset_gives_the_admin_a_new_password_shown_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("USERNAME", "PASSWORD", "EMAIL"):
        monkeypatch.delenv(f"DJANGO_SUPERUSER_{name}", raising=False)
    call_command("ensure_admin")
    old = capsys.readouterr().out.split(" with password ")[1].split()[0]

    call_command("ensure_admin", "--reset")

    new = capsys.readouterr().out.split(" now has the password ")[1].split()[0]
    assert new != old
    assert authenticate(HttpRequest(), username="admin", password=new)
    assert not authenticate(HttpRequest(), username="admin", password=old)


@pytest.mark.django_db
def test_ensure_admin_reset_of_a_missing_account_says_how_to_create_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "nobody")

    with pytest.raises(CommandError, match="no account 'nobody' to reset"):
        call_command("ensure_admin", "--reset")

    assert not get_user_model().objects.exists()


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


@pytest.mark.django_db
def test_ensure_admin_refuses_a_weak_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.AUTH_PASSWORD_VALIDATORS = [
        {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
        {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    ]
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "password")

    with pytest.raises(CommandError) as refused:
        call_command("ensure_admin")

    assert str(refused.value).startswith("DJANGO_SUPERUSER_PASSWORD is too weak: ")
    assert "too common" in str(refused.value)
    assert not get_user_model().objects.exists()
