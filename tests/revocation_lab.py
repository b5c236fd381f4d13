"""A certificate authority on loopback for the revocation check: a test CA made at test time,
leaves it issued (good, revoked, unknown to its responder), Debian OpenSSL's own OCSP
responder (`openssl ocsp -index … -port …`) answering for them, its CRL served over HTTP, a
responder that hangs and one that answers garbage, and a POP3S server serving each leaf.

A plain module, not a pytest plugin: tests/test_revocation.py builds its fixtures from it.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from tests.processes import answers, wait_or_kill_group

HOST = "127.0.0.1"
REVOKED_ON = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
# How long the responder's and the CRL's answers say they hold (their nextUpdate).
ANSWERS_HOLD = timedelta(hours=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Leaf:
    """A leaf the CA issued, with its key, and whether the CA's index lists it."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    listed: bool
    revoked: bool
    ocsp_url: str | None

    @property
    def chain_pem(self) -> bytes:
        return _pem(self.certificate)

    def write(self, directory: Path) -> tuple[Path, Path]:
        """The certificate and its key as PEM files in `directory`, named by its serial."""
        name = format(self.certificate.serial_number, "x")
        certificate, key = directory / f"{name}.pem", directory / f"{name}.key"
        certificate.write_bytes(self.chain_pem)
        key.write_bytes(_key_pem(self.key))
        return certificate, key


@dataclass
class Authority:
    """A CA, its delegated OCSP signing certificate, and the leaves it issued."""

    directory: Path
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    leaves: list[Leaf] = field(default_factory=list)

    def __post_init__(self) -> None:
        now = datetime.now(UTC)
        self.certificate = (
            self._builder(_name("PopCompliance Revocation Test CA"), self.key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.signer_key = ec.generate_private_key(ec.SECP256R1())
        self.signer = (
            self._builder(
                _name("PopCompliance Test OCSP Signer"), self.signer_key.public_key(), now
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return _pem(self.certificate).decode()

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime
    ) -> x509.CertificateBuilder:
        issuer = getattr(self, "certificate", None)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.subject if issuer else subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=90))
        )

    def issue(
        self,
        name: str,
        *,
        ocsp_url: str | None = None,
        crl_url: str | None = None,
        listed: bool = True,
        revoked: bool = False,
    ) -> Leaf:
        """A leaf for `name` pointing at `ocsp_url` (AIA) and `crl_url` (CRL DP), either
        absent when None; `listed` puts it in the responder's index, `revoked` revokes it."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(_name(name), key.public_key(), datetime.now(UTC)).add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
        )
        if ocsp_url:
            location = x509.UniformResourceIdentifier(ocsp_url)
            access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, location)
            builder = builder.add_extension(
                x509.AuthorityInformationAccess([access]), critical=False
            )
        if crl_url:
            point = x509.DistributionPoint(
                [x509.UniformResourceIdentifier(crl_url)], None, None, None
            )
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        leaf = Leaf(builder.sign(self.key, hashes.SHA256()), key, listed, revoked, ocsp_url)
        self.leaves.append(leaf)
        return leaf

    def crl(self) -> bytes:
        """The CA's current CRL (DER), listing its revoked leaves with reason keyCompromise."""
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - timedelta(minutes=1))
            .next_update(now + ANSWERS_HOLD)
        )
        for leaf in self.leaves:
            if leaf.revoked:
                entry = (
                    x509.RevokedCertificateBuilder()
                    .serial_number(leaf.certificate.serial_number)
                    .revocation_date(REVOKED_ON)
                    .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
                    .build()
                )
                builder = builder.add_revoked_certificate(entry)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def write_responder_files(self) -> list[str]:
        """The index and PEM files `openssl ocsp` reads, as its arguments."""
        self.directory.mkdir(parents=True, exist_ok=True)
        files = {
            "ca.pem": _pem(self.certificate),
            "signer.pem": _pem(self.signer),
            "signer.key": _key_pem(self.signer_key),
        }
        for file_name, content in files.items():
            (self.directory / file_name).write_bytes(content)
        (self.directory / "index.txt").write_text("".join(map(_index_line, self.leaves)))
        return [
            "-index", str(self.directory / "index.txt"),
            "-CA", str(self.directory / "ca.pem"),
            "-rsigner", str(self.directory / "signer.pem"),
            "-rkey", str(self.directory / "signer.key"),
        ]  # fmt: skip


