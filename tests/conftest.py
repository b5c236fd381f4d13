"""Shared fixtures: the POP3 emulator (pop3lab) on loopback, and helpers to scan it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dns.resolver
import pytest

from pop3lab.certs import root_ca_pem
from pop3lab.config import EndpointConfig
from pop3lab.lab import AnyConfig, BoundEndpoint, LabThread
from popcompliance.inventory.models import PORT_FIELDS, Server
from popcompliance.inventory.models import Policy as PolicyRow
from scanner import Policy, ScanReport, Settings, Target
from scanner._probe import scan
from tests.dnsserver import DnsServer, dns_server  # noqa: F401  (dns_server: a fixture)
from tests.ports import free_port, free_ports

# Fixtures of the real Dovecot (from Debian, started per configuration), of Courier's and
# Mailutils' pop3d on GnuTLS (one per TLS configuration), of real IMAP and SMTP submission
# servers (Dovecot, Mailutils' imap4d, Postfix), and of Redis, PostgreSQL and Celery processes;
# and the web tests' cast of signed-in clients (tests.people).
pytest_plugins = [
    "tests.dovecot",
    "tests.gnutls_servers",
    "tests.imap_servers",
    "tests.submission_servers",
    "tests.services",
    "tests.browser",
    "tests.people",
]

SERVICE_NAME = "mail.example.test"
# Each emulated server gets its own loopback address from this range, so tests never share one.
_addresses = (f"127.0.{third}.{fourth}" for third in range(10, 250) for fourth in range(1, 255))


def next_address() -> str:
    return next(_addresses)


def lab_policy(**overrides: object) -> Policy:
    """The default policy, trusting the test root CA instead of the system store."""
    values: dict[str, object] = {"ca_bundle_pem": root_ca_pem().decode(), "use_system_trust": False}
    values.update(overrides)
    return Policy(**values)  # type: ignore[arg-type]


def create_lab_policy() -> PolicyRow:
    """The inventory's policy "lab": lab_policy() as a row."""
    return PolicyRow.objects.create(name="lab", **lab_policy().__dict__)


def lab_server(
    name: str,
    host: str,
    pop3_port: int | None,
    pop3s_port: int | None,
    policy: PolicyRow | None = None,
    **fields: object,
) -> Server:
    """An inventory server for an emulated one on `host` (its ports; its service name resolves
    on lab_dns), judged by `policy`, by default a new create_lab_policy()."""
    return Server.objects.create(
        name=name,
        host=host,
        service_name=SERVICE_NAME,
        pop3_port=pop3_port,
        pop3s_port=pop3s_port,
        policy=policy or create_lab_policy(),
        **fields,
    )


def server_form_data(server: Server, **overrides: Any) -> dict[str, Any]:
    """What the server's edit form posts when nothing is changed, then `overrides`."""
    data = {
        "name": server.name,
        "host": server.host,
        "service_name": server.service_name,
        "protocols": [protocol.name for protocol in server.declared_protocols],
        **{field: getattr(server, field) for field in PORT_FIELDS},
        "site": server.site,
        "policy": server.policy_id,
        "scan_interval": server.scan_interval,
        "owners": "; ".join(server.owner_emails),
        "tag_names": "; ".join(tag.name for tag in server.tags.all()),
        "monitor_username": server.monitor_username,
        "monitor_password": "",
        # The policy field has a callable default, so the page posts its initial value too.
        "initial-policy": server.policy_id,
    }
    return data | overrides


def policy_form(**overrides: Any) -> dict[str, Any]:
    """What the policy form posts for a policy "Enterprise", then `overrides` (None drops a
    field)."""
    data = {
        "name": "Enterprise",
        "description": "",
        "warn_days": 30,
        "critical_days": 7,
        "tls_profile": "mozilla-intermediate",
        "tls_enumeration_hours": 24,
        "use_system_trust": "on",
        "ca_bundle_pem": "",
        "allow_cleartext_port": "on",
        "allow_cleartext_imap": "on",
        "allow_cleartext_submission": "on",
        "error_runs_before_unknown": 2,
    }
    return {key: value for key, value in (data | overrides).items() if value is not None}


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """Each test starts with an empty cache (the dashboard caches a panel for a minute)."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(scope="session", autouse=True)
def never_the_machines_resolver() -> Iterator[None]:
    """Tests send DNS only to their own server on loopback. Reading /etc/resolv.conf is the
    first step of using the machine's resolver, so make that step fail loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test used the machine's DNS resolver: pass Settings(resolver=...)")

    original = dns.resolver.Resolver.read_resolv_conf
    dns.resolver.Resolver.read_resolv_conf = refuse  # type: ignore[method-assign]
    yield
    dns.resolver.Resolver.read_resolv_conf = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def lab_dns() -> Iterator[DnsServer]:
    """A DNS server on loopback where the service name of the emulated servers resolves."""
    server = DnsServer({SERVICE_NAME: {"A": ["127.0.0.1"]}})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lab() -> Iterator[LabThread]:
    with LabThread() as running:
        yield running


