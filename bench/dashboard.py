"""Benchmark: the dashboard's pages at 10,000 servers and a year of history, through gunicorn.

A throwaway PostgreSQL database `popc_bench_dash` (127.0.0.1:5432, user postgres) is migrated
and seeded with bulk_create from real scan reports: pop3lab's mixed fleet, one of its hostile
servers (no banner: checks in `error`) and a name that does not resolve are each scanned once,
and every seeded server copies one of those reports (its address, name and certificate swapped
in), so CheckState summaries, remediations and ScanRun facts are what the scanner writes.

- 10,000 servers over 24 sites with tags and owners: about 70% compliant, 22% non-compliant,
  4% unknown, 3% paused and 1% never scanned; 15% behind two addresses (a few with a worse
  second node); one CheckState per address × check;
- a year of history: most servers never change, a few flap; each regression has its recovery,
  each failing episode its Alert (resolved, or open and sometimes acknowledged);
- 50 ScanRuns per scanned server (what the server page's pickers list), the newest
  FACTS_RUNS with the report's JSON facts (older ones without, to keep the seed in a minute);
- certificates shared per site or per server, last year's generation no longer served;
- 365 daily FleetSnapshots; fresh beat and worker heartbeats.

Then `gunicorn popcompliance.wsgi -w 2 --threads 4` (DEBUG off) serves it, and 8 clients, each
signed in through the login form with its own session, request each page in turn: the overview,
the overview with rotating filters and sorts, random server pages, and the alerts page when the
alerts app has one. Prints p50/p95/p99 and requests/s per page against the 300 ms p95 target,
and the queries each page runs. The database is dropped at the end. It is not a test.

    python bench/dashboard.py [--servers 10000] [--requests 200] [--clients 8] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import scanner  # noqa: E402
from pop3lab.fleet import MIX  # noqa: E402
from tests.dnsserver import DnsServer  # noqa: E402
from tests.services import free_port  # noqa: E402

BENCH_DB = "popc_bench_dash"
PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
TARGET_P95_MS = 300.0  # per page, 8 clients, 2 cores (issue 5 §8)
USERNAME, PASSWORD = "bench", "bench-only-password"

# The emulated servers the templates come from: our own loopback addresses, fixed ports.
LAB_BASE, HOSTILE_BASE = "127.1.77.1", "127.1.78.1"
LAB_PORTS = {"pop3": 11110, "pop3s": 19950}
LAB_NAME = "mail.example.test"
SITES = ("ams", "ber", "bru", "cph", "dub", "fra", "ham", "hel", "lis", "lon", "lux", "lyo",
         "mad", "mil", "mun", "osl", "par", "prg", "rom", "sto", "vie", "zrh")  # fmt: skip
TAGS = ("prod", "staging", "dmz", "legacy", "exchange", "dovecot", "customer-a", "customer-b",
        "customer-c", "pci", "hr", "finance", "edge", "migrating", "lab", "critical")  # fmt: skip
RUNS_PER_SERVER = 50
FACTS_RUNS = 3
# Template labels and how often each appears among scanned servers (percent, roughly).
WEIGHTS = {
    "exchange2016 SecureLogin": 40,
    "exchange2013 PlainTextAuthentication": 8,
    "exchange2019 SecureLogin ec256": 6,
    "exchange2016 SecureLogin expiring_soon": 3,
    "exchange2016 SecureLogin no-pop3": 5,
    "dovecot_like SecureLogin": 8,
    "exchange2010 PlainTextLogin": 4,
    "exchange2016 SecureLogin no-cert": 1.5,
    "exchange2016 SecureLogin exchange_self_signed": 2,
    "exchange2016 SecureLogin expired": 1.5,
    "exchange2016 SecureLogin wrong_name": 2,
    "exchange2013 SecureLogin TLSv1": 4,
    "exchange2016 SecureLogin missing_intermediate": 2,
    "exchange2010 PlainTextAuthentication sha1": 1,
    "dovecot_like PlainTextLogin": 2,
    "generic SecureLogin": 1,
    "no banner (timeouts)": 4,
    "name does not resolve": 0.5,
}


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
    """One real scan report, its address, name, ports and leaf fingerprint as placeholders."""

    label: str
    text: str
    compliant: bool | None
    checks: tuple[Check, ...]
    product: str
    login_type: str
    cert_ports: tuple[int, ...]
    leaf: dict[str, Any] | None

    def facts(self, address: str, name: str, fingerprint: str) -> dict[str, Any]:
        text = self.text.replace("@ADDR@", address).replace("@NAME@", name)
        result: dict[str, Any] = json.loads(text.replace("@FP@", fingerprint))
        return result


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
    text = re.sub(rf"\b{LAB_PORTS['pop3']}\b", "110", text)
    text = re.sub(rf"\b{LAB_PORTS['pop3s']}\b", "995", text)
    return text.replace(fingerprint, "@FP@") if fingerprint else text


def _served(facts: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(port, leaf certificate) for each TLS entry point of the first address."""
    endpoint = (facts["endpoints"] or [{}])[0]
    pop3, pop3s = endpoint.get("pop3") or {}, endpoint.get("pop3s") or {}
    entries = [(995, pop3s.get("tls")), (110, (pop3.get("stls") or {}).get("tls"))]
    return [(port, tls["chain"][0]) for port, tls in entries if tls and tls.get("chain")]


