"""Certificates: parse what a server served and match names (RFC 6125).

Pure functions on bytes and `CertificateFacts`; nothing here touches the network. Whether a
chain is trusted is scanner._trust's job.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import ssl
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import (
    dsa,
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
    x448,
    x25519,
)
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from scanner._errors import escape_controls
from scanner._facts import CertificateFacts

T = TypeVar("T")
# A server's certificate with a zero or negative serial is a fact to report, not a warning to
# print on the operator's terminal; only warnings attributed to this module are silenced.
warnings.filterwarnings(
    "ignore", category=CryptographyDeprecationWarning, module=r"scanner\._certs"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Signature algorithms cryptography does not decode but a strength check must still catch.
_WEAK_SIGNATURE_OIDS = {"1.2.840.113549.1.1.2": "md2", "1.2.840.113549.1.1.3": "md4"}
_FIXED_SIZE_KEYS: tuple[tuple[type, str, int], ...] = (
    (ed25519.Ed25519PublicKey, "Ed25519", 256),
    (ed448.Ed448PublicKey, "Ed448", 448),
    (x25519.X25519PublicKey, "X25519", 256),
    (x448.X448PublicKey, "X448", 448),
)


def parse_certificate(der: bytes) -> CertificateFacts:
    """The facts of one DER certificate.

    Raises ValueError, and only ValueError, when `der` is not a certificate at all. Once it is,
    odd parts (unknown key type, malformed extensions, undecodable names) give empty or
    placeholder values instead of an error, so one strange certificate never hides the rest.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except Exception as error:  # cryptography's parser error types are not a stable contract.
        raise ValueError(f"not a DER certificate: {error}") from error
    key_type, key_bits = _safe(lambda: _key_info(cert), ("unknown", 0))
    return CertificateFacts(
        subject=_safe(lambda: escape_controls(cert.subject.rfc4514_string()), ""),
        issuer=_safe(lambda: escape_controls(cert.issuer.rfc4514_string()), ""),
        common_name=_safe(lambda: _common_name(cert), None),
        dns_names=_safe(lambda: tuple(map(escape_controls, _san(cert, x509.DNSName))), ()),
        ip_addresses=_safe(lambda: tuple(str(ip) for ip in _san(cert, x509.IPAddress)), ()),
        serial=_safe(lambda: format(cert.serial_number, "x"), ""),
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        not_before=_safe(lambda: cert.not_valid_before_utc, _EPOCH),
        not_after=_safe(lambda: cert.not_valid_after_utc, _EPOCH),
        key_type=key_type,
        key_bits=key_bits,
        signature_hash=_safe(lambda: _signature_hash(cert), None),
        self_signed=_safe(lambda: _self_signed(cert), False),
        is_ca=_safe(lambda: _is_ca(cert), False),
        pem=ssl.DER_cert_to_PEM_cert(der),
    )


def days_left(cert: CertificateFacts, now: datetime) -> float:
    """Days until `cert` expires, negative once it has; `now` must be timezone-aware. Exact,
    for judging against the policy's thresholds; say it with `whole_days_left`."""
    return (cert.not_after - now).total_seconds() / 86400


def whole_days_left(not_after: datetime, now: datetime) -> int:
    """Whole days from `now` until `not_after`, rounded down: 0 on the last day, negative once
    it has passed. Every count of days a certificate has left, in summaries, reports, pages
    and emails, is this one, so one certificate never shows two numbers."""
    return math.floor((not_after - now) / timedelta(days=1))


def name_matches(cert: CertificateFacts, name: str) -> bool:
    """Whether `cert` covers `name` as RFC 6125 says.

    DNS names match the SAN dNSName entries, or the CN only when there are none; a wildcard
    counts only as the whole left-most label of a pattern with at least three labels. An IP
    address matches only a SAN iPAddress entry. Case and a trailing dot do not matter.
    """
    wanted = _normalise(name)
    if not wanted or "*" in wanted:
        return False
    ip = _as_ip(wanted)
    if ip is not None:
        return any(_as_ip(candidate) == ip for candidate in cert.ip_addresses)
    identifiers = cert.dns_names or ((cert.common_name,) if cert.common_name else ())
    return any(_dns_id_matches(_normalise(pattern), wanted) for pattern in identifiers)


