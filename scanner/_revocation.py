"""Revocation: ask the CA whether each served leaf is revoked, by OCSP and by its CRL.

Runs once per target after its probes, once per distinct leaf whatever the number of
addresses and entry points that served it. An answer counts only when it is signed by the
leaf's issuer (or by a responder the issuer authorised for OCSP) and fresh; anything else is
recorded as an error in operator words, never as revoked. The fetches go through
scanner._http (the scanner's resolver, the guard, a deadline and a size cap).

Verified answers are kept in this process until their own nextUpdate: OCSP answers by issuer
key and serial, CRLs by URL and issuer key. Workers are long-lived processes, so an unchanged
rescan asks nothing, and a fleet behind one CA downloads its CRL once per update.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from scanner._errors import quoted
from scanner._evaluate_common import tls_sessions
from scanner._facts import (
    CertificateFacts,
    EndpointFacts,
    LookupMethod,
    RevocationFacts,
    RevocationLookup,
    RevocationStatus,
)
from scanner._http import FetchError, Request, fetch
from scanner._services import CLIENT_PROTOCOLS
from scanner._stapling import STAPLED, stapled_response
from scanner._target import Policy, Settings, Target
from scanner._tls import sni_name
from scanner._trust import issuer_of_leaf

if TYPE_CHECKING:
    # The classes' own home: cryptography.x509.ocsp re-exports them as plain names.
    from cryptography.hazmat.bindings._rust.ocsp import OCSPResponse, OCSPSingleResponse

OCSP_LIMIT = 1024 * 1024
CRL_LIMIT = 10 * 1024 * 1024
# At most this many responders or distribution points of one kind are asked, in order.
MAX_URLS = 2
# Clocks differ: an answer dated a few minutes ahead, or just past its nextUpdate, still counts.
CLOCK_SKEW = timedelta(minutes=5)
# RFC 6960 lets an OCSP answer omit nextUpdate ("newer information is always available"):
# such an answer counts while this young, and is kept this long.
WITHOUT_NEXT_UPDATE = timedelta(hours=1)

_OCSP_STATUS: dict[ocsp.OCSPCertStatus, RevocationStatus] = {
    ocsp.OCSPCertStatus.GOOD: "good",
    ocsp.OCSPCertStatus.REVOKED: "revoked",
    ocsp.OCSPCertStatus.UNKNOWN: "unknown",
}

SELF_SIGNED = "self-signed: no CA vouches for it"

K = TypeVar("K")
V = TypeVar("V")
Chain = tuple[CertificateFacts, ...]


class AnswerCache(Generic[K, V]):
    """Answers kept until their own nextUpdate; beyond `max_entries` entries or `max_bytes`
    (each entry's size as given), the least recently used go first."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[K, tuple[V, datetime, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: K, now: datetime) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, until: datetime, size: int = 1) -> None:
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (value, until, size)
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: K) -> None:
        self._bytes -= self._entries.pop(key)[2]


# An OCSP answer is a few hundred bytes; CRLs can be megabytes, so they are bounded by size.
OCSP_ANSWERS: AnswerCache[tuple[bytes, int], RevocationLookup] = AnswerCache(20_000, 20_000)
CRLS: AnswerCache[tuple[str, bytes], x509.CertificateRevocationList] = AnswerCache(
    256, 64 * 1024 * 1024
)


# A responder or CRL host that gave no answer is not asked again for this long: in a network
# that cannot reach the CA, every scan would otherwise wait out its timeout there again.
UNREACHABLE_HOLD = timedelta(minutes=5)
UNREACHABLE: AnswerCache[str, str] = AnswerCache(10_000, 10_000)


class Remembered(FetchError):
    """The failure a URL gave less than UNREACHABLE_HOLD ago, not asked again."""


def _unreached(method: LookupMethod, url: str, error: FetchError) -> RevocationLookup:
    cached = isinstance(error, Remembered)
    return RevocationLookup(method, url, "error", error=str(error), cached=cached)


class BadAnswer(Exception):
    """An answer that came but cannot be believed: unreadable, unsigned, stale, not ours."""


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
    asked: _Asked | None

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
    asked = _Asked(leaf, issuer, settings, datetime.now(UTC))
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