def template(label: str, report: scanner.ScanReport) -> Template:
    address, facts = report.target.host, scanner.report_to_dict(report)
    served = _served(facts)
    leaf = served[0][1] if served else None
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
    )


def start_lab(args: list[str]) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "pop3lab",
        *args,
        "--pop3-port",
        str(LAB_PORTS["pop3"]),
        "--pop3s-port",
        str(LAB_PORTS["pop3s"]),
    ]
    lab = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert lab.stdout is not None
    for line in lab.stdout:
        if line.strip() == "ready":
            return lab
    raise SystemExit(f"the emulator did not start (exit status {lab.wait()})")


def scan_templates(workdir: Path) -> list[Template]:
    """Scan each configuration of pop3lab's mix, a server that never greets, and a name that
    does not resolve, once; one template per report."""
    ca, manifest = workdir / "lab-root.pem", workdir / "hostile.json"
    mixed = start_lab(
        ["--mixed", "--count", str(len(MIX)), "--base", LAB_BASE, "--ca-out", str(ca)]
    )
    hostile = start_lab(["--hostile", "--base", HOSTILE_BASE, "--manifest", str(manifest)])
    dns_server = DnsServer({LAB_NAME: {"A": ["127.0.0.1"]}}).start()
    try:
        from pop3lab.fleet import addresses

        silent = next(
            entry["address"]
            for entry in json.loads(manifest.read_text())
            if entry["config"]["behaviour"] == "no_banner"
        )
        ports = {"pop3_port": LAB_PORTS["pop3"], "pop3s_port": LAB_PORTS["pop3s"]}
        targets = [
            scanner.Target(address, service_name=LAB_NAME, **ports)
            for address in [*addresses(LAB_BASE, len(MIX)), silent]
        ] + [scanner.Target("nx.example.test", **ports)]
        settings = scanner.Settings(timeout=2, resolver=dns_server.address)
        policy = scanner.Policy(ca_bundle_pem=ca.read_text(), use_system_trust=False)
        reports = scanner.scan(targets, settings, policy)
    finally:
        for lab in (mixed, hostile):
            lab.terminate()
            lab.wait()
        dns_server.stop()
    labels = [_label(config) for config in MIX] + ["no banner (timeouts)", "name does not resolve"]
    return [template(label, report) for label, report in zip(labels, reports, strict=True)]


# --- the fleet -------------------------------------------------------------------------------


@dataclass
class Planned:
    """One server to seed: where it is, which reports its addresses copy, when its history
    starts. `kind` is scanned, paused or new (never scanned)."""

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
        return [
            f"10.{20 + third // 256}.{third % 256}.{fourth * 2 + 1 + i}"
            for i in range(len(self.templates))
        ]

    def fill(self, text: str, address: str) -> str:
        return text.replace("@ADDR@", address).replace("@NAME@", self.host)


def plan_fleet(
    rng: random.Random, count: int, templates: list[Template], now: datetime
) -> list[Planned]:
    by_label = {t.label: t for t in templates}
    missing = set(WEIGHTS) ^ set(by_label)
    if missing:
        raise SystemExit(f"pop3lab's mix changed; update WEIGHTS: {sorted(missing)}")
    choices, weights = [by_label[label] for label in WEIGHTS], list(WEIGHTS.values())
    plans = []
    for index in range(count):
        roll = rng.random()
        kind = "paused" if roll < 0.03 else "new" if roll < 0.045 else "scanned"
        chosen = rng.choices(choices, weights)
        if rng.random() < 0.15:  # load-balanced: a second node, sometimes configured worse
            chosen.append(chosen[0] if rng.random() < 0.85 else rng.choices(choices, weights)[0])
        year_ago = now - timedelta(days=365)
        start = year_ago if rng.random() < 0.8 else now - timedelta(days=rng.uniform(2, 365))
        last_scan = {
            "scanned": now - timedelta(minutes=rng.uniform(0, 55)),
            "paused": now - timedelta(days=rng.uniform(1, 60)),
        }.get(kind)
        if last_scan and last_scan < start:
            start = last_scan - timedelta(days=1)
        plans.append(Planned(index, SITES[index % len(SITES)], kind, chosen, start, last_scan))
    return plans


