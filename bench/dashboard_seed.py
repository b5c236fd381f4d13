"""The fleet bench/dashboard.py measures: 10,000 servers and a year of history, copied from real
scan reports and written with bulk_create. Import it after django.setup().

The templates are real reports: pop3lab's mixed fleet (one endpoint per configuration), one of
its hostile servers (no banner: every check in `error`) and a name that does not resolve, each
scanned once. Every server declares the three client protocols (POP3, IMAP4, SMTP
submission), which every emulated one serves, so the reports carry all their checks and facts.
Every seeded address copies one of them with its own address, name and certificate swapped
in, so CheckState summaries, remediations and ScanRun facts are what the scanner writes.

- Servers over 22 sites with tags and owners: about 70% compliant, 22% non-compliant, 4%
  unknown, 3% paused, 1.5% never scanned; 15% behind two addresses (some with a worse second
  node); one CheckState per address × check, a few confirming a change.
- A year of Changes: most servers none, some a few regressions and their recoveries, 3%
  flapping (20–150 episodes); every failing episode has its Alert, resolved or still open (a
  third of those acknowledged, some acknowledgements expired).
- RUNS_PER_SERVER hourly ScanRuns per scanned server, what the server page's pickers list; the
  newest FACTS_RUNS carry the report's JSON. Production keeps 30 days of runs (720 per server
  at the default interval), all with facts; this keeps the seed near a minute.
- A certificate per site shared by most of its servers, an own one for the others and for every
  odd one (expired, self-signed, wrong name…), and about half of last year's generation, no
  longer served; each seen on every TLS door that served it. 365 daily FleetSnapshots; fresh
  beat and worker heartbeats.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, JSONField, Value
from django.utils import timezone

import scanner
from pop3lab.fleet import MIX, addresses, serving
from pop3lab.hostile import HostileConfig
from pop3lab.lab import LabThread
from popcompliance.accounts.roles import OPERATOR, set_role
from popcompliance.alerts.models import Alert
from popcompliance.compliance.models import (
    Certificate,
    CertificateSighting,
    Change,
    CheckState,
    FleetSnapshot,
    Heartbeat,
    ScanRun,
    ServerAddress,
)
from popcompliance.compliance.recording import settled_status
from popcompliance.inventory.models import Policy, Server, ServerStatus, Tag
from tests.dnsserver import DnsServer

ROOT = Path(__file__).resolve().parent.parent
# The emulated servers the templates come from: loopback addresses of our own, fixed ports.
LAB_BASE, HOSTILE_BASE = "127.1.77.1", "127.1.78.1"
# Each door's lab port and the standard port the templates say instead.
LAB_PORTS = {"pop3": 11110, "pop3s": 19950, "imap": 11143, "imaps": 19930,
             "submission": 11587, "submissions": 11465}  # fmt: skip
STANDARD_PORTS = {"pop3": 110, "pop3s": 995, "imap": 143, "imaps": 993,
                  "submission": 587, "submissions": 465}  # fmt: skip
LAB_NAME = "mail.example.test"
# What every seeded server declares by default; the lab serves all three.
PROTOCOLS = ("pop3", "imap", "submission")
EXTRA_SERVICES = ("imap", "imaps", "submission", "submissions")

SITES = ("ams", "ber", "bru", "cph", "dub", "fra", "ham", "hel", "lis", "lon", "lux", "lyo",
         "mad", "mil", "mun", "osl", "par", "prg", "rom", "sto", "vie", "zrh")  # fmt: skip
TAGS = ("prod", "staging", "dmz", "legacy", "exchange", "dovecot", "customer-a", "customer-b",
        "customer-c", "pci", "hr", "finance", "edge", "migrating", "lab", "critical")  # fmt: skip
# Each template by label, and how often scanned servers copy it (percent, roughly).
WEIGHTS = {
    "exchange2016 SecureLogin": 40, "exchange2013 PlainTextAuthentication": 8,
    "exchange2019 SecureLogin ec256": 6, "exchange2016 SecureLogin expiring_soon": 3,
    "exchange2016 SecureLogin no-pop3": 5, "dovecot_like SecureLogin": 8,
    "exchange2010 PlainTextLogin": 4, "exchange2016 SecureLogin no-cert": 1.5,
    "exchange2016 SecureLogin exchange_self_signed": 2, "exchange2016 SecureLogin expired": 1.5,
    "exchange2016 SecureLogin wrong_name": 2, "exchange2013 SecureLogin TLSv1": 4,
    "exchange2016 SecureLogin missing_intermediate": 2,
    "exchange2010 PlainTextAuthentication sha1": 1, "dovecot_like PlainTextLogin": 2,
    "generic SecureLogin": 1, "no banner (timeouts)": 4, "name does not resolve": 0.5,
}  # fmt: skip
# Certificates a site would not share: each server with one of these has its own.
ODD_CERTIFICATES = ("expired", "expiring_soon", "self_signed", "wrong_name", "intermediate", "sha1")
# Days left on an own certificate, by template: expired ones, ones within the warning, others.
LIFETIMES = (("expired", (-120, -1)), ("expiring", (2, 29)))
RUNS_PER_SERVER = 50
FACTS_RUNS = 3
BATCH = 2000
ACK_COMMENTS = ("Known; change CHG0042 is scheduled for the weekend.",
                "Vendor ticket open; the old node is being decommissioned.",
                "Accepted risk until the move to Exchange Online.", "Looking into it.")  # fmt: skip
USERNAME, PASSWORD = "bench", "bench-only-password"


# --- templates: real scan reports to copy ----------------------------------------------------


@dataclass(frozen=True)
class Check:
    check_id: str
    status: str
    summary: str
    remediation: str
    per_address: bool


@dataclass(frozen=True)
class Template:
    """One real report as JSON text, its address, name and leaf fingerprint as placeholders."""

    label: str
    text: str
    compliant: bool | None
    checks: tuple[Check, ...]
    product: str
    login_type: str
    cert_ports: tuple[int, ...]
    leaf: dict[str, Any] | None
    protocols: tuple[str, ...] = PROTOCOLS

    def facts(self, address: str, name: str, fingerprint: str) -> dict[str, Any]:
        text = self.text.replace("@ADDR@", address).replace("@NAME@", name)
        facts: dict[str, Any] = json.loads(text.replace("@FP@", fingerprint))
        return facts


def _label(config: Any) -> str:
    extras = [] if config.pop3 else ["no-pop3"]
    if config.cert_kind != "good":
        extras.append(config.cert_kind or "no-cert")
    if config.tls_versions[0].name != "TLSv1_2":
        extras.append(config.tls_versions[0].name)
    return " ".join([config.profile, config.login_type, *extras])


def _placeholders(text: str, address: str, fingerprint: str | None) -> str:
    text = re.sub(re.escape(address) + r"(?!\d)", "@ADDR@", text)
    text = text.replace('"127.0.0.1"', '"@ADDR@"').replace(LAB_NAME, "@NAME@")
    for service, port in LAB_PORTS.items():
        text = re.sub(rf"\b{port}\b", str(STANDARD_PORTS[service]), text)
    return text.replace(fingerprint, "@FP@") if fingerprint else text


def _served(facts: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(port, leaf certificate) of each TLS entry point of the report's first address: both
    doors of every protocol."""
    endpoint = (facts["endpoints"] or [{}])[0]
    entries = []
    for protocol in scanner.CLIENT_PROTOCOLS:
        cleartext = endpoint.get(protocol.name) or {}
        implicit = endpoint.get(protocol.implicit_tls_name) or {}
        upgrade = cleartext.get("stls") or cleartext.get("starttls") or {}
        entries += [
            (STANDARD_PORTS[protocol.implicit_tls_name], implicit.get("tls")),
            (STANDARD_PORTS[protocol.name], upgrade.get("tls")),
        ]
    return [(port, tls["chain"][0]) for port, tls in entries if tls and tls.get("chain")]


