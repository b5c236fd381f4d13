"""Benchmark: compliance reports of 10,000 servers with a year of history (bench/dashboard.py's
fixture, bench/dashboard_seed.py), against the issue's targets: the CSV under 5 s with flat
memory, the PDF under 60 s and 20 MB with the failing servers listed in full.

A throwaway PostgreSQL database `popc_bench_reports` is migrated, seeded and VACUUM ANALYZEd as
bench/dashboard.py does. Each report is then made by `manage.py report` in a process of its
own, so its figures are its own: wall time, CPU time and peak RSS (VmHWM) of that process,
and the file's size. Flat memory is shown by the CSV's Python allocations (tracemalloc's peak,
in a separate run, since tracing slows it) for the whole fleet beside one site's twentieth: a
CSV whose memory grew with the servers would show it there. The XLSX is timed too (no target),
and the CSV and PDF again as of a month ago, every status rebuilt from the history.
The database is dropped at the end. It is not a test.

    python bench/reports.py [--servers 10000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import postgres_database  # noqa: E402
from bench.dashboard import production_environment, setup_django, vacuum_analyze  # noqa: E402

BENCH_DB = "popc_bench_reports"
CSV_SECONDS, PDF_SECONDS, PDF_MB = 5.0, 60.0, 20.0


def measure(environment: dict[str, str], *arguments: str) -> dict[str, Any]:
    """Run this file's `--one` mode (one report, in a fresh process) and read its figures."""
    command = [sys.executable, __file__, "--one", *arguments]
    done = subprocess.run(
        command, env={**os.environ, **environment}, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def one(file_format: str, scope: str, out: str, trace: bool, as_of: str) -> None:
    """Make one report into `out` (as of the day `as_of`, or today), then print its figures as
    one JSON line."""
    import django

    django.setup()
    from django.core.management import call_command

    if trace:
        tracemalloc.start()
    started, cpu = time.perf_counter(), time.process_time()
    day = [] if as_of == "today" else ["--as-of", as_of]
    call_command("report", "--format", file_format, "--scope", scope, *day, "-o", out)
    figures = {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "bytes": Path(out).stat().st_size,
    }
    if trace:
        figures["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    print(json.dumps(figures))


def peak_rss_mb() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux keeps it across
    exec, so a child of the seeded bench would report its parent's peak; VmHWM is the new
    program's own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fleet_figures() -> dict[str, Any]:
    from django.db.models import Count

    from popcompliance.compliance.models import CheckState
    from popcompliance.inventory.models import Server

    by_status = dict(Server.objects.values_list("status").annotate(n=Count("pk")))
    sites = Server.objects.values_list("site").annotate(n=Count("pk")).order_by("-n")
    return {
        "servers": sum(by_status.values()),
        "by_status": by_status,
        "states": CheckState.objects.count(),
        "site": sites[0],
    }


def show(name: str, figures: dict[str, Any], target: str = "") -> None:
    print(
        f"  {name:<26} {figures['seconds']:7.2f} s wall {figures['cpu_seconds']:7.2f} s CPU "
        f"{figures['peak_rss_mb']:7.1f} MB peak RSS {figures['bytes'] / 2**20:7.2f} MB file"
        f"{'  ' + target if target else ''}"
    )


def verdict(ok: bool) -> str:
    return "meets the target" if ok else "MISSES the target"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--one", nargs=5, metavar=("FORMAT", "SCOPE", "OUT", "TRACE", "AS_OF"))
    args = parser.parse_args()
    if args.one:
        file_format, scope, out, trace, as_of = args.one
        one(file_format, scope, out, trace == "trace", as_of)
        return
    warnings.filterwarnings("ignore", message="No directory at")
    workdir = Path(tempfile.mkdtemp(prefix="popc-reports-"))
    with postgres_database(BENCH_DB, args.keep) as url:
        environment = production_environment(url, workdir)
        setup_django(environment)
        from bench.dashboard_seed import scan_templates, seed

        seed(scan_templates(workdir), args.servers)
        vacuum_analyze()
        fleet = fleet_figures()
        site = f"site:{fleet['site'][0]}"
        past = (date.today() - timedelta(days=30)).isoformat()

        def run(
            file_format: str, scope: str, name: str, trace: str, as_of: str = "today"
        ) -> dict[str, Any]:
            return measure(environment, file_format, scope, str(workdir / name), trace, as_of)

        runs = {
            "csv": run("csv", "all", "all.csv", "plain"),
            "pdf": run("pdf", "all", "all.pdf", "plain"),
            "xlsx": run("xlsx", "all", "all.xlsx", "plain"),
            "csv_traced": run("csv", "all", "t.csv", "trace"),
            "site_traced": run("csv", site, "s.csv", "trace"),
            # A month ago: every status rebuilt from the history, not read from today's states.
            "csv_past": run("csv", "all", "past.csv", "plain", past),
            "pdf_past": run("pdf", "all", "past.pdf", "plain", past),
        }
        report(fleet, runs, site, workdir)
    shutil.rmtree(workdir)


def report(fleet: dict[str, Any], runs: dict[str, Any], site: str, workdir: Path) -> None:
    rows = sum(1 for _ in (workdir / "all.csv").open()) - 1
    pages = subprocess.run(
        ["pdfinfo", str(workdir / "all.pdf")], capture_output=True, text=True, check=False
    ).stdout
    page_count = next((line.split()[-1] for line in pages.splitlines() if "Pages" in line), "?")
    print(f"Reports of {fleet['servers']:,} servers, {fleet['states']:,} check states")
    print(f"  by status: {fleet['by_status']}")
    csv_run, pdf_run = runs["csv"], runs["pdf"]
    show("CSV, whole fleet", csv_run, verdict(csv_run["seconds"] < CSV_SECONDS) + " (< 5 s)")
    print(f"    {rows:,} rows, {rows / csv_run['seconds']:,.0f} rows/s")
    pdf_ok = pdf_run["seconds"] < PDF_SECONDS and pdf_run["bytes"] < PDF_MB * 2**20
    show("PDF, whole fleet", pdf_run, verdict(pdf_ok) + " (< 60 s, < 20 MB)")
    print(f"    {page_count} pages")
    show("XLSX, whole fleet", runs["xlsx"])
    show("CSV, a month ago", runs["csv_past"], verdict(runs["csv_past"]["seconds"] < CSV_SECONDS))
    show("PDF, a month ago", runs["pdf_past"], verdict(runs["pdf_past"]["seconds"] < PDF_SECONDS))
    whole, one_site = runs["csv_traced"], runs["site_traced"]
    print(
        f"  CSV memory (tracemalloc peak): whole fleet {whole['traced_peak_mb']:.1f} MB, "
        f"{site} ({fleet['site'][1]} servers) {one_site['traced_peak_mb']:.1f} MB; "
        f"ratio {whole['traced_peak_mb'] / max(one_site['traced_peak_mb'], 0.01):.2f} for "
        f"{fleet['servers'] / fleet['site'][1]:.0f}× the servers"
    )


if __name__ == "__main__":
    main()
