"""Real POP3 servers whose TLS is GnuTLS, on loopback: Courier's pop3d (with couriertls) and GNU
Mailutils' pop3d, each configured like a Windows server of a given age or a clean control.

Debian's OpenSSL 3 can no longer serve RC4, 3DES or SSL 3.0; Debian's GnuTLS still serves RC4
and 3DES, so these servers show the scanner legacy suites from a real TLS stack. Each runs as
a child process from a temporary directory of its own: its certificate from the test PKI, its
log, no system service and no mail users. Both listen twice: POP3 with STLS on one free port,
implicit TLS (what port 995 is) on another.

Both take a GnuTLS priority string, so every configuration in CONFIGS is served by both. A
priority string is a cross product (each listed key exchange with each cipher and MAC), so a
configuration accepts every suite its lists make, not exactly Windows' list.

- Courier (packages courier-pop, courier-base, courier-authlib, libcourier-unicode4) conflicts
  with dovecot-pop3d as a package: scripts/system-deps.sh unpacks it into .courier instead
  (not var/, which is private to root: couriertls runs as "courier" after STLS).
  couriertcpd accepts the connections; couriertls does TLS from TLS_PRIORITY, both for the
  implicit-TLS port and, started by courierpop3login, after STLS. For STLS courierpop3login
  first switches to the user "courier", whom only the package's install script creates: the
  POP3 listener runs in a mount namespace of its own (`unshare --mount`) where a copy of
  /etc/passwd names "courier" as the unprivileged user nobody. No login works: Courier's
  authentication daemon has its socket at a fixed path under /run, which a test must not take.
- Mailutils (package mailutils-pop3d) runs `pop3d` from a configuration file of its own with
  one `server` block per entry point and the priority in `tls { ssl-priorities }`. It looks
  up this host's name for its greeting, so it sees a private /etc/hosts that names it (the
  same kind of mount namespace). No login works either: it would authenticate system users.

Both run as root here, like the Dovecot fixtures; each starts in well under a second.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pytest

from pop3lab.certs import make_cert, root_ca_pem
from scanner import CHECKS, Target
from tests.gnutls_truth import ENVIRONMENT
from tests.ports import free_ports
from tests.processes import answers, sbin, wait_or_kill_group, with_private_files

HOST = "127.0.0.1"
SERVICE_NAME = "mail.example.test"
COURIER_DIR = Path(__file__).resolve().parent.parent / ".courier"
COURIER_MISSING = (
    f"Courier's POP3 server is not unpacked in {COURIER_DIR}: run scripts/system-deps.sh test "
    "(make test does; it fetches courier-pop, courier-base, courier-authlib and "
    "libcourier-unicode4 with apt-get download and unpacks them there)"
)
MAILUTILS_MISSING = (
    "GNU Mailutils' pop3d is not installed: apt-get install mailutils-pop3d "
    "(make test does this when run as root)"
)
# What every configuration adds to its suites: any signature, group and no compression.
_ANY_REST = "+COMP-NULL:+SIGN-ALL:+GROUP-ALL:+CTYPE-X509"


class GnutlsServerError(RuntimeError):
    """A server could not be started; the message says why and quotes its log."""


@dataclass(frozen=True)
class GnutlsConfig:
    """A named TLS configuration: the GnuTLS priority string a server is given."""

    name: str
    priority: str

    def __str__(self) -> str:
        return self.name


def _priority(*tokens: str) -> str:
    return ":".join(["NONE", *(f"+{token}" for token in tokens), _ANY_REST])


WINDOWS_2008_R2 = GnutlsConfig(
    "windows-2008-r2",
    # SChannel's server defaults there: TLS 1.0 only; ECDHE-RSA and RSA with AES-CBC, RC4
    # (SHA-1 and MD5 MACs) and 3DES.
    _priority(
        "VERS-TLS1.0", "ECDHE-RSA", "RSA", "AES-128-CBC", "AES-256-CBC", "ARCFOUR-128",
        "3DES-CBC", "SHA1", "MD5",
    ),
)  # fmt: skip
WINDOWS_2016 = GnutlsConfig(
    "windows-2016",
    # TLS 1.2 only (how it is usually hardened); ECDHE GCM first, RSA suites, and 3DES still
    # among the AES suites as in SChannel's default list.
    _priority(
        "VERS-TLS1.2", "ECDHE-RSA", "RSA", "AES-256-GCM", "AES-128-GCM", "AES-256-CBC",
        "AES-128-CBC", "3DES-CBC", "AEAD", "SHA384", "SHA256", "SHA1",
    ),
)  # fmt: skip
RC4_ON_TLS12 = GnutlsConfig(
    "rc4-on-tls1.2",
    _priority("VERS-TLS1.2", "ECDHE-RSA", "RSA", "AES-128-GCM", "ARCFOUR-128", "AEAD", "SHA1"),
)
STATIC_RSA_ONLY = GnutlsConfig(
    "static-rsa-only",
    # No forward secrecy: only the RSA key exchange, on every TLS version up to 1.2.
    _priority(
        "VERS-TLS1.2", "VERS-TLS1.1", "VERS-TLS1.0", "RSA", "AES-256-GCM", "AES-128-GCM",
        "AES-256-CBC", "AES-128-CBC", "AEAD", "SHA256", "SHA1",
    ),
)  # fmt: skip
MODERN = GnutlsConfig(
    "ecdhe-aead-only",
    # The clean control: TLS 1.3 and 1.2, ECDHE with AEAD ciphers only.
    _priority(
        "VERS-TLS1.3", "VERS-TLS1.2", "ECDHE-RSA", "AES-256-GCM", "AES-128-GCM",
        "CHACHA20-POLY1305", "AEAD",
    ),
)  # fmt: skip
# What tls.ciphers' remediation tells a Courier administrator to set, taken from the catalog
# so that a test can show the advice really leads to a pass.
REMEDIED = GnutlsConfig(
    "remediation-text",
    re.findall(r'TLS_PRIORITY="([^"]+)"', CHECKS["tls.ciphers"].remediation)[0],
)
CONFIGS = (WINDOWS_2008_R2, WINDOWS_2016, RC4_ON_TLS12, STATIC_RSA_ONLY, MODERN, REMEDIED)


class GnutlsPop3Server:
    """A POP3 server on HOST with STLS on `pop3_port` and implicit TLS on `pop3s_port`.

    `start()` returns once POP3 greets and the implicit-TLS port accepts connections; `stop()`
    terminates its processes and removes its directory. Subclasses say what to run.
    """

    kind = ""

    def __init__(self, config: GnutlsConfig, startup_timeout: float = 10.0) -> None:
        self.config = config
        self.host = HOST
        self.pop3_port, self.pop3s_port = free_ports(HOST, 2)
        self.startup_timeout = startup_timeout
        self.directory: Path | None = None
        self._processes: list[subprocess.Popen[bytes]] = []

    def __repr__(self) -> str:
        return f"{self.kind}({self.config})"

    def target(self) -> Target:
        """The scanner's Target for this server, named like its certificate's subject."""
        return Target(self.host, SERVICE_NAME, self.pop3_port, self.pop3s_port)

    def start(self) -> Self:
        """Write the files, run the server and wait until it answers; GnutlsServerError if
        it does not."""
        self._check_installed()
        try:
            self.directory = Path(tempfile.mkdtemp(prefix=f"{self.kind}-"))
            self._write_tls_files(self.directory)
            self._processes = self._spawn(self.directory)
            self._wait_until_ready()
        except BaseException:
            self.stop()  # also on Ctrl-C or a bug here: never leave a server running
            raise
        return self

    def stop(self) -> None:
        """Terminate the processes (SIGKILL to their groups if they linger); remove the files."""
        self.send_stop()
        self.wait_stopped()

    def send_stop(self) -> None:
        """Ask the processes to exit, without waiting; `wait_stopped()` finishes the job."""
        for process in self._processes:
            if process.poll() is None:
                process.terminate()

    def wait_stopped(self) -> None:
        processes, self._processes = self._processes, []
        for process in processes:
            wait_or_kill_group(process)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def log_tail(self, lines: int = 20) -> str:
        if self.directory is None:
            return ""
        text = []
        for path in sorted(self.directory.glob("*.log")):
            text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def _check_installed(self) -> None:
        raise NotImplementedError

    def _spawn(self, directory: Path) -> list[subprocess.Popen[bytes]]:
        raise NotImplementedError

    def _write_tls_files(self, directory: Path) -> None:
        bundle = make_cert("good", SERVICE_NAME)
        for name, pem in (("chain", bundle.chain_pem), ("key", bundle.key_pem)):
            path = directory / f"{name}.pem"
            path.touch(mode=0o600)
            path.write_bytes(pem)
        (directory / "root-ca.pem").write_bytes(root_ca_pem())

    def _run(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """One process in its own session, so it can be killed with its children."""
        with log.open("ab") as output:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=ENVIRONMENT | env,
                start_new_session=True,
            )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        ports = [(self.pop3_port, b"+OK"), (self.pop3s_port, b"")]
        while ports:
            for process in self._processes:
                if process.poll() is not None:
                    raise self._error(f"exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise self._error(f"did not answer within {self.startup_timeout:g} s")
            if answers(self.host, *ports[0]):
                ports.pop(0)
            else:
                time.sleep(0.02)

    def _error(self, what: str) -> GnutlsServerError:
        return GnutlsServerError(f"{self!r} {what}; its log ends with:\n{self.log_tail()}")


class CourierPop3(GnutlsPop3Server):
    """Courier's pop3d from .courier: one couriertcpd per entry point."""

    kind = "courier"
    # Connections at once per server and per client address: the ground truth opens several.
    MAX_CONNECTIONS = 64

    def _check_installed(self) -> None:
        if not (COURIER_DIR / "usr/lib/courier/courier/courierpop3login").exists():
            raise GnutlsServerError(COURIER_MISSING)
        _check_root()

    def _write_tls_files(self, directory: Path) -> None:
        super()._write_tls_files(directory)
        # couriertls reads the key and the chain from one file, after STLS as "courier".
        nobody = pwd.getpwnam("nobody")
        combined = directory / "key-and-chain.pem"
        combined.touch(mode=0o600)
        combined.write_bytes(
            (directory / "key.pem").read_bytes() + (directory / "chain.pem").read_bytes()
        )
        os.chown(combined, nobody.pw_uid, nobody.pw_gid)
        directory.chmod(0o711)
        passwd = Path("/etc/passwd").read_text()
        (directory / "passwd").write_text(
            f"{passwd.rstrip()}\ncourier:x:{nobody.pw_uid}:{nobody.pw_gid}::/nonexistent:"
            "/usr/sbin/nologin\n"
        )

    def _spawn(self, directory: Path) -> list[subprocess.Popen[bytes]]:
        env = self._environment(directory)
        login = [
            str(COURIER_DIR / "usr/lib/courier/courier/courierpop3login"),
            str(COURIER_DIR / "usr/lib/courier/courier/courierpop3d"),
            "Maildir",
        ]
        couriertls = [str(COURIER_DIR / "usr/bin/couriertls"), "-server", "-tcpd"]
        # The private /etc/passwd that names "courier" (see the module's docstring).
        pop3 = with_private_files(
            {"/etc/passwd": directory / "passwd"}, self._tcpd(self.pop3_port, login)
        )
        return [
            self._run(pop3, env, directory / "pop3.log"),
            self._run(
                self._tcpd(self.pop3s_port, couriertls + login),
                env | {"POP3_TLS": "1", "POP3_STARTTLS": "NO"},
                directory / "pop3s.log",
            ),
        ]

    def _tcpd(self, port: int, command: list[str]) -> list[str]:
        return [
            str(COURIER_DIR / "usr/sbin/couriertcpd"),
            f"-address={self.host}",
            f"-maxprocs={self.MAX_CONNECTIONS}",
            f"-maxperip={self.MAX_CONNECTIONS}",
            "-nodnslookup",
            "-noidentlookup",
            str(port),
            *command,
        ]

    def _environment(self, directory: Path) -> dict[str, str]:
        """What Debian's /etc/courier/pop3d and pop3d-ssl set, with this server's files."""
        libraries = [COURIER_DIR / "usr/lib", COURIER_DIR / "usr/lib/x86_64-linux-gnu"]
        return {
            "LD_LIBRARY_PATH": ":".join(str(path) for path in libraries),
            "TLS_PRIORITY": self.config.priority,
            "TLS_CERTFILE": str(directory / "key-and-chain.pem"),
            "TLS_TRUSTCERTS": str(directory / "root-ca.pem"),
            "TLS_VERIFYPEER": "NONE",
            "COURIERTLS": str(COURIER_DIR / "usr/bin/couriertls"),
            "POP3_STARTTLS": "YES",
            "POP3_TLS_REQUIRED": "0",
            "POP3AUTH": "",
            "POP3AUTH_TLS": "LOGIN PLAIN",
        }


