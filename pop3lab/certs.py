"""Test certificates: a small PKI made with `cryptography`, one bundle per kind of problem.

The lab's trust anchor is "PopCompliance Test Root CA", which issues "PopCompliance Test
Intermediate CA", which issues the leaves. Everything is generated in memory on first use and
memoised for the life of the process, so a kind asked for twice is the same certificate. Times
are relative to the UTC "now" at generation time.

Keys are the expensive part (an RSA-2048 key takes tens of milliseconds), so each key is made
once and shared by every leaf that can use it without changing what the test is about.

OpenSSL 3 refuses to load the `rsa1024` and `sha1` chains into an `ssl.SSLContext` at its
default security level ("ee key too small", "ca md too weak"): a lab server serving them must
call `context.set_ciphers("DEFAULT:@SECLEVEL=0")` first. (A client with `CERT_NONE` completes
the handshake at the default level: checked with OpenSSL 3 on Debian.)
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT_CN = "PopCompliance Test Root CA"
INTERMEDIATE_CN = "PopCompliance Test Intermediate CA"
UNTRUSTED_ROOT_CN = "PopCompliance Untrusted Root CA"
UNTRUSTED_INTERMEDIATE_CN = "PopCompliance Untrusted Intermediate CA"
EXCHANGE_SHORT_NAME = "EX01"
EXCHANGE_FQDN = "ex01.corp.example.test"
WRONG_NAME = "other.example.test"

KINDS: tuple[str, ...] = (
    "good",
    "expired",
    "not_yet_valid",
    "wrong_name",
    "exchange_self_signed",
    "rsa1024",
    "sha1",
    "expiring_soon",
    "expiring_critical",
    "missing_intermediate",
    "wildcard",
    "cn_only",
    "ec256",
    "untrusted_root",
)

# Leaf validity as (days from now to not_before, days from now to not_after).
_VALIDITY: dict[str, tuple[float, float]] = {
    "expired": (-400, -10),
    "not_yet_valid": (10, 210),
    "expiring_soon": (-100, 10),
    "expiring_critical": (-100, 3),
    "exchange_self_signed": (-1, 5 * 365),
}
_DEFAULT_VALIDITY = (-1.0, 200.0)

# sha256WithRSAEncryption and sha1WithRSAEncryption as DER OIDs: the same length, which is what
# lets _resign_with_sha1 swap one for the other without re-encoding the certificate.
_SHA256_RSA_OID = bytes.fromhex("06092a864886f70d01010b")
_SHA1_RSA_OID = bytes.fromhex("06092a864886f70d010105")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_lock = threading.RLock()


@dataclass(frozen=True)
class CertBundle:
    """One test certificate and what a server and a client need to use it.

    `chain_pem` is what the server serves (leaf first, then intermediates). `ca_pem` is the
    lab's trust anchor, the test root CA, for every kind: loading it makes a client trust the
    chain-issued kinds, and still not `exchange_self_signed` or `untrusted_root`.
    """

    kind: str
    chain_pem: bytes
    key_pem: bytes
    leaf_pem: bytes
    ca_pem: bytes


def make_cert(kind: str = "good", name: str = "mail.example.test") -> CertBundle:
    """The certificate of `kind` for the service `name`; the same object on every call."""
    if kind not in KINDS:
        raise ValueError(f"unknown certificate kind {kind!r}; known: {', '.join(KINDS)}")
    # The lock keeps two threads from each creating a root CA on first use.
    with _lock:
        return _make_cert(kind, name.lower())


def root_ca_pem() -> bytes:
    """The lab's trust anchor, "PopCompliance Test Root CA", as PEM."""
    with _lock:
        return _pem(_root()[0])


