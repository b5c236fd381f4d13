"""A real Dovecot POP3 server on loopback, so scanner tests see what a real server says.

`Dovecot(config)` writes its own dovecot.conf, certificate and key into a temporary directory
and runs `dovecot -F -c <conf>` as a child process: no system service, its own base_dir, log and
state, and no real mail users (a static passdb with a random password, mail in the temporary
directory). It listens on 127.0.0.2 because Dovecot treats a connection whose source address
equals its local address as secured, and the client's source on loopback is 127.0.0.1; a
Dovecot on 127.0.0.1 would allow plaintext login even with `disable_plaintext_auth = yes`.
A configuration with `accounts` authenticates those users from a passwd-file instead, for the
login test over TLS.

It must run as root: Dovecot drops privileges to the `dovecot` and `dovenull` users that
Debian's dovecot-pop3d package creates. Startup takes well under a second, stopping about one
(Dovecot's master waits for its children), so the fixtures share one instance per
configuration across a test module.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

import pytest

from pop3lab.certs import make_cert, write_cert
from scanner import Target
from tests.ports import free_ports
from tests.processes import wait_or_kill_group

HOST = "127.0.0.2"
CLIENT_SOURCE = "127.0.0.1"
SERVICE_NAME = "mail.example.test"
NOT_INSTALLED = (
    "Dovecot is not installed: apt-get install dovecot-pop3d (make test does this when run as root)"
)
DovecotFactory = Callable[["DovecotConfig"], "Dovecot"]
SslMode = Literal["yes", "required", "no"]


class DovecotError(RuntimeError):
    """Dovecot could not be started; the message says why and quotes its log."""


@dataclass(frozen=True)
class DovecotConfig:
    """The few Dovecot settings the scanner's verdicts depend on; hashable, to share instances.

    `ssl` is Dovecot's own setting: "required" refuses every login before TLS, whatever
    `disable_plaintext_auth` says; "no" also leaves the POP3S port closed. `accounts` are
    (user, password) pairs that can log in; without them no password works.
    """

    disable_plaintext_auth: bool = True
    ssl: SslMode = "yes"
    cert_kind: str = "good"
    ssl_min_protocol: str = "TLSv1.2"
    accounts: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.ssl not in ("yes", "required", "no"):
            raise ValueError(f"ssl must be yes, required or no, not {self.ssl!r}")


def _cipher_list(ssl_min_protocol: str) -> str:
    # OpenSSL 3's default security level refuses TLS 1.0 and 1.1 whatever the minimum says, so
    # a Dovecot meant to accept them must lower it, or the scanner would never see them offered.
    if ssl_min_protocol in ("SSLv3", "TLSv1", "TLSv1.1"):
        return "DEFAULT:@SECLEVEL=0"
    return "ALL:!kRSA:!SRP:!kDHd:!DSS:!aNULL:!eNULL:!EXPORT:!DES:!3DES:!MD5:!PSK:!RC4:!ADH:!LOW"


def render_config(
    config: DovecotConfig, directory: Path, ports: tuple[int, int], tls_files: tuple[str, str]
) -> str:
    """dovecot.conf for `config`: state in `directory`, POP3 and POP3S on `ports`, and the
    certificate chain and key in `tls_files`."""
    pop3_port, pop3s_port = ports
    yes_no = "yes" if config.disable_plaintext_auth else "no"
    # Port 0 disables a listener: with ssl = no, POP3S stays closed like on a server without it.
    pop3s = pop3s_port if config.ssl != "no" else 0
    return f"""\
