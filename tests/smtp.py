"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, recording what it accepts.

- `SmtpSink`: `stop()` then `start()` brings it back on the same port (SMTP down, then up);
  `refuse(address, reply)` answers RCPT TO for that address with `reply` ("450 …", "550 …");
  `delay` slows each DATA so that concurrent senders overlap.
- `smtp_sink` (fixture): a running sink, with Django's SMTP backend pointed at it (pytest-django
  swaps in the locmem backend otherwise).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.ports import free_port


@dataclass(frozen=True)
class Received:
    """One accepted message: envelope recipients and the parsed message."""

    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]

    @property
    def html(self) -> str:
        return self.message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self.sink.refusals.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.sink.lock:
            self.sink.received.append(Received(tuple(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on 127.0.0.1:`port` in a thread of its own."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[Received] = []
        self.refusals: dict[str, str] = {}
        self.delay = 0.0
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> SmtpSink:
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse(self, address: str, reply: str) -> None:
        self.refusals[address.lower()] = reply

    def message_ids(self) -> Counter[str]:
        with self.lock:
            return Counter(str(r.message["Message-ID"]) for r in self.received)

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.rcpt_tos]


@pytest.fixture
def smtp_sink(settings: Any) -> Iterator[SmtpSink]:
    sink = SmtpSink(free_port()).start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    try:
        yield sink
    finally:
        sink.stop()
