"""Trust: does a served chain validate to the trust anchors, and if not, why.

Judged with pyOpenSSL's `X509StoreContext` (OpenSSL's own chain builder, the one mail clients
use) rather than `cryptography.x509.verification`, because the latter applies the strict Web
PKI profile and rejects SHA-1, CN-only and similar certificates outright: those are separate
checks here (cert.strength, cert.name), and trust must answer only "does it chain to a root".
The anchors are loaded once per policy and cached; that load is the only I/O here.
"""

from __future__ import annotations

import ssl
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from OpenSSL import crypto

from scanner._facts import CertificateFacts

# Reloading a served certificate with a zero or negative serial warns; as in scanner._certs,
# that is a fact about the server, not a warning to print on the operator's terminal.
warnings.filterwarnings(
    "ignore", category=CryptographyDeprecationWarning, module=r"scanner\._trust"
)
_DEBIAN_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
# X509_V_FLAG_NO_CHECK_TIME, which pyOpenSSL does not name: the validity period is its own
# check (cert.validity), so an expired certificate from a trusted CA still counts as trusted.
_NO_CHECK_TIME = 0x200000
# OpenSSL X509_V_ERR_* codes, grouped by what they mean to an operator.
_SELF_SIGNED_LEAF = 18
_SELF_SIGNED_IN_CHAIN = 19
_ISSUER_NOT_FOUND = {2, 20, 21}
_BAD_SIGNATURE = {4, 6, 7}


@dataclass(frozen=True)
class TrustVerdict:
    """Whether a served chain validates to the trust anchors, and if not, why.

    `problem` is None when trusted, else one of self_signed, unknown_issuer, incomplete_chain,
    invalid_signature, no_certificate, or invalid_chain (any other OpenSSL verdict: invalid CA,
    path length, critical extension…). `reason` is one line naming the certificate involved.
    """

    trusted: bool
    problem: str | None
    reason: str


def verify_chain(
    chain: tuple[CertificateFacts, ...], *, use_system_trust: bool, ca_bundle_pem: str | None
) -> TrustVerdict:
    """Validate `chain` (leaf first, the rest untrusted intermediates) against the system CAs
    and/or the PEM bundle. Dates and names are not checked here: they are separate checks.

    Raises ValueError when `ca_bundle_pem` holds no certificate or a chain PEM is unreadable.
    """
    if not chain:
        return TrustVerdict(False, "no_certificate", "the server sent no certificate")
    leaf, *rest = (_to_openssl(cert) for cert in chain)
    context = crypto.X509StoreContext(_trust_store(use_system_trust, ca_bundle_pem), leaf, rest)
    try:
        verified = context.get_verified_chain()
    except crypto.X509StoreContextError as error:
        code, _depth, message = error.errors
        return _failure(chain[0], error.certificate.to_cryptography(), code, message)
    anchor = _label(verified[-1].to_cryptography().subject)
    return TrustVerdict(True, None, f"'{_facts_label(chain[0])}' chains to trusted root '{anchor}'")


def _failure(
    leaf: CertificateFacts, failing: x509.Certificate, code: int, message: str
) -> TrustVerdict:
    """Translate OpenSSL's error about the certificate `failing` into a verdict."""
    name = _label(failing.subject)
    # OpenSSL says "self-signed" only when the key usage allows signing certificates; Exchange's
    # certificate may not, so our own self-signature check decides too.
    if code == _SELF_SIGNED_LEAF or (leaf.self_signed and code in _ISSUER_NOT_FOUND):
        return TrustVerdict(False, "self_signed", f"'{name}' is self-signed and not trusted")
    if code == _SELF_SIGNED_IN_CHAIN:
        reason = f"'{_facts_label(leaf)}' is issued by '{name}', which is not a trusted root"
        return TrustVerdict(False, "unknown_issuer", reason)
    if code in _ISSUER_NOT_FOUND:
        issuer = _label(failing.issuer)
        reason = (
            f"the server did not send the certificate of issuer '{issuer}' of '{name}' "
            "(missing intermediate) or it is not trusted"
        )
        return TrustVerdict(False, "incomplete_chain", reason)
    if code in _BAD_SIGNATURE:
        reason = f"the signature on '{name}' does not verify with its issuer's key"
        return TrustVerdict(False, "invalid_signature", reason)
    reason = f"'{name}' failed validation: {message} (OpenSSL error {code})"
    return TrustVerdict(False, "invalid_chain", reason)


@lru_cache(maxsize=16)
def _trust_store(use_system_trust: bool, ca_bundle_pem: str | None) -> crypto.X509Store:
    """The anchors, loaded once per policy (the system bundle alone takes ~10 ms).

    PARTIAL_CHAIN lets any certificate in the store be an anchor, so an enterprise bundle may
    hold just an intermediate; Python 3.13's default context does the same.
    """
    store = crypto.X509Store()
    store.set_flags(_NO_CHECK_TIME | crypto.X509StoreFlags.PARTIAL_CHAIN)
    if use_system_trust:
        paths = ssl.get_default_verify_paths()
        cafile = paths.cafile or (_DEBIAN_CA_FILE if Path(_DEBIAN_CA_FILE).exists() else None)
        if cafile or paths.capath:
            store.load_locations(cafile, paths.capath)
    if ca_bundle_pem and ca_bundle_pem.strip():
        for cert in x509.load_pem_x509_certificates(ca_bundle_pem.encode()):
            store.add_cert(crypto.X509.from_cryptography(cert))
    return store


def _to_openssl(cert: CertificateFacts) -> crypto.X509:
    return crypto.X509.from_cryptography(x509.load_pem_x509_certificate(cert.pem.encode()))


def _facts_label(cert: CertificateFacts) -> str:
    return cert.common_name or cert.subject or "(no name)"


def _label(name: x509.Name) -> str:
    """The CN an operator knows a certificate by, else the whole RFC 4514 name."""
    try:
        attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attributes[0].value) if attributes else name.rfc4514_string()
    except ValueError:
        return "(undecodable name)"


def issuer_of_leaf(
    chain: tuple[CertificateFacts, ...], *, use_system_trust: bool, ca_bundle_pem: str | None
) -> x509.Certificate | None:
    """The certificate that issued the leaf of `chain`, for asking about its revocation: the
    one OpenSSL's chain builder picks (served, or one of the trust anchors), else a served one
    named as its issuer whose key verifies the leaf's signature (an untrusted chain still has
    an issuer to ask about). None when neither is there."""
    if not chain:
        return None
    try:
        leaf, *rest = (_to_openssl(cert) for cert in chain)
        store = _trust_store(use_system_trust, ca_bundle_pem)
        verified = crypto.X509StoreContext(store, leaf, rest).get_verified_chain()
        if len(verified) > 1:
            return verified[1].to_cryptography()
    except (crypto.X509StoreContextError, crypto.Error, ValueError):
        pass
    return _served_issuer(chain)


def _served_issuer(chain: tuple[CertificateFacts, ...]) -> x509.Certificate | None:
    leaf = x509.load_pem_x509_certificate(chain[0].pem.encode())
    for served in chain[1:]:
        candidate = x509.load_pem_x509_certificate(served.pem.encode())
        if candidate.subject != leaf.issuer:
            continue
        try:
            leaf.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        return candidate
    return None
