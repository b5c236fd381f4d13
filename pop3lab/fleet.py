"""Fleets: many endpoints on consecutive loopback addresses, uniform or a deterministic mix.

The mix cycles through `MIX` so that endpoint *i* always gets the same configuration: a
benchmark or demo can rebuild the expected verdicts from the address alone, or read them from
the manifest that `describe` produces.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import asdict
from typing import Any

from pop3lab.config import SERVICES, EndpointConfig
from pop3lab.hostile import BEHAVIOURS, HostileConfig
from pop3lab.lab import AnyConfig, BoundEndpoint, EndpointSpec
from pop3lab.schannel import EXCHANGE_ON_WINDOWS

_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

# One of each interesting situation; the first is the compliant baseline.
MIX: tuple[EndpointConfig, ...] = (
    EndpointConfig("exchange2016", "SecureLogin"),
    EndpointConfig("exchange2010", "PlainTextLogin"),
    EndpointConfig("exchange2013", "PlainTextAuthentication"),
    EndpointConfig("exchange2019", "SecureLogin", ntlm=False, cert_kind="ec256"),
    EndpointConfig("exchange2016", "SecureLogin", cert_kind=None),
    EndpointConfig("exchange2016", "SecureLogin", cert_kind="exchange_self_signed"),
    EndpointConfig("exchange2016", "SecureLogin", cert_kind="expired"),
    EndpointConfig("exchange2016", "SecureLogin", cert_kind="wrong_name"),
    EndpointConfig("exchange2013", "SecureLogin", tls_versions=("TLSv1", "TLSv1.2")),
    EndpointConfig("exchange2016", "SecureLogin", cert_kind="expiring_soon"),
    EndpointConfig("exchange2016", "SecureLogin", cert_kind="missing_intermediate"),
    EndpointConfig("exchange2010", "PlainTextAuthentication", cert_kind="sha1"),
    EndpointConfig("exchange2016", "SecureLogin", pop3=False),
    EndpointConfig("dovecot_like", "SecureLogin"),
    EndpointConfig("dovecot_like", "PlainTextLogin"),
    EndpointConfig("generic", "SecureLogin", generic_accepts_user_rejects_pass=True),
)


def addresses(base: str, count: int) -> list[str]:
    """`count` consecutive IPv4 loopback addresses from `base`, skipping .0 and .255 hosts.

    Those two are valid on `lo`, but they read like network and broadcast addresses in
    reports, which confuses people more than it tests anything.
    """
    current = ipaddress.IPv4Address(base)
    result: list[str] = []
    while len(result) < count:
        if current not in _LOOPBACK:
            raise ValueError(f"{count} addresses from {base} leave 127.0.0.0/8")
        if current.packed[3] not in (0, 255):
            result.append(str(current))
        current += 1
    return result


def uniform_fleet(count: int, base: str, config: AnyConfig) -> list[EndpointSpec]:
    """`count` endpoints that all share one configuration."""
    return [(address, config) for address in addresses(base, count)]


def mixed_fleet(count: int, base: str) -> list[EndpointSpec]:
    """`count` endpoints cycling through `MIX`, the same configuration for the same index."""
    return [(address, MIX[i % len(MIX)]) for i, address in enumerate(addresses(base, count))]


# Exchange on every Windows Server it is supported on, serving SChannel's default TLS.
WINDOWS_MIX: tuple[EndpointConfig, ...] = tuple(
    EndpointConfig(exchange, "SecureLogin", windows=windows)
    for exchange, hosts in EXCHANGE_ON_WINDOWS.items()
    for windows in hosts
)


def windows_fleet(count: int, base: str) -> list[EndpointSpec]:
    """`count` endpoints cycling through `WINDOWS_MIX`."""
    return [
        (address, WINDOWS_MIX[i % len(WINDOWS_MIX)])
        for i, address in enumerate(addresses(base, count))
    ]


def serving(fleet: list[EndpointSpec], services: tuple[str, ...]) -> list[EndpointSpec]:
    """The same fleet with `services` (names from pop3lab.config.SERVICES) switched on too,
    e.g. ("imap", "imaps", "submission") for a host that serves all three protocols."""
    unknown = set(services) - set(SERVICES)
    if unknown:
        raise ValueError(f"unknown services {sorted(unknown)}; known: {SERVICES}")
    switched = dict.fromkeys(services, True)
    return [(address, dataclasses.replace(config, **switched)) for address, config in fleet]


def hostile_fleet(base: str, interval: float = 1.0) -> list[EndpointSpec]:
    """One endpoint per hostile behaviour, in a stable (alphabetical) order."""
    names = sorted(BEHAVIOURS)
    configs = [HostileConfig(name, interval=interval) for name in names]
    return list(zip(addresses(base, len(names)), configs, strict=True))


def describe(bound: BoundEndpoint) -> dict[str, Any]:
    """A JSON-ready description of one bound endpoint, for manifests and demo output."""
    config: dict[str, Any] = asdict(bound.config)
    if "tls_versions" in config:
        config["tls_versions"] = [version.name for version in config["tls_versions"]]
    kind = "hostile" if isinstance(bound.config, HostileConfig) else "emulated"
    ports = {f"{service}_port": bound.port(service) for service in SERVICES}
    return {"address": bound.address, **ports, "kind": kind, "config": config}
