"""A real Dovecot on loopback (POP3, and IMAP and SMTP submission when a configuration asks),
so tests see what a real server says.

`Dovecot(config)` writes its own dovecot.conf, certificate and key into a temporary directory
and runs `dovecot -F -c <conf>` as a child process: no system service, its own base_dir, log and
state, and no real mail users (a static passdb with a random password, mail in the temporary
directory). It listens on 127.0.0.2 because Dovecot treats a connection whose source address
equals its local address as secured, and the client's source on loopback is 127.0.0.1; a
Dovecot on 127.0.0.1 would allow plaintext login even with `disable_plaintext_auth = yes`.
A configuration with `accounts` authenticates those users from a passwd-file instead, for the
login test over TLS. Every instance also offers its authentication to Postfix's smtpd through
the socket `auth_socket` names (tests/submission_servers.py).

Each protocol listens twice, like POP3: a cleartext port with STARTTLS and an implicit-TLS port
(what 995, 993 and 465 are). Dovecot's submission service passes what it accepts on to an SMTP
relay, `submission_relay_port` on 127.0.0.1, which it connects to once a user has logged in.

It must run as root: Dovecot drops privileges to the `dovecot` and `dovenull` users that
Debian's dovecot-core package creates. Startup takes well under a second, stopping about one
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
from tests.mail_endpoints import ACCOUNT
from tests.ports import free_port, free_ports
from tests.processes import StoppableServer
from tests.smtp import SmtpSink

HOST = "127.0.0.2"
CLIENT_SOURCE = "127.0.0.1"
SERVICE_NAME = "mail.example.test"
Protocol = Literal["pop3", "imap", "submission"]
# The Debian package that brings each protocol's login process and server.
PACKAGES: dict[Protocol, str] = {
    "pop3": "dovecot-pop3d",
    "imap": "dovecot-imapd",
    "submission": "dovecot-submissiond",
}
# Where Debian puts the programs Dovecot runs for each protocol.
LIBEXEC = Path("/usr/lib/dovecot")
# What each protocol's cleartext port sends first: how `start()` knows the service is up.
GREETINGS = {"pop3": b"+OK", "imap": b"* OK", "submission": b"220 "}
# The name of the authentication socket in base_dir that Postfix's smtpd asks.
AUTH_SOCKET = "auth-postfix"
DovecotFactory = Callable[["DovecotConfig"], "Dovecot"]
MailDovecotFactory = Callable[[bool], "Dovecot"]
SslMode = Literal["yes", "required", "no"]


class DovecotError(RuntimeError):
    """Dovecot could not be started; the message says why and quotes its log."""


@dataclass(frozen=True)
class DovecotConfig:
    """The few Dovecot settings the scanner's verdicts depend on; hashable, to share instances.

    `ssl` is Dovecot's own setting: "required" refuses every login before TLS, whatever
    `disable_plaintext_auth` says; "no" also leaves the implicit-TLS ports closed. `accounts`
    are (user, password) pairs that can log in; without them no password works. `protocols`
    are the services it runs; "submission" needs `submission_relay_port`, the SMTP server on
    127.0.0.1 that it relays to.
    """

    disable_plaintext_auth: bool = True
    ssl: SslMode = "yes"
    cert_kind: str = "good"
    ssl_min_protocol: str = "TLSv1.2"
    accounts: tuple[tuple[str, str], ...] = ()
    protocols: tuple[Protocol, ...] = ("pop3",)
    submission_relay_port: int = 0

    def __post_init__(self) -> None:
        if self.ssl not in ("yes", "required", "no"):
            raise ValueError(f"ssl must be yes, required or no, not {self.ssl!r}")
        if not self.protocols or not set(self.protocols) <= set(PACKAGES):
            raise ValueError(f"protocols must be some of {sorted(PACKAGES)}, not {self.protocols}")
        if "submission" in self.protocols and not self.submission_relay_port:
            raise ValueError("submission needs the port of its relay, submission_relay_port")


def _cipher_list(ssl_min_protocol: str) -> str:
    # OpenSSL 3's default security level refuses TLS 1.0 and 1.1 whatever the minimum says, so
    # a Dovecot meant to accept them must lower it, or the scanner would never see them offered.
    if ssl_min_protocol in ("SSLv3", "TLSv1", "TLSv1.1"):
        return "DEFAULT:@SECLEVEL=0"
    return "ALL:!kRSA:!SRP:!kDHd:!DSS:!aNULL:!eNULL:!EXPORT:!DES:!3DES:!MD5:!PSK:!RC4:!ADH:!LOW"


def render_config(
    config: DovecotConfig,
    directory: Path,
    ports: dict[Protocol, tuple[int, int]],
    tls_files: tuple[str, str],
) -> str:
    """dovecot.conf for `config`: state in `directory`, each protocol's cleartext and implicit-TLS
    ports in `ports`, and the certificate chain and key in `tls_files`."""
    yes_no = "yes" if config.disable_plaintext_auth else "no"
    listeners = "".join(
        _listeners(protocol, *ports[protocol], config) for protocol in config.protocols
    )
    return f"""\
