"""Two probe locations that see one mail server differently, as inside and outside a firewall
do: each location has its own DNS server (split-horizon DNS), which resolves the service name
to its own emulated front end. Inside, POP3's port 110 answers and takes passwords in the
clear; outside, only 995 answers (the perimeter blocks 110)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pop3lab.config import EndpointConfig
from pop3lab.lab import LabThread
from popcompliance.inventory.models import Policy, Server
from tests.conftest import SERVICE_NAME, next_address
from tests.dnsserver import DnsServer
from tests.ports import free_port

LOCATIONS = ["inside", "outside"]
# NTLM off: its disclosure (auth.ntlm_disclosure) would be a second finding to account for.
INSIDE = EndpointConfig(login_type="PlainTextLogin", ntlm=False)
OUTSIDE = EndpointConfig(pop3=False, ntlm=False)


@dataclass
class SplitHorizon:
    """The DNS server of each location (by name) and the address it resolves the name to."""

    resolvers: dict[str, DnsServer]
    addresses: dict[str, str]
    pop3_port: int
    pop3s_port: int

    def resolver(self, location: str) -> str:
        return self.resolvers[location].address

    def server(self, name: str, policy: Policy, **fields: object) -> Server:
        """An inventory server probed from both locations, by its service name."""
        return Server.objects.create(
            name=name,
            host=SERVICE_NAME,
            locations=",".join(LOCATIONS),
            pop3_port=self.pop3_port,
            pop3s_port=self.pop3s_port,
            policy=policy,
            **fields,
        )


def running(settings: Any) -> Iterator[SplitHorizon]:
    """Both locations declared (in pytest-django's `settings`), their DNS servers and their
    front ends running until the generator is closed (a fixture body: `yield from`)."""
    settings.POPC_LOCATIONS = LOCATIONS
    addresses = {"inside": next_address(), "outside": next_address()}
    ports = free_port(addresses["inside"]), free_port(addresses["inside"])
    resolvers = {
        location: DnsServer({SERVICE_NAME: {"A": [address]}}).start()
        for location, address in addresses.items()
    }
    fronts = [(addresses["inside"], INSIDE), (addresses["outside"], OUTSIDE)]
    try:
        with LabThread(fronts, pop3_port=ports[0], pop3s_port=ports[1]):
            yield SplitHorizon(resolvers, addresses, *ports)
    finally:
        for resolver in resolvers.values():
            resolver.stop()
