"""The login test (pop3.tls_login): the monitoring account logs in over TLS only, once per
address, and its password never crosses the wire in the clear, never shows in a repr, a report
or an error. Against the emulator (whose journal records every byte each connection received
before TLS), a hostile server, a real Dovecot and the command line."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from pop3lab.__main__ import fleet_from_args, parse_args
from pop3lab.config import EndpointConfig
from pop3lab.hostile import HostileConfig
from pop3lab.journal import LoginAttempt
from pop3lab.lab import AnyConfig, BoundEndpoint
from pop3lab.profiles import make_session
from scanner import Credentials, ScanReport, Settings, Target, report_to_dict
from scanner._errors import CleartextCredentialsError
from scanner._evaluate_common import Context
from scanner._evaluate_login import check_tls_login
from scanner._facts import TlsLoginFacts
from scanner._login import _Login
from scanner._probe import scan
from scanner._report import render_text
from scanner._wire import Pop3Connection
from tests.conftest import SERVICE_NAME, Emulated, check_of, lab_policy
from tests.dovecot import HOST as DOVECOT_HOST
from tests.dovecot import Dovecot, DovecotConfig, DovecotFactory
from tests.ports import free_port
from tests.test_evaluate import NOW, POLICY, endpoint, pop3, pop3s

USER = "monitor"
PASSWORD = "Corr3ct-Horse-Battery"
MONITOR = Credentials(USER, PASSWORD)
# The AUTH PLAIN response (RFC 4616) made from the credentials: as secret as the password.
PLAIN_RESPONSE = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
SECRETS = (PASSWORD.encode(), PLAIN_RESPONSE.encode())
ACCOUNTS = ((USER, PASSWORD),)
EXCHANGE = EndpointConfig(accounts=ACCOUNTS)
EXCHANGE_WELCOME = "+OK User successfully logged on."
EXCHANGE_REFUSAL = "-ERR Logon failure: unknown user name or bad password."


def scan_with(
    emulated: Emulated,
    config: AnyConfig,
    credentials: Credentials | None = MONITOR,
    timeout: float = 5.0,
) -> tuple[ScanReport, BoundEndpoint]:
    """Scan one emulated server as the monitoring account; the report and the server."""
    server = emulated.start(config)
    target = replace(emulated.target(server), credentials=credentials)
    settings = Settings(timeout=timeout, resolver=emulated.dns_server.address)
    return scan([target], settings, lab_policy())[0], server


def assert_never_in_clear(server: BoundEndpoint) -> None:
    """Neither the password nor the PLAIN response in anything any connection carried
    outside TLS (for a server that never completes TLS, that is every byte it received)."""
    clear = server.journal.before_tls
    # The journal did record cleartext: the login probe's random USER is in it.
    assert any(b"USER popcompliance-probe-" in data for data in clear)
    for number, data in enumerate(clear):
        for secret in SECRETS:
            assert secret not in data, f"connection {number} carried a secret in the clear"


def test_the_journal_catches_a_password_sent_in_the_clear(emulated: Emulated) -> None:
    # The detector the tests below rely on: a careless client is caught.
    server = emulated.start(replace(EXCHANGE, login_type="PlainTextLogin"))

    async def careless_client() -> None:
        connection = await Pop3Connection.open(server.address, server.pop3_port or 0)
        try:
            await connection.read_reply()
            await connection.command(f"USER {USER}")
            assert (await connection.command(f"PASS {PASSWORD}")).line == EXCHANGE_WELCOME
        finally:
            connection.close()

    asyncio.run(careless_client())
    assert server.journal.before_tls == [f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode()]
    assert server.journal.logins == [LoginAttempt(USER, "USER/PASS", tls=False, accepted=True)]


# --- The emulator's accounts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "password", "tls", "answers"),
    [
        ("exchange2016", PASSWORD, True, ["+OK", EXCHANGE_WELCOME]),
        ("exchange2016", "wrong", True, ["+OK", EXCHANGE_REFUSAL]),
        ("exchange2016", PASSWORD, False, ["-ERR Command is not valid in this state."] * 2),
        ("dovecot_like", PASSWORD, True, ["+OK", "+OK Logged in."]),
        ("dovecot_like", "wrong", True, ["+OK", "-ERR [AUTH] Authentication failed."]),
    ],
)
def test_emulated_accounts_log_in_inside_tls_with_the_products_words(
    profile: str, password: str, tls: bool, answers: list[str]
) -> None:
    session = make_session(EndpointConfig(profile, accounts=ACCOUNTS), tls=tls)
    said = [session.handle(line.encode()).lines[0] for line in (f"USER {USER}", f"PASS {password}")]
    assert said == answers


def test_the_lab_command_line_serves_accounts() -> None:
    args = parse_args(["--account", f"{USER}:{PASSWORD}", "--account", "other:pass:word"])
    [(_, config)] = fleet_from_args(args)
    assert config.password_of(USER) == PASSWORD and config.password_of("other") == "pass:word"
    with pytest.raises(SystemExit):
        parse_args(["--account", "no-password"])


def test_an_emulated_login_leaves_only_quit_working() -> None:
    session = make_session(EXCHANGE, tls=True)
    session.handle(f"AUTH PLAIN {PLAIN_RESPONSE}".encode())
    assert session.handle(b"RETR 1").lines[0].startswith("-ERR")
    assert session.handle(b"QUIT").lines[0].startswith("+OK Microsoft Exchange Server 2016")
    assert session.log.commands_after_login == ["RETR", "QUIT"]


# --- Against the emulated Exchange ---------------------------------------------------------


def test_secure_login_accepts_the_monitor_over_pop3s(emulated: Emulated) -> None:
    report, server = scan_with(emulated, EXCHANGE)
    check = check_of(report, "pop3.tls_login")
    assert check.status == "pass"
    assert "POP3S port" in check.summary and "USER/PASS" in check.summary
    assert report.endpoints[0].tls_login == TlsLoginFacts(
        "pop3s", "ok", mechanism="USER/PASS", accepted=True, reply=EXCHANGE_WELCOME
    )
    assert server.journal.logins == [LoginAttempt(USER, "USER/PASS", tls=True, accepted=True)]
    assert report.compliant is True


def test_it_sends_only_quit_after_the_login(emulated: Emulated) -> None:
    _, server = scan_with(emulated, EXCHANGE)
    after = [log.commands_after_login for log in server.journal.connections if log.logins]
    assert after == [["QUIT"]]


def test_with_pop3s_closed_it_logs_in_after_stls(emulated: Emulated) -> None:
    report, server = scan_with(emulated, replace(EXCHANGE, pop3s=False))
    check = check_of(report, "pop3.tls_login")
    assert check.status == "pass"
    assert "STLS on POP3 port" in check.summary
    assert report.endpoints[0].tls_login is not None
    assert report.endpoints[0].tls_login.entry == "stls"
    assert server.journal.logins == [LoginAttempt(USER, "USER/PASS", tls=True, accepted=True)]


def test_a_wrong_password_fails_quoting_the_server_with_a_fix(emulated: Emulated) -> None:
    report, server = scan_with(emulated, EXCHANGE, Credentials(USER, "stale-password"))
    check = check_of(report, "pop3.tls_login")
    assert check.status == "fail"
    assert f"“{EXCHANGE_REFUSAL}”" in check.summary
    assert "Set-CASMailbox <user> -PopEnabled $true" in check.remediation
    assert "locked" in check.remediation
    assert report.compliant is False
    assert len(server.journal.logins) == 1  # one attempt per address: no retry, no lockout


def scan_cluster(
    emulated: Emulated, credentials: Credentials, name: str
) -> tuple[ScanReport, list[BoundEndpoint]]:
    """Scan a name whose three addresses are emulated Exchange servers on one pair of ports."""
    servers = emulated.start_on_shared_ports(EXCHANGE, EXCHANGE, EXCHANGE)
    emulated.dns_server.add(name, "A", *(server.address for server in servers))
    target = replace(emulated.target(servers[0]), host=name, credentials=credentials)
    settings = Settings(timeout=5.0, resolver=emulated.dns_server.address)
    return scan([target], settings, lab_policy())[0], servers


def test_a_rejected_login_is_not_tried_on_the_names_other_addresses(emulated: Emulated) -> None:
    report, servers = scan_cluster(emulated, Credentials(USER, "stale"), "cas-array.example.test")
    logins = [login for server in servers for login in server.journal.logins]
    assert logins == [LoginAttempt(USER, "USER/PASS", tls=True, accepted=False)]
    [rejected_by] = [server.address for server in servers if server.journal.logins]
    login_checks = [c for c in report.address_checks if c.id == "pop3.tls_login"]
    assert sorted(c.status for c in login_checks) == ["fail", "skip", "skip"]
    assert check_of(report, "pop3.tls_login").status == "fail"
    for skipped in (c for c in login_checks if c.status == "skip"):
        assert skipped.address != rejected_by
        assert skipped.summary.startswith("the password was not sent over POP3S port")
        assert f"{rejected_by} rejected the same login in this scan" in skipped.summary
    for server in servers:
        assert_never_in_clear(server)


def test_an_accepted_login_is_tried_on_every_address(emulated: Emulated) -> None:
    report, servers = scan_cluster(emulated, MONITOR, "cas-array2.example.test")
    assert [len(server.journal.logins) for server in servers] == [1, 1, 1]
    statuses = [c.status for c in report.address_checks if c.id == "pop3.tls_login"]
    assert statuses == ["pass", "pass", "pass"]


def test_without_credentials_it_skips_and_logs_in_nowhere(emulated: Emulated) -> None:
    report, server = scan_with(emulated, EXCHANGE, credentials=None)
    check = check_of(report, "pop3.tls_login")
    assert (check.status, check.summary) == ("skip", "no monitoring credentials set")
    assert report.endpoints[0].tls_login is None
    assert server.journal.logins == []


@pytest.mark.parametrize(
    "config",
    [
        replace(EXCHANGE, pop3s=False, stls=False),
        replace(EXCHANGE, cert_kind=None),  # no certificate bound: 995 says -ERR, no STLS
    ],
    ids=["995 closed and no STLS", "no certificate bound"],
)
def test_with_no_tls_entry_point_the_password_is_never_sent(
    emulated: Emulated, config: EndpointConfig
) -> None:
    report, server = scan_with(emulated, config)
    check = check_of(report, "pop3.tls_login")
    assert check.status == "skip"
    assert check.summary == "the password was not sent: neither POP3S nor STLS worked"
    assert server.journal.logins == []
    for log in server.journal.connections:
        assert USER.encode() not in log.received and PASSWORD.encode() not in log.received


@pytest.mark.parametrize("pop3s_open", [True, False], ids=["via POP3S", "via STLS"])
def test_a_server_taking_passwords_in_the_clear_still_never_gets_them_there(
    emulated: Emulated, pop3s_open: bool
) -> None:
    config = replace(EXCHANGE, login_type="PlainTextLogin", pop3s=pop3s_open)
    report, server = scan_with(emulated, config)
    assert check_of(report, "pop3.tls_login").status == "pass"
    assert check_of(report, "pop3.plaintext_login").status == "fail"
    assert_never_in_clear(server)
    assert [attempt.tls for attempt in server.journal.logins] == [True]


def test_a_sasl_only_server_gets_auth_plain_inside_tls_only(emulated: Emulated) -> None:
    config = replace(EXCHANGE, login_type="PlainTextLogin", sasl_only=True, pop3s=False)
    report, server = scan_with(emulated, config)
    login = report.endpoints[0].tls_login
    assert login is not None and (login.entry, login.mechanism) == ("stls", "AUTH PLAIN")
    assert check_of(report, "pop3.tls_login").status == "pass"
    assert server.journal.logins == [LoginAttempt(USER, "AUTH PLAIN", tls=True, accepted=True)]
    assert_never_in_clear(server)


def test_a_long_plain_response_waits_for_the_servers_challenge(emulated: Emulated) -> None:
    # RFC 5034: an AUTH line over 255 octets must not carry the initial response.
    long_password = "p" * 200
    config = replace(EXCHANGE, sasl_only=True, accounts=((USER, long_password),))
    report, server = scan_with(emulated, config, Credentials(USER, long_password))
    assert check_of(report, "pop3.tls_login").status == "pass"
    assert server.journal.logins == [LoginAttempt(USER, "AUTH PLAIN", tls=True, accepted=True)]


def test_an_untrusted_certificate_gets_no_password(emulated: Emulated) -> None:
    # TLS to a server nobody authenticated would hand the password to whoever intercepts it.
    report, server = scan_with(emulated, replace(EXCHANGE, cert_kind="exchange_self_signed"))
    check = check_of(report, "pop3.tls_login")
    assert check.status == "skip"
    assert "the password was not sent over POP3S port" in check.summary
    assert "not trusted" in check.summary
    assert server.journal.logins == []


def test_a_certificate_for_another_name_gets_no_password(emulated: Emulated) -> None:
    # Trusted but issued to someone else: whoever holds it is not the server we mean.
    report, server = scan_with(emulated, replace(EXCHANGE, cert_kind="wrong_name"))
    check = check_of(report, "pop3.tls_login")
    assert check.status == "skip"
    assert f"the certificate does not cover {SERVICE_NAME}" in check.summary
    assert server.journal.logins == []


def test_stls_then_garbage_gets_no_password_and_is_skipped(emulated: Emulated) -> None:
    # Both entry points fail for certain: POP3S answers in plaintext, the STLS handshake meets
    # garbage. No TLS session exists to send a password in, so the check is "not applicable"
    # (skip) rather than "could not determine" (error).
    report, server = scan_with(emulated, HostileConfig("stls_garbage"), timeout=1.5)
    check = check_of(report, "pop3.tls_login")
    assert (check.status, check.summary) == (
        "skip",
        "the password was not sent: neither POP3S nor STLS worked",
    )
    assert all(log.tls_at is None for log in server.journal.connections)
    assert_never_in_clear(server)  # here: every byte the server received


async def _log_in_directly(connection: Pop3Connection) -> None:
    await _Login(MONITOR, lab_policy(), SERVICE_NAME).log_in(connection)


async def _send_password_directly(connection: Pop3Connection) -> None:
    await connection.credentials_command(f"PASS {PASSWORD}", "reply to PASS")


@pytest.mark.parametrize("attempt", [_log_in_directly, _send_password_directly])
def test_credentials_refuse_a_connection_without_tls_before_sending_anything(
    emulated: Emulated, attempt: Callable[[Pop3Connection], Awaitable[None]]
) -> None:
    # Whatever a future refactoring calls, a cleartext connection is a bug, never a login.
    server = emulated.start(replace(EXCHANGE, login_type="PlainTextLogin"))

    async def on_cleartext() -> None:
        connection = await Pop3Connection.open(server.address, server.pop3_port or 0)
        try:
            await connection.read_reply()
            await attempt(connection)
        finally:
            connection.close()

    with pytest.raises(CleartextCredentialsError) as raised:
        asyncio.run(on_cleartext())
    assert PASSWORD not in str(raised.value)
    assert server.journal.before_tls == [b""]


# --- Verdicts from facts built by hand ------------------------------------------------------


def verdict(login: TlsLoginFacts | None, **ports: Any) -> tuple[str, str]:
    """The login verdict for an address whose ports (`pop3`, `pop3s`) are good unless given."""
    facts = replace(endpoint(**ports), tls_login=login)
    return check_tls_login(facts, Context(Target(SERVICE_NAME, credentials=MONITOR), POLICY, NOW))


def test_an_in_use_mailbox_means_the_password_was_accepted() -> None:
    reply = "-ERR [IN-USE] Mailbox is locked by another POP3 session."
    status, summary = verdict(TlsLoginFacts("pop3s", "ok", None, "USER/PASS", False, reply))
    assert status == "pass" and "in use" in summary


@pytest.mark.parametrize("code", ["SYS/TEMP", "SYS/PERM", "LOGIN-DELAY"])
def test_a_reply_that_did_not_judge_the_password_is_an_error(code: str) -> None:
    reply = f"-ERR [{code}] Try again later."
    status, _ = verdict(TlsLoginFacts("stls", "ok", None, "USER/PASS", False, reply))
    assert status == "error"


@pytest.mark.parametrize(
    ("accepted", "reply", "refused"),
    [
        (False, EXCHANGE_REFUSAL, True),
        (False, "-ERR [AUTH] Authentication failed.", True),
        (False, "-ERR [IN-USE] Mailbox is locked by another POP3 session.", False),
        (False, "-ERR [SYS/TEMP] Try again later.", False),
        (False, "-ERR [LOGIN-DELAY] Too soon.", False),
        (True, EXCHANGE_WELCOME, False),
        (None, None, False),
    ],
)
def test_only_a_judged_rejection_stops_the_other_addresses_logins(
    accepted: bool | None, reply: str | None, refused: bool
) -> None:
    # The login gate closes on password_refused: a mailbox in use or a server that could not
    # judge the password now says nothing about the password the other addresses would get.
    login = TlsLoginFacts("pop3s", "ok", None, "USER/PASS", accepted, reply)
    assert login.password_refused is refused


def test_a_login_that_timed_out_is_an_error() -> None:
    login = TlsLoginFacts("pop3s", "timeout", "reply to PASS: no answer within 5 s", "USER/PASS")
    status, summary = verdict(login)
    assert status == "error" and "no answer within 5 s" in summary


def test_entry_points_that_did_not_answer_leave_the_login_undetermined() -> None:
    silent = pop3s(outcome="timeout", tls=None, greeting=None, error="no answer within 5 s")
    status, summary = verdict(None, pop3=pop3(stls=None, outcome="closed"), pop3s=silent)
    assert status == "error" and summary.startswith("the password was not sent")


def test_a_masked_echo_never_shows_the_password() -> None:
    login = _Login(MONITOR, POLICY, SERVICE_NAME)
    echoed = login.mask(f"-ERR bad password {PASSWORD} for {PLAIN_RESPONSE}")
    assert PASSWORD not in echoed and PLAIN_RESPONSE not in echoed


# --- The password never shows -----------------------------------------------------------------


def test_repr_str_and_reports_never_show_the_password(emulated: Emulated) -> None:
    report, _ = scan_with(emulated, EXCHANGE)
    target = report.target
    assert repr(MONITOR) == f"Credentials(username='{USER}', password='***')"
    for text in (repr(MONITOR), str(MONITOR), repr(target), str(target), repr(report)):
        assert PASSWORD not in text
    shown = json.dumps(report_to_dict(report)) + render_text([report], colour=False)
    assert PASSWORD not in shown and PLAIN_RESPONSE not in shown
    assert f"Login over TLS as {USER}" in shown


@pytest.mark.parametrize("password", ["two\r\nlines", "", "nul\0byte"])
def test_credentials_that_would_break_the_command_line_are_refused(password: str) -> None:
    with pytest.raises(ValueError, match="password"):
        Credentials(USER, password)


# --- A real Dovecot -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot_with_monitor(dovecot_factory: DovecotFactory) -> Dovecot:
    """Dovecot's secure default with the monitoring account in a passwd-file."""
    return dovecot_factory(DovecotConfig(accounts=ACCOUNTS))