base_dir = {directory}/run
state_dir = {directory}/state
instance_name = popcompliance-test-{directory.name}
protocols = {" ".join(config.protocols)}
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
{_submission_relay(config)}
{_passdb(config, directory)}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={directory}/mail/%u
}}
service auth {{
  # For Postfix's smtpd, which runs as a user of its own (tests/submission_servers.py).
  unix_listener {AUTH_SOCKET} {{
    mode = 0666
  }}
}}
{listeners}"""


def _submission_relay(config: DovecotConfig) -> str:
    """Where the submission service relays to, and the name it gives in its replies."""
    if "submission" not in config.protocols:
        return ""
    return (
        f"hostname = {SERVICE_NAME}\n"
        f"submission_relay_host = 127.0.0.1\n"
        f"submission_relay_port = {config.submission_relay_port}"
    )


def _listeners(protocol: Protocol, port: int, tls_port: int, config: DovecotConfig) -> str:
    """The service block that makes `protocol` listen on `port` and, with TLS, on `tls_port`."""
    # Port 0 disables a listener: with ssl = no, the TLS port stays closed like on a server
    # without it.
    tls_port = tls_port if config.ssl != "no" else 0
    return f"""\
service {protocol}-login {{
  inet_listener {protocol} {{
    port = {port}
  }}
  inet_listener {protocol}s {{
    port = {tls_port}
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


class Dovecot(StoppableServer):
    """One Dovecot child process with its own temporary directory, on 127.0.0.2.

    `start()` returns once each protocol's cleartext port greets and its TLS port accepts
    connections; `stop()` terminates it and removes the directory. Both touch the network
    (loopback only) and the filesystem.
    """

    def __init__(self, config: DovecotConfig | None = None, startup_timeout: float = 10.0) -> None:
        self.config = config or DovecotConfig()
        self.host = HOST
        free = iter(free_ports(HOST, 2 * len(PACKAGES)))
        # Each protocol's (cleartext, implicit TLS) ports; those it does not run stay unused.
        self.ports = {protocol: (next(free), next(free)) for protocol in PACKAGES}
        self.startup_timeout = startup_timeout
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The master process's id, which is also its process group's (it runs in its own)."""
        if self._process is None:
            raise DovecotError("Dovecot is not running")
        return self._process.pid

    @property
    def pop3_port(self) -> int:
        return self.ports["pop3"][0]

    @property
    def pop3s_port(self) -> int:
        return self.ports["pop3"][1]

    @property
    def auth_socket(self) -> Path:
        """The socket through which Postfix's smtpd has Dovecot check a password."""
        if self.directory is None:
            raise DovecotError("Dovecot is not running")
        return self.directory / "run" / AUTH_SOCKET

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
        binary = _dovecot_binary(self.config.protocols)
        try:
            self.directory = Path(tempfile.mkdtemp(prefix="dovecot-"))
            self._write_files(self.directory)
            self._process = self._spawn(binary, self.directory)
            self._wait_until_ready()
        except BaseException:
            self.stop()  # also on Ctrl-C or a bug here: never leave a Dovecot running
            raise
        return self

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
        tls_files = (str(cert_path), str(key_path))
        conf = render_config(self.config, directory, self.ports, tls_files)
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
        ports: list[tuple[int, bytes]] = []
        for protocol in self.config.protocols:
            port, tls_port = self.ports[protocol]
            ports.append((port, GREETINGS[protocol]))
            if self.config.ssl != "no":
                ports.append((tls_port, b""))
        while ports:
            if self._process is not None and self._process.poll() is not None:
                raise self._error(f"exited with status {self._process.returncode}")
            if time.monotonic() > deadline:
                raise self._error(f"did not answer within {self.startup_timeout:g} s")
            if self._answers(*ports[0]):
                ports.pop(0)
            else:
                time.sleep(0.02)

    def _answers(self, port: int, greeting: bytes) -> bool:
        """Whether `port` accepts a connection and sends a greeting that starts so."""
        try:
            with self.connect(port, timeout=1.0) as sock:
                return not greeting or sock.recv(512).startswith(greeting)
        except OSError:
            return False

    def _error(self, what: str) -> DovecotError:
        return DovecotError(f"Dovecot {what}; its log ends with:\n{self.log_tail()}")


def _dovecot_binary(protocols: Iterable[Protocol]) -> str:
    """The path of the dovecot binary, once we know it can run `protocols` here."""
    # sbin is often missing from PATH outside a root login shell.
    binary = shutil.which("dovecot", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    missing = [PACKAGES[p] for p in protocols if binary is None or not (LIBEXEC / p).exists()]
    if missing:
        raise DovecotError(
            f"Dovecot's {', '.join(protocols)} is not installed: apt-get install "
            f"{' '.join(missing)} (make test does this when run as root)"
        )
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


@pytest.fixture(scope="session")
def mail_dovecot() -> Iterator[MailDovecotFactory]:
    """`mail_dovecot(plaintext_allowed)`: a Dovecot serving IMAP and submission to ACCOUNT, with
    `disable_plaintext_auth` the opposite of `plaintext_allowed`. Started on first use and shared
    by the session; its submission service relays to an SMTP sink of the session's own."""
    running: dict[bool, Dovecot] = {}
    relay: list[SmtpSink] = []

    def get(plaintext_allowed: bool) -> Dovecot:
        if plaintext_allowed not in running:
            if not relay:
                relay.append(SmtpSink(free_port()).start())
            config = DovecotConfig(
                disable_plaintext_auth=not plaintext_allowed,
                accounts=(ACCOUNT,),
                protocols=("imap", "submission"),
                submission_relay_port=relay[0].port,
            )
            try:
                running[plaintext_allowed] = Dovecot(config).start()
            except DovecotError as error:
                pytest.fail(str(error), pytrace=False)
        return running[plaintext_allowed]

    try:
        yield get
    finally:
        stop_all(running.values())
        for sink in relay:
            sink.stop()