@dataclass(frozen=True)
class _Asked:
    """One leaf being asked about: its issuer, the network settings, and the time of asking."""

    leaf: x509.Certificate
    issuer: x509.Certificate
    settings: Settings
    now: datetime

    @property
    def issuer_key(self) -> bytes:
        return x509.SubjectKeyIdentifier.from_public_key(self.issuer.public_key()).digest

    async def ocsp(self, urls: tuple[str, ...]) -> RevocationLookup | None:
        """The first OCSP responder's answer that can be believed (or the last failure)."""
        if not urls:
            return None
        key = (self.issuer_key, self.leaf.serial_number)
        kept = OCSP_ANSWERS.get(key, self.now)
        if kept is not None:
            return replace(kept, cached=True)
        try:
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(self.leaf, self.issuer, hashes.SHA1())
                .build()
                .public_bytes(Encoding.DER)
            )
        except ValueError as error:
            return RevocationLookup("ocsp", urls[0], "error", error=f"no request made: {error}")
        for url in urls[:MAX_URLS]:
            answer = await self._ocsp_answer(url, request)
            if answer.status != "error":
                OCSP_ANSWERS.put(key, answer, _keep_until(answer.next_update, self.now))
                break
        return answer

    async def _ocsp_answer(self, url: str, request: bytes) -> RevocationLookup:
        try:
            body = await self._fetch(Request(url, OCSP_LIMIT, request, "application/ocsp-request"))
            return self.read_ocsp("ocsp", url, body)
        except FetchError as error:
            return _unreached("ocsp", url, error)
        except BadAnswer as error:
            return RevocationLookup("ocsp", url, "error", error=f"an unusable answer: {error}")

    async def _fetch(self, request: Request) -> bytes:
        """`fetch`, except that a URL which gave no answer is not asked again for
        UNREACHABLE_HOLD: its failure is raised again, as a Remembered one."""
        known = UNREACHABLE.get(request.url, self.now)
        if known is not None:
            raise Remembered(known)
        try:
            return await fetch(request, self.settings)
        except FetchError as error:
            UNREACHABLE.put(request.url, str(error), self.now + UNREACHABLE_HOLD)
            raise

    def read_ocsp(self, method: LookupMethod, url: str, body: bytes) -> RevocationLookup:
        """The OCSP response `body` about our leaf, checked; raises BadAnswer."""
        try:
            response = ocsp.load_der_ocsp_response(body)
        except ValueError:
            raise BadAnswer(f"not an OCSP response ({_bytes(body)})") from None
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise BadAnswer(f"the responder said {response.response_status.name.lower()}")
        _verify(response_signer(response, self.issuer), response)
        single = self._single(response)
        _check_fresh(single.this_update_utc, single.next_update_utc, self.now)
        return RevocationLookup(
            method,
            url,
            _OCSP_STATUS[single.certificate_status],
            this_update=single.this_update_utc,
            next_update=single.next_update_utc,
            revoked_at=single.revocation_time_utc,
            reason=single.revocation_reason.value if single.revocation_reason else None,
        )

    def _single(self, response: OCSPResponse) -> OCSPSingleResponse:
        """The answer about our leaf: same serial, and (for the SHA-1 CertID we asked with)
        the same issuer key."""
        for single in response.responses:
            same_issuer = (
                not isinstance(single.hash_algorithm, hashes.SHA1)
                or single.issuer_key_hash == self.issuer_key
            )
            if single.serial_number == self.leaf.serial_number and same_issuer:
                return single
        raise BadAnswer("it is about another certificate")

    async def crl(self, urls: tuple[str, ...]) -> RevocationLookup | None:
        """The first distribution point's CRL that can be believed (or the last failure)."""
        if not urls:
            return None
        fetchable = [url for url in urls if url.lower().startswith("http://")]
        if not fetchable:
            error = f"only {urls[0].split(':')[0]}:// distribution points, which are not fetched"
            return RevocationLookup("crl", urls[0], "error", error=error)
        for url in fetchable[:MAX_URLS]:
            answer = await self._crl_answer(url)
            if answer.status != "error":
                break
        return answer

    async def _crl_answer(self, url: str) -> RevocationLookup:
        key = (url, self.issuer_key)
        crl = CRLS.get(key, self.now)
        cached = crl is not None
        if crl is None:
            try:
                body = await self._fetch(Request(url, CRL_LIMIT))
                crl = self._verified_crl(body)
            except FetchError as error:
                return _unreached("crl", url, error)
            except BadAnswer as error:
                return RevocationLookup("crl", url, "error", error=f"an unusable CRL: {error}")
            CRLS.put(key, crl, _keep_until(crl.next_update_utc, self.now), len(body))
        revoked = crl.get_revoked_certificate_by_serial_number(self.leaf.serial_number)
        found = RevocationLookup(
            "crl",
            url,
            "good" if revoked is None else "revoked",
            this_update=crl.last_update_utc,
            next_update=crl.next_update_utc,
            cached=cached,
        )
        if revoked is None:
            return found
        return replace(found, revoked_at=revoked.revocation_date_utc, reason=_crl_reason(revoked))

    def _verified_crl(self, body: bytes) -> x509.CertificateRevocationList:
        try:
            if body.lstrip().startswith(b"-----BEGIN"):
                crl = x509.load_pem_x509_crl(body)
            else:
                crl = x509.load_der_x509_crl(body)
        except ValueError:
            raise BadAnswer(f"not a CRL ({_bytes(body)})") from None
        if crl.issuer != self.issuer.subject:
            raise BadAnswer(f"it is issued by {crl.issuer.rfc4514_string()}, not the issuer")
        try:
            valid = crl.is_signature_valid(self.issuer.public_key())  # type: ignore[arg-type]
        except (TypeError, UnsupportedAlgorithm):
            valid = False
        if not valid:
            raise BadAnswer("its signature does not verify with the issuer's key")
        _check_fresh(crl.last_update_utc, crl.next_update_utc, self.now)
        return crl


