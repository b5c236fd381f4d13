"""A small fleet with a known state for the report tests: what the as-of layer reads (servers,
their settled check states, certificates and daily snapshots), written as the pipeline would.

- `ok` (site paris, tag exchange): every check passes; serves a certificate expiring in 20 days.
- `leaky` (site paris, tag exchange): accepts a POP3 password in the clear on one address,
  and its certificate is untrusted.
- `shaky` (site london): a check could not be determined.
- `fresh` (site london): never scanned yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from popcompliance.compliance.models import (
    Certificate,
    CertificateSighting,
    Change,
    CheckState,
    FleetSnapshot,
)
from popcompliance.inventory.models import Policy, Server, ServerStatus, Tag

PLAINTEXT_SUMMARY = "the POP3 port accepted USER before STLS on 192.0.2.11"
PLAINTEXT_FIX = "Set-PopSettings -LoginType SecureLogin"
TRUST_SUMMARY = "the chain does not validate: unknown issuer"


@dataclass(frozen=True)
class Fleet:
    ok: Server
    leaky: Server
    shaky: Server
    fresh: Server
    since: datetime


def _server(name: str, site: str, status: str, policy: Policy, now: datetime) -> Server:
    scanned = None if status == ServerStatus.NEW else now - timedelta(minutes=5)
    return Server.objects.create(
        name=name,
        host=f"{name}.example.test",
        site=site,
        status=status,
        policy=policy,
        last_scan_at=scanned,
    )


def _state(server: Server, check_id: str, status: str, since: datetime, **fields: str) -> None:
    """The settled state, and the history row recording would have written: a first
    observation is a Change only when it is not a pass."""
    values = {
        "server": server,
        "check_id": check_id,
        "status": status,
        "summary": fields.get("summary", f"{check_id} {status}"),
        "remediation": fields.get("remediation", ""),
        "address": fields.get("address", ""),
    }
    CheckState.objects.create(since=since, **values)
    if status != "pass":
        Change.objects.create(previous_status="", created_at=since, alerted_at=since, **values)


def make_fleet(now: datetime) -> Fleet:
    policy = Policy.default()
    since = now - timedelta(days=3)
    ok = _server("ok", "paris", ServerStatus.COMPLIANT, policy, now)
    leaky = _server("leaky", "paris", ServerStatus.NON_COMPLIANT, policy, now)
    shaky = _server("shaky", "london", ServerStatus.UNKNOWN, policy, now)
    fresh = _server("fresh", "london", ServerStatus.NEW, policy, now)
    exchange = Tag.objects.create(name="exchange")
    ok.tags.add(exchange)
    leaky.tags.add(exchange)
    for server in (ok, leaky, shaky):
        _state(server, "pop3s.available", "pass", since)
    leaky_fields = {"summary": PLAINTEXT_SUMMARY, "remediation": PLAINTEXT_FIX}
    _state(leaky, "pop3.plaintext_login", "fail", since, address="192.0.2.11", **leaky_fields)
    _state(leaky, "pop3.plaintext_login", "pass", since, address="192.0.2.12")
    _state(leaky, "cert.trusted", "fail", since, summary=TRUST_SUMMARY, remediation="Renew it.")
    _state(shaky, "pop3.stls", "error", since, summary="timed out")
    _certificate(ok, now, expires_in=timedelta(days=20))
    _snapshots(now.date())
    return Fleet(ok, leaky, shaky, fresh, since)


def _certificate(server: Server, now: datetime, expires_in: timedelta) -> None:
    certificate = Certificate.objects.create(
        fingerprint_sha256="ab" * 32,
        subject="CN=ok.example.test",
        issuer="CN=Example CA",
        common_name="ok.example.test",
        serial="01",
        not_before=now - timedelta(days=300),
        not_after=now + expires_in,
        key_type="RSA",
        key_bits=2048,
        self_signed=False,
        pem="",
        first_seen_at=now - timedelta(days=60),
        last_seen_at=now,
    )
    CertificateSighting.objects.create(
        certificate=certificate,
        server=server,
        address="192.0.2.10",
        port=995,
        first_seen_at=now - timedelta(days=60),
        last_seen_at=now,
    )


def _snapshots(today: date) -> None:
    for back in range(10):
        FleetSnapshot.objects.create(
            day=today - timedelta(days=back),
            total=4,
            compliant=1 + back % 2,
            non_compliant=1,
            unknown=1,
            new=1,
            taken_at=datetime.combine(today, time.min, tzinfo=UTC),
        )