class MailutilsPop3(GnutlsPop3Server):
    """GNU Mailutils' pop3d: one daemon, one `server` block per entry point."""

    kind = "mailutils"
    MAX_CONNECTIONS = 64

    def _check_installed(self) -> None:
        if sbin("pop3d") is None:
            raise GnutlsServerError(MAILUTILS_MISSING)
        _check_root()

    def _spawn(self, directory: Path) -> list[subprocess.Popen[bytes]]:
        conf = directory / "pop3d.conf"
        conf.write_text(self.render_config(directory))
        binary = sbin("pop3d")
        assert binary is not None
        # The greeting's APOP timestamp names this host, which pop3d looks up: a private
        # /etc/hosts answers it, so the machine's resolver is never asked.
        hosts = directory / "hosts"
        hosts.write_text(f"{Path('/etc/hosts').read_text()}\n127.0.0.1 {socket.gethostname()}\n")
        command = [binary, f"--config-file={conf}", "--foreground"]
        return [
            self._run(
                with_private_files({"/etc/hosts": hosts}, command), {}, directory / "pop3d.log"
            )
        ]

    def render_config(self, directory: Path) -> str:
        """pop3d's configuration: STLS offered (not required) on the POP3 port, TLS from the
        first byte on the other, both with the configuration's priority string."""
        return f"""\
logging {{ syslog no; }};
mode daemon;
max-children {self.MAX_CONNECTIONS};
pidfile {directory}/pop3d.pid;
tcp-wrappers {{ enable no; }};
tls {{
  ssl-certificate-file "{directory}/chain.pem";
  ssl-key-file "{directory}/key.pem";
  ssl-priorities "{self.config.priority}";
}};
server {self.host}:{self.pop3_port} {{ tls-mode ondemand; }};
server {self.host}:{self.pop3s_port} {{ tls-mode connection; }};
"""


