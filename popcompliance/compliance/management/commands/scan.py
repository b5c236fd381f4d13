"""`manage.py scan [--all | NAME ...]`: scan now, in-process and concurrently, through the same
record path as the workers. Exit status as the scanner CLI: 0 all compliant, 1 any check
fails, 3 none fails but some check could not be determined, 2 bad arguments."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import scanner
from popcompliance.compliance.models import ScanPurpose
from popcompliance.compliance.recording import Recorded, record_crash, record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.inventory.models import Server
from popcompliance.locations import DEFAULT_LOCATION


class ProgressBar:
    """A one-line progress bar on a terminal; plain lines otherwise (logs, CI)."""

    WIDTH = 30

    def __init__(self, total: int, stream: Any) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.live = stream.isatty()

    def __call__(self, report: scanner.ScanReport) -> None:
        self.done += 1
        verdict = {True: "compliant", False: "NON-COMPLIANT", None: "unknown"}[report.compliant]
        if self.live:
            filled = self.WIDTH * self.done // self.total
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} {report.target}\x1b[K")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"{self.done}/{self.total} {report.target}: {verdict}\n")
        self.stream.flush()


class Command(BaseCommand):
    help = "Scan servers now and record the results (as the workers do)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", metavar="NAME", help="servers to scan")
        parser.add_argument("--all", action="store_true", help="every unpaused server")

    def handle(self, *args: Any, **options: Any) -> None:
        servers = self.servers(options["names"], options["all"])
        reports = scan_servers(servers, progress=ProgressBar(len(servers), sys.stderr))
        confirm = []
        for server in servers:
            recorded = record(server, reports[server.pk], ScanPurpose.MANUAL)
            if recorded is not None and recorded.needs_confirmation:
                confirm.append(server)
        if confirm:
            # A suspected regression is re-probed at once: there is nobody to wait for here.
            self.stderr.write(f"re-probing {len(confirm)} suspected regression(s)")
            confirmed = scan_servers(confirm)
            for server in confirm:
                record(server, confirmed[server.pk], ScanPurpose.CONFIRMATION)
            reports.update(confirmed)
        self.summarise(servers, reports)
        sys.exit(scanner.exit_status([reports[server.pk] for server in servers]))

    def servers(self, names: list[str], everything: bool) -> list[Server]:
        if everything == bool(names):
            raise CommandError("name the servers to scan, or give --all (not both)", returncode=2)
        queryset = Server.objects.select_related("policy")
        if everything:
            return list(queryset.filter(paused=False))
        found = {server.name: server for server in queryset.filter(name__in=names)}
        missing = [name for name in names if name not in found]
        if missing:
            raise CommandError(f"no such server: {', '.join(missing)}", returncode=2)
        return [found[name] for name in dict.fromkeys(names)]

    def summarise(self, servers: list[Server], reports: dict[int, scanner.ScanReport]) -> None:
        for server in servers:
            report = reports[server.pk]
            if report.failure:
                self.stdout.write(f"{server.name}: scan failed ({report.failure})")
                continue
            bad = [f"{c.id} {c.status}" for c in report.checks if c.status in ("fail", "error")]
            verdict = {True: "compliant", False: "NON-COMPLIANT", None: "unknown"}[report.compliant]
            self.stdout.write(f"{server.name}: {verdict}" + (f" ({', '.join(bad)})" if bad else ""))


def record(server: Server, report: scanner.ScanReport, purpose: str) -> Recorded | None:
    """Store the report as the workers do; a scan that crashed is kept as a crash (its scan
    run says why), not as checks that could not be judged."""
    if report.failure:
        record_crash(server, DEFAULT_LOCATION, purpose, "manage.py scan", report.failure)
        return None
    return record_report(server.pk, report, purpose=purpose)