def _index_line(leaf: Leaf) -> str:
    """One line of OpenSSL's CA database: status, expiry, revocation, serial, file, subject."""
    if not leaf.listed:
        return ""
    expiry = leaf.certificate.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    revocation = f"{REVOKED_ON:%y%m%d%H%M%SZ},keyCompromise" if leaf.revoked else ""
    serial = format(leaf.certificate.serial_number, "X")
    serial = serial if len(serial) % 2 == 0 else "0" + serial
    subject = "/CN=" + leaf.certificate.subject.rfc4514_string().removeprefix("CN=")
    status = "R" if leaf.revoked else "V"
    return f"{status}\t{expiry}\t{revocation}\t{serial}\tunknown\t{subject}\n"


class OcspResponder:
    """Debian OpenSSL's OCSP responder for `ca` on `port` (chosen before the leaves that name
    it were issued, and started after: it reads its index once), its answers holding for
    ANSWERS_HOLD. `requests` counts the requests it received (from its log).

    It serves one connection at a time and waits on a silent one, so its readiness is read
    from its log rather than by connecting."""

    def __init__(self, ca: Authority, port: int) -> None:
        self.port = port
        self.log = ca.directory / "ocsp.log"
        minutes = str(int(ANSWERS_HOLD.total_seconds() // 60))
        command = ["openssl", "ocsp", "-port", str(port), *ca.write_responder_files()]
        command += ["-nmin", minutes, "-ignore_err"]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _wait_until_ready(self._process, self._listening, self.stop, "openssl ocsp")

    def _listening(self) -> bool:
        return "waiting for OCSP client connections" in self.log.read_text()

    @property
    def requests(self) -> int:
        return self.log.read_text().count("Received request")

    def stop(self) -> None:
        self._process.terminate()
        wait_or_kill_group(self._process)


class HttpLab:
    """One HTTP server on loopback with what revocation lookups may meet: the CA's CRL at
    /ca.crl, a responder that never answers at /hang, one that answers garbage at /garbage.
    `hits` counts the requests per path."""

    def __init__(self, ca: Authority) -> None:
        self.hits: dict[str, int] = {}
        self.release = threading.Event()
        lab = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                lab.count(self.path)
                if self.path == "/ca.crl":
                    self.answer(ca.crl(), "application/pkix-crl")
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                lab.count(self.path)
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/hang":
                    lab.release.wait(30)
                elif self.path == "/garbage":
                    self.answer(b"<html>Service Unavailable</html>", "text/html")
                else:
                    self.send_error(404)

            def answer(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, path: str) -> None:
        self.hits[path] = self.hits.get(path, 0) + 1

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Pop3sServer:
    """Implicit TLS on a free loopback port serving `leaf`: a `+OK` greeting inside TLS, `-ERR`
    to anything but QUIT. Enough for the scanner to see the certificate."""

    def __init__(self, leaf: Leaf, directory: Path) -> None:
        certificate, key = leaf.write(directory)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certificate, key)
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection: socket.socket) -> None:
        connection.settimeout(5)
        try:
            with self.context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"+OK ready\r\n")
                for line in tls.makefile("rb"):
                    if line.strip().upper() == b"QUIT":
                        tls.sendall(b"+OK bye\r\n")
                        return
                    tls.sendall(b"-ERR no\r\n")
        except OSError:
            return

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()


def ocsp_response(ca: Authority, leaf: Leaf, *, revoked: bool) -> bytes:
    """An OCSP response (DER) for `leaf` signed by the CA itself, as a server staples it."""
    now = datetime.now(UTC)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf.certificate,
        issuer=ca.certificate,
        algorithm=hashes.SHA1(),
        cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
        this_update=now - timedelta(minutes=1),
        next_update=now + ANSWERS_HOLD,
        revocation_time=REVOKED_ON if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, ca.certificate)
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


class StaplingServer:
    """Debian OpenSSL's `s_server` serving `leaf` on `port`, stapling `stapled` (an OCSP
    response, DER) when given. It speaks no POP3: the scan sees its certificate, then waits
    for a greeting that never comes."""

    def __init__(self, leaf: Leaf, directory: Path, port: int, stapled: bytes | None) -> None:
        certificate, key = leaf.write(directory)
        command = ["openssl", "s_server", "-quiet", "-accept", f"{HOST}:{port}"]
        command += ["-cert", str(certificate), "-key", str(key)]
        if stapled is not None:
            status = certificate.with_suffix(".ocsp")
            status.write_bytes(stapled)
            command += ["-status_file", str(status)]
        self.port, self.stapled = port, stapled
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_until_ready(self._process, lambda: answers(HOST, port), self.stop, "openssl s_server")

    def stop(self) -> None:
        self._process.terminate()
        wait_or_kill_group(self._process)


def _wait_until_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], stop: Callable[[], None], what: str
) -> None:
    """Wait up to 10 s for `ready()`; stop the process and raise if it exits or is late."""
    deadline = time.monotonic() + 10
    while not ready():
        if time.monotonic() > deadline or process.poll() is not None:
            stop()
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.05)
