"""The scanner guard: addresses the scanner refuses to connect to.

By default the link-local ranges (where cloud metadata services answer: 169.254.169.254) and
AWS's IPv6 metadata address are refused, so a scan target cannot be used to reach them. With
an allowlist (`Settings.allow_networks`), only addresses inside it are scanned, and the
refused ranges still apply within it.
"""

from __future__ import annotations

import ipaddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DENY_NETWORKS = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
REFUSED = "refused by the scanner guard"


def parse_networks(name: str, texts: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """CIDR texts as networks; a bad one (or one with host bits set) is a ValueError."""
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip()))
        except ValueError as exc:
            raise ValueError(
                f"{name}: {text!r} is not a network in CIDR notation ({exc})"
            ) from None
    return tuple(networks)


def guard_refusal(
    address: str, allow: tuple[IPNetwork, ...], deny: tuple[IPNetwork, ...]
) -> str | None:
    """Why the guard refuses this IP address, or None when it may be scanned."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:169.254.169.254 reaches the IPv4 address; a scope (fe80::1%eth0) changes nothing.
        ip = ip.ipv4_mapped or ipaddress.IPv6Address(address.partition("%")[0])
    for network in deny:
        if ip.version == network.version and ip in network:
            return f"{address} is {REFUSED}: it is in {network}, where the scanner never connects"
    if allow and not any(ip.version == n.version and ip in n for n in allow):
        return f"{address} is {REFUSED}: it is outside the allowed networks"
    return None