def response_signer(response: OCSPResponse, issuer: x509.Certificate) -> x509.Certificate:
    """The certificate whose key signed the OCSP answer: the issuer itself, or a certificate
    sent with the answer that the issuer issued for OCSP signing (RFC 6960 §4.2.2.2)."""
    if _is_responder(issuer, response):
        return issuer
    for candidate in response.certificates:
        if not _is_responder(candidate, response):
            continue
        try:
            candidate.verify_directly_issued_by(issuer)
            usage = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            raise BadAnswer("its responder certificate is not one the issuer made") from None
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
            raise BadAnswer("its responder certificate is not for OCSP signing")
        return candidate
    raise BadAnswer("it is signed by a responder the issuer did not authorise")


def _is_responder(cert: x509.Certificate, response: OCSPResponse) -> bool:
    if response.responder_name is not None:
        return cert.subject == response.responder_name
    key_id = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    return response.responder_key_hash == key_id


def _verify(signer: x509.Certificate, response: OCSPResponse) -> None:
    key, algorithm = signer.public_key(), response.signature_hash_algorithm
    data, signature = response.tbs_response_bytes, response.signature
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            raise BadAnswer(f"its signature uses a {type(key).__name__} key we cannot check")
    except InvalidSignature:
        raise BadAnswer("its signature does not verify") from None


def _check_fresh(this_update: datetime, next_update: datetime | None, now: datetime) -> None:
    if this_update > now + CLOCK_SKEW:
        raise BadAnswer(f"it is dated in the future ({_when(this_update)})")
    due = next_update or this_update + WITHOUT_NEXT_UPDATE
    if due < now - CLOCK_SKEW:
        raise BadAnswer(f"it is stale: its next update was due {_when(due)}")


def _keep_until(next_update: datetime | None, now: datetime) -> datetime:
    return next_update if next_update is not None else now + WITHOUT_NEXT_UPDATE


def _crl_reason(revoked: x509.RevokedCertificate) -> str | None:
    try:
        return revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
    except (x509.ExtensionNotFound, ValueError):
        return None


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _bytes(body: bytes) -> str:
    return "empty" if not body else f"{len(body)} bytes starting {quoted(body[:24])}"