def write_cert(bundle: CertBundle, directory: Path) -> tuple[Path, Path]:
    """Write the served chain and the key as PEM files, for `SSLContext.load_cert_chain`."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = _file_stem(bundle)
    cert_path, key_path = directory / f"{stem}.chain.pem", directory / f"{stem}.key.pem"
    cert_path.write_bytes(bundle.chain_pem)
    key_path.touch(mode=0o600)
    key_path.write_bytes(bundle.key_pem)
    return cert_path, key_path


def _file_stem(bundle: CertBundle) -> str:
    """Kind, leaf CN and a fingerprint prefix, so two bundles never share a file name."""
    leaf = x509.load_pem_x509_certificate(bundle.leaf_pem)
    names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = re.sub(r"[^a-z0-9.-]", "_", str(names[0].value).lower()) if names else "leaf"
    return f"{bundle.kind}-{cn}-{leaf.fingerprint(hashes.SHA256()).hex()[:8]}"


@cache
def _make_cert(kind: str, name: str) -> CertBundle:
    if kind == "exchange_self_signed":
        leaf = _exchange_cert()
        served = [leaf]
    elif kind == "untrusted_root":
        root, root_key = _ca(UNTRUSTED_ROOT_CN, None)
        intermediate, intermediate_key = _ca(UNTRUSTED_INTERMEDIATE_CN, (root, root_key))
        leaf = _leaf(kind, name, intermediate, intermediate_key)
        served = [leaf, intermediate, root]
    else:
        intermediate, intermediate_key = _intermediate()
        leaf = _leaf(kind, name, intermediate, intermediate_key)
        served = [leaf] if kind == "missing_intermediate" else [leaf, intermediate]
    return CertBundle(
        kind=kind,
        chain_pem=b"".join(_pem(cert) for cert in served),
        key_pem=_key_pem(_leaf_key(kind)),
        leaf_pem=_pem(leaf),
        ca_pem=_pem(_root()[0]),
    )


@cache
def _key(slot: str) -> PrivateKey:
    """One key per slot for the whole process."""
    if slot == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(
        public_exponent=65537, key_size=1024 if slot == "rsa1024" else 2048
    )


def _leaf_key(kind: str) -> PrivateKey:
    return _key(kind if kind in ("rsa1024", "ec256") else "leaf")


@cache
def _root() -> tuple[x509.Certificate, PrivateKey]:
    return _ca(ROOT_CN, None)


@cache
def _intermediate() -> tuple[x509.Certificate, PrivateKey]:
    return _ca(INTERMEDIATE_CN, _root())


@cache
def _ca(
    cn: str, issuer: tuple[x509.Certificate, PrivateKey] | None
) -> tuple[x509.Certificate, PrivateKey]:
    """A CA certificate: self-signed when `issuer` is None."""
    key = _key(cn)
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = _builder(cn, key, issuer_cert, -400, 3650)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    usage = _key_usage(digital_signature=False, key_cert_sign=True)
    builder = builder.add_extension(usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _leaf(
    kind: str, name: str, issuer: x509.Certificate, issuer_key: PrivateKey
) -> x509.Certificate:
    key = _leaf_key(kind)
    cn = {"wrong_name": WRONG_NAME, "wildcard": _wildcard_for(name)}.get(kind, name)
    start, end = _VALIDITY.get(kind, _DEFAULT_VALIDITY)
    builder = _builder(cn, key, issuer, start, end)
    if kind != "cn_only":
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), False)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    usage = _key_usage(digital_signature=True, key_cert_sign=False, encipherment=kind != "ec256")
    builder = builder.add_extension(usage, critical=True)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    if kind == "sha1":
        assert isinstance(issuer_key, rsa.RSAPrivateKey)
        cert = _resign_with_sha1(cert, issuer_key)
    return cert


@cache
def _exchange_cert() -> x509.Certificate:
    """Like the certificate Exchange setup creates: self-signed, CN=short name, SHA-1, 5 years."""
    key = _key("leaf")
    start, end = _VALIDITY["exchange_self_signed"]
    builder = _builder(EXCHANGE_SHORT_NAME, key, None, start, end)
    names = [x509.DNSName(EXCHANGE_SHORT_NAME), x509.DNSName(EXCHANGE_FQDN)]
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    assert isinstance(key, rsa.RSAPrivateKey)
    return _resign_with_sha1(builder.sign(key, hashes.SHA256()), key)


def _builder(
    cn: str, key: PrivateKey, issuer: x509.Certificate | None, start: float, end: float
) -> x509.CertificateBuilder:
    """Subject, issuer, validity, serial and key identifiers; self-issued when issuer is None."""
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    public = key.public_key()
    issuer_public = issuer.public_key() if issuer else public
    assert isinstance(issuer_public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=start))
        .not_valid_after(now + timedelta(days=end))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False
        )
    )


def _key_usage(
    *, digital_signature: bool, key_cert_sign: bool, encipherment: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _resign_with_sha1(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> x509.Certificate:
    """The same certificate signed with SHA-1.

    cryptography refuses to sign certificates with SHA-1 ("not supported for signatures"), but
    it still signs raw data with it. So we swap the algorithm OID, which has the same length as
    SHA-256's, in the TBS part and the outer structure, and replace the trailing signature
    (also the same length: the RSA modulus size).
    """
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = cert.tbs_certificate_bytes
    if tbs.count(_SHA256_RSA_OID) != 1 or der.count(_SHA256_RSA_OID) != 2:
        raise RuntimeError("unexpected certificate layout for SHA-1 re-signing")
    new_tbs = tbs.replace(_SHA256_RSA_OID, _SHA1_RSA_OID)
    signature = key.sign(new_tbs, padding.PKCS1v15(), hashes.SHA1())
    body = der.replace(_SHA256_RSA_OID, _SHA1_RSA_OID)[: -len(cert.signature)]
    return x509.load_der_x509_certificate(body + signature)


def _wildcard_for(name: str) -> str:
    """`*.example.test` for `mail.example.test`: a wildcard covering the name."""
    parent = name.partition(".")[2]
    return f"*.{parent}" if parent.count(".") >= 1 else "*.example.test"


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
