"""Evidence: each probe connection's conversation kept in the scan's facts, bounded and with
secrets redacted, each check naming what it rests on, and the server page showing it.

The recorder's rules alone (no network), then real scans: the emulator as a leaky Exchange on
all three protocols, hostile servers, and a real Dovecot with the monitoring account, whose
secrets must appear nowhere in the stored facts nor on the page."""

from __future__ import annotations

import base64
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pop3lab.config import EndpointConfig
from pop3lab.hostile import HostileConfig
from popcompliance.compliance.models import CheckState, ScanRun
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.dashboard.detail import CheckRow, with_evidence
from popcompliance.inventory.models import Server
from scanner import Settings, evidence_for, report_to_dict
from scanner._probe import scan
from scanner._transcript import (
    MAX_CHARS,
    MAX_LINES,
    MAX_TEXT,
    REDACTED,
    Transcript,
    redacted_command,
)
from tests.conftest import Emulated, lab_policy, lab_server
from tests.dovecot import Dovecot, DovecotConfig, DovecotFactory
from tests.test_dashboard_protocols import scanned_on_every_door, section
from tests.test_docs import documented_keys
from tests.test_hostile_mail import hostile_target

# --- The recorder's rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("USER popcompliance-probe-0123456789ab", "USER popcompliance-probe-0123456789ab"),
        ("USER alice", f"USER {REDACTED}"),
        ("PASS hunter2 with spaces", f"PASS {REDACTED}"),
        (
            "p2 LOGIN popcompliance-probe-0123456789ab not-a-password-0123456789ab",
            f"p2 LOGIN popcompliance-probe-0123456789ab {REDACTED}",
        ),
        ("p3 login alice secret", f"p3 login {REDACTED}"),
        ("AUTH PLAIN", "AUTH PLAIN"),
        ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", f"AUTH PLAIN {REDACTED}"),
        ("p1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==", f"p1 AUTHENTICATE PLAIN {REDACTED}"),
        ("EHLO popcompliance-probe.invalid", "EHLO popcompliance-probe.invalid"),
        ("CAPA", "CAPA"),
    ],
)
def test_a_command_carrying_credentials_keeps_its_verb_and_loses_its_arguments(sent, stored):
    assert redacted_command(sent) == stored


def test_a_line_marked_secret_keeps_no_argument_not_even_a_probe_word():
    assert redacted_command("USER popcompliance-probe-x", secret=True) == f"USER {REDACTED}"
    assert redacted_command("AGFsaWNlAHNlY3JldA==", secret=True) == REDACTED


def test_answers_to_a_sasl_challenge_are_redacted_but_the_cancel_is_kept():
    transcript = Transcript("127.0.0.1", "submission", 587, "ntlm")
    for received, sent in [(b"334 \r\n", "TlRMTVNTUAABAAAAB4IIog=="), (b"334 Tl==\r\n", "*")]:
        transcript.received(received)
        transcript.sent(sent)
    transcript.received(b"+ more\r\n")  # POP3's and IMAP's continuation
    transcript.sent("YWxpY2U=")
    assert transcript.facts("x").lines == (
        "S: 334 ",
        f"C: {REDACTED}",
        "S: 334 Tl==",
        "C: *",
        "S: + more",
        f"C: {REDACTED}",
    )


def test_concealed_secrets_are_replaced_wherever_the_server_echoes_them():
    transcript = Transcript("127.0.0.1", "pop3s", 995, "monitor")
    transcript.conceal("s3cret-pw", "monitor-alice")
    transcript.received(b"-ERR no such user monitor-alice with s3cret-pw\r\n")
    transcript.note("stopped: reply to PASS: monitor-alice")
    assert transcript.facts("x").lines == (
        f"S: -ERR no such user {REDACTED} with {REDACTED}",
        f"N: stopped: reply to PASS: {REDACTED}",
    )


