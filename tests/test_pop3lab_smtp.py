"""The emulator's SMTP submission: Exchange's Client Frontend connector for each AuthMechanism,
and the generic and Dovecot-like refusals, spoken to with raw lines and with smtplib."""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pop3lab import EndpointConfig, LabThread
from pop3lab.config import SERVICES
from tests.lab_client import LineClient, serve, trusting

PASSWORD = "s3cret-lab-password"
BANNER = re.compile(
    r"220 exch01\.contoso\.local Microsoft ESMTP MAIL Service ready at "
    r"[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}"
)


def exchange(
    auth: str = "Tls,Integrated,BasicAuth,BasicAuthRequireTLS", **kwargs: Any
) -> EndpointConfig:
    return EndpointConfig(submission=True, submissions=True, submission_auth=auth, **kwargs)


def ehlo(client: LineClient) -> list[str]:
    client.send("EHLO client.example.test")
    return client.until("250 ")


def greeted(lab: LabThread, config: EndpointConfig) -> LineClient:
    endpoint = serve(lab, config)
    client = LineClient(endpoint.address, endpoint.submission_port)
    client.line()
    return client


def test_exchange_banner_names_the_server(lab: LabThread) -> None:
    endpoint = serve(lab, exchange())
    with LineClient(endpoint.address, endpoint.submission_port) as client:
        assert BANNER.fullmatch(client.line())


def test_exchange_ehlo_before_tls_offers_no_password_under_require_tls(lab: LabThread) -> None:
    with greeted(lab, exchange()) as client:
        assert ehlo(client) == [
            "250-exch01.contoso.local Hello [127.0.0.1]",
            "250-SIZE 37748736",
            "250-PIPELINING",
            "250-DSN",
            "250-ENHANCEDSTATUSCODES",
            "250-STARTTLS",
            "250-AUTH GSSAPI NTLM",
            "250-8BITMIME",
            "250-BINARYMIME",
            "250-CHUNKING",
            "250 SMTPUTF8",
        ]


def test_exchange_offers_login_after_starttls(lab: LabThread) -> None:
    with greeted(lab, exchange()) as client:
        ehlo(client)
        assert client.ask("STARTTLS") == "220 2.0.0 SMTP server ready"
        client.starttls()
        lines = ehlo(client)
        assert "250-AUTH GSSAPI NTLM LOGIN" in lines and "250-STARTTLS" not in lines


@pytest.mark.parametrize(
    ("auth", "mechanism", "reply"),
    [
        (
            "Tls,Integrated,BasicAuth,BasicAuthRequireTLS",
            "LOGIN",
            "504 5.7.4 Unrecognized authentication type",
        ),
        (
            "Tls,Integrated,BasicAuth,BasicAuthRequireTLS",
            "PLAIN",
            "504 5.7.4 Unrecognized authentication type",
        ),
        ("Tls,Integrated,BasicAuth", "LOGIN", "334 VXNlcm5hbWU6"),
        ("Tls,Integrated,BasicAuth", "PLAIN", "504 5.7.4 Unrecognized authentication type"),
        ("Tls,Integrated", "NTLM", "334 "),
        ("Tls,BasicAuth", "NTLM", "504 5.7.4 Unrecognized authentication type"),
    ],
)
def test_exchange_auth_before_tls_follows_the_auth_mechanism(
    lab: LabThread, auth: str, mechanism: str, reply: str
) -> None:
    with greeted(lab, exchange(auth)) as client:
        ehlo(client)
        assert client.ask(f"AUTH {mechanism}") == reply


def test_exchange_basic_auth_in_the_clear_is_advertised_and_cancels(lab: LabThread) -> None:
    with greeted(lab, exchange("Tls,Integrated,BasicAuth")) as client:
        assert "250-AUTH GSSAPI NTLM LOGIN" in ehlo(client)
        assert client.ask("AUTH LOGIN") == "334 VXNlcm5hbWU6"
        assert client.ask("*") == "501 5.5.4 Authentication cancelled"
        assert client.ask("QUIT") == "221 2.0.0 Service closing transmission channel"
        assert client.at_eof()


def test_exchange_auth_needs_a_hello_first(lab: LabThread) -> None:
    with greeted(lab, exchange()) as client:
        assert client.ask("AUTH NTLM") == "503 5.5.2 Send hello first"
        assert client.ask("EHLO") == "501 5.0.0 EHLO requires domain address"


def test_exchange_without_tls_in_auth_mechanism_has_no_starttls(lab: LabThread) -> None:
    with greeted(lab, exchange("Integrated,BasicAuth")) as client:
        assert "250-STARTTLS" not in ehlo(client)
        assert client.ask("STARTTLS") == "500 5.3.3 Unrecognized command"


