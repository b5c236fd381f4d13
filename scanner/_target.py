"""What to scan and how: the target, the network settings and the policy, all frozen values."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from scanner._facts import TlsSupport
from scanner._guard import DENY_NETWORKS, IPNetwork, guard_refusal, parse_networks
from scanner._profiles import DEFAULT_PROFILE, TlsProfile, profile_named
from scanner._services import CLIENT_PROTOCOLS, DEFAULT_PROTOCOLS, ClientProtocol, parse_protocols


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_port(name: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise ValueError(f"{name} must be between 1 and 65535, not {port}")


# Generous for any real account, small enough that AUTH PLAIN stays one short exchange.
_MAX_CREDENTIAL_LENGTH = 255


def _check_credential(name: str, value: str) -> None:
    """Non-empty, bounded, and one line: a CR or LF would end the POP3 command early and let
    the rest of the value be read as a second command."""
    if not value or len(value) > _MAX_CREDENTIAL_LENGTH:
        raise ValueError(f"{name} must be 1 to {_MAX_CREDENTIAL_LENGTH} characters long")
    if not value.isprintable():
        raise ValueError(f"{name} must not contain control characters")


@dataclass(frozen=True)
class Credentials:
    """A monitoring account for the login test (check pop3.tls_login).

    The scanner sends these only inside an established TLS session whose certificate it
    trusts (scanner._login). The password never shows in repr() or str(), so a logged target
    or a traceback cannot leak it.
    """

    username: str
    password: str

    def __post_init__(self) -> None:
        _check_credential("username", self.username)
        if " " in self.username:
            # USER takes the whole rest of the line; a space would make the name ambiguous.
            raise ValueError("username must not contain spaces")
        _check_credential("password", self.password)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"


@dataclass(frozen=True)
class EarlierSupport:
    """What a TLS entry point accepted at an earlier scan, offered for reuse: the scanner
    takes it instead of enumerating again while a full handshake still negotiates what it
    did then (scanner._session). `after_stls` tells the POP3 port's entry point from the
    implicit-TLS one when both are the same port number."""

    address: str
    port: int
    after_stls: bool
    support: TlsSupport


@dataclass(frozen=True)
class Target:
    """One mail server: a DNS name or an IP address, the name users connect to, and the client
    protocols it serves (`protocols`: pop3, imap, submission), each on its two ports.

    `service_name` is the name checked against the certificate and used for the DNS checks.
    It defaults to `host` when `host` is a name; for an IP host without a name it stays None.
    `credentials`, when set, enable the login test over TLS; they are left out of repr().
    `earlier_support` holds enumerations from an earlier scan that may be reused.
    """

    host: str
    service_name: str | None = None
    pop3_port: int = 110
    pop3s_port: int = 995
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    imap_port: int = 143
    imaps_port: int = 993
    submission_port: int = 587
    submissions_port: int = 465
    credentials: Credentials | None = field(default=None, repr=False)
    earlier_support: tuple[EarlierSupport, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        host = self.host.strip().rstrip(".").lower()
        if not host or any(c.isspace() for c in host):
            raise ValueError(f"not a host name or IP address: {self.host!r}")
        object.__setattr__(self, "host", host.strip("[]"))
        for protocol in CLIENT_PROTOCOLS:
            _check_port(protocol.cleartext_field, getattr(self, protocol.cleartext_field))
            _check_port(protocol.implicit_tls_field, getattr(self, protocol.implicit_tls_field))
        object.__setattr__(self, "protocols", parse_protocols(self.protocols))
        name = self.service_name
        if name is None and not is_ip_address(self.host):
            name = self.host
        if name is not None:
            name = name.strip().rstrip(".").lower() or None
        object.__setattr__(self, "service_name", name)

    def declares(self, protocol: str) -> bool:
        """Whether the server is declared to serve `protocol`; only those are probed and judged."""
        return protocol in self.protocols

    def ports(self, protocol: ClientProtocol) -> tuple[int, int]:
        """The protocol's cleartext and implicit-TLS ports on this server."""
        return getattr(self, protocol.cleartext_field), getattr(self, protocol.implicit_tls_field)

    @property
    def host_is_ip(self) -> bool:
        return is_ip_address(self.host)

    def __str__(self) -> str:
        return self.host