def template(label: str, report: scanner.ScanReport) -> Template:
    address, facts = report.target.host, scanner.report_to_dict(report)
    served = _served(facts)
    leaf = served[0][1] if served else None
    # With no address probed, the per-address verdicts are the target's (recording does so).
    per_address = report.address_checks if report.endpoints else report.checks
    checks = [
        Check(c.id, c.status, _placeholders(c.summary, address, None), c.remediation, per)
        for per, found in ((True, per_address), (False, report.checks))
        for c in found
        if c.id in (scanner.ADDRESS_CHECK_IDS if per else scanner.TARGET_CHECK_IDS)
    ]
    endpoint = report.endpoints[0] if report.endpoints else None
    return Template(
        label=label,
        text=_placeholders(json.dumps(facts), address, leaf and leaf["fingerprint_sha256"]),
        compliant=report.compliant,
        checks=tuple(checks),
        product=(endpoint and endpoint.product) or "",
        login_type=(endpoint and endpoint.login_type) or "",
        cert_ports=tuple(sorted({port for port, _ in served})),
        leaf=leaf,
        protocols=report.target.protocols,
    )


def _start_lab(args: list[str]) -> subprocess.Popen[str]:
    ports = [item for name, port in LAB_PORTS.items() for item in (f"--{name}-port", str(port))]
    command = [sys.executable, "-m", "pop3lab", *args, "--imap", "--submission", *ports]
    lab = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert lab.stdout is not None
    for line in lab.stdout:
        if line.strip() == "ready":
            return lab
    raise SystemExit(f"the emulator did not start (exit status {lab.wait()})")