# --- seeding ---------------------------------------------------------------------------------

BATCH = 2000
SPECIAL_CERTS = ("expired", "expiring_soon", "self_signed", "wrong_name", "intermediate", "sha1")
ACK_COMMENTS = (
    "Known, change request CHG0042 scheduled for the weekend.",
    "Vendor ticket open; the old node is being decommissioned.",
    "Accepted risk until the migration to Exchange Online.",
    "Looking into it.",
)


def _fingerprint(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def _bulk(model: Any, rows: list[Any]) -> list[Any]:
    return list(model.objects.bulk_create(rows, batch_size=BATCH))


class Seeder:
    """Writes the fleet with bulk_create, table by table; `counts` says how many rows each."""

    def __init__(self, rng: random.Random, now: datetime, plans: list[Planned]) -> None:
        from django.contrib.auth import get_user_model

        from popcompliance.accounts.roles import OPERATOR, set_role

        self.rng, self.now, self.plans = rng, now, plans
        self.counts: dict[str, int] = {}
        self.user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
        set_role(self.user, OPERATOR)
        self.variants = self._variants()

    def _variants(self) -> dict[str, list[Check]]:
        """Each per-address check's non-passing results across the templates (for history)."""
        found: dict[str, list[Check]] = {}
        for plan_template in {t.label: t for p in self.plans for t in p.templates}.values():
            for check in plan_template.checks:
                if check.per_address and check.status in ("warn", "fail", "error"):
                    found.setdefault(check.check_id, []).append(check)
        return found

    def count(self, name: str, rows: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + rows

    def servers(self) -> None:
        from popcompliance.compliance.models import ServerAddress
        from popcompliance.inventory.models import Policy, Server, ServerStatus, Tag

        policies = [
            Policy.default(),
            Policy.objects.create(name="Strict (no port 110)", allow_cleartext_port=False),
            Policy.objects.create(
                name="Legacy clients", min_tls_version="TLSv1", alert_on_warn=True
            ),
        ]
        tags = _bulk(Tag, [Tag(name=name) for name in TAGS])
        rng, rows = self.rng, []
        for plan in self.plans:
            rows.append(
                Server(
                    name=plan.name,
                    host=plan.host,
                    site=plan.site,
                    pop3_port=110,
                    pop3s_port=995,
                    owner_emails=[f"mail-{plan.site}@corp.example"]
                    + (["secops@corp.example"] if plan.index % 7 == 0 else []),
                    policy=policies[0 if rng.random() < 0.9 else rng.randrange(1, 3)],
                    paused=plan.kind == "paused",
                    next_scan_at=self.now + timedelta(minutes=rng.uniform(1, 60)),
                    status={"paused": ServerStatus.PAUSED, "new": ServerStatus.NEW}.get(
                        plan.kind, ServerStatus.COMPLIANT
                    ),
                    status_changed_at=plan.last_scan,
                    last_scan_at=plan.last_scan,
                )
            )
        for plan, server in zip(self.plans, _bulk(Server, rows), strict=True):
            plan.pk = server.pk
        through = Server.tags.through
        links = [
            through(server_id=plan.pk, tag_id=tag.pk)
            for plan in self.plans
            for tag in rng.sample(tags, rng.choice((0, 1, 1, 2, 2, 3)))
        ]
        addresses = [
            ServerAddress(
                server_id=plan.pk,
                address=address,
                product=t.product,
                login_type=t.login_type,
                first_seen_at=plan.start,
                last_seen_at=plan.last_scan,
            )
            for plan in self.plans
            if plan.last_scan
            for address, t in zip(plan.addresses, plan.templates, strict=True)
        ]
        self.count("Server", len(rows))
        self.count("Server tags", len(_bulk(through, links)))
        self.count("ServerAddress", len(_bulk(ServerAddress, addresses)))

    def certificates(self) -> None:
        """A certificate per site shared by most of its servers, an own one for the rest and for
        every odd certificate (expired, self-signed…); last year's generation, no longer
        served, for about half of them."""
        from popcompliance.compliance.models import Certificate, CertificateSighting

        rng, now = self.rng, self.now
        certificates: dict[str, Certificate] = {}
        sightings: list[CertificateSighting] = []

        def make(
            leaf: dict[str, Any], name: str, not_after: datetime, seen: datetime
        ) -> Certificate:
            fingerprint = _fingerprint(rng)
            certificate = Certificate(
                fingerprint_sha256=fingerprint,
                subject=f"CN={name}",
                issuer=leaf["issuer"],
                common_name=name,
                dns_names=[name] if "wrong_name" not in leaf["subject"] else ["other.example.test"],
                serial=f"{rng.getrandbits(128):032x}",
                not_before=not_after - timedelta(days=397),
                not_after=not_after,
                key_type=leaf["key_type"],
                key_bits=leaf["key_bits"],
                signature_hash=leaf.get("signature_hash") or "",
                self_signed=leaf["self_signed"],
                pem=leaf["pem"],
                first_seen_at=max(now - timedelta(days=365), not_after - timedelta(days=397)),
                last_seen_at=seen,
            )
            certificates[fingerprint] = certificate
            return certificate

        def sight(certificate: Certificate, plan: Planned, seen: datetime) -> None:
            for address, t in zip(plan.addresses, plan.templates, strict=True):
                for port in t.cert_ports:
                    sightings.append(
                        CertificateSighting(
                            certificate=certificate,
                            server_id=plan.pk,
                            address=address,
                            port=port,
                            first_seen_at=max(plan.start, certificate.first_seen_at),
                            last_seen_at=seen,
                        )
                    )

        shared: dict[str, tuple[Certificate, Certificate | None]] = {}
        for plan in self.plans:
            leaf = plan.templates[0].leaf
            if leaf is None or plan.last_scan is None:
                continue
            special = any(kind in plan.templates[0].label for kind in SPECIAL_CERTS)
            seen = plan.last_scan - timedelta(minutes=rng.uniform(0, 50))
            if not special and rng.random() < 0.6:
                if plan.site not in shared:
                    current = make(
                        leaf,
                        f"*.{plan.site}.corp.example",
                        now + timedelta(days=rng.uniform(45, 700)),
                        now,
                    )
                    swapped = current.not_before + timedelta(days=rng.uniform(0, 15))
                    previous = (
                        make(
                            leaf,
                            current.common_name,
                            current.not_before + timedelta(days=20),
                            swapped,
                        )
                        if swapped < now
                        else None
                    )
                    shared[plan.site] = (current, previous)
                current, previous = shared[plan.site]
            else:
                days = (
                    rng.uniform(-120, -1)
                    if "expired" in plan.templates[0].label
                    else rng.uniform(2, 29)
                    if "expiring" in plan.templates[0].label
                    else rng.uniform(35, 760)
                )
                current = make(leaf, plan.host, now + timedelta(days=days), seen)
                swapped = current.not_before + timedelta(days=rng.uniform(0, 15))
                previous = (
                    make(leaf, plan.host, current.not_before + timedelta(days=20), swapped)
                    if rng.random() < 0.5 and swapped < now
                    else None
                )
            plan.fingerprint = current.fingerprint_sha256
            sight(current, plan, seen)
            if previous is not None:
                sight(previous, plan, previous.last_seen_at)
        self.count("Certificate", len(_bulk(Certificate, list(certificates.values()))))
        self.count("CertificateSighting", len(_bulk(CertificateSighting, sightings)))

    def states_and_history(self) -> None:
        """CheckStates from each server's reports; a year of Changes (regressions and their
        recoveries, most servers none, a few flapping); an Alert per failing episode."""
        from popcompliance.alerts.models import Alert
        from popcompliance.compliance.models import Change, CheckState
        from popcompliance.compliance.recording import settled_status
        from popcompliance.inventory.models import Server

        states: list[CheckState] = []
        history = History(self)
        statuses: dict[str, list[int]] = {}
        for plan in self.plans:
            if plan.last_scan is None:
                continue
            mine = self._states(plan)
            history.server(plan, mine)
            states += mine
            if plan.kind == "scanned":
                statuses.setdefault(settled_status(mine), []).append(plan.pk)
        self.count("CheckState", len(_bulk(CheckState, states)))
        for status, pks in statuses.items():
            Server.objects.filter(pk__in=pks).update(status=status)
        self.count("Change", len(_bulk(Change, history.changes)))
        for alert in history.alerts:  # the changes have their ids now
            alert.opened_by_id = alert.opened_by.pk
            alert.resolved_by_id = alert.resolved_by.pk if alert.resolved_by else None
        self.count("Alert", len(_bulk(Alert, history.alerts)))

    def _states(self, plan: Planned) -> list[Any]:
        from popcompliance.compliance.models import CheckState

        rng, states = self.rng, []
        where = [(a, t, True) for a, t in zip(plan.addresses, plan.templates, strict=True)]
        for address, t, per_address in [*where, ("", plan.templates[0], False)]:
            for check in t.checks:
                if check.per_address != per_address:
                    continue
                failing = check.status not in ("pass", "skip")
                since = (
                    plan.last_scan - timedelta(days=rng.expovariate(1 / 40))
                    if failing
                    else plan.start
                )
                state = CheckState(
                    server_id=plan.pk,
                    address=address,
                    check_id=check.check_id,
                    status=check.status,
                    summary=plan.fill(check.summary, address or plan.addresses[0]),
                    remediation=check.remediation,
                    since=max(since, plan.start),
                )
                if plan.kind == "scanned" and not failing and rng.random() < 0.004:
                    state.candidate_status, state.candidate_count = "fail", 1
                    state.candidate_since = plan.last_scan
                states.append(state)
        return states


class History:
    """The Changes and Alerts of a year, server by server."""

    def __init__(self, seeder: Seeder) -> None:
        self.rng, self.now, self.user = seeder.rng, seeder.now, seeder.user
        self.variants = seeder.variants
        self.changes: list[Any] = []
        self.alerts: list[Any] = []

    def change(
        self, plan: Planned, state: Any, previous: str, check: Check | Any, at: datetime
    ) -> Any:
        from popcompliance.compliance.models import Change

        change = Change(
            server_id=plan.pk,
            address=state.address,
            check_id=state.check_id,
            previous_status=previous,
            status=check.status,
            summary=plan.fill(check.summary, state.address or plan.addresses[0]),
            remediation=check.remediation,
            created_at=at,
            alerted_at=at + timedelta(seconds=30),
        )
        self.changes.append(change)
        return change

    def server(self, plan: Planned, states: list[Any]) -> None:
        rng = self.rng
        roll = rng.random()
        episodes = (
            0
            if roll < 0.55
            else rng.randint(1, 3)
            if roll < 0.85
            else rng.randint(4, 15)
            if roll < 0.97
            else rng.randint(20, 150)
        )
        passing = [
            s for s in states if s.address and s.status == "pass" and s.check_id in self.variants
        ]
        if passing and episodes:
            self._episodes(plan, passing, episodes)
        self._current(plan, [s for s in states if s.status not in ("pass", "skip")])

    def _episodes(self, plan: Planned, passing: list[Any], count: int) -> None:
        """Regressions that recovered: hours to weeks each; a flapping server (many episodes)
        flaps on one check, for minutes to hours."""
        rng, flapping = self.rng, count >= 20
        end = plan.last_scan - timedelta(hours=1)
        busy_until: dict[int, datetime] = {}
        flapper = rng.choice(passing)
        for _ in range(count):
            state = flapper if flapping and rng.random() < 0.9 else rng.choice(passing)
            opened = plan.start + (end - plan.start) * rng.random()
            hours = rng.lognormvariate(0 if flapping else 1.8, 1.4)
            resolved = min(opened + timedelta(hours=hours), end)
            if opened < busy_until.get(id(state), plan.start) or resolved <= opened:
                continue
            busy_until[id(state)] = resolved
            variant = rng.choice(self.variants[state.check_id])
            regression = self.change(plan, state, "pass", variant, opened)
            recovery = self.change(plan, state, variant.status, state, resolved)
            state.since = max(state.since, resolved)
            if variant.status == "fail":
                self.alert(plan, regression, recovery)

    def _current(self, plan: Planned, failing: list[Any]) -> None:
        """Each check not passing now changed to its status at `since` (a first sighting when
        that is when the server was added); a failing one has its alert open."""
        opened: dict[str, Any] = {}
        for state in sorted(failing, key=lambda s: s.since):
            previous = "" if state.since <= plan.start else "pass"
            change = self.change(plan, state, previous, state, state.since)
            if state.status == "fail" and state.check_id not in opened and plan.kind == "scanned":
                opened[state.check_id] = change
        for change in opened.values():
            self.alert(plan, change, None)

    def alert(self, plan: Planned, opened: Any, resolved: Any | None) -> None:
        from popcompliance.alerts.models import Alert

        rng, now = self.rng, self.now
        until = resolved.created_at if resolved else now
        alert = Alert(
            server_id=plan.pk,
            check_id=opened.check_id,
            status="fail",
            address=opened.address,
            summary=opened.summary,
            remediation=opened.remediation,
            opened_at=opened.created_at,
            opened_by=opened,
            resolved_by=resolved,
            resolved_at=resolved and resolved.created_at,
            reminders_sent=int((until - opened.created_at) / timedelta(hours=24)),
            next_reminder_at=None if resolved else now + timedelta(hours=rng.uniform(0, 24)),
        )
        if rng.random() < (0.35 if resolved is None else 0.25):
            alert.acknowledged_at = min(
                opened.created_at + timedelta(hours=rng.uniform(0.1, 30)), until
            )
            alert.acknowledged_by, alert.ack_comment = self.user, rng.choice(ACK_COMMENTS)
            alert.ack_until = rng.choice(
                (None, None, now + timedelta(days=rng.uniform(1, 30)), now - timedelta(days=1))
            )
        self.alerts.append(alert)


def _facts(plan: Planned) -> dict[str, Any]:
    """The server's report: its first template's, with the other addresses' endpoints added."""
    found = [
        t.facts(address, plan.host, plan.fingerprint)
        for address, t in zip(plan.addresses, plan.templates, strict=True)
    ]
    facts = found[0]
    for other in found[1:]:
        facts["addresses"] += other["addresses"]
        facts["endpoints"] += other["endpoints"]
        facts["address_checks"] += other["address_checks"]
    facts["target"] = plan.host
    return facts


def seed_runs(seeder: Seeder) -> None:
    """RUNS_PER_SERVER hourly scans per scanned server; the newest FACTS_RUNS with facts."""
    from popcompliance.compliance.models import ScanRun
    from popcompliance.inventory.models import Server

    rng, batch = seeder.rng, []
    compliant = {"compliant": True, "non_compliant": False}
    statuses = dict(Server.objects.values_list("pk", "status"))
    for plan in seeder.plans:
        if plan.last_scan is None:
            continue
        facts = _facts(plan)
        slow = plan.templates[0].compliant is None
        for age in range(RUNS_PER_SERVER):
            started = plan.last_scan - timedelta(hours=age, seconds=rng.uniform(0, 30))
            duration = rng.uniform(4000, 10000) if slow else rng.uniform(300, 2500)
            stamp = started.strftime("%Y-%m-%dT%H:%M:%SZ")
            batch.append(
                ScanRun(
                    server_id=plan.pk,
                    purpose="scheduled" if age % 17 else "manual",
                    started_at=started,
                    finished_at=started + timedelta(milliseconds=duration),
                    duration_ms=int(duration),
                    compliant=compliant.get(statuses[plan.pk]),
                    facts={**facts, "started_at": stamp, "duration_ms": int(duration)}
                    if age < FACTS_RUNS
                    else None,
                    worker=f"celery@worker-{plan.index % 3 + 1}",
                )
            )
        if len(batch) >= 10 * BATCH:
            seeder.count("ScanRun", len(_bulk(ScanRun, batch)))
            batch = []
    seeder.count("ScanRun", len(_bulk(ScanRun, batch)))


def seed_snapshots_and_heartbeats(seeder: Seeder) -> None:
    """365 daily snapshots: the fleet growing to its size now, compliance slowly improving."""
    from django.db.models import Count

    from popcompliance.compliance.models import CheckState, FleetSnapshot, Heartbeat
    from popcompliance.inventory.models import Server

    now, rng = seeder.now, seeder.rng
    current = dict(Server.objects.values_list("status").annotate(n=Count("pk")))
    failing = dict(
        CheckState.objects.filter(status="fail")
        .values_list("check_id")
        .annotate(n=Count("server", distinct=True))
    )
    total_now = sum(current.values())
    starts = sorted(plan.start.date() for plan in seeder.plans)
    rows = []
    for days_ago in range(364, -1, -1):
        day = (now - timedelta(days=days_ago)).date()
        total = sum(1 for start in starts if start <= day)
        worse = 1 + 0.6 * days_ago / 364 + rng.uniform(-0.05, 0.05)
        share = {s: n / total_now for s, n in current.items()}
        counts = {
            "non_compliant": round(total * share.get("non_compliant", 0) * worse),
            "unknown": round(total * share.get("unknown", 0) * rng.uniform(0.7, 1.3)),
            "paused": round(total * share.get("paused", 0) * (1 - days_ago / 500)),
            "new": rng.randint(0, 40),
        }
        counts["compliant"] = total - sum(counts.values())
        rows.append(
            FleetSnapshot(
                day=day,
                total=total,
                **counts,
                taken_at=datetime.combine(day, now.timetz()),
                failing_checks={check: round(n * worse) for check, n in failing.items()},
            )
        )
    seeder.count("FleetSnapshot", len(_bulk(FleetSnapshot, rows)))
    for name, age in (("beat", 20), ("worker celery@worker-1", 4), ("worker celery@worker-2", 9)):
        Heartbeat.beat(name, now - timedelta(seconds=age), "bench")


def seed(templates: list[Template], count: int) -> tuple[dict[str, int], list[Planned], Any]:
    """Every table the pages read; the row counts, the plans (with ids) and the bench user."""
    from django.utils import timezone

    rng, now = random.Random(5), timezone.now()
    plans = plan_fleet(rng, count, templates, now)
    seeder = Seeder(rng, now, plans)
    seeder.servers()
    seeder.certificates()
    seeder.states_and_history()
    seed_runs(seeder)
    seed_snapshots_and_heartbeats(seeder)
    return seeder.counts, plans, seeder.user


# --- services --------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database(keep: bool) -> Iterator[str]:
    """A fresh database for the run, dropped afterwards (even if gunicorn still holds it)."""
    os.environ["PGOPTIONS"] = "-c client_min_messages=warning"  # no "does not exist, skipping"
    subprocess.run(["dropdb", *PG, "--if-exists", "--force", BENCH_DB], check=True)
    subprocess.run(["createdb", *PG, BENCH_DB], check=True)
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}"
    finally:
        from django.db import connections

        connections.close_all()
        if keep:
            print(f"kept the database {BENCH_DB} (dropdb {' '.join(PG)} --force {BENCH_DB})")
        else:
            subprocess.run(["dropdb", *PG, "--if-exists", "--force", BENCH_DB], check=True)


def server_environment(url: str, workdir: Path) -> dict[str, str]:
    """What production sets: DEBUG off, a secret key, our host only."""
    return {
        "DJANGO_SETTINGS_MODULE": "popcompliance.settings",
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + os.urandom(16).hex(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "POPC_VAR_DIR": str(workdir / "var"),
    }


def setup_django(environment: dict[str, str]) -> None:
    import django
    from django.core.management import call_command

    os.environ.update(environment)
    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


def vacuum_analyze() -> None:
    """What autovacuum would have done long before anybody looked at a year-old fleet: planner
    statistics and visibility maps, so the plans measured are the plans production gets."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


@contextlib.contextmanager
def gunicorn(environment: dict[str, str], workdir: Path) -> Iterator[int]:
    """`gunicorn popcompliance.wsgi -w 2 --threads 4` on a free loopback port, its log in
    `workdir`; yields the port once the login page answers."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "popcompliance.wsgi",
        "-w",
        "2",
        "--threads",
        "4",
        "-b",
        f"127.0.0.1:{port}",
    ]
    log = workdir / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **environment},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not start; see {log}")
            time.sleep(0.2)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _answers(port: int) -> bool:
    try:
        return Browser(port).request("GET", LOGIN_PATH)[0] == 200
    except OSError:
        return False


