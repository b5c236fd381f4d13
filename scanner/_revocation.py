"""Revocation: what each served leaf's CA says of it (scanner._ca_answers asks, by OCSP and by
its CRL) and whether the server staples an OCSP response (scanner._stapling).

Runs once per target after its probes, once per distinct leaf whatever the number of
addresses and entry points that served it, everything at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import AuthorityInformationAccessOID

from scanner._ca_answers import Asked, BadAnswer
from scanner._evaluate_common import tls_sessions
from scanner._facts import CertificateFacts, EndpointFacts, RevocationFacts, RevocationLookup
from scanner._services import CLIENT_PROTOCOLS
from scanner._stapling import STAPLED, stapled_response
from scanner._target import Policy, Settings, Target
from scanner._tls import sni_name
from scanner._trust import issuer_of_leaf

SELF_SIGNED = "self-signed: no CA vouches for it"
Chain = tuple[CertificateFacts, ...]


async def with_revocation(
    endpoints: tuple[EndpointFacts, ...], target: Target, settings: Settings, policy: Policy
) -> tuple[EndpointFacts, ...]:
    """The endpoints with the revocation facts of every leaf they served: each distinct leaf
    asked about once, and each implicit-TLS entry point asked for a stapled response, all at
    once. Touches the network (the CA's responders and CRLs, the entry points)."""
    chains: dict[str, Chain] = {}
    for endpoint in endpoints:
        for _, tls in tls_sessions(endpoint):
            chains.setdefault(tls.chain[0].fingerprint_sha256, tls.chain)
    doors = [
        (endpoint.address, port)
        for endpoint in endpoints
        for port, leaf in _implicit_tls(endpoint)
        if _may_staple(leaf)
    ]
    sni = sni_name(target.service_name)
    leaves, staples = await asyncio.gather(
        asyncio.gather(*(_leaf_safely(chain, settings, policy) for chain in chains.values())),
        asyncio.gather(*(stapled_response(a, port, sni, settings) for a, port in doors)),
    )
    by_leaf = dict(zip(chains, leaves, strict=True))
    stapled = dict(zip(doors, staples, strict=True))
    return tuple(
        replace(endpoint, revocation=_endpoint_revocation(endpoint, by_leaf, stapled))
        for endpoint in endpoints
    )


def _implicit_tls(endpoint: EndpointFacts) -> list[tuple[int, CertificateFacts]]:
    """The address's implicit-TLS ports (995, 993, 465) that served a certificate, and its
    leaf."""
    doors = (endpoint.doors(protocol)[1] for protocol in CLIENT_PROTOCOLS)
    return [
        (door.port, door.tls.chain[0]) for door in doors if door and door.tls and door.tls.chain
    ]


def _may_staple(leaf: CertificateFacts) -> bool:
    """Only a leaf that names an OCSP responder can have its answer stapled: the server
    fetches it there. Asking the others would cost a connection per port for nothing."""
    if leaf.self_signed:
        return False
    try:
        return bool(_ocsp_urls(x509.load_pem_x509_certificate(leaf.pem.encode())))
    except ValueError:
        return False


def _endpoint_revocation(
    endpoint: EndpointFacts, by_leaf: dict[str, _Leaf], stapled: dict[tuple[str, int], bytes | str]
) -> tuple[RevocationFacts, ...]:
    """One RevocationFacts per leaf the address served, with what its ports stapled."""
    found = []
    for print_ in dict.fromkeys(
        tls.chain[0].fingerprint_sha256 for _, tls in tls_sessions(endpoint)
    ):
        leaf = by_leaf[print_]
        said: dict[str, str] = {}
        lookups = list(leaf.facts.lookups)
        for port, served in _implicit_tls(endpoint):
            got = stapled.get((endpoint.address, port))
            if got is None or served.fingerprint_sha256 != print_:
                continue
            said[str(port)] = STAPLED if isinstance(got, bytes) else got
            if isinstance(got, bytes):
                lookups.append(leaf.stapled(str(port), got))
        found.append(replace(leaf.facts, stapled=said, lookups=tuple(lookups)))
    return tuple(found)


@dataclass(frozen=True)
class _Leaf:
    """What the CA said of one leaf, and how to check what a server stapled for it (None when
    there is no issuer to check it with)."""

    facts: RevocationFacts
    asked: Asked | None

    def stapled(self, entry: str, response: bytes) -> RevocationLookup:
        if self.asked is None:
            error = self.facts.error or "no issuer certificate to check it with"
            return RevocationLookup("stapled", entry, "error", error=error)
        try:
            return self.asked.read_ocsp("stapled", entry, response)
        except BadAnswer as error:
            return RevocationLookup("stapled", entry, "error", error=f"an unusable answer: {error}")


async def _leaf_safely(chain: Chain, settings: Settings, policy: Policy) -> _Leaf:
    """`_leaf`, with a certificate too strange to ask about (a name or extension cryptography
    cannot decode) recorded as such: one odd certificate never stops a scan."""
    try:
        return await _leaf(chain, settings, policy)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        unread = f"could not read the certificate to ask about it: {error}"
        return _Leaf(RevocationFacts(chain[0].fingerprint_sha256, error=unread), None)


async def _leaf(chain: Chain, settings: Settings, policy: Policy) -> _Leaf:
    """What the leaf's CA says of it, by OCSP and by CRL at once."""
    facts = chain[0]
    if facts.self_signed:
        return _Leaf(RevocationFacts(facts.fingerprint_sha256, error=SELF_SIGNED), None)
    leaf = x509.load_pem_x509_certificate(facts.pem.encode())
    issuer = issuer_of_leaf(
        chain, use_system_trust=policy.use_system_trust, ca_bundle_pem=policy.ca_bundle_pem
    )
    found = RevocationFacts(
        facts.fingerprint_sha256,
        ocsp_urls=_ocsp_urls(leaf),
        crl_urls=_crl_urls(leaf),
        issuer=issuer.subject.rfc4514_string() if issuer else None,
    )
    publishes = bool(found.ocsp_urls or found.crl_urls)
    if issuer is None:
        # With nothing published there was nothing to ask: that, not the issuer, is the news.
        return _Leaf(replace(found, error=_no_issuer(leaf)) if publishes else found, None)
    asked = Asked(leaf, issuer, settings, datetime.now(UTC))
    if not publishes:
        return _Leaf(found, asked)
    answers = await asyncio.gather(asked.ocsp(found.ocsp_urls), asked.crl(found.crl_urls))
    lookups = tuple(answer for answer in answers if answer is not None)
    return _Leaf(replace(found, lookups=lookups), asked)


def _no_issuer(leaf: x509.Certificate) -> str:
    return (
        f"the certificate of its issuer ({leaf.issuer.rfc4514_string()}) was neither served "
        "nor in the trust store, so no answer could be checked"
    )


def _ocsp_urls(leaf: x509.Certificate) -> tuple[str, ...]:
    try:
        access = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return ()
    return tuple(
        description.access_location.value
        for description in access
        if description.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(description.access_location, x509.UniformResourceIdentifier)
    )


def _crl_urls(leaf: x509.Certificate) -> tuple[str, ...]:
    """Every URL of every distribution point, http:// first: Active Directory Certificate
    Services lists an ldap:// one before its http:// one."""
    try:
        points = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError):
        return ()
    urls = [
        name.value
        for point in points
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
    ]
    return tuple(sorted(urls, key=lambda url: not url.lower().startswith("http://")))
