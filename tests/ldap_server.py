"""A real OpenLDAP directory for the single sign-on tests: Debian's slapd, started privately on
loopback with a configuration and an mdb database of its own, filled by slapadd from an LDIF of
the cast below. Never the machine's slapd service, and nothing outside its temporary directory.

The directory (suffix dc=example,dc=test):
- ou=people: alice (in popc-admins and popc-viewers), oscar (popc-operators), vera
  (popc-viewers), nina (only in staff, a group no role is mapped to), chief (no group); each
  with the password PASSWORDS[name];
- ou=groups: popc-admins, popc-operators, popc-viewers, staff (groupOfNames);
- cn=reader: the bind account that searches users and groups (READER_DN, READER_PASSWORD).
  Anonymous clients may only bind; the rootdn (ROOT_DN, ROOT_PASSWORD) lets a test change
  groups while the directory runs.

`Slapd(tls_only=True)` refuses every operation that is not protected by TLS (StartTLS or
ldaps://): a sign-in that works against it proves the connection was encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import ldap
import pytest

from tests.loopback_tls import ServerFiles, write_server_files
from tests.ports import free_ports
from tests.processes import PrivateServer, ServerError, sbin

SUFFIX = "dc=example,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
READER_DN = f"cn=reader,{SUFFIX}"
READER_PASSWORD = "reader-secret-123"
ROOT_DN = f"cn=root,{SUFFIX}"
ROOT_PASSWORD = "root-secret-456"
PASSWORDS = {
    "alice": "alice-directory-pw",
    "oscar": "oscar-directory-pw",
    "vera": "vera-directory-pw",
    "nina": "nina-directory-pw",
    "chief": "chief-directory-pw",
}
MEMBERS = {
    "popc-admins": ["alice"],
    "popc-operators": ["oscar"],
    "popc-viewers": ["vera", "alice"],
    "staff": ["nina"],
}
NOT_INSTALLED = (
    "slapd is not installed: apt-get install slapd ldap-utils "
    "(scripts/system-deps.sh test does this when run as root)"
)


def user_dn(name: str) -> str:
    return f"uid={name},{PEOPLE}"


def group_dn(name: str) -> str:
    return f"cn={name},{GROUPS}"


def ssha(password: str) -> str:
    """userPassword as slappasswd writes it by default: {SSHA}, salted SHA-1."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def directory_ldif() -> str:
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
        f"dn: {READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: reader\nuserPassword: {ssha(READER_PASSWORD)}",
    ]
    for name, password in PASSWORDS.items():
        entries.append(
            f"dn: {user_dn(name)}\nobjectClass: inetOrgPerson\nuid: {name}\n"
            f"cn: {name.title()} Example\ngivenName: {name.title()}\nsn: Example\n"
            f"mail: {name}@example.test\nuserPassword: {ssha(password)}"
        )
    for group, members in MEMBERS.items():
        lines = [f"dn: {group_dn(group)}", "objectClass: groupOfNames", f"cn: {group}"]
        lines += [f"member: {user_dn(member)}" for member in members]
        entries.append("\n".join(lines))
    return "\n\n".join(entries) + "\n"


class Slapd(PrivateServer):
    """slapd on 127.0.0.1: plain LDAP (with StartTLS) on `port`, LDAPS on `ldaps_port`, both
    with a certificate of the tests' CA (`tls.ca`) for 127.0.0.1 and localhost."""

    kind = "slapd"

    def __init__(self, tls_only: bool = False) -> None:
        super().__init__()
        self.tls_only = tls_only
        self.port, self.ldaps_port = free_ports("127.0.0.1", 2)
        self.tls: ServerFiles | None = None

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def _check_installed(self) -> None:
        if sbin("slapd") is None or sbin("slapadd") is None:
            raise ServerError(NOT_INSTALLED)

    def _spawn(self, directory: Path) -> list[str]:
        self.tls = write_server_files(directory / "tls")
        (directory / "db").mkdir()
        config = directory / "slapd.conf"
        config.write_text(self._config(directory))
        ldif = directory / "directory.ldif"
        ldif.write_text(directory_ldif())
        loaded = subprocess.run(
            [str(sbin("slapadd")), "-f", str(config), "-l", str(ldif)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if loaded.returncode != 0:
            raise ServerError(f"slapadd failed: {loaded.stderr.strip()}")
        urls = f"{self.uri}/ {self.ldaps_uri}/"
        # -d: stay in the foreground, logging connections and operations (256: stats) to
        # startup.log, where a test can read what the dashboard asked.
        return [str(sbin("slapd")), "-d", "256", "-f", str(config), "-h", urls]

    def _config(self, directory: Path) -> str:
        assert self.tls is not None
        schema = Path("/etc/ldap/schema")
        lines = [f"include {schema / name}.schema" for name in ("core", "cosine", "inetorgperson")]
        lines += [
            f"pidfile {directory / 'slapd.pid'}",
            f"argsfile {directory / 'slapd.args'}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            f"TLSCACertificateFile {self.tls.ca}",
            f"TLSCertificateFile {self.tls.certificate}",
            f"TLSCertificateKeyFile {self.tls.key}",
        ]
        if self.tls_only:
            # Every operation but StartTLS itself needs a TLS layer.
            lines.append("security tls=1")
        lines += [
            "database mdb",
            "maxsize 10485760",
            f"suffix {SUFFIX}",
            f"rootdn {ROOT_DN}",
            f"rootpw {ssha(ROOT_PASSWORD)}",
            f"directory {directory / 'db'}",
            # Anonymous clients may only bind; signed-in ones (the reader) read, not passwords.
            "access to attrs=userPassword by anonymous auth by * none",
            "access to * by users read by * none",
        ]
        return "\n".join(lines) + "\n"

    def _ready_when(self) -> list[tuple[str, int, bytes]]:
        return [("127.0.0.1", self.port, b""), ("127.0.0.1", self.ldaps_port, b"")]

    def _environment(self) -> dict[str, str]:
        return {**super()._environment(), "LDAPNOINIT": "1"}

    def log(self) -> str:
        """What slapd logged so far (its connections and operations)."""
        assert self.directory is not None
        return (self.directory / "startup.log").read_text(errors="replace")

    def admin_connection(self) -> ldap.ldapobject.LDAPObject:
        """A connection bound as the rootdn, over StartTLS, to change the directory."""
        assert self.tls is not None
        connection = ldap.initialize(self.uri)
        connection.set_option(ldap.OPT_X_TLS_CACERTFILE, str(self.tls.ca))
        connection.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        connection.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        connection.start_tls_s()
        connection.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
        return connection

    def set_members(self, group: str, members: list[str]) -> None:
        """Make `members` the group's only members (a groupOfNames needs one at least)."""
        connection = self.admin_connection()
        try:
            values = [user_dn(member).encode() for member in members]
            connection.modify_s(group_dn(group), [(ldap.MOD_REPLACE, "member", values)])
        finally:
            connection.unbind_s()


def _started(tls_only: bool) -> Iterator[Slapd]:
    server = Slapd(tls_only=tls_only)
    try:
        server.start()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def slapd() -> Iterator[Slapd]:
    """A directory on loopback that also answers in the clear (only loopback may be reached
    so), with StartTLS and LDAPS."""
    yield from _started(tls_only=False)


@pytest.fixture(scope="module")
def slapd_tls_only() -> Iterator[Slapd]:
    """A directory that refuses anything not protected by TLS."""
    yield from _started(tls_only=True)
