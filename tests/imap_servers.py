"""Real IMAP servers on loopback, each with STARTTLS on one port and implicit TLS (what 993 is)
on another, TLS from the test PKI and the test account ACCOUNT:

- Dovecot's imapd (package dovecot-imapd), from tests/dovecot.py's `mail_dovecot`, once with
  `disable_plaintext_auth = yes` and once with `no`.
- GNU Mailutils' imap4d (package mailutils-imap4d), from a configuration file of its own. Its
  `tls-mode required` refuses LOGIN and AUTHENTICATE before STARTTLS without saying
  LOGINDISABLED, and its `login-disabled yes` says LOGINDISABLED and refuses LOGIN but still
  takes AUTHENTICATE PLAIN in the clear: a capability is not a verdict. One imap4d per
  `login-disabled` value serves both TLS modes, each on a port of its own. It authenticates
  system users, so it runs in a mount namespace of its own (`unshare --mount`) whose /etc/passwd
  and /etc/shadow name ACCOUNT (as the user nobody, at home in the server's directory), and
  whose /etc/hosts names this host, which it looks up.

`imap_server(name)` (a session fixture) starts what a name in IMAP_SERVERS needs on first use.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pop3lab.certs import make_cert
from tests.dovecot import SERVICE_NAME, MailDovecotFactory
from tests.mail_endpoints import ACCOUNT, MailEndpoint
from tests.ports import free_ports
from tests.processes import PrivateServer, ServerError, sbin, with_lines, with_private_files

HOST = "127.0.0.1"
MAILUTILS_MISSING = (
    "GNU Mailutils' imap4d is not installed: apt-get install mailutils-imap4d "
    "(make test does this when run as root)"
)
# Each endpoint's name and settings: Dovecot's by whether plaintext is allowed, Mailutils' by
# (login-disabled, tls-mode required).
_DOVECOT = {"dovecot": False, "dovecot-plaintext": True}
_MAILUTILS = {
    "mailutils": (False, False),
    "mailutils-tls-required": (False, True),
    "mailutils-login-disabled": (True, False),
    "mailutils-login-disabled-tls-required": (True, True),
}
IMAP_SERVERS = (*_DOVECOT, *_MAILUTILS)
ImapServerFactory = Callable[[str], MailEndpoint]


class MailutilsImap(PrivateServer):
    """GNU Mailutils' imap4d with `login-disabled` as given: STARTTLS offered on `ondemand_port`,
    required on `required_port`, implicit TLS on `tls_port`."""

    kind = "mailutils-imap4d"
    MAX_CONNECTIONS = 64

    def __init__(self, login_disabled: bool) -> None:
        super().__init__()
        self.login_disabled = login_disabled
        self.ondemand_port, self.required_port, self.tls_port = free_ports(HOST, 3)

    def __repr__(self) -> str:
        return f"{self.kind}(login_disabled={self.login_disabled})"

    def endpoint(self, name: str, tls_required: bool) -> MailEndpoint:
        """The endpoint whose STARTTLS port has `tls-mode required` or `ondemand`."""
        port = self.required_port if tls_required else self.ondemand_port
        return MailEndpoint(
            name,
            HOST,
            port,
            self.tls_port,
            cleartext_auth=not tls_required,
            logindisabled=self.login_disabled,
        )

    def _check_installed(self) -> None:
        if sbin("imap4d") is None:
            raise ServerError(MAILUTILS_MISSING)

    def _spawn(self, directory: Path) -> list[str]:
        bundle = make_cert("good", SERVICE_NAME)
        (directory / "chain.pem").write_bytes(bundle.chain_pem)
        (directory / "key.pem").touch(mode=0o600)
        (directory / "key.pem").write_bytes(bundle.key_pem)
        (directory / "imap4d.conf").write_text(self.render_config(directory))
        binary = sbin("imap4d")
        assert binary is not None
        return with_private_files(
            _write_system_files(directory),
            [binary, f"--config-file={directory}/imap4d.conf", "--foreground"],
        )

    def render_config(self, directory: Path) -> str:
        return f"""\
logging {{ syslog no; }};
mode daemon;
max-children {self.MAX_CONNECTIONS};
pidfile {directory}/imap4d.pid;
tcp-wrappers {{ enable no; }};
login-disabled {"yes" if self.login_disabled else "no"};
auth {{ authorization system; authentication system; }};
mailbox {{ mail-spool {directory}/spool; }};
tls {{
  ssl-certificate-file "{directory}/chain.pem";
  ssl-key-file "{directory}/key.pem";
}};
server {HOST}:{self.ondemand_port} {{ tls-mode ondemand; }};
server {HOST}:{self.required_port} {{ tls-mode required; }};
server {HOST}:{self.tls_port} {{ tls-mode connection; }};
"""

    def _ready_when(self) -> list[tuple[str, int, bytes]]:
        return [
            (HOST, self.ondemand_port, b"* OK"),
            (HOST, self.required_port, b"* OK"),
            (HOST, self.tls_port, b""),
        ]


def _write_system_files(directory: Path) -> dict[str, Path]:
    """The private /etc/passwd, /etc/shadow and /etc/hosts imap4d sees, written into `directory`:
    ACCOUNT as the user nobody, at home there, and this host's name."""
    # After login imap4d becomes the account's user, who must reach its mail.
    nobody = pwd.getpwnam("nobody")
    for name in ("home", "spool"):
        (directory / name).mkdir(mode=0o700)
        os.chown(directory / name, nobody.pw_uid, nobody.pw_gid)
    user, password = ACCOUNT
    home = f"{directory}/home"
    entry = f"{user}:x:{nobody.pw_uid}:{nobody.pw_gid}::{home}:/usr/sbin/nologin"
    (directory / "passwd").write_text(with_lines("/etc/passwd", entry))
    (directory / "shadow").touch(mode=0o600)
    (directory / "shadow").write_text(f"{user}:{_crypt(password)}:19000:0:99999:7:::\n")
    (directory / "hosts").write_text(with_lines("/etc/hosts", f"127.0.0.1 {socket.gethostname()}"))
    return {
        path: directory / Path(path).name for path in ("/etc/passwd", "/etc/shadow", "/etc/hosts")
    }


def _crypt(password: str) -> str:
    """`password` as /etc/shadow stores it (SHA-512 crypt), made by openssl."""
    return subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=password,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture(scope="session")
def imap_server(mail_dovecot: MailDovecotFactory) -> Iterator[ImapServerFactory]:
    """`imap_server(name)`: the endpoint of the server a name in IMAP_SERVERS names, started on
    first use and shared by the session."""
    mailutils: dict[bool, MailutilsImap] = {}

    def mailutils_endpoint(name: str, login_disabled: bool, tls_required: bool) -> MailEndpoint:
        if login_disabled not in mailutils:
            try:
                mailutils[login_disabled] = MailutilsImap(login_disabled).start()
            except ServerError as error:
                pytest.fail(str(error), pytrace=False)
        return mailutils[login_disabled].endpoint(name, tls_required)

    def get(name: str) -> MailEndpoint:
        if name in _MAILUTILS:
            return mailutils_endpoint(name, *_MAILUTILS[name])
        plaintext_allowed = _DOVECOT[name]
        dovecot = mail_dovecot(plaintext_allowed)
        return MailEndpoint(
            name,
            dovecot.host,
            *dovecot.ports["imap"],
            cleartext_auth=plaintext_allowed,
            logindisabled=not plaintext_allowed,
        )

    try:
        yield get
    finally:
        for server in mailutils.values():
            server.send_stop()
        for server in mailutils.values():
            server.wait_stopped()