def scan_dovecot(
    emulated: Emulated, server: Dovecot, credentials: Credentials, *, pop3s_port: int | None = None
) -> ScanReport:
    target = replace(
        server.target(), credentials=credentials, pop3s_port=pop3s_port or server.pop3s_port
    )
    settings = Settings(timeout=5, resolver=emulated.dns_server.address)
    return scan([target], settings, lab_policy())[0]


@pytest.mark.dovecot
@pytest.mark.parametrize("entry", ["pop3s", "stls"])
def test_dovecot_accepts_the_monitor_over_pop3s_else_after_stls(
    emulated: Emulated, dovecot_with_monitor: Dovecot, entry: str
) -> None:
    # With the POP3S port closed, the login goes through STLS on the POP3 port.
    closed = free_port(DOVECOT_HOST) if entry == "stls" else None
    report = scan_dovecot(emulated, dovecot_with_monitor, MONITOR, pop3s_port=closed)
    assert check_of(report, "pop3.tls_login").status == "pass"
    login = report.endpoints[0].tls_login
    assert login is not None
    assert (login.entry, login.mechanism, login.reply) == (entry, "USER/PASS", "+OK Logged in.")


@pytest.mark.dovecot
def test_dovecot_rejects_a_wrong_password_after_its_delay(
    emulated: Emulated, dovecot_with_monitor: Dovecot
) -> None:
    # Dovecot answers a failed login only after auth_failure_delay (2 s); the 5 s timeout
    # leaves time for that, so this is a rejection, not a timeout.
    report = scan_dovecot(emulated, dovecot_with_monitor, Credentials(USER, "stale-password"))
    check = check_of(report, "pop3.tls_login")
    assert check.status == "fail"
    assert "“-ERR [AUTH] Authentication failed.”" in check.summary


