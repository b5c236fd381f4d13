"""Asking a leaf's CA about it: an OCSP request to its responder, its CRL, and a stapled OCSP
response read the same way; each answer checked and kept.

An answer counts only when it is signed by the leaf's issuer (or, for OCSP, by a responder
certificate the issuer made for OCSP signing, RFC 6960 §4.2.2.2) and fresh; anything else is
an error in operator words, never "revoked". Fetches go through scanner._http (the scanner's
resolver, the guard, a deadline and a size cap).

Verified answers are kept in this process until their own nextUpdate: OCSP answers by issuer
key and serial, CRLs by URL and issuer key. Workers are long-lived processes, so an unchanged
rescan asks nothing, and a fleet behind one CA downloads its CRL once per update.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from scanner._facts import LookupMethod, RevocationLookup, RevocationStatus
from scanner._http import FetchError, Request, fetch
from scanner._target import Settings

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

K = TypeVar("K")
V = TypeVar("V")


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


@dataclass(frozen=True)
class Asked:
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
        """The OCSP response `body` about our leaf, checked; raises BadAnswer, whatever the
        bytes (a stapled answer comes from the server we scan)."""
        try:
            return self._read_ocsp(method, url, body)
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            # cryptography parses most fields lazily: a malformed one raises when read.
            raise BadAnswer(f"an answer that cannot be read ({error})") from None

    def _read_ocsp(self, method: LookupMethod, url: str, body: bytes) -> RevocationLookup:
        try:
            response = ocsp.load_der_ocsp_response(body)
        except ValueError:
            raise BadAnswer(f"not an OCSP response ({_bytes(body)})") from None
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise BadAnswer(f"the responder said {response.response_status.name.lower()}")
        _verify(response_signer(response, self.issuer, self.now), response)
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
        """The CRL `body`, checked against the issuer; raises BadAnswer, whatever the bytes."""
        try:
            return self._read_crl(body)
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise BadAnswer(f"a CRL that cannot be read ({error})") from None

    def _read_crl(self, body: bytes) -> x509.CertificateRevocationList:
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


def response_signer(
    response: OCSPResponse, issuer: x509.Certificate, now: datetime
) -> x509.Certificate:
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
        if not _valid_at(candidate, now):
            raise BadAnswer("its responder certificate is expired or not yet valid")
        return candidate
    raise BadAnswer("it is signed by a responder the issuer did not authorise")


def _valid_at(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc - CLOCK_SKEW <= now <= cert.not_valid_after_utc + CLOCK_SKEW


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
    # Its size only: the URL came from the scanned server, and what a host it points at
    # answered is not for every viewer of the facts to read.
    return "empty" if not body else f"{len(body)} bytes"
