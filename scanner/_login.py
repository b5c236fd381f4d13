"""The login test (pop3.tls_login): one login with the monitoring account, inside TLS only.

Three guards keep the password off the wire in the clear. Credentials leave the scanner only
through `Pop3Connection.credentials_command`, which raises CleartextCredentialsError unless
the TLS handshake has completed; `log_in` refuses a connection without TLS before it says
anything; and before the first credential goes out, the certificate served on that very
connection must chain to the policy's trust store and cover the service name, because TLS to
a peer nobody authenticated hands the password to whoever intercepts the connection.

At most one attempt per address and scan, so a wrong stored password cannot lock the account
out: on a connection of its own, opened once the other probes have shown which TLS entry point
works, implicit TLS on the POP3S port first (RFC 8314), STLS on the POP3 port otherwise. Nothing
is retried, and after the server's answer only QUIT is sent. The addresses of one target log in
one at a time, and after one rejected the login the others are not tried (LoginGate).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Literal

from scanner._certs import chain_from_ssl_object, name_matches
from scanner._errors import ProtocolError, ScanError, quote_reply
from scanner._facts import ImplicitTlsFacts, StlsFacts, TlsLoginFacts
from scanner._pop3 import POP3_DIALECT
from scanner._session import (
    AddressSession,
    quit_politely,
    read_capabilities,
    read_greeting,
)
from scanner._target import Credentials, Policy
from scanner._tls import probe_context
from scanner._trust import verify_chain
from scanner._wire import Pop3Connection, Reply, capability_names, sasl_mechanisms

# RFC 5034 §4: an AUTH line longer than this must not carry the initial response.
MAX_AUTH_LINE = 255
USER_PASS = "USER/PASS"
AUTH_PLAIN = "AUTH PLAIN"
MASK = "***"


@dataclass
class _LoginNotes:
    """What the login learnt so far; kept when a later step fails. Its fields are exactly
    TlsLoginFacts's conversation fields."""

    mechanism: str | None = None
    accepted: bool | None = None
    reply: str | None = None
    withheld: str | None = None


async def probe_tls_login(
    session: AddressSession, policy: Policy, pop3s: ImplicitTlsFacts, stls: StlsFacts
) -> TlsLoginFacts | None:
    """The login over the TLS entry point that worked, as facts; None when there are no
    credentials or no entry point worked (then nothing is sent). Trouble is recorded."""
    credentials = session.target.credentials
    entry = _working_entry(pop3s, stls)
    if credentials is None or entry is None:
        return None
    gate = session.login_gate
    async with gate.lock:
        if gate.rejected_by is not None:
            withheld = (
                f"{gate.rejected_by} rejected the same login in this scan, so it was not tried "
                "again (each rejection counts towards locking the account out)"
            )
            return TlsLoginFacts(entry, "ok", withheld=withheld)
        facts = await _log_in(session, credentials, policy, entry, pop3s)
        if facts.password_refused:
            gate.rejected_by = session.address
        return facts


async def _log_in(
    session: AddressSession,
    credentials: Credentials,
    policy: Policy,
    entry: Literal["pop3s", "stls"],
    pop3s: ImplicitTlsFacts,
) -> TlsLoginFacts:
    login = _Login(credentials, policy, session.target.service_name or session.address)
    # The login gets --timeout like every connection. Servers delay a rejected
    # login on purpose (Dovecot's auth_failure_delay: 2 s); a timeout shorter than that delay
    # reads a wrong password as an error, not a fail.
    try:
        if entry == "pop3s":
            await session.converse(
                pop3s.port, login.over_implicit_tls, tls=probe_context(), record="monitor"
            )
        else:
            port = session.target.pop3_port
            over_stls = login.over_stls
            await session.converse(port, lambda c: over_stls(c, session.sni), record="monitor")
    except ScanError as exc:
        error = login.mask(str(exc))
        return TlsLoginFacts(entry, exc.outcome, error, **vars(login.notes))  # type: ignore[arg-type]
    return TlsLoginFacts(entry, "ok", **vars(login.notes))


def _working_entry(pop3s: ImplicitTlsFacts, stls: StlsFacts) -> Literal["pop3s", "stls"] | None:
    """Implicit TLS when its probe greeted us inside TLS, else STLS when its upgrade worked."""
    if pop3s.outcome == "ok" and pop3s.tls is not None:
        return "pop3s"
    if stls.outcome == "ok" and stls.tls is not None:
        return "stls"
    return None