def test_a_transcript_is_bounded_in_lines_line_length_and_characters():
    transcript = Transcript("127.0.0.1", "imap", 143, "login")
    transcript.received(b"* OK " + b"x" * 10_000 + b"\x1b[31m\r\n")
    for number in range(1000):
        transcript.received(f"* CAPABILITY line {number}\r\n".encode())
    lines = transcript.facts("x").lines
    assert len(lines) == MAX_LINES + 1
    assert all(len(line) <= len("S: ") + MAX_TEXT + 1 for line in lines)
    assert lines[0].endswith("…") and "\x1b" not in "".join(lines)
    assert sum(len(line) for line in lines[:-1]) <= MAX_CHARS + MAX_LINES * len("S: ")
    assert re.fullmatch(r"N: 96\d more lines not kept .*", lines[-1])


# --- The accessor on stored facts -------------------------------------------------------------

FACTS = {
    "transcripts": {
        "10.0.0.1/pop3/login": {
            "address": "10.0.0.1",
            "door": "pop3",
            "port": 110,
            "purpose": "login",
            "lines": ["S: +OK hi", "C: USER popcompliance-probe-1", "S: +OK"],
        },
        "10.0.0.1/pop3s/implicit": {
            "address": "10.0.0.1",
            "door": "pop3s",
            "port": 995,
            "purpose": "implicit",
            "lines": ["N: TLS handshake: TLSv1.3 X, certificate CN=a", "S: +OK hi"],
        },
        "10.0.0.2/pop3s/implicit": {
            "address": "10.0.0.2",
            "door": "pop3s",
            "port": 995,
            "purpose": "implicit",
            "lines": ["N: TLS handshake failed: reset"],
        },
    }
}


def test_evidence_for_a_login_check_is_its_conversation_introduced_by_a_note():
    assert evidence_for(FACTS, "pop3.plaintext_login", "10.0.0.1") == [
        {"direction": "note", "text": "10.0.0.1 port 110 (POP3): the login probe, before TLS"},
        {"direction": "received", "text": "+OK hi"},
        {"direction": "sent", "text": "USER popcompliance-probe-1"},
        {"direction": "received", "text": "+OK"},
    ]


def test_evidence_for_a_certificate_check_is_the_handshake_lines_of_the_address():
    assert [line["text"] for line in evidence_for(FACTS, "cert.trusted", "10.0.0.1")] == [
        "10.0.0.1 port 995 (POP3S): implicit TLS",
        "TLS handshake: TLSv1.3 X, certificate CN=a",
    ]
    every_address = evidence_for(FACTS, "tls.protocols", None)
    assert every_address[-1]["text"] == "TLS handshake failed: reset"


def test_evidence_for_a_check_without_a_conversation_or_an_older_report_is_empty():
    assert evidence_for(FACTS, "dns.srv", None) == []
    assert evidence_for(FACTS, "pop3.plaintext_login", "10.0.0.2") == []
    assert evidence_for({"checks": []}, "pop3.plaintext_login", "10.0.0.1") == []
    assert evidence_for(None, "pop3.plaintext_login", "10.0.0.1") == []


def test_the_server_page_shows_evidence_only_from_the_location_that_saw_the_state():
    run = ScanRun(location="default", facts=FACTS)
    rows = [
        CheckRow(
            "pop3.plaintext_login",
            "t",
            CheckState(check_id="pop3.plaintext_login", address="10.0.0.1", location=place),
            [],
        )
        for place in ("default", "dmz")
    ]
    here, elsewhere = with_evidence(rows, run)
    assert [line["text"] for line in here.evidence][1:] == [
        "+OK hi",
        "USER popcompliance-probe-1",
        "+OK",
    ]
    assert elsewhere.evidence == []


# --- Real scans of the emulator ---------------------------------------------------------------

# Exchange taking passwords before TLS on all three protocols, with NTLM.
LEAKY = EndpointConfig(
    "exchange2016",
    "PlainTextLogin",
    imap_login_type="PlainTextLogin",
    submission_auth=("Tls", "Integrated", "BasicAuth"),
    imap=True,
    imaps=True,
    submission=True,
    submissions=True,
)


def scan_all_doors(emulated: Emulated, config: EndpointConfig | HostileConfig) -> dict:
    endpoint = emulated.start(config)
    target = hostile_target(endpoint, ("pop3", "imap", "submission"))
    settings = Settings(timeout=3, resolver=emulated.dns_server.address)
    return report_to_dict(scan([target], settings, lab_policy())[0])