def test_exchange_hangs_up_past_its_protocol_error_limit(lab: LabThread) -> None:
    with greeted(lab, exchange()) as client:
        replies = [client.ask("FROB") for _ in range(6)]
        assert replies == ["500 5.3.3 Unrecognized command"] * 5 + [
            "421 4.7.0 Too many errors on this connection, closing transmission channel"
        ]
        assert client.at_eof()


def test_smtplib_logs_in_inside_tls_and_no_password_crosses_before(lab: LabThread) -> None:
    endpoint = serve(lab, exchange(accounts={"alice": PASSWORD}))
    with smtplib.SMTP(endpoint.address, endpoint.submission_port, timeout=5) as client:
        client.starttls(context=trusting(check_name=False))
        assert client.login("alice", PASSWORD) == (235, b"2.7.0 Authentication successful")
    (log,) = endpoint.journal.on("submission")
    assert log.tls_at is not None and PASSWORD.encode() not in log.before_tls
    assert [(a.mechanism, a.tls, a.accepted) for a in endpoint.journal.logins] == [
        ("AUTH LOGIN", True, True)
    ]


def test_a_wrong_password_gets_exchanges_535(lab: LabThread) -> None:
    endpoint = serve(lab, exchange(accounts={"alice": PASSWORD}))
    with (
        smtplib.SMTP_SSL(
            endpoint.address,
            endpoint.submissions_port,
            timeout=5,
            context=trusting(check_name=False),
        ) as client,
        pytest.raises(smtplib.SMTPAuthenticationError) as refused,
    ):
        client.login("alice", "wrong")
    assert refused.value.smtp_code == 535
    assert refused.value.smtp_error == b"5.7.3 Authentication unsuccessful"


def test_implicit_tls_greets_inside_tls(lab: LabThread) -> None:
    endpoint = serve(lab, exchange())
    with LineClient(endpoint.address, endpoint.submissions_port, tls=True) as client:
        assert BANNER.fullmatch(client.line())
        lines = ehlo(client)
        assert "250-AUTH GSSAPI NTLM LOGIN" in lines and "250-STARTTLS" not in lines


def test_implicit_tls_without_a_certificate_just_hangs_up(lab: LabThread) -> None:
    endpoint = serve(lab, exchange(cert_kind=None))
    with LineClient(endpoint.address, endpoint.submissions_port) as client:
        assert client.at_eof()


@pytest.mark.parametrize(
    ("profile", "refusal"),
    [
        ("generic", "530 5.7.0 Must issue a STARTTLS command first"),
        ("dovecot_like", "538 5.7.11 Encryption required for requested authentication mechanism"),
    ],
)
def test_other_servers_refuse_plain_before_tls_in_their_words(
    lab: LabThread, profile: str, refusal: str
) -> None:
    with greeted(lab, exchange(profile=profile)) as client:
        assert not any(line.startswith("250-AUTH") for line in ehlo(client))
        assert client.ask("AUTH PLAIN") == refusal


def test_other_servers_take_plain_in_the_clear_when_allowed(lab: LabThread) -> None:
    with greeted(lab, exchange("Tls,BasicAuth", profile="generic")) as client:
        assert "250-AUTH PLAIN LOGIN" in ehlo(client)
        assert client.ask("AUTH PLAIN") == "334 "
        assert client.ask("*") == "501 5.0.0 Authentication aborted"


def test_invalid_auth_mechanism_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="BasicAuthRequireTLS needs BasicAuth and Tls"):
        EndpointConfig(submission_auth="BasicAuthRequireTLS")
    with pytest.raises(ValueError, match="must be among"):
        EndpointConfig(submission_auth="Tls,Anonymous")


def test_cli_serves_imap_and_submission_on_every_host_of_a_fleet(tmp_path: Path) -> None:
    manifest = tmp_path / "fleet.json"
    args = ["--count", "3", "--base", "127.79.1.1", "--mixed", "--imap", "--submission"]
    for service in SERVICES:
        args += [f"--{service}-port", "0"]
    command = [sys.executable, "-m", "pop3lab", *args, "--manifest", str(manifest)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            while (line := proc.stdout.readline()) and line.strip() != "ready":
                summary = line
            entries = json.loads(manifest.read_text())
            first = entries[0]
            with LineClient(first["address"], first["submission_port"]) as client:
                assert BANNER.fullmatch(client.line())
        finally:
            proc.terminate()
    assert proc.returncode == 0
    assert "imap ephemeral" in summary and "submissions ephemeral" in summary
    assert all(None not in (e["imap_port"], e["imaps_port"], e["submission_port"]) for e in entries)
