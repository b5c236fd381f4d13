"""Hostile IMAP4 and SMTP submission servers (pop3lab.hostile in each protocol): each scan ends
within its deadline, holds a bounded amount of memory, says what went wrong in words an
operator understands, and never counts the server as compliant."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from pop3lab.hostile import HostileConfig
from scanner import ScanReport, Settings, Target
from scanner._probe import scan
from tests.conftest import SERVICE_NAME, Emulated, check_of, lab_policy

TIMEOUT = 1.5
# The three probes of one protocol's doors run side by side, each within TIMEOUT; after a
# failed TLS handshake we listen up to 2 s more for what the server says in the clear.
DEADLINE = TIMEOUT + 2.0 + 1.0
# A scan may hold lines and records of a few KB, never what a hostile server sends.
MEMORY_CEILING = 4 * 1024 * 1024
PROTOCOLS = ("imap", "submission")
PLAINTEXT_CHECK = {"imap": "imap.plaintext_login", "submission": "submission.plaintext_auth"}


def hostile_target(endpoint, protocols: tuple[str, ...]) -> Target:
    """The endpoint's target declaring `protocols`; a listener that is off gets port 9,
    where nothing listens."""
    ports = {f"{service}_port": endpoint.port(service) or 9 for service in ("imap", "imaps")}
    ports |= {
        f"{service}_port": endpoint.port(service) or 9 for service in ("submission", "submissions")
    }
    return Target(
        endpoint.address,
        service_name=SERVICE_NAME,
        pop3_port=endpoint.pop3_port or 9,
        pop3s_port=endpoint.pop3s_port or 9,
        protocols=protocols,
        **ports,
    )


def scan_hostile(
    emulated: Emulated, config: HostileConfig, protocols: tuple[str, ...]
) -> tuple[ScanReport, int]:
    """Scan `config` declaring `protocols`, within DEADLINE; the report and the peak of memory
    the scan allocated (the lab's behaviours, in this process too, stream what they send)."""
    endpoint = emulated.start(config)
    settings = Settings(timeout=TIMEOUT, resolver=emulated.dns_server.address)
    tracemalloc.start()
    started = time.monotonic()
    try:
        report = scan([hostile_target(endpoint, protocols)], settings, lab_policy())[0]
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < DEADLINE, f"{config.behaviour}: scan took {elapsed:.1f} s"
    assert report.compliant is not True
    return report, peak


def scan_one(emulated: Emulated, behaviour: str, protocol: str) -> ScanReport:
    """`behaviour` on both ports of `protocol`, the only protocol the target declares."""
    ports = {"pop3": False, "pop3s": False, protocol: True, f"{protocol}s": True}
    config = HostileConfig(behaviour, **ports)  # type: ignore[arg-type]
    report, peak = scan_hostile(emulated, config, (protocol,))
    assert peak < MEMORY_CEILING, f"{behaviour} on {protocol}: held {peak} bytes"
    return report


BROKEN_REPLIES = [
    ("no_banner", "greeting: no answer within 1.5 s"),
    ("slow_banner", "greeting: no answer within 1.5 s"),
    ("endless_line", "greeting: reply line longer than 4096 bytes"),
    ("huge_line", "greeting: reply line longer than 4096 bytes"),
    ("close_after_banner", "the server closed the connection without replying"),
    ("garbage", {"imap": "the greeting is not IMAP", "submission": "the reply is not SMTP"}),
    (
        "huge_capabilities",
        {
            "imap": "reply to CAPABILITY: reply line longer than 4096 bytes",
            "submission": "reply to EHLO: reply line longer than 4096 bytes",
        },
    ),
    (
        "endless_capabilities",
        {
            "imap": "reply to CAPABILITY: untagged data longer than 65536 bytes",
            "submission": "reply to EHLO: reply longer than 65536 bytes",
        },
    ),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("behaviour", "reasons"), BROKEN_REPLIES)
def test_a_broken_cleartext_port_is_an_error_with_a_reason(emulated, protocol, behaviour, reasons):
    reason = reasons if isinstance(reasons, str) else reasons[protocol]
    report = scan_one(emulated, behaviour, protocol)
    facts = getattr(report.endpoints[0], protocol)
    assert facts.plaintext_login == "unknown"
    assert reason in (facts.error or "")
    check = check_of(report, PLAINTEXT_CHECK[protocol])
    assert check.status == "error"
    assert reason in check.summary


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("behaviour", ["no_banner", "slow_banner"])
def test_a_silent_server_leaves_both_doors_undetermined(emulated, protocol, behaviour):
    report = scan_one(emulated, behaviour, protocol)
    for check_id in (f"{protocol}.starttls", f"{protocol}s.available"):
        check = check_of(report, check_id)
        assert check.status == "error", check_id
        assert "no answer within 1.5 s" in check.summary


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_garbage_after_starttls_fails_the_upgrade(emulated, protocol):
    report = scan_one(emulated, "stls_garbage", protocol)
    check = check_of(report, f"{protocol}.starttls")
    assert check.status == "fail"
    assert "STARTTLS on port" in check.summary
    assert "the server did not answer with TLS" in check.summary
    # The dialogue before the upgrade was real enough for the login probe to conclude.
    assert check_of(report, PLAINTEXT_CHECK[protocol]).status == "pass"


@pytest.mark.parametrize(
    ("protocol", "refusal"),
    [
        ("imap", "BAD Command received in Invalid state."),
        ("submission", "454 4.7.0 TLS not available due to temporary reason"),
    ],
)
def test_starttls_listed_then_refused_fails_and_quotes_the_refusal(emulated, protocol, refusal):
    report = scan_one(emulated, "stls_refused", protocol)
    check = check_of(report, f"{protocol}.starttls")
    assert check.status == "fail"
    assert refusal in check.summary


# --- NTLM: each port lists NTLM before TLS and answers the NEGOTIATE with a broken CHALLENGE.

NTLM_PORTS = {"pop3": True, "imap": True, "submission": True}
NO_TLS_PORTS = {"pop3s": False, "imaps": False, "submissions": False}


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("ntlm_not_base64", "reply to the NTLM NEGOTIATE: the challenge is not base64"),
        ("ntlm_truncated", "the NTLM challenge's target info lies outside the message"),
        ("ntlm_absurd_offsets", "the NTLM challenge's target name lies outside the message"),
        ("ntlm_huge", "reply to the NTLM NEGOTIATE: reply line longer than 4096 bytes"),
    ],
)
def test_a_broken_ntlm_challenge_is_an_error_on_every_protocol(emulated, behaviour, reason):
    config = HostileConfig(behaviour, **NTLM_PORTS, **NO_TLS_PORTS)
    report, peak = scan_hostile(emulated, config, ("pop3", "imap", "submission"))
    assert peak < MEMORY_CEILING, f"{behaviour}: held {peak} bytes"
    endpoint = report.endpoints[0]
    assert sorted(facts.protocol for facts in endpoint.ntlm) == ["imap", "pop3", "submission"]
    for facts in endpoint.ntlm:
        assert (facts.outcome, facts.challenge) == ("protocol_error", None), facts.protocol
        assert reason in (facts.error or ""), facts.protocol
    check = check_of(report, "auth.ntlm_disclosure")
    assert check.status == "error"
    assert "could not read the NTLM challenge" in check.summary and reason in check.summary
    # The dialogues reached NTLM as a real server's would: every login probe concluded.
    for check_id in ("pop3.plaintext_login", *PLAINTEXT_CHECK.values()):
        assert check_of(report, check_id).status == "pass", check_id
