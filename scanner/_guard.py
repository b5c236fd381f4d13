"""The scanner guard: addresses the scanner refuses to connect to.

The unspecified addresses (0.0.0.0/8, ::) are always refused: connecting to them reaches the
scanning host itself. By default the link-local ranges (where cloud metadata services answer:
169.254.169.254) and AWS's IPv6 metadata address are refused too, so a scan target cannot be
used to reach them, and so are the IPv6 addresses that embed a refused IPv4 address
(IPv4-compatible, IPv4-mapped, NAT64 and 6to4), because those reach it through a translator.
With `refuse_loopback` (the dashboard and its workers) loopback is refused unless a network of
the allowlist covers it. With an allowlist (`Settings.allow_networks`), only addresses inside
it are scanned, and the refused ranges still apply within it.
"""

from __future__ import annotations

import ipaddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DENY_NETWORKS = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
UNSPECIFIED_NETWORKS = (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("::/128"))
LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
REFUSED = "refused by the scanner guard"

_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


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


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through a translator or tunnel, if any:
    IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (RFC 6052, the
    well-known /96 and the local-use /48) and 6to4 (2002:aabb:ccdd::/48)."""
    value = int(ip)
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _IPV4_COMPATIBLE and value > 1:  # :: and ::1 are IPv6's own addresses
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip in _NAT64_LOCAL:
        # A /48 prefix splits the IPv4 address around the reserved octet (bits 64-71).
        high, low = (value >> 64) & 0xFFFF, (value >> 40) & 0xFFFF
        return ipaddress.IPv4Address(high << 16 | low)
    return ip.sixtofour


def guard_refusal(
    address: str,
    allow: tuple[IPNetwork, ...],
    deny: tuple[IPNetwork, ...],
    loopback_unless_allowed_by: str | None = None,
) -> str | None:
    """Why the guard refuses this IP address, or None when it may be scanned. With
    `loopback_unless_allowed_by` (the name of the allowlist setting, quoted in the refusal),
    loopback is refused unless a network of `allow` covers it."""
    # A scope (fe80::1%eth0) changes nothing.
    ip = ipaddress.ip_address(address.partition("%")[0])
    reached = _reached(ip)
    for target in reached:
        if _within(target, UNSPECIFIED_NETWORKS):
            return f"{address} is {REFUSED}: it is unspecified, which reaches the scanner itself"
        if network := _within(target, deny):
            return f"{address} is {REFUSED}: it is in {network}, where the scanner never connects"
        if loopback_unless_allowed_by and _refused_loopback(target, allow):
            return (
                f"{address} is {REFUSED}: it is a loopback address, which reaches the "
                f"dashboard's own host; list it in {loopback_unless_allowed_by} to scan it"
            )
    if allow and not any(_within(target, allow) for target in _connected_to(ip)):
        return f"{address} is {REFUSED}: it is outside the allowed networks"
    return None


def _connected_to(ip: IPAddress) -> list[IPAddress]:
    """The address a connection really reaches, for the allowlist: an IPv4-mapped address is
    its IPv4 address; the other embeddings (6to4, NAT64, compatible) reach an IPv6 host that
    only forwards to it, so an allowed IPv4 network does not make them allowed."""
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return [ip] if mapped is None else [ip, mapped]


def _refused_loopback(ip: IPAddress, allow: tuple[IPNetwork, ...]) -> bool:
    return _within(ip, LOOPBACK_NETWORKS) is not None and _within(ip, allow) is None


def _reached(ip: IPAddress) -> list[IPAddress]:
    """The address itself, then the IPv4 address it embeds when it embeds one."""
    if isinstance(ip, ipaddress.IPv6Address) and (ipv4 := embedded_ipv4(ip)) is not None:
        return [ip, ipv4]
    return [ip]


def _within(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> IPNetwork | None:
    return next((n for n in networks if ip.version == n.version and ip in n), None)
