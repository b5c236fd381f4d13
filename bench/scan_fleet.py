"""Benchmark: the full probe of N emulated mail hosts on distinct loopback addresses.

The emulator (pop3lab) runs in its own process so that the scanner and the servers each get a
core. Every host serves the protocols asked for (by default all three: POP3, IMAP4 and SMTP
submission, each on its cleartext and implicit-TLS port) and the targets declare them. The
fleet is the mixed one (Exchange/Dovecot-like/generic configurations) or, with
`--fleet windows`, Exchange on every Windows Server it runs on, serving SChannel's default
TLS (SSLv3 to TLS 1.3, RC4, 3DES, DHE …). The same fleet is scanned twice: the posture probe
alone (login probes, STLS/STARTTLS, implicit TLS, certificates, NTLM) and with the full TLS
enumeration of every TLS entry point, so the figures say what the enumeration adds to a
scheduled scan. Prints hosts per second, connections and hellos per host, peak memory and how
the verdicts came out (errors mean overload), then one host's enumeration alone.

    python bench/scan_fleet.py [--fleet mixed|windows] [--count 1000] [--concurrency 100]
                               [--protocols pop3,imap,submission] [--posture-runs 1]
                               [--posture-only]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import start_lab  # noqa: E402
from scanner import (  # noqa: E402
    CLIENT_PROTOCOLS,
    EarlierSupport,
    Policy,
    ScanReport,
    Settings,
    Target,
    TlsSupport,
    parse_protocols,
)
from scanner._probe import scan  # noqa: E402
from tests.dnsserver import DnsServer  # noqa: E402

BASE = "127.1.0.1"
# One port per door, the same on every address (pop3lab's defaults but for POP3's).
PORTS = {
    "pop3_port": 11110,
    "pop3s_port": 19950,
    "imap_port": 11143,
    "imaps_port": 19930,
    "submission_port": 11587,
    "submissions_port": 11465,
}
POP3_PORT, POP3S_PORT = PORTS["pop3_port"], PORTS["pop3s_port"]
ALL_PROTOCOLS = ",".join(protocol.name for protocol in CLIENT_PROTOCOLS)
SERVICE_NAME = "mail.example.test"
FLEETS = {"mixed": "mixed", "windows": "windows-mix"}
NOT_ENUMERATED = "was not tested"  # tls.protocols/tls.ciphers when enumeration is off
TARGET = 40.0  # hosts/s of the posture probe, all three protocols, on 2 cores


def start_emulator(
    fleet: str, count: int, ca_out: Path, protocols: tuple[str, ...] = ("pop3",)
) -> subprocess.Popen[str]:
    """pop3lab serving `fleet` with POP3 and, where `protocols` name them, IMAP4 and SMTP
    submission on every host."""
    extra = [f"--{name}" for name in ("imap", "submission") if name in protocols]
    ports = [
        item for name, port in PORTS.items() for item in (f"--{name.replace('_', '-')}", str(port))
    ]
    return start_lab(
        f"--{FLEETS[fleet]}", "--count", str(count), "--base", BASE, *extra, *ports,
        "--ca-out", str(ca_out),
    )  # fmt: skip


def targets(count: int, protocols: tuple[str, ...]) -> list[Target]:
    from pop3lab.fleet import addresses

    return [
        Target(address, service_name=SERVICE_NAME, protocols=protocols, **PORTS)
        for address in addresses(BASE, count)
    ]


class ConnectionCounter:
    """Counts the scanner's TCP connections by port: every probe connects through
    asyncio.open_connection (scanner._wire and scanner._implicit_tls), which this wraps while
    it is installed."""

    def __init__(self) -> None:
        self.by_port: collections.Counter[int] = collections.Counter()
        self._original = asyncio.open_connection

    def __enter__(self) -> ConnectionCounter:
        original = self._original

        async def counted(host: Any = None, port: Any = None, **kwargs: Any) -> Any:
            self.by_port[int(port)] += 1
            return await original(host, port, **kwargs)

        asyncio.open_connection = counted  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.open_connection = self._original  # type: ignore[assignment]

    def by_protocol(self) -> dict[str, int]:
        """Connections per client protocol (both its doors)."""
        return {
            protocol.name: self.by_port[PORTS[f"{protocol.name}_port"]]
            + self.by_port[PORTS[f"{protocol.implicit_tls_name}_port"]]
            for protocol in CLIENT_PROTOCOLS
        }


def emulator_peak_mb(emulator: subprocess.Popen[str]) -> float:
    status = Path(f"/proc/{emulator.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of this process (None) or of process `pid`."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    """One scan of the fleet, summed up as soon as it ends (its reports are not kept, as a
    command line holds one run's): wall time, connections, CPU on each side, verdicts."""

    hosts: int
    seconds: float
    connections: int
    by_protocol: dict[str, int]
    scanner_cpu: float
    emulator_cpu: float
    verdicts: collections.Counter[str]
    errors: collections.Counter[str]
    hellos: int


def scan_fleet(
    fleet: list[Target], settings: Settings, policy: Policy, emulator_pid: int
) -> tuple[Run, list[ScanReport]]:
    """Scan the fleet; its summary, and its reports for the caller to keep or drop."""
    cpu_before = cpu_seconds(), cpu_seconds(emulator_pid)
    with ConnectionCounter() as counter:
        started = time.perf_counter()
        reports = scan(fleet, settings, policy)
        elapsed = time.perf_counter() - started
    scanner_cpu = cpu_seconds() - cpu_before[0]
    emulator_cpu = cpu_seconds(emulator_pid) - cpu_before[1]
    # Without the enumeration, tls.protocols and tls.ciphers say by design that they were
    # not tested; only other errors mean overload.
    errors = collections.Counter(
        check.id
        for report in reports
        for check in report.checks
        if check.status == "error" and NOT_ENUMERATED not in check.summary
    )
    # Hellos of the enumerations made in this run (a reused one keeps its old count).
    hellos = sum(
        d.support.hellos
        for report in reports
        for d in door_supports(report)
        # measured_at is kept to the second.
        if d.support.measured_at is not None
        and d.support.measured_at >= report.started_at.replace(microsecond=0)
    )
    run = Run(
        hosts=len(reports),
        seconds=elapsed,
        connections=sum(counter.by_port.values()),
        by_protocol=counter.by_protocol(),
        scanner_cpu=scanner_cpu,
        emulator_cpu=emulator_cpu,
        verdicts=collections.Counter(str(report.compliant) for report in reports),
        errors=errors,
        hellos=hellos,
    )
    return run, reports


@dataclass(frozen=True)
class DoorSupport:
    """One TLS entry point's enumeration: `door` names it (`pop3s`, `imap upgraded` …)."""

    door: str
    address: str
    port: int
    after_upgrade: bool
    support: TlsSupport


def door_supports(report: ScanReport) -> Iterator[DoorSupport]:
    """The enumeration of every TLS entry point of every declared protocol."""
    for endpoint in report.endpoints:
        for protocol in CLIENT_PROTOCOLS:
            cleartext, implicit = endpoint.doors(protocol)
            upgrade = cleartext.upgrade if cleartext else None
            if implicit is not None and implicit.support is not None:
                door = protocol.implicit_tls_name
                yield DoorSupport(door, endpoint.address, implicit.port, False, implicit.support)
            if cleartext is not None and upgrade is not None and upgrade.support is not None:
                door = f"{protocol.name} upgraded"
                yield DoorSupport(door, endpoint.address, cleartext.port, True, upgrade.support)


def offering_earlier(fleet: list[Target], reports: list[ScanReport]) -> list[Target]:
    """The fleet offering each target the enumerations of its report, as a scheduled scan
    is offered those of the server's last scan (popcompliance.compliance.scanning)."""
    return [
        dataclasses.replace(
            target,
            earlier_support=tuple(
                EarlierSupport(d.address, d.port, d.after_upgrade, d.support)
                for d in door_supports(report)
            ),
        )
        for target, report in zip(fleet, reports, strict=True)
    ]


def describe_run(label: str, run: Run) -> None:
    elapsed, verdicts, errors = run.seconds, run.verdicts, run.errors
    hosts = max(run.hosts, 1)
    split = ", ".join(
        f"{name} {count / hosts:.1f}" for name, count in run.by_protocol.items() if count
    )
    print(f"{label}:")
    print(f"  wall time:            {elapsed:.2f} s")
    print(f"  throughput:           {run.hosts / elapsed:.1f} hosts/s (target >= {TARGET:.0f})")
    print(f"  connections:          {run.connections / hosts:.1f} per host ({split})")
    print(
        f"  CPU per host:         scanner {run.scanner_cpu / hosts * 1000:.1f} ms, "
        f"emulator {run.emulator_cpu / hosts * 1000:.1f} ms "
        f"(of {2 * elapsed / hosts * 1000:.1f} ms of the two cores' time)"
    )
    print(f"  TLS hellos:           {run.hellos / hosts:.1f} per host (enumeration)")
    print(
        f"  compliant true/false/unknown: {verdicts['True']}/{verdicts['False']}/{verdicts['None']}"
    )
    print(f"  checks in error:      {sum(errors.values())} {dict(errors) if errors else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fleet", choices=sorted(FLEETS), default="mixed")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--protocols", default=ALL_PROTOCOLS, help="declared on every host")
    parser.add_argument(
        "--posture-runs", type=int, default=1, help="scan the posture this many times (best kept)"
    )
    parser.add_argument("--posture-only", action="store_true", help="skip the TLS enumeration")
    args = parser.parse_args()
    protocols = parse_protocols(args.protocols)

    ca_file = Path(tempfile.mkdtemp()) / "lab-root.pem"
    emulator = start_emulator(args.fleet, args.count, ca_file, protocols)
    dns_server = DnsServer({SERVICE_NAME: {"A": ["127.0.0.1"]}}).start()
    try:
        policy = Policy(ca_bundle_pem=ca_file.read_text(), use_system_trust=False)
        fleet = targets(args.count, protocols)

        def settings(enumerate_tls: bool) -> Settings:
            return Settings(
                timeout=args.timeout,
                resolver=dns_server.address,
                concurrency=args.concurrency,
                enumerate_tls=enumerate_tls,
            )

        # On a shared machine a neighbour's burst slows one run: the best shows what we cost.
        postures = [
            scan_fleet(fleet, settings(False), policy, emulator.pid)[0]
            for _ in range(args.posture_runs)
        ]
        posture = max(postures, key=lambda run: run.hosts / run.seconds)
        full = rescan = single = None
        single_report = None
        if not args.posture_only:
            full, enumerated = scan_fleet(fleet, settings(True), policy, emulator.pid)
            # A scheduled rescan: each enumeration reused once checked (scanner._enumerate).
            offered = offering_earlier(fleet, enumerated)
            del enumerated  # the rescan holds the enumerations it is offered, as a worker does
            rescan, _ = scan_fleet(offered, settings(True), policy, emulator.pid)
            del offered
            single, (single_report,) = scan_fleet(fleet[:1], settings(True), policy, emulator.pid)
        emulator_mb = emulator_peak_mb(emulator)
    finally:
        emulator.terminate()
        emulator.wait()
        dns_server.stop()

    scanner_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"hosts:                {args.count} ({args.fleet} fleet, one address each)")
    print(f"protocols:            {', '.join(protocols)} declared and served on every host")
    print(f"concurrency:          {args.concurrency} hosts, 3 connections per address")
    if len(postures) > 1:
        rates = ", ".join(f"{run.hosts / run.seconds:.1f}" for run in postures)
        print(f"posture runs:         {rates} hosts/s (the best is described)")
    describe_run("posture probe only", posture)
    if full and rescan and single and single_report:
        describe_run("with full TLS enumeration", full)
        describe_run("rescan reusing those enumerations", rescan)
        print(
            f"enumeration cost:     {full.seconds / posture.seconds:.1f}x the posture's wall time"
        )
        print(
            f"reuse cost:           {rescan.seconds / posture.seconds:.1f}x the posture's wall time"
        )
        print(f"one host alone:       {single.seconds * 1000:.0f} ms with every enumeration")
        for door in door_supports(single_report):
            print(
                f"  {door.door + ':':<20}{door.support.duration_ms} ms, "
                f"{door.support.hellos} hellos ({', '.join(door.support.cipher_suites)})"
            )
    print(f"scanner peak memory:  {scanner_mb:.0f} MB (target < 300)")
    print(f"emulator peak memory: {emulator_mb:.0f} MB")


if __name__ == "__main__":
    main()
