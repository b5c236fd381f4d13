"""Benchmark: the full probe of N emulated POP3 endpoints on distinct loopback addresses.

The emulator (pop3lab, a mixed fleet of Exchange/Dovecot-like/generic configurations) runs in
its own process so that the scanner and the servers each get a core. Every endpoint gets the
whole probe: login probe, STLS, implicit TLS and one handshake per TLS version. Prints
endpoints per second, peak memory and how the verdicts came out (errors mean overload).

    python bench/scan_fleet.py [--count 1000] [--concurrency 100] [--timeout 10]
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

from scanner import Policy, Settings, Target  # noqa: E402
from scanner._probe import scan  # noqa: E402
from tests.dnsserver import DnsServer  # noqa: E402

BASE = "127.1.0.1"
POP3_PORT, POP3S_PORT = 11110, 19950
SERVICE_NAME = "mail.example.test"


def start_emulator(count: int, ca_out: Path) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "pop3lab", "--mixed", "--count", str(count), "--base", BASE,
        "--pop3-port", str(POP3_PORT), "--pop3s-port", str(POP3S_PORT), "--ca-out", str(ca_out),
    ]  # fmt: skip
    emulator = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert emulator.stdout is not None
    for line in emulator.stdout:
        if line.strip() == "ready":
            return emulator
    raise SystemExit(f"the emulator did not start (exit status {emulator.wait()})")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()

    ca_file = Path(tempfile.mkdtemp()) / "lab-root.pem"
    emulator = start_emulator(args.count, ca_file)
    dns_server = DnsServer({SERVICE_NAME: {"A": ["127.0.0.1"]}}).start()
    try:
        settings = Settings(
            timeout=args.timeout, resolver=dns_server.address, concurrency=args.concurrency
        )
        policy = Policy(ca_bundle_pem=ca_file.read_text(), use_system_trust=False)
        started = time.perf_counter()
        reports = scan(targets(args.count), settings, policy)
        elapsed = time.perf_counter() - started
        emulator_mb = emulator_peak_mb(emulator)
    finally:
        emulator.terminate()
        emulator.wait()
        dns_server.stop()

    scanner_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    verdicts = collections.Counter(str(report.compliant) for report in reports)
    errors = collections.Counter(
        check.id for report in reports for check in report.checks if check.status == "error"
    )
    print(f"endpoints:            {len(reports)} (mixed configurations, one address each)")
    print(f"concurrency:          {args.concurrency} targets, 3 connections per address")
    print(f"wall time:            {elapsed:.2f} s")
    print(f"throughput:           {len(reports) / elapsed:.1f} endpoints/s (target >= 50)")
    print(f"scanner peak memory:  {scanner_mb:.0f} MB (target < 300)")
    print(f"emulator peak memory: {emulator_mb:.0f} MB")
    print(
        f"compliant true/false/unknown: {verdicts['True']}/{verdicts['False']}/{verdicts['None']}"
    )
    print(f"checks in error:      {sum(errors.values())} {dict(errors) if errors else ''}")


if __name__ == "__main__":
    main()
