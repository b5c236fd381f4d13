"""Benchmark: the fleet pipeline end to end, dispatch → broker → one Celery worker → database.

1,000 emulated servers (pop3lab's mixed fleet, in its own process as in bench/scan_fleet.py,
each serving POP3, IMAP4 and SMTP submission and declaring the three by default) are added as
Server rows trusting the emulator's root CA. The real dispatcher claims them and enqueues one
task each; one worker process (threads pool) scans and records them. Measured:

- servers/s from the dispatcher's call to the last ScanRun stored, first scans and rescans,
  for each worker concurrency asked for (the best one is used for the rest);
- rows written per scan, by table, on the first scan;
- three unchanged rescans: they must add no CheckState or Change rows (ScanRun: one per scan,
  by design, pruned by retention);
- the database queries of one scan task (the worker's reads, the recording and its writes),
  first scan and unchanged rescan, for a server declaring the three protocols and for one
  declaring POP3 alone: recording writes in bulk, so they should be the same.

Default services: a private redis-server on a free loopback port and a throwaway PostgreSQL
database `popc_bench` on 127.0.0.1:5432 (user postgres, dropped at the end). `--embedded` uses
what `make run` uses instead: SQLite (WAL) and kombu's filesystem broker in a temporary folder.
DNS goes only to a DnsServer of our own. Prints figures; it is not a test.

    python bench/pipeline.py [--count 1000] [--concurrency 8,16,32] [--rescans 3] [--embedded]
                             [--protocols pop3,imap,submission]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import postgres_database, stop_group  # noqa: E402
from bench.scan_fleet import (  # noqa: E402
    ALL_PROTOCOLS,
    BASE,
    PORTS,
    SERVICE_NAME,
    cpu_seconds,
    start_emulator,
)
from scanner import parse_protocols  # noqa: E402
from tests.dnsserver import DnsServer  # noqa: E402
from tests.services import RedisServer  # noqa: E402

BENCH_DB = "popc_bench"
TARGET = 30.0  # the pipeline's goal: servers/s with one worker on 2 cores
TABLES = ("ScanRun", "CheckState", "Change", "Certificate", "CertificateSighting", "ServerAddress")
# A pass that has not finished in this long is reported as it stands.
PASS_TIMEOUT = 600.0


@dataclass
class Pass:
    """One dispatch of the whole fleet and how long until its last scan was stored."""

    concurrency: int
    scans: int
    seconds: float
    worker_cpu: float = 0.0  # seconds of CPU the worker process used
    emulator_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.scans / self.seconds

    def cpu_per_scan(self) -> str:
        """The worker's and the emulator's CPU per scan, and what one worker would do on a
        core of its own (the emulator being elsewhere, as real servers are)."""
        scans = max(self.scans, 1)
        worker_ms = self.worker_cpu / scans * 1000
        return (
            f"worker {worker_ms:.1f} ms, emulator {self.emulator_cpu / scans * 1000:.1f} ms "
            f"of CPU per scan (a worker on a core of its own: ~{1000 / max(worker_ms, 1e-9):.0f} "
            "servers/s)"
        )


# --- services --------------------------------------------------------------------------------


@contextlib.contextmanager
def services(embedded: bool, workdir: Path) -> Iterator[str]:
    """Configure the environment for Django and Celery (in this process and the worker's);
    yields a description of the storage and broker."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "popcompliance.settings"
    os.environ["POPC_VAR_DIR"] = str(workdir / "var")
    # Production settings need a key of their own, as `make run` generates one.
    os.environ.setdefault("SECRET_KEY", "bench-" + os.urandom(16).hex())
    # Quiet, known admin account: ensure_admin runs as in `make run` (and validates it).
    os.environ.setdefault("DJANGO_SUPERUSER_PASSWORD", "bench-only-admin-passphrase")
    # The emulated fleet listens on loopback, which the scanner guard refuses unless allowed.
    os.environ["POPC_SCAN_ALLOW_NETWORKS"] = "127.0.0.0/8"
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    if embedded:
        yield "SQLite (WAL) + filesystem broker, as `make run`"
        return
    redis_server = RedisServer(workdir).start()
    try:
        with postgres_database(BENCH_DB) as url:
            os.environ.update(DATABASE_URL=url, REDIS_URL=redis_server.url)
            yield "PostgreSQL + Redis"
    finally:
        redis_server.stop()


def setup_django() -> None:
    """Migrate and prepare exactly as `make run` does, without its console output."""
    from popcompliance.local_secrets import var_dir
    from popcompliance.run import prepare

    prepare(var_dir(), io.StringIO())
    import popcompliance.celery  # noqa: F401  (binds the tasks to the configured broker)


# --- the fleet -------------------------------------------------------------------------------


def add_fleet(count: int, ca_pem: str, protocols: str) -> None:
    """One Server per emulated endpoint declaring `protocols`, not due yet, judged by a policy
    trusting the lab CA."""
    from datetime import timedelta

    from django.utils import timezone

    from pop3lab.fleet import addresses
    from popcompliance.inventory.models import Policy, Server

    policy = Policy.objects.create(name="bench lab", ca_bundle_pem=ca_pem, use_system_trust=False)
    later = timezone.now() + timedelta(days=1)
    Server.objects.bulk_create(
        Server(
            name=f"lab-{i:04d}",
            host=address,
            service_name=SERVICE_NAME,
            protocols=protocols,
            policy=policy,
            next_scan_at=later,
            **PORTS,
        )
        for i, address in enumerate(addresses(BASE, count))
    )


def row_counts() -> dict[str, int]:
    from django.apps import apps

    return {name: apps.get_model("compliance", name).objects.count() for name in TABLES}


def check_state_updates() -> int | None:
    """Rows of CheckState updated so far, by PostgreSQL's statistics (None on SQLite). A
    worker's backend reports them when it ends, at the latest."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'compliance_checkstate'"
        )
        return int(cursor.fetchone()[0])


def scheduled_runs() -> int:
    from popcompliance.compliance.models import ScanPurpose, ScanRun

    return ScanRun.objects.filter(purpose=ScanPurpose.SCHEDULED).count()


# --- the worker ------------------------------------------------------------------------------


class Worker:
    """One `celery worker` process, threads pool, its log in `workdir`."""

    def __init__(self, concurrency: int, workdir: Path) -> None:
        self.concurrency = concurrency
        self.name = f"bench{concurrency}"
        self.log = workdir / f"worker-{concurrency}.log"
        command = [sys.executable, "-m", "celery", "-A", "popcompliance", "worker", "-n",
                   f"{self.name}@%h", "--pool", "threads", "--concurrency", str(concurrency),
                   "--loglevel", "info", "--without-gossip", "--without-mingle",
                   "--without-heartbeat"]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        """The worker writes its heartbeat row when it is ready to consume."""
        from popcompliance.compliance.models import Heartbeat

        deadline = time.monotonic() + 60
        while not Heartbeat.objects.filter(name__startswith=f"worker {self.name}@").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start; see {self.log}")
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Warm shutdown, then kill what is left of its process group."""
        stop_group(self.process)


def peak_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def dispatch_and_wait(worker: Worker, emulator_pid: int) -> Pass:
    """Make every server due, run the real dispatcher, wait for the last scheduled ScanRun."""
    from django.utils import timezone

    from popcompliance.compliance.tasks import dispatch_due_scans
    from popcompliance.inventory.models import Server

    Server.objects.update(next_scan_at=timezone.now())
    before = scheduled_runs()
    cpu_before = cpu_seconds(worker.process.pid), cpu_seconds(emulator_pid)
    started = time.perf_counter()
    claimed = dispatch_due_scans()
    deadline = time.monotonic() + PASS_TIMEOUT
    while (done := scheduled_runs() - before) < claimed and time.monotonic() < deadline:
        if not worker.running:
            raise SystemExit(f"the worker died; see {worker.log}")
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    worker_cpu = cpu_seconds(worker.process.pid) - cpu_before[0]
    emulator_cpu = cpu_seconds(emulator_pid) - cpu_before[1]
    return Pass(worker.concurrency, done, seconds, worker_cpu, emulator_cpu)


# --- the run ---------------------------------------------------------------------------------


def first_scan(concurrency: int, workdir: Path, emulator_pid: int) -> tuple[Pass, dict[str, int]]:
    """Scan the new fleet once; the pass and the rows it added per table."""
    before = row_counts()
    worker = Worker(concurrency, workdir)
    try:
        result = dispatch_and_wait(worker, emulator_pid)
    finally:
        worker.stop()
    after = row_counts()
    return result, {name: after[name] - before[name] for name in TABLES}


def sweep(concurrencies: list[int], workdir: Path, emulator_pid: int) -> list[Pass]:
    """One unchanged rescan per concurrency, each with a fresh worker."""
    results = []
    for concurrency in concurrencies:
        worker = Worker(concurrency, workdir)
        try:
            results.append(dispatch_and_wait(worker, emulator_pid))
        finally:
            worker.stop()
    return results


@dataclass
class Rescans:
    """Unchanged rescans of the fleet: the passes, the rows they added per table, the
    CheckState rows they updated (None on SQLite) and the worker's peak memory."""

    passes: list[Pass]
    added: dict[str, int]
    updated_states: int | None
    worker_mb: float


def rescans(times: int, concurrency: int, workdir: Path, emulator_pid: int) -> Rescans:
    """`times` unchanged rescans with one worker."""
    before, updates_before = row_counts(), check_state_updates()
    worker = Worker(concurrency, workdir)
    try:
        passes = [dispatch_and_wait(worker, emulator_pid) for _ in range(times)]
        peak = peak_mb(worker.process.pid)
    finally:
        worker.stop()
    time.sleep(1)  # the worker's database sessions report their statistics as they end
    after, updates_after = row_counts(), check_state_updates()
    added = {name: after[name] - before[name] for name in TABLES}
    updated = None if updates_before is None else updates_after - updates_before
    return Rescans(passes, added, updated, peak)


def task_queries(protocols: str) -> tuple[int, int]:
    """The database queries of the scan task (as a worker runs it, here in this process) for
    a new server declaring `protocols` on the fleet's first address: its first scan, then an
    unchanged rescan. The server is deleted afterwards."""
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from pop3lab.fleet import addresses
    from popcompliance.compliance.tasks import scan_server
    from popcompliance.inventory.models import Policy, Server

    server = Server.objects.create(
        name=f"queries {protocols}",
        host=addresses(BASE, 1)[0],
        service_name=SERVICE_NAME,
        protocols=protocols,
        policy=Policy.objects.get(name="bench lab"),
        next_scan_at=timezone.now() + timedelta(days=1),
        **PORTS,
    )
    counts = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            scan_server(server.pk)
        counts.append(len(queries))
    server.delete()
    return counts[0], counts[1]


def outcome_counts(workdir: Path) -> dict[str, int]:
    """Facts about how the scans went: retries, crashes, re-probes, held candidates."""
    from popcompliance.compliance.models import CheckState, ScanPurpose, ScanRun
    from popcompliance.inventory.models import Server

    logs = "".join(log.read_text(errors="replace") for log in workdir.glob("worker-*.log"))
    return {
        # Retries are for transient database errors, e.g. SQLite's lock outlasting its timeout.
        "tasks retried": logs.count(" retry: "),
        "crashed scans": ScanRun.objects.exclude(error="").count(),
        "confirmation re-probes": ScanRun.objects.filter(purpose=ScanPurpose.CONFIRMATION).count(),
        "checks held unconfirmed": CheckState.objects.exclude(candidate_status="").count(),
        "checks in error": CheckState.objects.filter(status="error").count(),
        "servers compliant": Server.objects.filter(status="compliant").count(),
        "servers non-compliant": Server.objects.filter(status="non_compliant").count(),
        "servers unknown": Server.objects.filter(status="unknown").count(),
    }


def per_scan(rows: dict[str, int], scans: int) -> str:
    return ", ".join(f"{name} {count / max(scans, 1):.2f}" for name, count in rows.items())


def report(
    storage: str,
    count: int,
    protocols: str,
    first: tuple[Pass, dict[str, int]],
    swept: list[Pass],
    repeated: Rescans,
    queries: dict[str, tuple[int, int]],
    emulator_mb: float,
    workdir: Path,
) -> None:
    """Print the figures and ratios."""
    first_pass, first_rows = first
    passes, added, worker_mb = repeated.passes, repeated.added, repeated.worker_mb
    best = passes[0].concurrency if passes else 0
    print(f"pipeline:             dispatch → broker → 1 worker (threads) → {storage}")
    print(f"servers:              {count} (pop3lab mixed fleet, one address each)")
    print(f"protocols:            {protocols.replace(',', ', ')} declared and served by each")
    print(
        f"first scan:           {first_pass.scans} in {first_pass.seconds:.1f} s = "
        f"{first_pass.rate:.1f} servers/s (concurrency {first_pass.concurrency})"
    )
    print(f"  CPU:                {first_pass.cpu_per_scan()}")
    print(f"rows per first scan:  {per_scan(first_rows, first_pass.scans)}")
    print(
        f"  in all:             {sum(first_rows.values()) / max(first_pass.scans, 1):.1f} rows "
        "per first scan"
    )
    for declared, (first_queries, rescan_queries) in queries.items():
        print(
            f"queries per scan task ({declared}): first scan {first_queries}, "
            f"unchanged rescan {rescan_queries}"
        )
    for result in swept:
        print(
            f"rescan, concurrency {result.concurrency:>2}: {result.rate:6.1f} servers/s "
            f"({result.rate / TARGET:.2f}× the target of {TARGET:.0f}); {result.cpu_per_scan()}"
        )
    scans = sum(p.scans for p in passes)
    seconds = sum(p.seconds for p in passes)
    print(
        f"{len(passes)} unchanged rescans: {scans} scans in {seconds:.1f} s = "
        f"{scans / max(seconds, 1e-9):.1f} servers/s (concurrency {best})"
    )
    together = Pass(
        best,
        scans,
        seconds,
        sum(p.worker_cpu for p in passes),
        sum(p.emulator_cpu for p in passes),
    )
    print(f"  CPU:                {together.cpu_per_scan()}")
    print(f"  rows they added:    {', '.join(f'{n} +{c}' for n, c in added.items())}")
    print(
        f"  per rescan:         {per_scan(added, scans)} "
        "(ScanRun: one per scan by design, pruned after POPC_SCAN_RUN_RETENTION_DAYS)"
    )
    verdict = "none" if added["CheckState"] == added["Change"] == 0 else "SOME (unexpected)"
    print(f"  CheckState/Change rows added by unchanged rescans: {verdict}")
    if repeated.updated_states is not None:
        print(
            f"  CheckState rows they updated: {repeated.updated_states} "
            f"({repeated.updated_states / max(scans, 1):.2f} per rescan)"
        )
    print(f"worker peak memory:   {worker_mb:.0f} MB; emulator peak memory: {emulator_mb:.0f} MB")
    for name, value in outcome_counts(workdir).items():
        print(f"{name + ':':<26}{value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", default="8,16,32", help="worker concurrencies to try")
    parser.add_argument("--rescans", type=int, default=3)
    parser.add_argument("--embedded", action="store_true", help="SQLite + filesystem broker")
    parser.add_argument("--protocols", default=ALL_PROTOCOLS, help="declared by every server")
    args = parser.parse_args()
    concurrencies = [int(value) for value in args.concurrency.split(",")]
    protocols = ",".join(parse_protocols(args.protocols))

    workdir = Path(tempfile.mkdtemp(prefix="popc-pipeline-"))
    emulator = start_emulator(
        "mixed", args.count, workdir / "lab-root.pem", parse_protocols(protocols)
    )
    dns_server = DnsServer({SERVICE_NAME: {"A": ["127.0.0.1"]}}).start()
    os.environ["POPC_DNS_RESOLVER"] = dns_server.address
    try:
        with services(args.embedded, workdir) as storage:
            setup_django()
            add_fleet(args.count, (workdir / "lab-root.pem").read_text(), protocols)
            first = first_scan(max(concurrencies), workdir, emulator.pid)
            swept = sweep(concurrencies, workdir, emulator.pid)
            best = max(swept, key=lambda p: p.rate).concurrency
            repeated = rescans(args.rescans, best, workdir, emulator.pid)
            # After the passes, so that no worker takes what these scans queue (alerts).
            queries = {
                declared: task_queries(declared) for declared in dict.fromkeys((protocols, "pop3"))
            }
            emulator_mb = peak_mb(emulator.pid)
            report(
                storage, args.count, protocols, first, swept, repeated, queries, emulator_mb,
                workdir,
            )  # fmt: skip
        shutil.rmtree(workdir)  # kept when something failed: the worker logs are there
    finally:
        emulator.terminate()
        emulator.wait()
        dns_server.stop()


if __name__ == "__main__":
    main()