def texts(facts: dict, check_id: str, address: str) -> list[str]:
    return [line["text"] for line in evidence_for(facts, check_id, address)]


def test_every_check_names_transcripts_the_report_holds(emulated):
    facts = scan_all_doors(emulated, LEAKY)
    address = facts["addresses"][0]
    doors = {(t["door"], t["purpose"]) for t in facts["transcripts"].values()}
    for protocol in ("pop3", "imap", "submission"):
        assert {(protocol, "login"), (protocol, "upgrade"), (protocol, "ntlm")} <= doors
        assert (f"{protocol}s", "implicit") in doors
    for check in facts["checks"]:
        assert set(check["evidence"]) <= set(facts["transcripts"]), check["id"]
        # DNS has no conversation, and without credentials there was no monitoring login.
        without = check["id"].startswith("dns.") or check["id"] == "pop3.tls_login"
        assert bool(check["evidence"]) != without, check["id"]
    by_id = {check["id"]: check["evidence"] for check in facts["checks"]}
    assert by_id["pop3.plaintext_login"] == [f"{address}/pop3/login"]
    assert by_id["submissions.available"] == [f"{address}/submissions/implicit"]
    assert len(by_id["tls.protocols"]) == 6  # both TLS entry points of each protocol


def test_the_login_checks_rest_on_what_crossed_before_tls(emulated):
    facts = scan_all_doors(emulated, LEAKY)
    address = facts["addresses"][0]
    pop3 = texts(facts, "pop3.plaintext_login", address)
    assert pop3[1] == "+OK The Microsoft Exchange POP3 service is ready."
    assert any(re.fullmatch(r"USER popcompliance-probe-[0-9a-f]{12}", text) for text in pop3)
    imap = texts(facts, "imap.plaintext_login", address)
    assert imap[imap.index("p2 AUTHENTICATE PLAIN") + 1 :][:2] == ["+ ", "*"]
    submission = texts(facts, "submission.plaintext_auth", address)
    assert submission[submission.index("AUTH LOGIN") + 1].startswith("334 VXNlcm5hbWU6")
    ntlm = texts(facts, "auth.ntlm_disclosure", address)
    assert ntlm.count(REDACTED) == 3  # the NEGOTIATE we sent, on each protocol
    assert all(not text.startswith("TlRMTVNTUAAB") for text in ntlm)


def test_tls_and_certificate_checks_rest_on_the_handshake_lines(emulated):
    facts = scan_all_doors(emulated, LEAKY)
    lines = evidence_for(facts, "cert.name", facts["addresses"][0])
    assert {line["direction"] for line in lines} == {"note"}
    handshakes = [line["text"] for line in lines if line["text"].startswith("TLS handshake")]
    assert len(handshakes) == 6 == len(lines) / 2  # each introduced by the connection's name
    assert all(re.match(r"TLS handshake: TLSv1\.[23] \S+, certificate CN=", t) for t in handshakes)


def test_the_transcript_keys_are_documented_in_their_order(emulated):
    facts = scan_all_doors(emulated, LEAKY)
    first = next(iter(facts["transcripts"].values()))
    assert documented_keys("### transcript") == list(first)


# Exchange's secure default on all three protocols (nothing before TLS, no NTLM there).
SECURE = EndpointConfig(
    "exchange2016", imap=True, imaps=True, submission=True, submissions=True, ntlm=False
)


@pytest.mark.parametrize(("config", "ceiling"), [(SECURE, 8), (LEAKY, 9)], ids=["secure", "leaky"])
def test_transcripts_add_a_few_kilobytes_to_a_three_protocol_scan(emulated, config, ceiling):
    facts = scan_all_doors(emulated, config)
    with_them = len(json.dumps(facts))
    without = {key: value for key, value in facts.items() if key != "transcripts"}
    for check in without["checks"]:
        del check["evidence"]
    growth = with_them - len(json.dumps(without))
    print(f"\nfacts {with_them} bytes, {growth} bytes of them evidence")
    assert growth < ceiling * 1024