def scan_templates(workdir: Path, protocols: tuple[str, ...] = PROTOCOLS) -> list[Template]:
    """Scan each configuration of pop3lab's mix, a server that never greets (on every port)
    and a name that does not resolve, once each, all declaring `protocols` (about ten
    seconds); one template per report."""
    ca = workdir / "lab-root.pem"
    mixed = _start_lab(
        ["--mixed", "--count", str(len(MIX)), "--base", LAB_BASE, "--ca-out", str(ca)]
    )
    silent = HOSTILE_BASE
    hostile = LabThread(
        serving([(silent, HostileConfig("no_banner"))], EXTRA_SERVICES),
        **{f"{service}_port": port for service, port in LAB_PORTS.items()},
    ).start()
    dns_server = DnsServer({LAB_NAME: {"A": ["127.0.0.1"]}}).start()
    try:
        ports = {f"{service}_port": port for service, port in LAB_PORTS.items()}
        targets = [
            scanner.Target(address, service_name=LAB_NAME, protocols=protocols, **ports)
            for address in [*addresses(LAB_BASE, len(MIX)), silent]
        ] + [scanner.Target("nx.example.test", protocols=protocols, **ports)]
        settings = scanner.Settings(timeout=2, resolver=dns_server.address)
        policy = scanner.Policy(ca_bundle_pem=ca.read_text(), use_system_trust=False)
        reports = scanner.scan(targets, settings, policy)
    finally:
        mixed.terminate()
        mixed.wait()
        hostile.stop()
        dns_server.stop()
    labels = [_label(config) for config in MIX] + ["no banner (timeouts)", "name does not resolve"]
    if set(labels) != set(WEIGHTS):
        raise SystemExit(
            f"pop3lab's mix changed; update WEIGHTS: {sorted(set(labels) ^ set(WEIGHTS))}"
        )
    return [template(label, report) for label, report in zip(labels, reports, strict=True)]


# --- the plan --------------------------------------------------------------------------------


@dataclass
class Planned:
    """One server to write: its site, the template of each address, when its history starts.
    `kind` is scanned, paused or new (never scanned)."""

    index: int
    site: str
    kind: str
    templates: list[Template]
    start: datetime
    last_scan: datetime | None
    pk: int = 0
    fingerprint: str = ""

    @property
    def name(self) -> str:
        return f"pop-{self.site}-{self.index:05d}"

    @property
    def host(self) -> str:
        return f"pop{self.index:05d}.{self.site}.corp.example"

    @property
    def addresses(self) -> list[str]:
        third, fourth = divmod(self.index, 125)
        prefix = f"10.{20 + third // 256}.{third % 256}"
        return [f"{prefix}.{fourth * 2 + 1 + i}" for i in range(len(self.templates))]

    def fill(self, text: str, address: str) -> str:
        return text.replace("@ADDR@", address).replace("@NAME@", self.host)


def plan_fleet(
    rng: random.Random, count: int, templates: list[Template], now: datetime
) -> list[Planned]:
    by_label = {t.label: t for t in templates}
    choices, weights = [by_label[label] for label in WEIGHTS], list(WEIGHTS.values())
    plans = []
    for index in range(count):
        roll = rng.random()
        kind = "paused" if roll < 0.03 else "new" if roll < 0.045 else "scanned"
        chosen = rng.choices(choices, weights)
        if rng.random() < 0.15:  # load-balanced: a second node, sometimes configured worse
            chosen.append(chosen[0] if rng.random() < 0.85 else rng.choices(choices, weights)[0])
        start = now - timedelta(days=365 if rng.random() < 0.8 else rng.uniform(2, 365))
        last_scan = {
            "scanned": now - timedelta(minutes=rng.uniform(0, 55)),
            "paused": now - timedelta(days=rng.uniform(1, 60)),
        }.get(kind)
        if last_scan and last_scan < start:
            start = last_scan - timedelta(days=1)
        plans.append(Planned(index, SITES[index % len(SITES)], kind, chosen, start, last_scan))
    return plans