class Emulated:
    """Start emulated servers in the shared lab and scan them."""

    def __init__(self, lab: LabThread, lab_dns: DnsServer) -> None:
        self.lab = lab
        self.dns_server = lab_dns

    def start(self, config: AnyConfig, *, pop3_port: int = 0, pop3s_port: int = 0) -> BoundEndpoint:
        address = next_address()
        return self.lab.add([(address, config)], pop3_port=pop3_port, pop3s_port=pop3s_port)[
            address
        ]

    def start_on_shared_ports(self, *configs: AnyConfig) -> list[BoundEndpoint]:
        """Several servers on one pair of ports, as the CLI takes one pair for all HOSTs."""
        first = self.start(configs[0])
        ports = {"pop3_port": first.pop3_port or 0, "pop3s_port": first.pop3s_port or 0}
        return [first, *(self.start(config, **ports) for config in configs[1:])]

    def target(self, endpoint: BoundEndpoint, name: str | None = SERVICE_NAME) -> Target:
        # A listener that is off still needs a port number: use one nothing listens on.
        return Target(
            endpoint.address,
            service_name=name,
            pop3_port=endpoint.pop3_port or 9,
            pop3s_port=endpoint.pop3s_port or 9,
        )

    def scan(
        self,
        config: AnyConfig | None = None,
        *,
        policy: Policy | None = None,
        timeout: float = 5.0,
        name: str | None = SERVICE_NAME,
    ) -> ScanReport:
        endpoint = self.start(config or EndpointConfig())
        return self.scan_endpoint(endpoint, policy=policy, timeout=timeout, name=name)

    def scan_endpoint(
        self,
        endpoint: BoundEndpoint,
        *,
        policy: Policy | None = None,
        timeout: float = 5.0,
        name: str | None = SERVICE_NAME,
    ) -> ScanReport:
        """Scan a started endpoint, whose journal then tells what the scan sent it."""
        settings = Settings(timeout=timeout, resolver=self.dns_server.address)
        return scan([self.target(endpoint, name)], settings, policy or lab_policy())[0]


@pytest.fixture
def emulated(lab: LabThread, lab_dns: DnsServer) -> Emulated:
    return Emulated(lab, lab_dns)


class Fixed:
    """One address and port pair whose server can be swapped between scans, as an admin
    reconfiguring the same machine would."""

    def __init__(self) -> None:
        self.address = next_address()
        self.ports = free_port(self.address), free_port(self.address)

    @contextmanager
    def serving(self, config: AnyConfig) -> Iterator[None]:
        with LabThread([(self.address, config)], pop3_port=self.ports[0], pop3s_port=self.ports[1]):
            yield


@pytest.fixture
def fixed() -> Fixed:
    return Fixed()


class AllDoors:
    """One address with fixed ports for both doors of every protocol (POP3, IMAP4, SMTP
    submission), whose server can be swapped between scans."""

    def __init__(self) -> None:
        self.address = next_address()
        ports = free_ports(self.address, len(PORT_FIELDS))
        self.ports = dict(zip(PORT_FIELDS, ports, strict=True))

    @contextmanager
    def serving(self, config: AnyConfig) -> Iterator[None]:
        with LabThread([(self.address, config)], **self.ports):
            yield

    def server(self, name: str, protocols: str, policy: PolicyRow | None = None) -> Server:
        """An inventory server for this address declaring `protocols` ("pop3,imap")."""
        ports = dict(self.ports)
        pop3_port, pop3s_port = ports.pop("pop3_port"), ports.pop("pop3s_port")
        return lab_server(
            name, self.address, pop3_port, pop3s_port, policy, protocols=protocols, **ports
        )


def status_of(report: ScanReport, check_id: str) -> str:
    return next(check.status for check in report.checks if check.id == check_id)


def check_of(report: ScanReport, check_id: str):  # type: ignore[no-untyped-def]
    return next(check for check in report.checks if check.id == check_id)