def parse_resolver(text: str) -> tuple[str, int]:
    """Split `IP[:PORT]` (or `[IPv6]:PORT`) into address and port; port 53 by default."""
    text = text.strip()
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        address, port = text.split(":")
    else:
        address, port = text, "53"
    if not is_ip_address(address) or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"resolver must be IP[:PORT], not {text!r}")
    return address, int(port)


@dataclass(frozen=True)
class Settings:
    """How the scanner talks to the network.

    `timeout` bounds each connection as a whole, reads included, so a server that trickles
    bytes is cut off like one that is silent. `concurrency` is how many targets are scanned at
    once (all addresses of a target together); `connections_per_address` caps parallel
    connections to one service (protocol) of one address, because mail servers throttle
    clients that open many at once.
    The guard (scanner/_guard.py) never connects to an address in `deny_networks`, nor to one
    outside `allow_networks` when that is not empty; both hold CIDR texts. With
    `refuse_loopback_unless_allowed_by` (the name under which the operator sets
    `allow_networks`, quoted in the refusal) loopback is refused unless `allow_networks` covers
    it: a dashboard must not probe its own host, an operator's command line may.
    """

    timeout: float = 10.0
    resolver: str | None = None
    concurrency: int = 50
    connections_per_address: int = 3
    enumerate_tls: bool = True
    allow_networks: tuple[str, ...] = ()
    deny_networks: tuple[str, ...] = DENY_NETWORKS
    refuse_loopback_unless_allowed_by: str | None = None
    # The two lists parsed once, so the guard does not re-parse them for every address.
    _allow: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)
    _deny: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.timeout <= 600:
            raise ValueError(f"timeout must be between 0 and 600 seconds, not {self.timeout}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.connections_per_address < 1:
            raise ValueError("connections_per_address must be at least 1")
        if self.resolver is not None:
            parse_resolver(self.resolver)
        object.__setattr__(self, "allow_networks", tuple(self.allow_networks))
        object.__setattr__(self, "deny_networks", tuple(self.deny_networks))
        object.__setattr__(self, "_allow", parse_networks("allow_networks", self.allow_networks))
        object.__setattr__(self, "_deny", parse_networks("deny_networks", self.deny_networks))

    def refusal(self, address: str) -> str | None:
        """Why the scanner guard refuses to connect to this IP address, or None."""
        return guard_refusal(
            address, self._allow, self._deny, self.refuse_loopback_unless_allowed_by
        )


@dataclass(frozen=True)
class Policy:
    """The rules the facts are judged against; defaults encode the secure configuration.

    `tls_profile` names the standard TLS is judged by (scanner._profiles). `ca_bundle_pem`
    holds extra trust anchors (an enterprise CA) as PEM text, so a stored policy carries its
    trust store with it. `allow_cleartext_port` False means the POP3 port (110) must not answer at
    all (implicit TLS only, RFC 8314); `allow_cleartext_imap` and `allow_cleartext_submission`
    say the same of 143 and 587.
    """

    warn_days: int = 30
    critical_days: int = 7
    tls_profile: str = DEFAULT_PROFILE
    use_system_trust: bool = True
    ca_bundle_pem: str | None = None
    allow_cleartext_port: bool = True
    allow_cleartext_imap: bool = True
    allow_cleartext_submission: bool = True

    def allows_cleartext(self, protocol: str) -> bool:
        """Whether the protocol's cleartext port may answer at all."""
        field_name = "allow_cleartext_port" if protocol == "pop3" else f"allow_cleartext_{protocol}"
        return bool(getattr(self, field_name))

    @property
    def profile(self) -> TlsProfile:
        return profile_named(self.tls_profile)

    def __post_init__(self) -> None:
        profile_named(self.tls_profile)
        if not 0 <= self.critical_days <= self.warn_days:
            raise ValueError("critical_days must be between 0 and warn_days")