# --- Hostile servers: bounded -----------------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["endless_capabilities", "huge_capabilities", "huge_line"])
def test_a_hostile_server_cannot_bloat_the_transcripts(emulated, behaviour):
    ports = {door: True for door in ("imap", "imaps", "submission", "submissions")}
    facts = scan_all_doors(emulated, HostileConfig(behaviour, interval=0.01, **ports))
    transcripts = facts["transcripts"]
    assert {t["door"] for t in transcripts.values()} >= {"imap", "submission"}
    for transcript in transcripts.values():
        lines = transcript["lines"]
        # The conversation's cap, and a few notes of ours (a handshake, an error, the count).
        assert len(lines) <= MAX_LINES + 3
        assert all(len(line) <= len("S: ") + MAX_TEXT + 1 for line in lines)
        assert len(json.dumps(transcript)) < MAX_CHARS + 3 * MAX_TEXT + MAX_LINES * 8 + 200


def test_a_tls_port_answering_in_the_clear_shows_the_failed_handshake_and_what_it_said(emulated):
    facts = scan_all_doors(emulated, HostileConfig("non_tls_on_tls_port", interval=0.01))
    lines = texts(facts, "pop3s.available", facts["addresses"][0])
    assert lines[1].startswith("TLS handshake failed: ")
    assert lines[2].startswith("in the clear, the port said “+OK The Microsoft Exchange POP3")


# --- Stored and shown: a real Dovecot with the monitoring account ------------------------------

USER = "evidence-monitor-7f3a"
PASSWORD = "Evidence-Pw-91c2e8"
PLAIN = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
SECRETS = (PASSWORD, base64.b64encode(PASSWORD.encode()).decode(), PLAIN)


@pytest.fixture(scope="module")
def leaky_dovecot(dovecot_factory: DovecotFactory) -> Dovecot:
    """POP3 and IMAP4 taking passwords before TLS, the monitoring account in its passwd-file."""
    config = DovecotConfig(
        disable_plaintext_auth=False, accounts=((USER, PASSWORD),), protocols=("pop3", "imap")
    )
    return dovecot_factory(config)


@pytest.fixture
def dovecot_server(db, leaky_dovecot, lab_dns, settings) -> Server:
    settings.POPC_DNS_RESOLVER = lab_dns.address
    imap, imaps = leaky_dovecot.ports["imap"]
    server = lab_server(
        "dovecot01",
        leaky_dovecot.host,
        leaky_dovecot.pop3_port,
        leaky_dovecot.pop3s_port,
        protocols="pop3,imap",
        imap_port=imap,
        imaps_port=imaps,
        monitor_username=USER,
    )
    server.set_monitor_password(PASSWORD, timezone.now())
    server.save()
    reports = scan_servers([Server.objects.select_related("policy").get(pk=server.pk)])
    record_report(server.pk, reports[server.pk], purpose="manual")
    return server


def transcripts_in(page: str) -> str:
    return "\n".join(re.findall(r'<pre class="transcript".*?</pre>', page, re.DOTALL))


@pytest.mark.dovecot
@pytest.mark.django_db
def test_no_monitoring_secret_is_stored_or_shown(viewer, dovecot_server):
    facts = ScanRun.objects.get(server=dovecot_server).facts
    stored = json.dumps(facts)
    assert facts["endpoints"][0]["tls_login"]["accepted"] is True  # the login did happen
    for secret in (*SECRETS, USER):
        assert secret not in stored
    page = viewer.get(dovecot_server.get_absolute_url()).content.decode()
    for secret in SECRETS:
        assert secret not in page
    shown = transcripts_in(page)
    assert USER not in shown
    # The page names the account once, in its header ("login test as …"), and nowhere else.
    assert page.count(USER) == 1


