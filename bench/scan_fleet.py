"""Benchmark: the full probe of N emulated POP3 endpoints on distinct loopback addresses.

The emulator (pop3lab) runs in its own process so that the scanner and the servers each get a
core. The fleet is the mixed one (Exchange/Dovecot-like/generic configurations) or, with
`--fleet windows`, Exchange on every Windows Server it runs on, serving SChannel's default
TLS (SSLv3 to TLS 1.3, RC4, 3DES, DHE …). The same fleet is scanned twice: the posture probe
alone (login probe, STLS, implicit TLS, certificates) and with the full TLS enumeration of
both entry points, so the figures say what the enumeration adds to a scheduled scan. Prints
endpoints per second, hellos, peak memory and how the verdicts came out (errors mean
overload), then one endpoint's enumeration alone.

    python bench/scan_fleet.py [--fleet mixed|windows] [--count 1000] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import collections
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import start_lab  # noqa: E402
from scanner import Policy, ScanReport, Settings, Target, TlsSupport  # noqa: E402
from scanner._probe import scan  # noqa: E402
from tests.dnsserver import DnsServer  # noqa: E402

BASE = "127.1.0.1"
POP3_PORT, POP3S_PORT = 11110, 19950
SERVICE_NAME = "mail.example.test"
FLEETS = {"mixed": "mixed", "windows": "windows-mix"}


def start_emulator(fleet: str, count: int, ca_out: Path) -> subprocess.Popen[str]:
    return start_lab(
        f"--{FLEETS[fleet]}", "--count", str(count), "--base", BASE,
        "--pop3-port", str(POP3_PORT), "--pop3s-port", str(POP3S_PORT), "--ca-out", str(ca_out),
    )  # fmt: skip


def targets(count: int) -> list[Target]:
    from pop3lab.fleet import addresses

    return [
        Target(address, service_name=SERVICE_NAME, pop3_port=POP3_PORT, pop3s_port=POP3S_PORT)
        for address in addresses(BASE, count)
    ]


def emulator_peak_mb(emulator: subprocess.Popen[str]) -> float:
    status = Path(f"/proc/{emulator.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def scan_fleet(
    fleet: list[Target], settings: Settings, policy: Policy
) -> tuple[list[ScanReport], float]:
    started = time.perf_counter()
    reports = scan(fleet, settings, policy)
    return reports, time.perf_counter() - started


def supports(report: ScanReport) -> list[TlsSupport]:
    found = []
    for endpoint in report.endpoints:
        stls = endpoint.pop3.stls
        found += [s for s in (endpoint.pop3s.support, stls.support if stls else None) if s]
    return found


def describe_run(label: str, reports: list[ScanReport], elapsed: float) -> None:
    verdicts = collections.Counter(str(report.compliant) for report in reports)
    errors = collections.Counter(
        check.id for report in reports for check in report.checks if check.status == "error"
    )
    hellos = sum(s.hellos for report in reports for s in supports(report))
    print(f"{label}:")
    print(f"  wall time:            {elapsed:.2f} s")
    print(f"  throughput:           {len(reports) / elapsed:.1f} endpoints/s (target >= 50)")
    print(f"  TLS hellos:           {hellos} ({hellos / max(len(reports), 1):.0f} per endpoint)")
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
    args = parser.parse_args()

    ca_file = Path(tempfile.mkdtemp()) / "lab-root.pem"
    emulator = start_emulator(args.fleet, args.count, ca_file)
    dns_server = DnsServer({SERVICE_NAME: {"A": ["127.0.0.1"]}}).start()
    try:
        policy = Policy(ca_bundle_pem=ca_file.read_text(), use_system_trust=False)
        fleet = targets(args.count)
        runs = []
        for enumerate_tls in (False, True):
            settings = Settings(
                timeout=args.timeout,
                resolver=dns_server.address,
                concurrency=args.concurrency,
                enumerate_tls=enumerate_tls,
            )
            runs.append(scan_fleet(fleet, settings, policy))
        [single], _ = scan_fleet(fleet[:1], settings, policy)
        emulator_mb = emulator_peak_mb(emulator)
    finally:
        emulator.terminate()
        emulator.wait()
        dns_server.stop()

    scanner_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"endpoints:            {args.count} ({args.fleet} fleet, one address each)")
    print(f"concurrency:          {args.concurrency} targets, 3 connections per address")
    describe_run("posture probe only", *runs[0])
    describe_run("with full TLS enumeration", *runs[1])
    posture, full = runs[0][1], runs[1][1]
    print(f"enumeration cost:     {full / posture:.1f}x the posture probe's wall time")
    for support in supports(single):
        print(
            f"one endpoint alone:   {support.duration_ms} ms, {support.hellos} hellos "
            f"({single.target.host}, {', '.join(support.cipher_suites)}; target < 500 ms)"
        )
    print(f"scanner peak memory:  {scanner_mb:.0f} MB (target < 300)")
    print(f"emulator peak memory: {emulator_mb:.0f} MB")


if __name__ == "__main__":
    main()