def chain_from_ssl_object(
    ssl_object: ssl.SSLObject | ssl.SSLSocket,
) -> tuple[CertificateFacts, ...]:
    """The chain as the server sent it (leaf first), after the handshake.

    The whole served chain is public API only from Python 3.13 (`get_unverified_chain()`);
    3.10 to 3.12 have it on the private `_sslobj`. Without it we fall back to the leaf alone,
    which still serves every check except the missing-intermediate diagnosis.
    """
    inner = getattr(ssl_object, "_sslobj", None)
    get_chain: Callable[[], list[object]] | None = getattr(inner, "get_unverified_chain", None)
    if get_chain is not None:
        served = get_chain() or []
        ders = [_certificate_der(cert) for cert in served]
        return tuple(parse_certificate(der) for der in ders if der)
    leaf = ssl_object.getpeercert(binary_form=True)
    return (parse_certificate(leaf),) if leaf else ()


def _certificate_der(cert: object) -> bytes | None:
    public_bytes = getattr(cert, "public_bytes", None)
    encoding = getattr(getattr(ssl, "_ssl", None), "ENCODING_DER", None)
    if public_bytes is None or encoding is None:
        return None
    der = public_bytes(encoding)
    return der if isinstance(der, bytes) else None


def _safe(read: Callable[[], T], default: T) -> T:
    """One field of a certificate, or `default` when that part of it cannot be decoded."""
    try:
        return read()
    except Exception:  # Lazily decoded parts raise ValueError, TypeError, UnsupportedAlgorithm…
        return default


def _common_name(cert: x509.Certificate) -> str | None:
    attributes = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attributes:
        return None
    value = attributes[0].value
    # Its control characters written out (\x00, \x1b): the names are the scanned server's to
    # choose, and a NUL cannot be stored (PostgreSQL refuses it) nor an escape sequence shown.
    return escape_controls(value if isinstance(value, str) else value.decode("utf-8", "replace"))


def _san(
    cert: x509.Certificate, kind: type[x509.DNSName] | type[x509.IPAddress]
) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    values = san.get_values_for_type(kind)
    return tuple(str(value) for value in values)


def _key_info(cert: x509.Certificate) -> tuple[str, int]:
    """Key type and size; an unfamiliar type (ML-DSA…) is named after its class, size 0."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    for key_class, name, bits in _FIXED_SIZE_KEYS:
        if isinstance(key, key_class):
            return name, bits
    return type(key).__name__.removesuffix("PublicKey"), 0


def _signature_hash(cert: x509.Certificate) -> str | None:
    """The signature's hash name (sha256, sha1, md5…), None for schemes without a separate
    hash (Ed25519), or the dotted OID of an algorithm cryptography cannot decode, so that an
    unknown one is never mistaken for "no hash"."""
    oid = cert.signature_algorithm_oid.dotted_string
    if oid in _WEAK_SIGNATURE_OIDS:
        return _WEAK_SIGNATURE_OIDS[oid]
    try:
        algorithm = cert.signature_hash_algorithm
    except Exception:  # UnsupportedAlgorithm for OIDs cryptography does not know.
        return oid
    return algorithm.name if algorithm is not None else None


def _self_signed(cert: x509.Certificate) -> bool:
    """Issuer equals subject and the signature verifies with the certificate's own key."""
    if cert.issuer != cert.subject:
        return False
    try:
        _verify_own_signature(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _verify_own_signature(cert: x509.Certificate) -> None:
    """Raise unless `cert` is signed by its own key.

    Done by hand because `verify_directly_issued_by` refuses SHA-1 signatures, and Exchange's
    default self-signed certificate is exactly a SHA-1 one.
    """
    key, signature, tbs = cert.public_key(), cert.signature, cert.tbs_certificate_bytes
    parameters = cert.signature_algorithm_parameters
    if isinstance(key, rsa.RSAPublicKey) and cert.signature_hash_algorithm is not None:
        if not isinstance(parameters, padding.PKCS1v15 | padding.PSS):
            raise ValueError("unexpected RSA signature parameters")
        key.verify(signature, tbs, parameters, cert.signature_hash_algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(parameters, ec.ECDSA):
        key.verify(signature, tbs, parameters)
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, tbs)
    elif isinstance(key, dsa.DSAPublicKey) and cert.signature_hash_algorithm is not None:
        key.verify(signature, tbs, cert.signature_hash_algorithm)
    else:
        raise ValueError("unsupported key for a self-signature check")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _normalise(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _as_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _dns_id_matches(pattern: str, name: str) -> bool:
    if not pattern.startswith("*."):
        return "*" not in pattern and pattern == name
    suffix = pattern[2:]
    # "*.test" would cover a whole top-level domain: require two labels after the wildcard.
    if "*" in suffix or suffix.count(".") < 1:
        return False
    label, dot, rest = name.partition(".")
    return bool(label) and bool(dot) and rest == suffix