# --- the clients -----------------------------------------------------------------------------

LOGIN_PATH = "/accounts/login/"
_CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


class Browser:
    """One client: a keep-alive HTTP connection and its cookies (session and CSRF)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):  # the server may close an idle keep-alive connection
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.connection.request(method, path, body, headers)
                response = self.connection.getresponse()
                content = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionError):
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        if response.will_close:
            self.connection.close()
            self.connection = None
        return response.status, content

    def log_in(self) -> None:
        """Through the login form, as a person does: GET it for the CSRF token, POST it."""
        _, page = self.request("GET", LOGIN_PATH)
        token = _CSRF_FIELD.search(page)
        if token is None:
            raise SystemExit("the login page has no CSRF token")
        form = {
            "csrfmiddlewaretoken": token.group(1).decode(),
            "username": USERNAME,
            "password": PASSWORD,
        }
        status, _ = self.request("POST", LOGIN_PATH, urllib.parse.urlencode(form))
        if status != 302 or "sessionid" not in self.cookies:
            raise SystemExit(f"could not log in (HTTP {status})")


@dataclass
class Result:
    """The latencies of one page under load."""

    page: str
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    failures: list[tuple[str, int]] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        """Nearest rank, in milliseconds."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


def hammer(page: str, browsers: list[Browser], paths: Callable[[int], str], total: int) -> Result:
    """`total` GETs spread over the browsers, each sending its next as soon as it has read
    its last answer."""
    result, lock, numbers = Result(page), threading.Lock(), iter(range(total))
    ready = threading.Barrier(len(browsers) + 1)

    def run(browser: Browser) -> None:
        ready.wait()
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            path = paths(number)
            started = time.perf_counter()
            status, _ = browser.request("GET", path)
            elapsed = time.perf_counter() - started
            with lock:
                result.latencies.append(elapsed)
                if status != 200:
                    result.failures.append((path, status))

    threads = [threading.Thread(target=run, args=(browser,)) for browser in browsers]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


