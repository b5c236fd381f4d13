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
from dataclasses import replace

from scanner._certs import chain_from_ssl_object
from scanner._facts import TlsFacts, TlsSupport
from scanner._target import is_ip_address


@functools.cache
def probe_context() -> ssl.SSLContext:
    """A client context offering every version and suite the local OpenSSL can.

    It completes the handshakes that need completing (the chain, the greeting after TLS, the
    login); what the server accepts is enumerated at the protocol level (scanner._enumerate),
    because this OpenSSL cannot offer SSLv2, SSLv3, RC4 or 3DES. Cached: building a context
    costs more than a handshake's worth of CPU, and it is immutable once made.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # SECLEVEL=0 lets OpenSSL 3 complete a handshake with a server that offers nothing
    # better than TLS 1.0 and SHA-1 suites: such a server must still be judged, not missed.
    context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        # Python deprecates the old versions; offering them is the point of this context.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    return context


def reconciled(support: TlsSupport, session: TlsFacts | None) -> TlsSupport:
    """`support` made consistent with a completed handshake: a version that handshake
    negotiated is accepted, whatever our hellos got. A server that refused our hellos for it
    may have refused them for other versions too, so none of its refusals is believed: they
    become "could not be tested", never a clean result."""
    if session is None or support.accepted_versions.get(session.version) is not False:
        return support
    untested = {name: None for name, ok in support.accepted_versions.items() if ok is False}
    versions = dict(support.accepted_versions) | untested | {session.version: True}
    note = (
        f"the server refused our test hellos for {session.version} although a normal handshake "
        "negotiated it, so its suites could not be listed"
    )
    return replace(support, accepted_versions=versions, error=support.error or note)


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