# --- writing ---------------------------------------------------------------------------------


def _fingerprint(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


@dataclass
class Seeded:
    """What was written: rows and seconds per table, the plans (with ids), the bench user."""

    plans: list[Planned]
    user: Any
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0

    @contextlib.contextmanager
    def table(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def bulk(self, name: str, rows: list[Any]) -> list[Any]:
        with self.table(name):
            created = (
                list(type(rows[0]).objects.bulk_create(rows, batch_size=BATCH)) if rows else []
            )
        self.rows[name] = self.rows.get(name, 0) + len(created)
        return created


def seed(templates: list[Template], count: int) -> Seeded:
    """Write the whole fleet, deterministically (a fixed random seed)."""
    started, rng, now = time.perf_counter(), random.Random(5), timezone.now()
    user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    set_role(user, OPERATOR)
    seeded = Seeded(plan_fleet(rng, count, templates, now), user)
    write_servers(seeded, rng, now)
    write_certificates(seeded, rng, now)
    History(seeded, rng, now).write()
    write_runs(seeded, rng)
    write_snapshots(seeded, rng, now)
    for name, age in (("beat", 20), ("worker celery@worker-1", 4), ("worker celery@worker-2", 9)):
        Heartbeat.beat(name, now - timedelta(seconds=age), "bench")
    seeded.elapsed = time.perf_counter() - started
    return seeded


def write_servers(seeded: Seeded, rng: random.Random, now: datetime) -> None:
    """Servers (status settled later, from their states), their tags and addresses."""
    policies = [
        Policy.default(),
        Policy.objects.create(name="Strict: no port 110", allow_cleartext_port=False),
        Policy.objects.create(name="Legacy clients", tls_profile="mozilla-old", alert_on_warn=True),
    ]
    tags = seeded.bulk("Tag", [Tag(name=name) for name in TAGS])
    status = {"paused": ServerStatus.PAUSED, "new": ServerStatus.NEW}
    security = ["secops@corp.example"]
    servers = [
        Server(
            name=plan.name, host=plan.host, site=plan.site,
            protocols=",".join(plan.templates[0].protocols),
            owner_emails=[f"mail-{plan.site}@corp.example"] + security * (plan.index % 7 == 0),
            policy=policies[0 if rng.random() < 0.9 else rng.randrange(1, 3)],
            paused=plan.kind == "paused", next_scan_at=now + timedelta(minutes=rng.uniform(1, 60)),
            status=status.get(plan.kind, ServerStatus.COMPLIANT),
            status_changed_at=plan.last_scan, last_scan_at=plan.last_scan,
        )
        for plan in seeded.plans
    ]  # fmt: skip
    for plan, server in zip(seeded.plans, seeded.bulk("Server", servers), strict=True):
        plan.pk = server.pk
        server.created_at = plan.start
    # Added when their history starts (auto_now_add stamped them now): the fleet as of a past
    # day (compliance.history) counts only the servers that existed then.
    with seeded.table("Server"):
        Server.objects.bulk_update(servers, ["created_at"], batch_size=2000)
    links = [
        Server.tags.through(server_id=plan.pk, tag_id=tag.pk)
        for plan in seeded.plans
        for tag in rng.sample(tags, rng.choice((0, 1, 1, 2, 2, 3)))
    ]
    seeded.bulk("Server.tags", links)
    seeded.bulk("ServerAddress", [
        ServerAddress(server_id=plan.pk, address=address, product=t.product,
                      login_type=t.login_type, first_seen_at=plan.start,
                      last_seen_at=plan.last_scan)
        for plan in seeded.plans if plan.last_scan
        for address, t in zip(plan.addresses, plan.templates, strict=True)
    ])  # fmt: skip


def write_certificates(seeded: Seeded, rng: random.Random, now: datetime) -> None:
    """Each scanned server's leaf: its site's (60% of ordinary ones) or its own, with the
    previous generation for about half, renewed 20 days before it expired."""
    certificates: list[Certificate] = []
    sightings: list[CertificateSighting] = []
    year_ago = now - timedelta(days=365)

    def certificate(
        leaf: dict[str, Any], name: str, not_after: datetime, seen: datetime
    ) -> Certificate:
        not_before = not_after - timedelta(days=397)
        names = leaf["dns_names"] if leaf["common_name"] != LAB_NAME else [name]
        certificates.append(Certificate(
            fingerprint_sha256=_fingerprint(rng), subject=f"CN={name}", issuer=leaf["issuer"],
            common_name=name, dns_names=names, serial=f"{rng.getrandbits(128):032x}",
            not_before=not_before, not_after=not_after, key_type=leaf["key_type"],
            key_bits=leaf["key_bits"], signature_hash=leaf.get("signature_hash") or "",
            self_signed=leaf["self_signed"], pem=leaf["pem"],
            first_seen_at=max(year_ago, not_before), last_seen_at=seen,
        ))  # fmt: skip
        return certificates[-1]

    def generations(
        leaf: dict[str, Any], name: str, days: float, seen: datetime, previous: bool
    ) -> tuple[Certificate, Certificate | None]:
        current = certificate(leaf, name, now + timedelta(days=days), seen)
        swapped = current.not_before + timedelta(days=rng.uniform(0, 15))
        if not previous or swapped >= now:
            return current, None
        return current, certificate(leaf, name, current.not_before + timedelta(days=20), swapped)

    def sight(found: Certificate, plan: Planned, seen: datetime) -> None:
        first_seen = max(plan.start, found.first_seen_at)
        for address, t in zip(plan.addresses, plan.templates, strict=True):
            sightings.extend(
                CertificateSighting(certificate=found, server_id=plan.pk, address=address,
                                    port=port, first_seen_at=first_seen, last_seen_at=seen)
                for port in t.cert_ports
            )  # fmt: skip

    shared: dict[str, tuple[Certificate, Certificate | None]] = {}
    for plan in seeded.plans:
        first = plan.templates[0]
        if first.leaf is None or plan.last_scan is None:
            continue
        seen = plan.last_scan - timedelta(minutes=rng.uniform(0, 50))
        if not any(odd in first.label for odd in ODD_CERTIFICATES) and rng.random() < 0.6:
            if plan.site not in shared:
                wildcard = f"*.{plan.site}.corp.example"
                shared[plan.site] = generations(
                    first.leaf, wildcard, rng.uniform(45, 700), now, True
                )
            current, previous = shared[plan.site]
        else:
            days = rng.uniform(*next((r for k, r in LIFETIMES if k in first.label), (35, 760)))
            current, previous = generations(first.leaf, plan.host, days, seen, rng.random() < 0.5)
        plan.fingerprint = current.fingerprint_sha256
        sight(current, plan, seen)
        if previous is not None:
            sight(previous, plan, previous.last_seen_at)
    seeded.bulk("Certificate", certificates)
    seeded.bulk("CertificateSighting", sightings)


class History:
    """CheckStates from each server's templates, a year of Changes that lead to them, and an
    Alert for each failing episode."""

    def __init__(self, seeded: Seeded, rng: random.Random, now: datetime) -> None:
        self.seeded, self.rng, self.now = seeded, rng, now
        self.changes: list[Change] = []
        self.alerts: list[Alert] = []
        # Each per-address check's non-passing results over the templates: what regressions say.
        self.variants: dict[str, list[Check]] = {}
        for found in {t.label: t for p in seeded.plans for t in p.templates}.values():
            for check in found.checks:
                if check.per_address and check.status in ("warn", "fail", "error"):
                    self.variants.setdefault(check.check_id, []).append(check)

    def write(self) -> None:
        states, by_status = [], {}
        for plan in self.seeded.plans:
            if plan.last_scan is None:
                continue
            mine = self.states(plan)
            self.server(plan, mine)
            states += mine
            if plan.kind == "scanned":
                by_status.setdefault(settled_status(mine), []).append(plan.pk)
        self.seeded.bulk("CheckState", states)
        with self.seeded.table("Server"):
            for status, pks in by_status.items():
                Server.objects.filter(pk__in=pks).update(status=status)
        self.seeded.bulk("Change", self.changes)
        for alert in self.alerts:  # the changes have their ids now
            alert.opened_by_id = alert.opened_by.pk
            alert.resolved_by_id = alert.resolved_by and alert.resolved_by.pk
        self.seeded.bulk("Alert", self.alerts)

    def states(self, plan: Planned) -> list[CheckState]:
        rng, states = self.rng, []
        assert plan.last_scan is not None
        where = [(a, t, True) for a, t in zip(plan.addresses, plan.templates, strict=True)]
        for address, found, per_address in [*where, ("", plan.templates[0], False)]:
            for check in (c for c in found.checks if c.per_address == per_address):
                failing = check.status not in ("pass", "skip")
                since = plan.last_scan - timedelta(days=rng.expovariate(1 / 40))
                state = CheckState(
                    server_id=plan.pk, address=address, check_id=check.check_id,
                    status=check.status, remediation=check.remediation,
                    summary=plan.fill(check.summary, address or plan.addresses[0]),
                    since=max(since, plan.start) if failing else plan.start,
                )  # fmt: skip
                if plan.kind == "scanned" and not failing and rng.random() < 0.004:
                    state.candidate_status, state.candidate_count = "fail", 1
                    state.candidate_since = plan.last_scan
                states.append(state)
        return states

    def server(self, plan: Planned, states: list[CheckState]) -> None:
        rng, roll = self.rng, self.rng.random()
        episodes = (0 if roll < 0.55 else rng.randint(1, 3) if roll < 0.85 else
                    rng.randint(4, 15) if roll < 0.97 else rng.randint(20, 150))  # fmt: skip
        passing = [
            s for s in states if s.address and s.status == "pass" and s.check_id in self.variants
        ]
        if passing and episodes:
            self.episodes(plan, passing, episodes)
        self.current(plan, [s for s in states if s.status not in ("pass", "skip")])

    def episodes(self, plan: Planned, passing: list[CheckState], count: int) -> None:
        """Regressions that recovered, hours to weeks later; a flapping server flaps on one
        check, for minutes to hours each time."""
        assert plan.last_scan is not None
        rng, flapping, flapper = self.rng, count >= 20, self.rng.choice(passing)
        end, busy_until = plan.last_scan - timedelta(hours=1), {}
        for _ in range(count):
            state = flapper if flapping and rng.random() < 0.9 else rng.choice(passing)
            opened = plan.start + (end - plan.start) * rng.random()
            resolved = min(
                opened + timedelta(hours=rng.lognormvariate(0 if flapping else 1.8, 1.4)), end
            )
            if opened < busy_until.get(id(state), plan.start) or resolved <= opened:
                continue
            busy_until[id(state)] = resolved
            variant = rng.choice(self.variants[state.check_id])
            regression = self.change(plan, state, "pass", variant, opened)
            recovery = self.change(plan, state, variant.status, state, resolved)
            state.since = max(state.since, resolved)
            if variant.status == "fail":
                self.alert(plan, regression, recovery)

    def current(self, plan: Planned, failing: list[CheckState]) -> None:
        """Each check not passing now became so at `since` (its first sighting, when that is
        when the server was added); a failing one has its alert open."""
        opened: dict[str, Change] = {}
        for state in sorted(failing, key=lambda s: s.since):
            previous = "" if state.since <= plan.start else "pass"
            change = self.change(plan, state, previous, state, state.since)
            if state.status == "fail" and plan.kind == "scanned":
                opened.setdefault(state.check_id, change)
        for change in opened.values():
            self.alert(plan, change, None)

    def change(
        self, plan: Planned, state: CheckState, previous: str, now: Any, at: datetime
    ) -> Change:
        """A Change of `state` from `previous` to what `now` (a Check or a CheckState) says."""
        self.changes.append(Change(
            server_id=plan.pk, address=state.address, check_id=state.check_id,
            previous_status=previous, status=now.status,
            summary=plan.fill(now.summary, state.address or plan.addresses[0]),
            remediation=now.remediation, created_at=at, alerted_at=at + timedelta(seconds=30),
        ))  # fmt: skip
        return self.changes[-1]

    def alert(self, plan: Planned, opened: Change, resolved: Change | None) -> None:
        rng, now = self.rng, self.now
        until = resolved.created_at if resolved else now
        alert = Alert(
            server_id=plan.pk, check_id=opened.check_id, status="fail", address=opened.address,
            summary=opened.summary, remediation=opened.remediation, opened_at=opened.created_at,
            opened_by=opened, resolved_by=resolved, resolved_at=resolved and resolved.created_at,
            reminders_sent=(until - opened.created_at) // timedelta(hours=24),
            next_reminder_at=None if resolved else now + timedelta(hours=rng.uniform(0, 24)),
        )  # fmt: skip
        if rng.random() < (0.25 if resolved else 0.35):
            acknowledged = opened.created_at + timedelta(hours=rng.uniform(0.1, 30))
            alert.acknowledged_at, alert.acknowledged_by = (
                min(acknowledged, until),
                self.seeded.user,
            )
            alert.ack_comment = rng.choice(ACK_COMMENTS)
            later, earlier = now + timedelta(days=rng.uniform(1, 30)), now - timedelta(days=1)
            alert.ack_until = rng.choice((None, None, later, earlier))
        self.alerts.append(alert)


def _facts(plan: Planned) -> dict[str, Any]:
    """The server's report: its first address's template, the others' endpoints added."""
    reports = [
        t.facts(address, plan.host, plan.fingerprint)
        for address, t in zip(plan.addresses, plan.templates, strict=True)
    ]
    facts = reports[0]
    for other in reports[1:]:
        for key in ("addresses", "endpoints", "address_checks"):
            facts[key] += other[key]
    facts["target"] = plan.host
    return facts


def write_runs(seeded: Seeded, rng: random.Random) -> None:
    """RUNS_PER_SERVER hourly scans of each scanned or paused server, the newest with facts.

    Facts go in as Value expressions: Django then inserts them with VALUES rather than as one
    UNNEST array, whose text form escapes every quote of 10 KB of JSON (five times slower)."""
    compliant = {"compliant": True, "non_compliant": False}
    statuses = dict(Server.objects.values_list("pk", "status"))
    with_facts: list[ScanRun] = []
    runs: list[ScanRun] = []
    for plan in (p for p in seeded.plans if p.last_scan is not None):
        facts, slow = _facts(plan), plan.templates[0].compliant is None
        for age in range(RUNS_PER_SERVER):
            started = plan.last_scan - timedelta(hours=age, seconds=rng.uniform(0, 30))
            duration = int(rng.uniform(4000, 10000) if slow else rng.uniform(300, 2500))
            run = ScanRun(
                server_id=plan.pk, purpose="scheduled" if age % 17 else "manual",
                started_at=started, finished_at=started + timedelta(milliseconds=duration),
                duration_ms=duration, compliant=compliant.get(statuses[plan.pk]),
                worker=f"celery@worker-{plan.index % 3 + 1}",
            )  # fmt: skip
            if age < FACTS_RUNS:
                stamp = {"started_at": f"{started:%Y-%m-%dT%H:%M:%SZ}", "duration_ms": duration}
                run.facts = Value({**facts, **stamp}, output_field=JSONField())
                with_facts.append(run)
            else:
                runs.append(run)
        if len(runs) >= 10 * BATCH:
            seeded.bulk("ScanRun", with_facts)
            seeded.bulk("ScanRun", runs)
            with_facts, runs = [], []
    seeded.bulk("ScanRun", with_facts)
    seeded.bulk("ScanRun", runs)


def write_snapshots(seeded: Seeded, rng: random.Random, now: datetime) -> None:
    """A year of daily counts: the fleet growing to its size today, compliance improving."""
    current = dict(Server.objects.values_list("status").annotate(n=Count("pk")))
    failing = dict(
        CheckState.objects.filter(status="fail")
        .values_list("check_id")
        .annotate(n=Count("server", distinct=True))
    )
    share = {status: n / sum(current.values()) for status, n in current.items()}
    starts = sorted(plan.start.date() for plan in seeded.plans)
    rows = []
    for days_ago in range(364, -1, -1):
        day = (now - timedelta(days=days_ago)).date()
        total = sum(1 for start in starts if start <= day)
        worse = 1 + 0.6 * days_ago / 364 + rng.uniform(-0.05, 0.05)
        counts = {
            "non_compliant": round(total * share.get("non_compliant", 0) * worse),
            "unknown": round(total * share.get("unknown", 0) * rng.uniform(0.7, 1.3)),
            "paused": round(total * share.get("paused", 0) * (1 - days_ago / 500)),
            "new": rng.randint(0, 40),
        }
        rows.append(FleetSnapshot(
            day=day, total=total, compliant=total - sum(counts.values()), **counts,
            failing_checks={check: round(n * worse) for check, n in failing.items()},
            taken_at=datetime.combine(day, now.timetz()),
        ))  # fmt: skip
    seeded.bulk("FleetSnapshot", rows)
