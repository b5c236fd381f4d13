"""TLS client contexts for probing, and the facts of one TLS session.

The contexts accept any certificate: the chain is validated separately (scanner._trust) so a
bad certificate becomes a finding instead of a failed connection. They also offer protocol
versions OpenSSL 3 refuses at its default security level, because a server that still accepts
TLS 1.0 must really be detected, not hidden by our own client.
"""

from __future__ import annotations

import functools
import ssl
import warnings

from scanner._certs import chain_from_ssl_object
from scanner._facts import TlsFacts
from scanner._target import is_ip_address

_VERSIONS = {
    "SSLv3": ssl.TLSVersion.SSLv3,
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_LOCALLY_SUPPORTED = {
    "SSLv3": ssl.HAS_SSLv3,
    "TLSv1": ssl.HAS_TLSv1,
    "TLSv1.1": ssl.HAS_TLSv1_1,
    "TLSv1.2": ssl.HAS_TLSv1_2,
    "TLSv1.3": ssl.HAS_TLSv1_3,
}
VERSION_ORDER = tuple(_VERSIONS)


@functools.cache
def probe_context(version: str | None = None) -> ssl.SSLContext:
    """A client context offering every version we can (or exactly `version`).

    Cached: building a context and its cipher list costs more than a handshake's worth of
    CPU, and they are immutable once made.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # SECLEVEL=0 lets OpenSSL 3 offer TLS 1.0/1.1 and weak ciphers: we want to know whether
    # the server accepts them, not to be protected from them.
    context.set_ciphers("ALL:@SECLEVEL=0")
    lowest = next(name for name in VERSION_ORDER if _LOCALLY_SUPPORTED[name])
    with warnings.catch_warnings():
        # Python deprecates the old versions; offering them is the point of this context.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = _VERSIONS[version or lowest]
        context.maximum_version = _VERSIONS[version or "TLSv1.3"]
    return context


def locally_testable(version: str) -> bool:
    """Whether the local OpenSSL can offer this version at all (Debian's has no SSLv3)."""
    return _LOCALLY_SUPPORTED[version]


def versions_to_probe(negotiated: str) -> tuple[list[str], dict[str, bool | None]]:
    """Split the versions into those still to probe and those already known.

    A client offering every version gets the highest one the server supports, so the
    negotiated version is accepted and every newer one is not; only older ones need a
    handshake each. Versions the local OpenSSL cannot offer stay unknown (None).
    """
    known: dict[str, bool | None] = {}
    to_probe = []
    rank = VERSION_ORDER.index(negotiated) if negotiated in VERSION_ORDER else len(VERSION_ORDER)
    for index, name in enumerate(VERSION_ORDER):
        if not locally_testable(name):
            known[name] = None
        elif index == rank:
            known[name] = True
        elif index > rank:
            known[name] = False
        else:
            to_probe.append(name)
    return to_probe, known


def tls_facts(ssl_object: ssl.SSLObject) -> TlsFacts:
    """What was negotiated and the chain as served."""
    cipher = ssl_object.cipher()
    return TlsFacts(
        version=ssl_object.version() or "unknown",
        cipher=cipher[0] if cipher else "unknown",
        chain=chain_from_ssl_object(ssl_object),
    )


def sni_name(service_name: str | None) -> str | None:
    """The name to send as SNI: the service name, never an IP address (RFC 6066)."""
    if service_name is None or is_ip_address(service_name):
        return None
    return service_name
