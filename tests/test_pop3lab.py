"""The POP3 emulator, spoken to with a raw asyncio client (never the scanner under test)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import warnings
from collections.abc import Coroutine, Iterator
from typing import Any, ClassVar, TypeVar

import pytest

from pop3lab._session import Action
from pop3lab.certs import make_cert
from pop3lab.config import EndpointConfig
from pop3lab.fleet import addresses, mixed_fleet
from pop3lab.hostile import HostileConfig
from pop3lab.lab import BoundEndpoint, LabThread
from pop3lab.profiles import make_session
from tests.ports import free_port

T = TypeVar("T")
TIMEOUT = 5.0
EX = "+OK The Microsoft Exchange POP3 service is ready."


class Client:
    """A minimal line-oriented POP3 client; every read is bounded by TIMEOUT."""

    opened: ClassVar[list[Client]] = []  # closed by run() so no test leaks sockets

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        Client.opened.append(self)

    @classmethod
    async def connect(
        cls, host: str, port: int | None, context: ssl.SSLContext | None = None
    ) -> Client:
        hostname = "mail.example.test" if context and context.check_hostname else None
        opened = asyncio.open_connection(host, port, ssl=context, server_hostname=hostname)
        return cls(*await asyncio.wait_for(opened, TIMEOUT))

    async def line(self) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
        return raw.decode().rstrip("\r\n")

    async def send(self, command: str) -> str:
        self.writer.write(command.encode() + b"\r\n")
        return await self.line()

    async def capa(self) -> list[str]:
        lines = [await self.send("CAPA")]
        while lines[-1] != ".":
            lines.append(await self.line())
        return lines[1:-1]

    async def starttls(self, context: ssl.SSLContext) -> None:
        assert await self.send("STLS") == "+OK Begin TLS negotiation."
        upgrade = self.writer.start_tls(context, server_hostname="mail.example.test")
        await asyncio.wait_for(upgrade, TIMEOUT)

    async def at_eof(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), TIMEOUT) == b""


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, closing every client the coroutine opened."""

    async def main() -> T:
        try:
            return await coroutine
        finally:
            for client in Client.opened:
                client.writer.close()
            Client.opened.clear()

    return asyncio.run(main())


def trusting() -> ssl.SSLContext:
    return ssl.create_default_context(cadata=make_cert().ca_pem.decode())


