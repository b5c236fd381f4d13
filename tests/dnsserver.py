"""A small real DNS server on loopback, so DNS tests never touch the machine's resolver.

It answers UDP queries from a dict zone, NXDOMAIN for names it does not know, and can be told
to answer SERVFAIL (or another rcode) for a name, or to stay silent so the client times out.
It records every query it receives, which lets tests prove the scanner asked *this* server.
UDP only: our answers are small, and the scanner sends no EDNS, so nothing needs TCP fallback.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

# Zone: name -> record type -> record data in zone-file text ("10.0.0.1", "0 1 995 mail.x.").
Zone = dict[str, dict[str, list[str]]]


def _key(name: str) -> str:
    return name.strip().rstrip(".").lower()


class DnsServer:
    """A UDP DNS server on 127.0.0.1 serving `zone` from a background thread.

    `fail(name, "SERVFAIL")` and `drop(name)` change how a name is answered, for every record
    type or just one. `queries` lists (name, type) for each query received, in order.
    """

    def __init__(self, zone: Zone | None = None) -> None:
        self.zone: Zone = {}
        self.queries: list[tuple[str, str]] = []
        self._failures: dict[tuple[str, str | None], str] = {}
        self._dropped: set[tuple[str, str | None]] = set()
        self._lock = threading.Lock()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.05)  # how quickly the thread notices stop()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)
        for name, records in (zone or {}).items():
            for rdtype, values in records.items():
                self.add(name, rdtype, *values)

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def address(self) -> str:
        """The `IP:PORT` string for Settings(resolver=...)."""
        return f"127.0.0.1:{self.port}"

    def add(self, name: str, rdtype: str, *values: str) -> None:
        """Serve `values` as `name`'s records of type `rdtype`."""
        with self._lock:
            self.zone.setdefault(_key(name), {}).setdefault(rdtype.upper(), []).extend(values)

    def fail(self, name: str, rcode: str = "SERVFAIL", rdtype: str | None = None) -> None:
        """Answer queries for `name` (of `rdtype`, or any type) with `rcode`."""
        with self._lock:
            self._failures[(_key(name), rdtype)] = rcode

    def drop(self, name: str, rdtype: str | None = None) -> None:
        """Never answer queries for `name` (of `rdtype`, or any type)."""
        with self._lock:
            self._dropped.add((_key(name), rdtype))

    def queried(self, name: str) -> list[str]:
        """The record types asked for `name`, in the order the queries arrived."""
        with self._lock:
            return [rdtype for qname, rdtype in self.queries if qname == _key(name)]

    def start(self) -> DnsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                wire, client = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            reply = self._reply(wire)
            if reply is not None:
                self._socket.sendto(reply, client)

    def _reply(self, wire: bytes) -> bytes | None:
        """The response to one query, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # garbage: a real server would drop it too
            return None
        question = query.question[0]
        name = _key(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((name, rdtype))
            if (name, rdtype) in self._dropped or (name, None) in self._dropped:
                return None
            failure = self._failures.get((name, rdtype)) or self._failures.get((name, None))
            records = self.zone.get(name)
            values = list(records.get(rdtype, [])) if records is not None else []
        response = dns.message.make_response(query)
        if failure is not None:
            response.set_rcode(dns.rcode.from_text(failure))
        elif records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif values:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 300, dns.rdataclass.IN, rdtype, values)
            )
        return response.to_wire()


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    """A running DnsServer with an empty zone; tests add the records they need."""
    server = DnsServer().start()
    try:
        yield server
    finally:
        server.stop()