# --- the pages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """A page to measure: `paths(i)` is the URL of its i-th request."""

    name: str
    paths: Callable[[int], str]
    distinct: int
    targeted: bool = True


def pages(plans: list[Planned], rng: random.Random, requests: int) -> tuple[list[Page], str]:
    """The overview, the overview filtered and sorted in turn, `requests` different server
    pages, and the alerts page when the alerts app has one; a note when it has not."""
    from django.urls import NoReverseMatch, reverse

    overview = reverse("dashboard:overview")
    filters = [
        f"{overview}?{query}"
        for query in (
            "status=non_compliant",
            "site=fra",
            "tag=pci",
            "check=cert.validity&result=problem",
            "q=pop0042",
            "sort=status",
            "sort=-last_scan&page=40",
            "result=fail&sort=site&page=3",
        )
    ]
    servers = [reverse("dashboard:server", args=[plan.pk]) for plan in rng.sample(plans, requests)]
    chosen = [
        Page("overview", lambda i: overview, 1),
        Page("overview, filters", lambda i: filters[i % len(filters)], len(filters), False),
        Page("server page", lambda i: servers[i % len(servers)], len(servers)),
    ]
    try:
        alerts = reverse("alerts:list")
    except NoReverseMatch:
        return chosen, "alerts page: not measured, no URL named alerts:list exists yet"
    chosen.append(Page("alerts", lambda i: alerts, 1))
    return chosen, ""