class _Login:
    """One login with `credentials`, on a connection a probe hands over."""

    def __init__(self, credentials: Credentials, policy: Policy, name: str) -> None:
        self.credentials = credentials
        self.policy = policy
        self.name = name
        self.notes = _LoginNotes()
        secret = f"\0{credentials.username}\0{credentials.password}".encode()
        self.plain_response = base64.b64encode(secret).decode("ascii")

    def conceal(self, connection: Pop3Connection) -> None:
        """Keep the credentials out of the connection's transcript, should the server echo
        them (the lines that send them are redacted whatever they hold)."""
        if connection.transcript is not None:
            credentials = self.credentials
            secrets = (credentials.password, self.plain_response, credentials.username)
            connection.transcript.conceal(*secrets)

    async def over_implicit_tls(self, connection: Pop3Connection) -> None:
        self.conceal(connection)
        await read_greeting(connection)
        await self.log_in(connection)

    async def over_stls(self, connection: Pop3Connection, sni: str | None) -> None:
        self.conceal(connection)
        await POP3_DIALECT.request_upgrade(connection)
        await connection.start_tls(probe_context(), sni)
        await self.log_in(connection)

    async def log_in(self, connection: Pop3Connection) -> None:
        """Check the certificate, CAPA, log in with the mechanism it offers, QUIT. Raises
        CleartextCredentialsError on a connection whose TLS handshake has not completed."""
        connection.require_tls("login")
        self.notes.withheld = self._untrusted_peer(connection)
        if self.notes.withheld is None:
            connection.step = "CAPA inside TLS"
            await self._attempt(connection, _mechanism(await read_capabilities(connection)))
        await quit_politely(connection)

    async def _attempt(self, connection: Pop3Connection, mechanism: str | None) -> None:
        if mechanism is None:
            self.notes.withheld = "the server offers neither USER/PASS nor SASL PLAIN inside TLS"
            return
        self.notes.mechanism = mechanism
        if mechanism == USER_PASS:
            reply = await self._user_pass(connection)
        else:
            reply = await self._auth_plain(connection)
        self.notes.accepted, self.notes.reply = reply.ok, quote_reply(self.mask(reply.line))

    def _untrusted_peer(self, connection: Pop3Connection) -> str | None:
        """Why this connection's certificate does not authenticate the server, or None."""
        assert connection.ssl_object is not None
        chain = chain_from_ssl_object(connection.ssl_object)
        policy = self.policy
        try:
            trust = verify_chain(
                chain, use_system_trust=policy.use_system_trust, ca_bundle_pem=policy.ca_bundle_pem
            )
        except ValueError as error:
            return f"the certificate could not be checked ({error})"
        if not trust.trusted:
            return f"the certificate is not trusted ({trust.reason})"
        if not name_matches(chain[0], self.name):
            return f"the certificate does not cover {self.name}"
        return None

    async def _user_pass(self, connection: Pop3Connection) -> Reply:
        user = await _send(connection, f"USER {self.credentials.username}", "reply to USER")
        if not user.ok:
            return user
        return await _send(connection, f"PASS {self.credentials.password}", "reply to PASS")

    async def _auth_plain(self, connection: Pop3Connection) -> Reply:
        line = f"AUTH PLAIN {self.plain_response}"
        if len(line) <= MAX_AUTH_LINE:
            return await _send(connection, line, "reply to AUTH PLAIN")
        challenge = await connection.command("AUTH PLAIN")
        if not challenge.continuation:
            return challenge
        return await _send(connection, self.plain_response, "reply to the AUTH PLAIN response")

    def mask(self, text: str) -> str:
        """`text` with the password and the PLAIN response masked, should a server echo them
        back: what the server says is stored and shown, the credentials never are."""
        for secret in (self.plain_response, self.credentials.password):
            text = text.replace(secret, MASK)
        return text


def _mechanism(capabilities: tuple[str, ...] | None) -> str | None:
    """USER/PASS when CAPA lists USER or is not supported (RFC 1939's baseline); AUTH PLAIN
    when only SASL PLAIN is offered; None when neither would take a password."""
    if capabilities is None or "USER" in capability_names(capabilities):
        return USER_PASS
    if "PLAIN" in sasl_mechanisms(capabilities):
        return AUTH_PLAIN
    return None


async def _send(connection: Pop3Connection, line: str, step: str) -> Reply:
    """One line carrying credentials, and the status it gets. A `+ ` challenge where a status
    was due is not POP3 as a password login knows it."""
    reply = await connection.credentials_command(line, step)
    if reply.continuation:
        raise ProtocolError(step, "the server asked for more instead of answering", reply.line)
    return reply