SERVER_KINDS: tuple[type[GnutlsPop3Server], ...] = (CourierPop3, MailutilsPop3)


def _check_root() -> None:
    if os.geteuid() != 0:
        raise GnutlsServerError("The GnuTLS POP3 servers' tests run as root, like Dovecot's")


def stop_all(servers: Iterable[GnutlsPop3Server]) -> None:
    """Stop several servers at once, each waited for only after all were asked."""
    servers = list(servers)
    for server in servers:
        server.send_stop()
    for server in servers:
        server.wait_stopped()


GnutlsServerFactory = Callable[[type[GnutlsPop3Server], GnutlsConfig], GnutlsPop3Server]


@pytest.fixture(scope="session")
def gnutls_server() -> Iterator[GnutlsServerFactory]:
    """Start a server of a kind per configuration on first use; the session shares it."""
    running: dict[tuple[type[GnutlsPop3Server], GnutlsConfig], GnutlsPop3Server] = {}

    def get(kind: type[GnutlsPop3Server], config: GnutlsConfig) -> GnutlsPop3Server:
        if (kind, config) not in running:
            try:
                running[kind, config] = kind(config).start()
            except GnutlsServerError as error:
                pytest.fail(str(error), pytrace=False)
        return running[kind, config]

    try:
        yield get
    finally:
        stop_all(running.values())