def legacy_client(version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    return context


def exchange(login_type: str = "SecureLogin", **kwargs: Any) -> EndpointConfig:
    return EndpointConfig("exchange2016", login_type, **kwargs)


@pytest.fixture(scope="module")
def lab() -> Iterator[LabThread]:
    with LabThread() as running:
        yield running


def serve(lab: LabThread, config: EndpointConfig | HostileConfig) -> BoundEndpoint:
    """Serve `config` on a fresh loopback address with ephemeral ports."""
    address = addresses("127.77.0.1", len(lab.endpoints) + 1)[-1]
    return lab.add([(address, config)])[address]


async def greeted(endpoint: BoundEndpoint, context: ssl.SSLContext | None = None) -> Client:
    port = endpoint.pop3s_port if context else endpoint.pop3_port
    client = await Client.connect(endpoint.address, port, context)
    assert await client.line() == EX
    return client


CAPA_BEFORE_TLS = [
    ("PlainTextLogin", True, ["TOP", "UIDL", "SASL NTLM GSSAPI PLAIN", "USER", "STLS"]),
    ("PlainTextLogin", False, ["TOP", "UIDL", "SASL PLAIN", "USER", "STLS"]),
    ("PlainTextAuthentication", True, ["TOP", "UIDL", "SASL NTLM GSSAPI", "STLS"]),
    ("PlainTextAuthentication", False, ["TOP", "UIDL", "STLS"]),
    ("SecureLogin", True, ["TOP", "UIDL", "STLS"]),
    ("SecureLogin", False, ["TOP", "UIDL", "STLS"]),
]


@pytest.mark.parametrize(("login_type", "ntlm", "expected"), CAPA_BEFORE_TLS)
def test_exchange_capa_before_tls_follows_the_table(lab, login_type, ntlm, expected) -> None:
    async def talk() -> list[str]:
        return await (await greeted(serve(lab, exchange(login_type, ntlm=ntlm)))).capa()

    assert run(talk()) == expected


@pytest.mark.parametrize(
    ("ntlm", "expected"),
    [
        (True, ["TOP", "UIDL", "SASL NTLM GSSAPI PLAIN", "USER"]),
        (False, ["TOP", "UIDL", "SASL PLAIN", "USER"]),
    ],
)
def test_exchange_capa_inside_pop3s_lists_user_whatever_the_login_type(lab, ntlm, expected) -> None:
    async def talk() -> list[str]:
        return await (await greeted(serve(lab, exchange(ntlm=ntlm)), trusting())).capa()

    assert run(talk()) == expected


@pytest.mark.parametrize(
    ("login_type", "reply"),
    [
        ("PlainTextLogin", "+OK"),
        ("PlainTextAuthentication", "-ERR Command is not valid in this state."),
        ("SecureLogin", "-ERR Command is not valid in this state."),
    ],
)
def test_exchange_user_before_tls_depends_on_login_type(lab, login_type, reply) -> None:
    async def talk() -> str:
        return await (await greeted(serve(lab, exchange(login_type)))).send("USER nobody-x7")

    assert run(talk()) == reply


def test_exchange_hangs_up_on_the_third_rejected_command(lab) -> None:
    async def talk() -> list[str | bool]:
        client = await greeted(serve(lab, exchange()))
        replies = [await client.send(c) for c in ("USER a", "USER b", "USER c")]
        return [*replies, await client.line(), await client.at_eof()]

    invalid = "-ERR Command is not valid in this state."
    assert run(talk()) == [invalid, invalid, invalid, "Connection is closed. 21", True]


def test_exchange_third_unknown_command_is_a_closing_protocol_error() -> None:
    session = make_session(exchange())
    replies = [session.handle(b"HELO x") for _ in range(3)]
    assert [r.lines for r in replies] == [("-ERR Protocol error. 19",)] * 2 + [
        ("-ERR Protocol error. 20",)
    ]
    assert replies[-1].action is Action.CLOSE


def test_exchange_refuses_capa_between_user_and_pass(lab) -> None:
    async def talk() -> str:
        client = await greeted(serve(lab, exchange("PlainTextLogin")))
        assert await client.send("USER nobody-x7") == "+OK"
        return await client.send("CAPA")

    assert run(talk()) == "-ERR Command is not valid in this state."


def test_exchange_auth_plain_is_offered_only_under_plaintextlogin(lab) -> None:
    async def talk(login_type: str) -> list[str]:
        client = await greeted(serve(lab, exchange(login_type)))
        first = await client.send("AUTH PLAIN")
        return [first, await client.send("*")] if first == "+ " else [first]

    assert run(talk("SecureLogin")) == ["-ERR Command is not valid in this state."]
    cancelled = run(talk("PlainTextLogin"))
    assert cancelled[0] == "+ " and cancelled[1].startswith("-ERR")


def test_stls_upgrades_to_a_trusted_certificate_and_capa_then_lists_user(lab) -> None:
    async def talk() -> tuple[list[str], str | None]:
        client = await greeted(serve(lab, exchange()))
        await client.starttls(trusting())
        return await client.capa(), client.writer.get_extra_info("ssl_object").version()

    capa, version = run(talk())
    assert capa == ["TOP", "UIDL", "SASL NTLM GSSAPI PLAIN", "USER"]
    assert version == "TLSv1.3"


def test_without_certificate_stls_disappears_and_pop3s_answers_in_plaintext(lab) -> None:
    endpoint = serve(lab, exchange(cert_kind=None))

    async def talk() -> tuple[list[str], str, bool]:
        capa = await (await greeted(endpoint)).capa()
        client = await Client.connect(endpoint.address, endpoint.pop3s_port)
        return capa, await client.line(), await client.at_eof()

    assert run(talk()) == (["TOP", "UIDL"], "-ERR Connection is closed. 13", True)


@pytest.mark.parametrize("profile", ["exchange2010", "exchange2013", "exchange2019"])
def test_exchange_quit_names_the_product_year(lab, profile) -> None:
    async def talk() -> str:
        return await (await greeted(serve(lab, EndpointConfig(profile)))).send("QUIT")

    year = profile.removeprefix("exchange")
    assert run(talk()) == f"+OK Microsoft Exchange Server {year} POP3 server signing off."


def test_tls10_is_accepted_only_when_configured(lab) -> None:
    legacy = serve(lab, exchange(tls_versions=("TLSv1", "TLSv1.2")))
    modern = serve(lab, exchange())

    async def version(endpoint: BoundEndpoint) -> str | None:
        client = await greeted(endpoint, legacy_client(ssl.TLSVersion.TLSv1))
        return client.writer.get_extra_info("ssl_object").version()

    assert run(version(legacy)) == "TLSv1"
    with pytest.raises(ssl.SSLError):
        run(version(modern))


def test_it_serves_200_loopback_addresses_on_one_port() -> None:
    port = free_port()
    fleet = [(a, exchange(pop3s=False)) for a in addresses("127.78.0.1", 200)]

    async def greet_all() -> list[str]:
        clients = await asyncio.gather(*(Client.connect(a, port) for a, _ in fleet))
        return await asyncio.gather(*(client.line() for client in clients))

    with LabThread(fleet, pop3_port=port) as lab:
        assert {e.pop3_port for e in lab.endpoints.values()} == {port}
        assert run(greet_all()) == [EX] * 200


def test_dovecot_like_refuses_user_with_its_own_reason(lab) -> None:
    async def talk() -> tuple[list[str], str]:
        client = await Client.connect(*_pop3(serve(lab, EndpointConfig("dovecot_like"))))
        assert await client.line() == "+OK Dovecot ready."
        return await client.capa(), await client.send("USER nobody-x7")

    capa, reply = run(talk())
    assert "USER" not in capa and "STLS" in capa and "SASL" in capa
    assert reply.endswith(
        "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
    )


def test_lenient_generic_says_ok_to_user_but_refuses_pass(lab) -> None:
    config = EndpointConfig("generic", generic_accepts_user_rejects_pass=True)

    async def talk() -> list[str]:
        client = await Client.connect(*_pop3(serve(lab, config)))
        await client.line()
        return [*(await client.capa()), await client.send("USER x"), await client.send("PASS y")]

    replies = run(talk())
    assert "USER" not in replies[:-2] and replies[-2] == "+OK" and replies[-1].startswith("-ERR")


def test_idle_connection_is_closed_after_the_timeout(lab) -> None:
    async def talk() -> tuple[str, bool]:
        client = await greeted(serve(lab, exchange(idle_timeout=0.2)))
        return await client.line(), await client.at_eof()

    assert run(talk()) == ("-ERR Connection is closed. 12", True)


def test_hostile_reset_mid_handshake_resets_the_tls_client(lab) -> None:
    endpoint = serve(lab, HostileConfig("reset_mid_handshake"))
    with pytest.raises(ConnectionResetError):
        run(Client.connect(endpoint.address, endpoint.pop3s_port, trusting()))


def test_hostile_stls_refused_advertises_stls_then_refuses_it(lab) -> None:
    async def talk() -> tuple[list[str], str]:
        client = await greeted(serve(lab, HostileConfig("stls_refused")))
        return await client.capa(), await client.send("STLS")

    capa, reply = run(talk())
    assert "STLS" in capa and reply.startswith("-ERR")


def test_hostile_endless_line_never_sends_a_newline(lab) -> None:
    endpoint = serve(lab, HostileConfig("endless_line", interval=0.1))

    async def talk() -> bytes:
        client = await Client.connect(*_pop3(endpoint))
        return await asyncio.wait_for(client.reader.readexactly(20_000), TIMEOUT)

    data = run(talk())
    assert data.startswith(b"+OK ") and b"\n" not in data


def test_hostile_close_after_banner_greets_then_hangs_up(lab) -> None:
    async def talk() -> bool:
        return await (await greeted(serve(lab, HostileConfig("close_after_banner")))).at_eof()

    assert run(talk())


@pytest.mark.parametrize("behaviour", ["non_tls_on_tls_port", "garbage"])
def test_hostile_plaintext_on_the_tls_port_fails_the_handshake(lab, behaviour) -> None:
    endpoint = serve(lab, HostileConfig(behaviour))
    with pytest.raises(ssl.SSLError):
        run(Client.connect(endpoint.address, endpoint.pop3s_port, trusting()))


def test_hostile_stls_garbage_accepts_stls_then_breaks_the_handshake(lab) -> None:
    async def talk() -> None:
        await (await greeted(serve(lab, HostileConfig("stls_garbage")))).starttls(trusting())

    with pytest.raises(ssl.SSLError):
        run(talk())


def test_hostile_no_banner_stays_silent(lab) -> None:
    async def talk() -> bytes:
        client = await Client.connect(*_pop3(serve(lab, HostileConfig("no_banner"))))
        return await asyncio.wait_for(client.reader.read(1), 0.3)

    with pytest.raises(TimeoutError):
        run(talk())


def test_a_disabled_listener_reports_no_port(lab) -> None:
    endpoint = serve(lab, exchange(pop3=False))
    assert endpoint.pop3_port is None and endpoint.pop3s_port is not None


def test_config_normalises_tls_version_names_and_rejects_unknown_profiles() -> None:
    assert exchange(tls_versions=("TLSv1", "1.1")).tls_versions == (
        ssl.TLSVersion.TLSv1,
        ssl.TLSVersion.TLSv1_1,
    )
    with pytest.raises(ValueError, match="profile"):
        EndpointConfig("exchange2007")


def test_session_replies_never_exceed_512_bytes() -> None:
    session = make_session(exchange(banner="x" * 600))
    assert len(session.greeting().encode()) == 512


def test_cli_serves_a_mixed_fleet_and_writes_a_manifest(tmp_path) -> None:
    manifest = tmp_path / "fleet.json"
    args = ["--count", "20", "--base", "127.79.0.1", "--mixed", "--pop3-port", "0"]
    args += ["--pop3s-port", "0", "--manifest", str(manifest)]
    with subprocess.Popen(
        [sys.executable, "-m", "pop3lab", *args], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            while (line := proc.stdout.readline()) and line.strip() != "ready":
                pass
            entries = json.loads(manifest.read_text())
        finally:
            proc.terminate()
    assert proc.returncode == 0 and line.strip() == "ready"
    assert [e["config"]["profile"] for e in entries] == [
        c.profile for _, c in mixed_fleet(20, "127.79.0.1")
    ]


def _pop3(endpoint: BoundEndpoint) -> tuple[str, int | None]:
    return endpoint.address, endpoint.pop3_port