@dataclass(frozen=True)
class Profile:
    """One request of a page in this process, with its SQL captured."""

    path: str
    queries: int
    sql_ms: float
    total_ms: float
    slowest: tuple[float, str]


def profile(page: Page, user: Any) -> Profile:
    """The slowest of the page's first few URLs, each requested twice (the second counts)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    found = []
    for path in {page.paths(i) for i in range(min(page.distinct, 8))}:
        client.get(path)
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(path)
            total = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"{path} answered HTTP {response.status_code}")
        times = [(1000 * float(q["time"]), q["sql"]) for q in captured.captured_queries]
        found.append(
            Profile(
                path,
                len(times),
                sum(t for t, _ in times),
                1000 * total,
                max(times, default=(0.0, "")),
            )
        )
    return max(found, key=lambda p: p.total_ms)


def report(
    counts: dict[str, int],
    seeded: float,
    results: list[Result],
    profiles: dict[str, Profile],
    note: str,
    args: argparse.Namespace,
) -> None:
    rows = ", ".join(f"{name} {n:,}" for name, n in counts.items())
    print(f"fleet:       {counts['Server']:,} servers, seeded in {seeded:.0f} s ({rows})")
    print(
        f"served by:   gunicorn -w 2 --threads 4 (DEBUG off), PostgreSQL; {args.clients} "
        f"signed-in clients, {args.requests} requests per page after {2 * args.clients} warm-up"
    )
    print(
        f"{'page':<19}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'req/s':>8}"
        f"  p95 vs {TARGET_P95_MS:.0f} ms"
    )
    for result in results:
        p95 = result.percentile(95)
        verdict = "within" if p95 <= TARGET_P95_MS else "OVER"
        print(
            f"{result.page:<19}{result.percentile(50):8.0f}{p95:8.0f}{result.percentile(99):8.0f}"
            f"{result.rate:8.1f}  {p95 / TARGET_P95_MS:.2f}× ({verdict})"
        )
        for path, status in result.failures[:3]:
            print(f"  FAILED: {path} answered HTTP {status}")
    if note:
        print(note)
    print("one request in-process (the slowest of each page's first URLs):")
    for name, found in profiles.items():
        slowest_ms, slowest_sql = found.slowest
        print(
            f"  {name:<18} {found.queries:>3} queries, SQL {found.sql_ms:5.1f} ms of "
            f"{found.total_ms:5.1f} ms  ({found.path}; slowest query {slowest_ms:.1f} ms: "
            f"{slowest_sql[:60]}…)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200, help="per page, after the warm-up")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the database for profiling")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="popc-dashboard-"))
    templates = scan_templates(workdir)
    with postgres_database(args.keep) as url:
        environment = server_environment(url, workdir)
        setup_django(environment)
        started = time.perf_counter()
        counts, plans, user = seed(templates, args.servers)
        seeded = time.perf_counter() - started
        vacuum_analyze()
        chosen, note = pages(plans, random.Random(8), args.requests)
        profiles = {page.name: profile(page, user) for page in chosen}
        from django.db import connections

        connections.close_all()
        with gunicorn(environment, workdir) as port:
            browsers = [Browser(port) for _ in range(args.clients)]
            for browser in browsers:
                browser.log_in()
            results = []
            for page in chosen:
                hammer(page.name, browsers, page.paths, 2 * args.clients)
                results.append(hammer(page.name, browsers, page.paths, args.requests))
        report(counts, seeded, results, profiles, note, args)
    shutil.rmtree(workdir)  # kept when something failed: gunicorn's log is there


if __name__ == "__main__":
    main()
