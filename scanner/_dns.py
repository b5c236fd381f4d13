"""DNS facts for a target: the addresses of the service name and its RFC 6186 SRV records.

Every query goes to one explicitly built resolver: the `--resolver` server when one is given,
otherwise the system's. Names are always queried as absolute names, so a search domain from
resolv.conf can never turn `mail.contoso.com` into `mail.contoso.com.corp.local` and report a
name that users do not actually resolve.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver
from dns.rdtypes.IN.SRV import SRV

from scanner._errors import DnsError
from scanner._facts import DnsFacts, SrvRecord
from scanner._services import CLIENT_PROTOCOLS
from scanner._target import Settings, Target, is_ip_address, parse_resolver

# One DNS lookup never waits longer than this, even with a generous connection timeout: a
# resolver that has not answered in 5 s is not going to, and DNS is only the first step.
MAX_LOOKUP_SECONDS = 5.0

# RFC 6186 service labels, TLS first.
SRV_POP3S = "_pop3s._tcp"
SRV_POP3 = "_pop3._tcp"


# --- the resolver ---------------------------------------------------------------------------


def lookup_seconds(settings: Settings) -> float:
    """How long one lookup (all retries included) may take."""
    return min(settings.timeout, MAX_LOOKUP_SECONDS)


def make_resolver(settings: Settings) -> dns.asyncresolver.Resolver:
    """The resolver `settings` asks for, cached: scanning 1,000 targets builds it once.

    Caching is safe across event loops and threads: dnspython's async Resolver holds only
    configuration (no sockets, no loop; the asyncio backend takes the running loop when it
    opens each query's socket), and with `cache` left None it keeps no answers either, so
    every scan sees the DNS as it is now.
    """
    return _cached_resolver(settings.resolver, lookup_seconds(settings))


@functools.lru_cache(maxsize=32)
def _cached_resolver(server: str | None, lifetime: float) -> dns.asyncresolver.Resolver:
    if server is None:
        # Reads /etc/resolv.conf (no traffic); raises NoResolverConfiguration if it lists no
        # server, and lru_cache does not cache that, so a fixed resolv.conf is picked up.
        resolver = dns.asyncresolver.Resolver(configure=True)
    else:
        address, port = parse_resolver(server)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [address]
        resolver.port = port
    resolver.search = []
    resolver.use_search_by_default = False
    resolver.lifetime = lifetime
    # Half the lifetime per attempt leaves room for one retransmission of a lost UDP packet.
    resolver.timeout = lifetime / 2
    return resolver


def _resolver(settings: Settings, step: str) -> dns.asyncresolver.Resolver:
    """`make_resolver`, with a machine that has no DNS server configured as a DnsError."""
    try:
        return make_resolver(settings)
    except dns.resolver.NoResolverConfiguration:
        raise DnsError(step, "no DNS server is configured on this machine", "error") from None


def describe_servers(resolver: dns.asyncresolver.Resolver) -> str:
    """`DNS server 127.0.0.1:5353` or `DNS servers a:53, b:53`, for error messages."""
    servers = [_host_port(str(ns), resolver.port) for ns in resolver.nameservers]
    noun = "DNS server" if len(servers) == 1 else "DNS servers"
    return f"{noun} {', '.join(servers) or '(none configured)'}"


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# --- turning dnspython's exceptions into operator words -------------------------------------


# What a lookup can fail with: dnspython's exceptions, or our hard deadline in `_query`.
LookupFailure = (dns.exception.DNSException, TimeoutError)


def _dns_error(
    exc: dns.exception.DNSException | TimeoutError,
    step: str,
    name: str,
    resolver: dns.asyncresolver.Resolver,
) -> DnsError:
    """Translate a dnspython exception into a DnsError whose reason an operator understands."""
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return DnsError(step, f"the name {name} does not exist (NXDOMAIN)", "nxdomain")
    if isinstance(exc, (dns.exception.Timeout, TimeoutError)):
        seconds = f"{resolver.lifetime:g}"
        return DnsError(
            step, f"no answer from {describe_servers(resolver)} within {seconds} s", "timeout"
        )
    if isinstance(exc, dns.resolver.NoNameservers):
        return _no_nameservers_error(exc, step, resolver)
    return DnsError(step, f"the lookup failed: {exc}", "error")


def _no_nameservers_error(
    exc: dns.resolver.NoNameservers, step: str, resolver: dns.asyncresolver.Resolver
) -> DnsError:
    """Every server gave up: name the rcode they answered, or the network error we hit."""
    errors: Sequence[tuple[object, ...]] = exc.kwargs.get("errors", [])
    rcodes = [
        err[4].rcode() for err in errors if len(err) > 4 and isinstance(err[4], dns.message.Message)
    ]
    if dns.rcode.SERVFAIL in rcodes:
        return DnsError(step, "the DNS server failed to answer (SERVFAIL)", "servfail")
    if rcodes:
        rcode = dns.rcode.to_text(rcodes[0])
        return DnsError(step, f"the DNS server would not answer ({rcode})", "error")
    causes = "; ".join(str(err[3]) for err in errors if len(err) > 3) or "no usable server"
    return DnsError(step, f"could not query {describe_servers(resolver)}: {causes}", "error")


# --- addresses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Family:
    """One A or AAAA lookup: its addresses, or the error that stopped it."""

    addresses: tuple[str, ...] = ()
    error: DnsError | None = None


@dataclass(frozen=True)
class _Addresses:
    """Both families combined. `note` says which family failed when the other succeeded."""

    addresses: tuple[str, ...]
    note: str | None = None


async def _query(
    resolver: dns.asyncresolver.Resolver, name: str, rdtype: str
) -> dns.resolver.Answer:
    """One absolute-name query; NoAnswer is returned as an empty answer, not raised."""
    qname = dns.name.from_text(name)  # relative to the root, i.e. absolute
    # dnspython's lifetime does not cover its back-off sleeps between retries, which can
    # overshoot by up to 2 s; this hard deadline (TimeoutError) keeps --timeout's promise.
    async with asyncio.timeout(resolver.lifetime):
        return await resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=False)


async def _lookup_family(name: str, rdtype: str, settings: Settings) -> _Family:
    step = f"resolve {name}"
    try:
        resolver = _resolver(settings, step)
    except DnsError as exc:
        return _Family(error=exc)
    try:
        answer = await _query(resolver, name, rdtype)
    except LookupFailure as exc:
        return _Family(error=_dns_error(exc, step, name, resolver))
    wanted = dns.rdatatype.from_text(rdtype)
    return _Family(addresses=tuple(str(rr) for rr in answer if rr.rdtype == wanted))


def _sorted_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    """Deduplicated, IPv4 before IPv6, numerically ordered, in canonical text form."""
    parsed = {ipaddress.ip_address(address) for address in addresses}
    ordered = sorted(parsed, key=lambda ip: (ip.version, int(ip)))
    return tuple(ip.compressed for ip in ordered)


def _combine(name: str, ipv4: _Family, ipv6: _Family) -> _Addresses:
    """Merge the A and AAAA results.

    Any address wins: a name that resolves is usable even if one family's lookup failed
    (some DNS servers mishandle AAAA), and the failure is kept as a note. Otherwise NXDOMAIN
    is the authoritative answer, then the first real failure, then "exists, no address".
    """
    addresses = _sorted_addresses(ipv4.addresses + ipv6.addresses)
    errors = [family.error for family in (ipv4, ipv6) if family.error is not None]
    if addresses:
        failed = [
            f"{rdtype} lookup failed: {family.error.reason}"
            for rdtype, family in (("A", ipv4), ("AAAA", ipv6))
            if family.error is not None
        ]
        return _Addresses(addresses, "; ".join(failed) or None)
    for error in errors:
        if error.kind == "nxdomain":
            raise error
    if errors:
        raise errors[0]
    raise DnsError(
        f"resolve {name}", f"the name {name} exists but has no A or AAAA record", "no_address"
    )


async def _resolve_addresses(name: str, settings: Settings) -> _Addresses:
    ipv4, ipv6 = await asyncio.gather(
        _lookup_family(name, "A", settings), _lookup_family(name, "AAAA", settings)
    )
    return _combine(name, ipv4, ipv6)


async def lookup_addresses(name: str, settings: Settings) -> tuple[str, ...]:
    """All A and AAAA addresses of `name` (queried concurrently), IPv4 first, deduplicated.

    Raises DnsError (step `resolve <name>`) with kind nxdomain, no_address, servfail, timeout
    or error when no address could be found.
    """
    return (await _resolve_addresses(name, settings)).addresses


# --- SRV (RFC 6186) -------------------------------------------------------------------------


def srv_domain_for(name: str) -> str | None:
    """The mail domain whose RFC 6186 SRV records describe `name`'s service.

    RFC 6186 records live at the user's mail domain, which we take to be the service name's
    parent (mail.contoso.com -> contoso.com); a two-label name is its own domain. A single
    label or an IP address has no domain. No public-suffix list: `contoso.co.uk` gives
    `co.uk`, so give the service name (`pop.contoso.co.uk`), not the bare domain.
    """
    name = name.strip().rstrip(".").lower()
    if not name or is_ip_address(name.strip("[]")):
        return None
    labels = name.split(".")
    if len(labels) < 2:
        return None
    return name if len(labels) == 2 else ".".join(labels[1:])


def _srv_record(rdata: SRV) -> SrvRecord:
    """An SrvRecord with the target lower-cased and without its trailing dot; the root target
    (RFC 6186: "service not offered") stays "." so evaluation can tell it apart."""
    if rdata.target == dns.name.root:
        target = "."
    else:
        target = rdata.target.to_text(omit_final_dot=True).lower()
    return SrvRecord(rdata.priority, rdata.weight, rdata.port, target)


async def _lookup_srv_name(owner: str, settings: Settings) -> tuple[SrvRecord, ...]:
    """The SRV records at `owner`, sorted by priority then weight; none when it is absent."""
    step = f"resolve SRV {owner}"
    resolver = _resolver(settings, step)
    try:
        answer = await _query(resolver, owner, "SRV")
    except dns.resolver.NXDOMAIN:
        return ()
    except LookupFailure as exc:
        raise _dns_error(exc, step, owner, resolver) from exc
    records = [_srv_record(rr) for rr in answer if isinstance(rr, SRV)]
    return tuple(sorted(records, key=lambda r: (r.priority, r.weight, r.target, r.port)))


async def lookup_srv(
    domain: str, settings: Settings, services: tuple[str, ...] = (SRV_POP3S, SRV_POP3)
) -> tuple[tuple[SrvRecord, ...], ...]:
    """The SRV records of each of `services` (`_pop3s._tcp`, `_imap._tcp`, …) in `domain`,
    looked up concurrently, in the order asked.

    A missing record (NXDOMAIN or no SRV data) is an empty tuple, not an error. SERVFAIL,
    timeouts and other failures raise DnsError, because "absent" and "unknown" must differ.
    """
    domain = domain.strip().rstrip(".").lower()
    return tuple(
        await asyncio.gather(
            *(_lookup_srv_name(f"{service}.{domain}", settings) for service in services)
        )
    )


def srv_service(door: str) -> str:
    """The RFC 6186 / RFC 8314 SRV service label of a door: `pop3s` → `_pop3s._tcp`."""
    return f"_{door}._tcp"


# --- the DNS facts of a target --------------------------------------------------------------


async def _address_facts(name: str, settings: Settings) -> DnsFacts:
    try:
        found = await _resolve_addresses(name, settings)
    except DnsError as exc:
        return DnsFacts(name=name, outcome=exc.kind, error=str(exc))
    return DnsFacts(name=name, outcome="ok", addresses=found.addresses, error=found.note)


@dataclass(frozen=True)
class _SrvFacts:
    """The SRV half of DnsFacts: the record lists by DnsFacts field (`srv_pop3s`, …), or why
    they could not be looked up."""

    domain: str | None
    records: dict[str, tuple[SrvRecord, ...]] = field(default_factory=dict)
    error: str | None = None


async def _srv_facts(domain: str | None, target: Target, settings: Settings) -> _SrvFacts:
    """Both SRV records of each protocol the target declares."""
    if domain is None:
        return _SrvFacts(domain=None)
    doors = [
        door
        for protocol in CLIENT_PROTOCOLS
        if target.declares(protocol.name)
        for door in (protocol.implicit_tls_name, protocol.name)
    ]
    try:
        found = await lookup_srv(domain, settings, tuple(map(srv_service, doors)))
    except DnsError as exc:
        return _SrvFacts(domain, error=str(exc))
    by_field = {f"srv_{door}": records for door, records in zip(doors, found, strict=True)}
    return _SrvFacts(domain, by_field)


async def resolve_service(target: Target, settings: Settings) -> DnsFacts:
    """Addresses and SRV records of the target's service name, looked up concurrently.

    Never raises for DNS trouble: the outcome (ok, nxdomain, no_address, servfail, timeout,
    error) and the reason are recorded. A target given as an IP address with no name is
    not_applicable, and its address is the IP itself.
    """
    name = target.service_name
    if name is None:
        addresses = (target.host,) if target.host_is_ip else ()
        return DnsFacts(name=None, outcome="not_applicable", addresses=addresses)
    found, srv = await asyncio.gather(
        _address_facts(name, settings), _srv_facts(srv_domain_for(name), target, settings)
    )
    return DnsFacts(
        name=name,
        outcome=found.outcome,
        addresses=found.addresses,
        error=found.error,
        srv_domain=srv.domain,
        srv_error=srv.error,
        **srv.records,
    )
