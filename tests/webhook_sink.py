"""A real HTTP server for the alert channel tests: Python's ThreadingHTTPServer on 127.0.0.1,
recording every request it reads and answering as told.

- `WebhookSink.answer(status, body, delay)` queues the answers of the next requests (first in,
  first out; then 200 "ok"). `delay` holds the answer back that many seconds after the request
  was read and recorded: a slow service that did receive the message.
- `stop()` then `start()` brings it back on the same port (the service down, then up).
- `tls=True` serves HTTPS with a certificate for 127.0.0.1 made here; `ca_file` is what a
  client trusts it with (requests reads REQUESTS_CA_BUNDLE).
- `webhook_sink` and `tls_webhook_sink` (fixtures): a running sink, stopped after the test.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.certificates import key_pem, pem, self_signed
from tests.ports import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    """One request the sink read: method, path with query, headers, body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: str = "ok"
    delay: float = 0.0


@dataclass
class WebhookSink:
    tls_files: tuple[Path, Path] | None = None
    port: int = field(default_factory=free_port)
    received: list[Request] = field(default_factory=list)
    answers: deque[Answer] = field(default_factory=deque)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def scheme(self) -> str:
        return "https" if self.tls_files else "http"

    @property
    def address(self) -> str:
        """HOST:PORT, as an Apprise URL names it."""
        return f"{HOST}:{self.port}"

    def answer(self, status: int = 200, body: str = "ok", delay: float = 0.0) -> None:
        self.answers.append(Answer(status, body, delay))

    def next_answer(self) -> Answer:
        with self._lock:
            return self.answers.popleft() if self.answers else Answer()

    def record(self, request: Request) -> None:
        with self._lock:
            self.received.append(request)

    def start(self) -> None:
        server = ThreadingHTTPServer((HOST, self.port), _handler_for(self))
        server.daemon_threads = True
        if self.tls_files:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls_files)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _handler_for(sink: WebhookSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            sink.record(Request(self.command, self.path, dict(self.headers.items()), body))
            answer = sink.next_answer()
            if answer.delay:
                time.sleep(answer.delay)
            payload = answer.body.encode()
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up waiting (a timeout test): nobody reads the answer

        do_PUT = do_POST

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output clean

    return Handler


def loopback_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the address 127.0.0.1, and its key, as PEM files."""
    certificate, key = self_signed(
        "webhook sink",
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), False),
        (x509.BasicConstraints(ca=True, path_length=None), True),
    )
    cert_file, key_file = directory / "sink.pem", directory / "sink.key"
    cert_file.write_bytes(pem(certificate))
    key_file.write_bytes(key_pem(key))
    return cert_file, key_file


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def tls_webhook_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookSink]:
    """An HTTPS sink whose certificate requests trusts (REQUESTS_CA_BUNDLE) for this test."""
    files = loopback_certificate(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(files[0]))
    sink = WebhookSink(tls_files=files)
    sink.start()
    yield sink
    sink.stop()