@pytest.mark.dovecot
@pytest.mark.django_db
def test_the_monitoring_login_is_shown_redacted_and_the_probe_cancelled(viewer, dovecot_server):
    facts = ScanRun.objects.get(server=dovecot_server).facts
    address = facts["addresses"][0]
    login = texts(facts, "pop3.tls_login", address)
    assert login[1].startswith("TLS handshake: TLSv1.3")
    sent = login.index("USER [redacted]")
    assert login[sent:] == [
        "USER [redacted]",
        "+OK",
        "PASS [redacted]",
        "+OK Logged in.",
        "QUIT",
        "+OK Logging out.",
    ]
    imap = texts(facts, "imap.plaintext_login", address)
    assert imap[1].startswith("* OK [CAPABILITY") and "Dovecot" in imap[1]
    cancelled = imap.index("p2 AUTHENTICATE PLAIN")
    assert imap[cancelled + 1 : cancelled + 3] == ["+ ", "*"]
    page = viewer.get(dovecot_server.get_absolute_url()).content.decode()
    shown = transcripts_in(page)
    assert 'C: USER <span class="redacted">[redacted]</span>' in shown
    assert "C: p2 AUTHENTICATE PLAIN" in shown
    assert re.search(r"S: \+OK Dovecot( \(Debian\))? ready\.", shown)


# --- The server page: what anyone on the same Wi-Fi sees ----------------------------------------


@pytest.fixture
def leaky_exchange(emulated, lab_dns, settings) -> Server:
    settings.POPC_DNS_RESOLVER = lab_dns.address
    return scanned_on_every_door("exchange04", emulated.start(LEAKY))


def evidence_of(page: str, check_id: str) -> str:
    row = re.search(rf'<tr id="check-{re.escape(check_id)}">.*?</tr>', page, re.DOTALL)
    assert row, check_id
    found = re.search(r'<details class="evidence".*?</details>', row.group(0), re.DOTALL)
    assert found, f"no evidence under {check_id}"
    return found.group(0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("check_id", "said"),
    [
        (
            "pop3.plaintext_login",
            r"C: USER popcompliance-probe-[0-9a-f]{12}</span>\s*"
            r"<span class=\"line-received\">S: \+OK",
        ),
        (
            "imap.plaintext_login",
            r"C: p2 AUTHENTICATE PLAIN</span>\s*<span class=\"line-received\">S: \+ </span>",
        ),
        (
            "submission.plaintext_auth",
            r"C: AUTH LOGIN</span>\s*<span class=\"line-received\">S: 334 VXNlcm5hbWU6",
        ),
    ],
)
def test_a_plaintext_finding_shows_what_anyone_on_the_same_wifi_sees(
    viewer, leaky_exchange, check_id, said
):
    page = viewer.get(leaky_exchange.get_absolute_url()).content.decode()
    evidence = evidence_of(page, check_id)
    assert evidence.startswith('<details class="evidence" open>')
    assert "<summary>What anyone on the same Wi-Fi sees</summary>" in evidence
    assert re.search(said, evidence), evidence


@pytest.mark.django_db
def test_other_checks_show_their_evidence_closed_and_dns_none(viewer, leaky_exchange):
    page = viewer.get(leaky_exchange.get_absolute_url()).content.decode()
    upgrade = evidence_of(page, "imap.starttls")
    assert "Evidence: what we sent and what the server answered" in upgrade
    assert "C: p1 STARTTLS" in upgrade and "# TLS handshake: TLSv1." in upgrade
    assert "TLS handshake" in evidence_of(page, "cert.trusted")
    dns = re.search(r'<tr id="check-dns.srv">.*?</tr>', section(page, "dns"), re.DOTALL)
    assert dns and "evidence" not in dns.group(0)


@pytest.mark.django_db
def test_an_unchanged_rescan_of_three_protocols_writes_no_state_and_no_change(leaky_exchange):
    server = Server.objects.select_related("policy").get(pk=leaky_exchange.pk)
    for _ in range(2):  # the first rescan confirms nothing new: the findings are settled
        reports = scan_servers([server])
        with CaptureQueriesContext(connection) as queries:
            recorded = record_report(server.pk, reports[server.pk], purpose="scheduled")
        assert recorded.changes == []
        written = [
            q["sql"]
            for q in queries.captured_queries
            if re.match(r"\s*(INSERT|UPDATE)", q["sql"])
            and re.search(r'"compliance_(checkstate|change)"', q["sql"])
        ]
        assert written == []
    runs = ScanRun.objects.filter(server=leaky_exchange).order_by("pk")
    first, last = runs.first().facts, runs.last().facts
    assert first["transcripts"] != last["transcripts"]  # new random probe names each scan
    assert [c["summary"] for c in first["checks"]] == [c["summary"] for c in last["checks"]]
