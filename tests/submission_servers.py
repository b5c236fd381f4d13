"""Real SMTP submission servers on loopback, each with STARTTLS on one port (what 587 is) and
implicit TLS (what 465 is) on another, TLS from the test PKI and SASL for the test ACCOUNT:

- Postfix, once with `smtpd_tls_auth_only = yes` and once with `no`: one master process whose
  master.cf runs four smtpd services, two per setting, as a real master.cf sets submission and
  submissions apart with `-o`. Passwords are checked by tests/dovecot.py's `mail_dovecot` that
  allows plaintext, through its auth socket, so that `no` really means a password sent before
  TLS would be taken. Postfix as a Debian package would become this machine's MTA, so
  scripts/system-deps.sh unpacks it into .postfix instead and it runs from there: its own
  config_directory, queue_directory and data_directory in a temporary directory, its log in a
  file there (postlogd), its programs and libraries from .postfix. Its mail_owner and
  setgid_group are users that only its mount namespace knows (`unshare --mount` with private
  /etc/passwd and /etc/group). It never looks a name up in DNS (`smtpd_peername_lookup = no`,
  `smtp_dns_support_level = disabled`) and delivers nothing.
- Dovecot's submission service (package dovecot-submissiond), from `mail_dovecot`, once with
  `disable_plaintext_auth = yes` and once with `no`. It relays to an SMTP sink on loopback.

`submission_server(name)` (a session fixture) starts what a name in SUBMISSION_SERVERS needs on
first use.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pop3lab.certs import make_cert
from tests.dovecot import SERVICE_NAME, MailDovecotFactory
from tests.mail_endpoints import MailEndpoint
from tests.ports import free_ports
from tests.processes import PrivateServer, ServerError, with_lines, with_private_files

HOST = "127.0.0.1"
POSTFIX_DIR = Path(__file__).resolve().parent.parent / ".postfix"
# Where Debian's Cyrus SASL plugins are, under a directory per architecture.
SASL_PLUGINS = Path("/usr/lib")
POSTFIX_MISSING = (
    f"Postfix is not unpacked in {POSTFIX_DIR}: run scripts/system-deps.sh test (make test does; "
    "it fetches postfix with apt-get download and unpacks it there, never installing it)"
)
# The users Postfix runs as, named only in its private /etc/passwd and /etc/group.
MAIL_OWNER, SETGID_GROUP = "popc-postfix", "popc-postdrop"
# Each endpoint's name and setting: Postfix's by smtpd_tls_auth_only, Dovecot's by whether
# plaintext is allowed.
_POSTFIX = {"postfix-tls-auth-only": True, "postfix": False}
_DOVECOT = {"dovecot": False, "dovecot-plaintext": True}
SUBMISSION_SERVERS = (*_POSTFIX, *_DOVECOT)
SubmissionServerFactory = Callable[[str], MailEndpoint]
# What `postfix start` would create: the directories master and its children keep their
# configuration, sockets and state in, each with its mode and whether mail_owner owns it (and
# setgid_group the public one, as postdrop would need).
_DIRECTORIES = {
    "conf": (0o755, False),
    "queue": (0o755, False),
    "queue/pid": (0o755, False),
    "queue/private": (0o700, True),
    "queue/public": (0o710, True),
    "data": (0o700, True),
}


class Postfix(PrivateServer):
    """Postfix's master and its smtpd services on HOST: for each value of smtpd_tls_auth_only,
    STARTTLS on one port and implicit TLS on another. SASL asks the Dovecot at `auth_socket`."""

    kind = "postfix"
    # The name it greets with and, under Cyrus SASL, names in its NTLM challenge.
    hostname = SERVICE_NAME

    def __init__(self, auth_socket: Path) -> None:
        super().__init__()
        self.auth_socket = auth_socket
        free = iter(free_ports(HOST, 4))
        # (STARTTLS port, implicit-TLS port) by smtpd_tls_auth_only.
        self.ports = {auth_only: (next(free), next(free)) for auth_only in (True, False)}

    def endpoint(self, name: str, tls_auth_only: bool) -> MailEndpoint:
        return MailEndpoint(
            name, HOST, *self.ports[tls_auth_only], cleartext_auth=not tls_auth_only
        )

    def _check_installed(self) -> None:
        if not (POSTFIX_DIR / "usr/lib/postfix/sbin/smtpd").exists():
            raise ServerError(POSTFIX_MISSING)

    def _environment(self) -> dict[str, str]:
        # The unpacked programs find their libraries here, not in /usr/lib/postfix; master
        # passes it on to its children because main.cf's import_environment names it.
        return super()._environment() | {"LD_LIBRARY_PATH": str(POSTFIX_DIR / "usr/lib/postfix")}

    def _spawn(self, directory: Path) -> list[str]:
        private = _write_users_and_directories(directory)
        bundle = make_cert("good", SERVICE_NAME)
        key_and_chain = directory / "key-and-chain.pem"
        key_and_chain.touch(mode=0o600)
        key_and_chain.write_bytes(bundle.key_pem + bundle.chain_pem)
        for name, text in (("main.cf", self.render_main_cf(directory)),
                           ("master.cf", self.render_master_cf())):  # fmt: skip
            path = directory / "conf" / name
            path.write_text(text)
            # Postfix reads a configuration file again, every 300 ms, until it is two seconds
            # old, in case an editor is still writing it: one from the past starts 2 s sooner.
            os.utime(path, (time.time() - 10, time.time() - 10))
        master = str(POSTFIX_DIR / "usr/lib/postfix/sbin/master")
        return with_private_files(private, [master, "-c", f"{directory}/conf", "-d"])

    def render_main_cf(self, directory: Path) -> str:
        programs = POSTFIX_DIR / "usr/lib/postfix"
        return f"""\