base_dir = {directory}/run
state_dir = {directory}/state
instance_name = popcompliance-test-{directory.name}
protocols = pop3
listen = {HOST}
log_path = {directory}/dovecot.log
disable_plaintext_auth = {yes_no}
auth_mechanisms = plain login
ssl = {config.ssl}
ssl_cert = <{tls_files[0]}
ssl_key = <{tls_files[1]}
ssl_min_protocol = {config.ssl_min_protocol}
ssl_cipher_list = {_cipher_list(config.ssl_min_protocol)}
mail_location = maildir:{directory}/mail/%u
{_passdb(config, directory)}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={directory}/mail/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
"""


def _passdb(config: DovecotConfig, directory: Path) -> str:
    """The accounts' passwd-file when there are any; else a static password nobody knows."""
    if config.accounts:
        return f"passdb {{\n  driver = passwd-file\n  args = {directory}/passwd\n}}"
    return f"passdb {{\n  driver = static\n  args = password={secrets.token_hex(16)}\n}}"


def render_passwd(accounts: tuple[tuple[str, str], ...]) -> str:
    """A passwd-file (user:{PLAIN}password followed by the six unused fields) for `accounts`."""
    return "".join(f"{user}:{{PLAIN}}{password}::::::\n" for user, password in accounts)