# --- The command line ---------------------------------------------------------------------------


def run_cli(emulated: Emulated, server: BoundEndpoint, env: dict[str, str], *extra: str) -> Any:
    command = [
        sys.executable, "-m", "scanner", server.address, "--name", SERVICE_NAME,
        "--pop3-port", str(server.pop3_port), "--pop3s-port", str(server.pop3s_port),
        "--resolver", emulated.dns_server.address, "--timeout", "3", *extra,
    ]  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if k != "POPC_LOGIN_PASSWORD"}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env={**clean, **env})


def test_the_cli_logs_in_with_the_password_from_the_environment(
    emulated: Emulated, tmp_path: Any
) -> None:
    from pop3lab.certs import root_ca_pem

    ca_file = tmp_path / "lab-root.pem"
    ca_file.write_bytes(root_ca_pem())
    server = emulated.start(EXCHANGE)
    env = {"POPC_LOGIN_PASSWORD": PASSWORD}
    result = run_cli(
        emulated, server, env, "--login-user", USER, "--ca-file", str(ca_file), "--json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    [check] = [check for check in report["checks"] if check["id"] == "pop3.tls_login"]
    assert check["status"] == "pass"
    assert report["endpoints"][0]["tls_login"]["accepted"] is True
    assert PASSWORD not in result.stdout + result.stderr


def test_the_cli_refuses_a_login_user_without_the_password_variable(emulated: Emulated) -> None:
    server = emulated.start(EXCHANGE)
    result = run_cli(emulated, server, {}, "--login-user", USER)
    assert result.returncode == 2
    assert "POPC_LOGIN_PASSWORD" in result.stderr
    assert server.journal.connections == []
