"""Server-side TLS contexts for lab endpoints, built once per distinct set-up and cached.

A fleet of 1,000 endpoints typically uses a dozen distinct (certificate, versions) pairs, so
caching makes the contexts free after the first few; the PEM files are written once per
process into a private temporary directory that disappears at exit.
"""

from __future__ import annotations

import atexit
import ssl
import tempfile
import threading
import warnings
from functools import cache
from pathlib import Path

from pop3lab.certs import make_cert, write_cert
from pop3lab.config import EndpointConfig

_lock = threading.Lock()
_tempdir: tempfile.TemporaryDirectory[str] | None = None


def server_context(config: EndpointConfig) -> ssl.SSLContext | None:
    """The endpoint's server context, or None when it has no certificate bound."""
    if config.cert_kind is None:
        return None
    return _context(config.cert_kind, config.cert_name, config.tls_min, config.tls_max)


@cache
def _context(kind: str, name: str, low: ssl.TLSVersion, high: ssl.TLSVersion) -> ssl.SSLContext:
    """A context serving certificate `kind` for `name`, accepting versions `low`..`high`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Security level 0 for two reasons: OpenSSL 3 refuses to load the rsa1024 and sha1 test
    # chains otherwise, and TLS 1.0/1.1 handshakes need the SHA-1 based suites it unlocks.
    # The lab must be able to *be* a weak server; the scanner is what judges it. The suites
    # are a well-kept server's (forward secret AEAD), plus the CBC ones TLS 1.0/1.1 need.
    legacy = ":ECDHE+AES" if low < ssl.TLSVersion.TLSv1_2 else ""
    context.set_ciphers(f"ECDHE+AESGCM:ECDHE+CHACHA20{legacy}:@SECLEVEL=0")
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0/1.1 constants; emulating such servers is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = low
        context.maximum_version = high
    cert_path, key_path = _cert_files(kind, name)
    context.load_cert_chain(cert_path, key_path)
    return context


@cache
def _cert_files(kind: str, name: str) -> tuple[Path, Path]:
    """Write the chain and key for (kind, name) once per process."""
    return write_cert(make_cert(kind, name), _directory() / f"{kind}-{name}")


def _directory() -> Path:
    """The process-wide temporary directory for PEM files, created on first use."""
    global _tempdir
    with _lock:
        if _tempdir is None:
            _tempdir = tempfile.TemporaryDirectory(prefix="pop3lab-")
            atexit.register(_tempdir.cleanup)
        return Path(_tempdir.name)