class Dovecot:
    """One Dovecot child process with its own temporary directory, on 127.0.0.2.

    `start()` returns once POP3 greets and POP3S accepts connections; `stop()` terminates it
    and removes the directory. Both touch the network (loopback only) and the filesystem.
    """

    def __init__(self, config: DovecotConfig | None = None, startup_timeout: float = 10.0) -> None:
        self.config = config or DovecotConfig()
        self.host = HOST
        self.pop3_port, self.pop3s_port = free_ports(HOST, 2)
        self.startup_timeout = startup_timeout
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The master process's id, which is also its process group's (it runs in its own)."""
        if self._process is None:
            raise DovecotError("Dovecot is not running")
        return self._process.pid

    def connect(self, port: int, timeout: float = 5.0) -> socket.socket:
        """A TCP connection to `port` from 127.0.0.1, which Dovecot does not treat as secured."""
        sock = socket.create_connection((self.host, port), timeout, (CLIENT_SOURCE, 0))
        sock.settimeout(timeout)
        return sock

    def target(self, service_name: str = SERVICE_NAME) -> Target:
        """The scanner's Target for this server, named like the certificate's subject."""
        return Target(self.host, service_name, self.pop3_port, self.pop3s_port)

    def start(self) -> Self:
        """Write the files, run Dovecot and wait until it answers; DovecotError if it does not."""
        binary = _dovecot_binary()
        try:
            self.directory = Path(tempfile.mkdtemp(prefix="dovecot-"))
            self._write_files(self.directory)
            self._process = self._spawn(binary, self.directory)
            self._wait_until_ready()
        except BaseException:
            self.stop()  # also on Ctrl-C or a bug here: never leave a Dovecot running
            raise
        return self

    def stop(self) -> None:
        """Terminate Dovecot (SIGKILL to its process group if it lingers); remove its files."""
        self.send_stop()
        self.wait_stopped()

    def send_stop(self) -> None:
        """Ask Dovecot to shut down, without waiting; `wait_stopped()` finishes the job."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def wait_stopped(self) -> None:
        """Wait for the master to exit, killing its process group if it takes too long."""
        process, self._process = self._process, None
        if process is not None:
            # A clean shutdown takes about a second, but a child still starting up makes the
            # master wait six before it kills it; killing the group ourselves is quicker.
            wait_or_kill_group(process)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of Dovecot's log and of what it printed before the log was open."""
        if self.directory is None:
            return ""
        text = []
        for name in ("startup.log", "dovecot.log"):
            path = self.directory / name
            if path.exists():
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _write_files(self, directory: Path) -> None:
        # Dovecot's unprivileged processes reach the sockets in base_dir by path.
        directory.chmod(0o755)
        mail = directory / "mail"
        mail.mkdir()
        shutil.chown(mail, "nobody", "nogroup")
        cert_path, key_path = write_cert(make_cert(self.config.cert_kind, SERVICE_NAME), directory)
        ports = (self.pop3_port, self.pop3s_port)
        conf = render_config(self.config, directory, ports, (str(cert_path), str(key_path)))
        (directory / "dovecot.conf").write_text(conf)
        (directory / "passwd").write_text(render_passwd(self.config.accounts))

    @staticmethod
    def _spawn(binary: str, directory: Path) -> subprocess.Popen[bytes]:
        # Dovecot writes to stdout/stderr only until its log is open, e.g. about a bad config.
        with (directory / "startup.log").open("wb") as startup_log:
            # Its own session, so a master that ignores SIGTERM can be killed with its children.
            return subprocess.Popen(
                [binary, "-F", "-c", str(directory / "dovecot.conf")],
                stdout=startup_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        ports = [(self.pop3_port, True)]
        if self.config.ssl != "no":
            ports.append((self.pop3s_port, False))
        while ports:
            if self._process is not None and self._process.poll() is not None:
                raise self._error(f"exited with status {self._process.returncode}")
            if time.monotonic() > deadline:
                raise self._error(f"did not answer within {self.startup_timeout:g} s")
            if self._answers(*ports[0]):
                ports.pop(0)
            else:
                time.sleep(0.02)

    def _answers(self, port: int, greeting: bool) -> bool:
        """Whether `port` accepts a connection (and sends a +OK greeting, when asked)."""
        try:
            with self.connect(port, timeout=1.0) as sock:
                return not greeting or sock.recv(512).startswith(b"+OK")
        except OSError:
            return False

    def _error(self, what: str) -> DovecotError:
        return DovecotError(f"Dovecot {what}; its log ends with:\n{self.log_tail()}")


def _dovecot_binary() -> str:
    """The path of the dovecot binary, once we know it can run here."""
    # sbin is often missing from PATH outside a root login shell.
    binary = shutil.which("dovecot", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if binary is None:
        raise DovecotError(NOT_INSTALLED)
    if os.geteuid() != 0:
        raise DovecotError("Dovecot tests must run as root: Dovecot switches to its own users")
    return binary


def stop_all(servers: Iterable[Dovecot]) -> None:
    """Stop several Dovecots in parallel, since each takes about a second to shut down."""
    servers = list(servers)
    for server in servers:
        server.send_stop()
    for server in servers:
        server.wait_stopped()


@pytest.fixture(scope="module")
def dovecot_factory() -> Iterator[DovecotFactory]:
    """Start a Dovecot per configuration on first use; the module's tests share it."""
    running: dict[DovecotConfig, Dovecot] = {}

    def get(config: DovecotConfig) -> Dovecot:
        if config not in running:
            try:
                running[config] = Dovecot(config).start()
            except DovecotError as error:
                pytest.fail(str(error), pytrace=False)
        return running[config]

    try:
        yield get
    finally:
        stop_all(running.values())


@pytest.fixture(scope="module")
def dovecot(dovecot_factory: DovecotFactory) -> Dovecot:
    """The secure default: plaintext login refused before TLS, STLS and POP3S, good cert."""
    return dovecot_factory(DovecotConfig())


@pytest.fixture(scope="module")
def dovecot_plaintext(dovecot_factory: DovecotFactory) -> Dovecot:
    """Plaintext login allowed before TLS (`disable_plaintext_auth = no`)."""
    return dovecot_factory(DovecotConfig(disable_plaintext_auth=False))


@pytest.fixture(scope="module")
def dovecot_ssl_required(dovecot_factory: DovecotFactory) -> Dovecot:
    """`ssl = required`: no login of any kind before TLS, even with plaintext auth allowed."""
    return dovecot_factory(DovecotConfig(disable_plaintext_auth=False, ssl="required"))


@pytest.fixture(scope="module")
def dovecot_wrong_name(dovecot_factory: DovecotFactory) -> Dovecot:
    """A certificate from the test CA that does not name mail.example.test."""
    return dovecot_factory(DovecotConfig(cert_kind="wrong_name"))