compatibility_level = 3.6
queue_directory = {directory}/queue
data_directory = {directory}/data
meta_directory = {directory}/conf
daemon_directory = {programs}/sbin
shlib_directory = {programs}
command_directory = {POSTFIX_DIR}/usr/sbin
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH
mail_owner = {MAIL_OWNER}
setgid_group = {SETGID_GROUP}
maillog_file = {directory}/postfix.log
maillog_file_prefixes = {directory}
myhostname = {self.hostname}
mydomain = {self.hostname.partition(".")[2]}
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = {HOST}
inet_protocols = ipv4
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_tls_chain_files = {directory}/key-and-chain.pem
smtpd_tls_security_level = may
smtpd_sasl_auth_enable = yes
{self.render_sasl(directory)}"""

    def render_sasl(self, directory: Path) -> str:
        """main.cf's SASL settings: Dovecot's, through its auth socket."""
        return f"smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {self.auth_socket}\n"

    def render_master_cf(self) -> str:
        """master.cf: the four smtpd services, and the services smtpd talks to."""
        services = []
        for auth_only, (starttls_port, tls_port) in self.ports.items():
            yes_no = "yes" if auth_only else "no"
            services += [
                f"{HOST}:{starttls_port} inet n - n - - smtpd -o smtpd_tls_auth_only={yes_no}",
                f"{HOST}:{tls_port} inet n - n - - smtpd -o smtpd_tls_auth_only={yes_no}"
                " -o smtpd_tls_wrappermode=yes",
            ]
        return "\n".join(
            [
                *services,
                "anvil unix - - n - 1 anvil",
                "tlsmgr unix - - n 1000? 1 tlsmgr",
                "postlog unix-dgram n - n - 1 postlogd",
                "",
            ]
        )

    def _ready_when(self) -> list[tuple[str, int, bytes]]:
        return [
            (HOST, port, b"220 " if index == 0 else b"")
            for pair in self.ports.values()
            for index, port in enumerate(pair)
        ]


class CyrusNtlmPostfix(Postfix):
    """Postfix whose SASL is Cyrus SASL with its NTLM plugin alone (libsasl2-modules), on a
    host whose own name is an internal one: before TLS (smtpd_tls_auth_only = no) anyone may
    start AUTH NTLM and read that name in the challenge. Cyrus's NTLM answers a NEGOTIATE with
    its own challenge and no target information, whose target name is `myhostname` in capitals
    (where the client asks for the target, as the scanner's NEGOTIATE does). Nobody can log in:
    its password database is a file that does not exist."""

    kind = "postfix-cyrus-ntlm"
    hostname = "smtp01.corp.internal"

    def __init__(self) -> None:
        # No Dovecot behind it: render_sasl names no auth socket.
        super().__init__(auth_socket=Path("/nonexistent"))

    def _check_installed(self) -> None:
        super()._check_installed()
        if not list(SASL_PLUGINS.glob("*/sasl2/libntlm.so*")):
            raise ServerError(
                "Cyrus SASL's NTLM plugin is not installed: apt-get install libsasl2-modules "
                "(make test does this when run as root)"
            )

    def _spawn(self, directory: Path) -> list[str]:
        command = super()._spawn(directory)
        # Cyrus SASL reads <smtpd_sasl_path>.conf from cyrus_sasl_config_path.
        (directory / "conf" / "sasl").mkdir()
        (directory / "conf" / "sasl" / "smtpd.conf").write_text(
            f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
            f"sasldb_path: {directory}/sasldb2\nmech_list: NTLM\n"
        )
        return command

    def render_sasl(self, directory: Path) -> str:
        return (
            "smtpd_sasl_type = cyrus\nsmtpd_sasl_path = smtpd\n"
            f"cyrus_sasl_config_path = {directory}/conf/sasl\n"
        )


def _write_users_and_directories(directory: Path) -> dict[str, Path]:
    """Postfix's directories in `directory`, owned by MAIL_OWNER and SETGID_GROUP, and the
    private /etc/passwd and /etc/group that name them (returned as the files to show)."""
    uid, gid = _unused_id("/etc/passwd"), _unused_id("/etc/group")
    owner = f"{MAIL_OWNER}:x:{uid}:{gid}::/nonexistent:/usr/sbin/nologin"
    (directory / "passwd").write_text(with_lines("/etc/passwd", owner))
    groups = (f"{MAIL_OWNER}:x:{gid}:", f"{SETGID_GROUP}:x:{gid + 1}:")
    (directory / "group").write_text(with_lines("/etc/group", *groups))
    for name, (mode, owned) in _DIRECTORIES.items():
        (directory / name).mkdir()
        (directory / name).chmod(mode)
        if owned:
            os.chown(directory / name, uid, gid if name != "queue/public" else gid + 1)
    return {"/etc/passwd": directory / "passwd", "/etc/group": directory / "group"}


def _unused_id(system_file: str) -> int:
    """An id that no entry of `system_file` (/etc/passwd or /etc/group) has, nor the next one
    (the second group)."""
    lines = Path(system_file).read_text().splitlines()
    used = {int(line.split(":")[2]) for line in lines if line.count(":") >= 3}
    return next(number for number in range(64000, 65000) if {number, number + 1}.isdisjoint(used))


@pytest.fixture(scope="session")
def submission_server(mail_dovecot: MailDovecotFactory) -> Iterator[SubmissionServerFactory]:
    """`submission_server(name)`: the endpoint of the server a name in SUBMISSION_SERVERS
    names, started on first use and shared by the session."""
    postfix: list[Postfix] = []

    def postfix_endpoint(name: str, tls_auth_only: bool) -> MailEndpoint:
        if not postfix:
            try:
                postfix.append(Postfix(mail_dovecot(True).auth_socket).start())
            except ServerError as error:
                pytest.fail(str(error), pytrace=False)
        return postfix[0].endpoint(name, tls_auth_only)

    def get(name: str) -> MailEndpoint:
        if name in _POSTFIX:
            return postfix_endpoint(name, _POSTFIX[name])
        plaintext_allowed = _DOVECOT[name]
        dovecot = mail_dovecot(plaintext_allowed)
        return MailEndpoint(
            name, dovecot.host, *dovecot.ports["submission"], cleartext_auth=plaintext_allowed
        )

    try:
        yield get
    finally:
        for server in postfix:
            server.stop()
