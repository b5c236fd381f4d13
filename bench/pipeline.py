"""Benchmark: the fleet pipeline end to end, dispatch → broker → Celery workers → database.

1,000 emulated servers (pop3lab's mixed fleet, in its own process as in bench/scan_fleet.py,
each serving POP3, IMAP4 and SMTP submission and declaring the three by default) are added as
Server rows trusting the emulator's root CA, each probed from every probe location asked for
(`--locations`, two by default: `external` and `dmz`). The real dispatcher claims each server ×
location and enqueues one task on that location's queue; one worker process per location
(threads pool, `-Q <location>`) scans and records them. Measured:

- servers/s per location (per worker) from the dispatcher's call to the location's last
  ScanRun stored, first scans and rescans, for each worker concurrency asked for (the best one
  is used for the rest);
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
                             [--protocols pop3,imap,submission] [--locations external,dmz]

`--locations default` is the single-location pipeline of earlier versions (one worker, the
default queue). The workers share this machine's cores with the emulator and the database:
the figures are what one machine does, not what a worker on a machine of its own would.
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

from bench import scan_fleet  # noqa: E402
from bench._support import postgres_database, stop_group  # noqa: E402
from bench.scan_fleet import (  # noqa: E402
    ALL_PROTOCOLS,
    PORTS,
    SERVICE_NAME,
    cpu_seconds,
    start_emulator,
)
from scanner import parse_protocols  # noqa: E402
from tests.dnsserver import DnsServer  # noqa: E402
from tests.services import RedisServer  # noqa: E402

# Another name (POPC_BENCH_DB) lets benches run side by side on one PostgreSQL.
BENCH_DB = os.environ.get("POPC_BENCH_DB", "popc_bench")
TARGET = 30.0  # the pipeline's goal: servers/s per worker on 2 cores
TABLES = ("ScanRun", "CheckState", "Change", "Certificate", "CertificateSighting", "ServerAddress")
# A pass that has not finished in this long is reported as it stands.
PASS_TIMEOUT = 600.0


@dataclass
class Pass:
    """One dispatch of the whole fleet and how long until the last scan of one location (one
    worker) was stored."""

    concurrency: int
    scans: int
    seconds: float
    location: str = "default"
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


def add_fleet(count: int, ca_pem: str, protocols: str, locations: str) -> None:
    """One Server per emulated endpoint declaring `protocols`, probed from `locations`, not
    due yet, judged by a policy trusting the lab CA. Inserted in bulk as the CSV import does:
    the dispatcher gives them their per-location schedules when they are first due."""
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
            locations=locations,
            policy=policy,
            next_scan_at=later,
            **PORTS,
        )
        for i, address in enumerate(addresses(scan_fleet.BASE, count))
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


def scheduled_runs() -> dict[str, int]:
    """Scheduled ScanRuns stored so far, by location."""
    from django.db.models import Count

    from popcompliance.compliance.models import ScanPurpose, ScanRun

    rows = ScanRun.objects.filter(purpose=ScanPurpose.SCHEDULED).values_list("location")
    return dict(rows.annotate(n=Count("id")).order_by())


# --- the worker ------------------------------------------------------------------------------


class Worker:
    """One `celery worker` process for one location (its queue only), threads pool, its log
    in `workdir`."""

    def __init__(self, concurrency: int, workdir: Path, location: str) -> None:
        from popcompliance import locations

        self.concurrency = concurrency
        self.location = location
        self.queue = locations.queue(location)
        self.name = f"{location}{concurrency}"
        self.log = workdir / f"worker-{self.name}.log"
        command = [sys.executable, "-m", "celery", "-A", "popcompliance", "worker", "-n",
                   f"{self.name}@%h", "-Q", self.queue, "--pool", "threads", "--concurrency",
                   str(concurrency), "--loglevel", "info", "--without-gossip",
                   "--without-mingle", "--without-heartbeat"]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        """The worker writes its heartbeat row when it is ready to consume: its own for the
        default queue, its queue's (naming it) for another location's."""
        from django.db.models import Q

        from popcompliance.compliance.models import Heartbeat

        mine = Q(name__startswith=f"worker {self.name}@") | Q(
            name=f"queue {self.queue}", detail__startswith=f"{self.name}@"
        )
        deadline = time.monotonic() + 60
        while not Heartbeat.objects.filter(mine).exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start; see {self.log}")
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Warm shutdown, then kill what is left of its process group."""
        stop_group(self.process)


class Workers:
    """One worker per location, started together and stopped together."""

    def __init__(self, concurrency: int, workdir: Path, locations: list[str]) -> None:
        self.all: list[Worker] = []
        try:
            for location in locations:
                self.all.append(Worker(concurrency, workdir, location))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for worker in self.all:
            worker.stop()


def peak_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def dispatch_and_wait(workers: Workers, emulator_pid: int) -> list[Pass]:
    """Make every server due from every location, run the real dispatcher, wait for each
    location's last scheduled ScanRun; one pass per location (per worker)."""
    from django.utils import timezone

    from popcompliance.compliance.tasks import dispatch_due_scans
    from popcompliance.inventory.models import Server, ServerLocation

    now = timezone.now()
    Server.objects.update(next_scan_at=now)
    ServerLocation.objects.update(next_scan_at=now)
    before = scheduled_runs()
    pids = [worker.process.pid for worker in workers.all]
    cpu_before = [cpu_seconds(pid) for pid in pids], cpu_seconds(emulator_pid)
    started = time.perf_counter()
    claimed = dispatch_due_scans()
    expected = claimed // len(workers.all)
    finished: dict[str, float] = {}
    deadline = time.monotonic() + PASS_TIMEOUT
    while len(finished) < len(workers.all) and time.monotonic() < deadline:
        done = scheduled_runs()
        for worker in workers.all:
            if not worker.running:
                raise SystemExit(f"the worker died; see {worker.log}")
            stored = done.get(worker.location, 0) - before.get(worker.location, 0)
            if worker.location not in finished and stored >= expected:
                finished[worker.location] = time.perf_counter() - started
        time.sleep(0.2)
    done = scheduled_runs()
    emulator_cpu = (cpu_seconds(emulator_pid) - cpu_before[1]) / len(workers.all)
    passes = []
    for worker, pid, cpu in zip(workers.all, pids, cpu_before[0], strict=True):
        stored = done.get(worker.location, 0) - before.get(worker.location, 0)
        seconds = finished.get(worker.location, time.perf_counter() - started)
        worker_cpu = cpu_seconds(pid) - cpu
        passes.append(
            Pass(
                worker.concurrency,
                stored,
                seconds,
                location=worker.location,
                worker_cpu=worker_cpu,
                emulator_cpu=emulator_cpu,
            )
        )
    return passes


# --- the run ---------------------------------------------------------------------------------


def first_scan(
    concurrency: int, workdir: Path, emulator_pid: int, locations: list[str]
) -> tuple[list[Pass], dict[str, int]]:
    """Scan the new fleet once from every location; the passes and the rows added per table."""
    before = row_counts()
    workers = Workers(concurrency, workdir, locations)
    try:
        result = dispatch_and_wait(workers, emulator_pid)
    finally:
        workers.stop()
    after = row_counts()
    return result, {name: after[name] - before[name] for name in TABLES}


def sweep(
    concurrencies: list[int], workdir: Path, emulator_pid: int, locations: list[str]
) -> list[list[Pass]]:
    """One unchanged rescan per concurrency, each with fresh workers."""
    results = []
    for concurrency in concurrencies:
        workers = Workers(concurrency, workdir, locations)
        try:
            results.append(dispatch_and_wait(workers, emulator_pid))
        finally:
            workers.stop()
    return results


@dataclass
class Rescans:
    """Unchanged rescans of the fleet: the passes (one list per round, one pass per location),
    the rows they added per table, the CheckState rows they updated (None on SQLite) and the
    workers' peak memory."""

    rounds: list[list[Pass]]
    added: dict[str, int]
    updated_states: int | None
    worker_mb: float


def rescans(
    times: int, concurrency: int, workdir: Path, emulator_pid: int, locations: list[str]
) -> Rescans:
    """`times` unchanged rescans with one worker per location."""
    before, updates_before = row_counts(), check_state_updates()
    workers = Workers(concurrency, workdir, locations)
    try:
        rounds = [dispatch_and_wait(workers, emulator_pid) for _ in range(times)]
        peak = max(peak_mb(worker.process.pid) for worker in workers.all)
    finally:
        workers.stop()
    time.sleep(1)  # the worker's database sessions report their statistics as they end
    after, updates_after = row_counts(), check_state_updates()
    added = {name: after[name] - before[name] for name in TABLES}
    updated = None if updates_before is None else updates_after - updates_before
    return Rescans(rounds, added, updated, peak)


def task_queries(protocols: str, locations: str) -> tuple[int, int]:
    """The database queries of the scan task (as a worker runs it, here in this process) for
    a new server declaring `protocols` on the fleet's first address, from its first location:
    its first scan, then an unchanged rescan. The server is deleted afterwards."""
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from pop3lab.fleet import addresses
    from popcompliance.compliance.tasks import scan_server
    from popcompliance.inventory.models import Policy, Server

    server = Server.objects.create(
        name=f"queries {protocols}",
        host=addresses(scan_fleet.BASE, 1)[0],
        service_name=SERVICE_NAME,
        protocols=protocols,
        locations=locations,
        policy=Policy.objects.get(name="bench lab"),
        next_scan_at=timezone.now() + timedelta(days=1),
        **PORTS,
    )
    counts = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            scan_server(server.pk, location=server.probe_locations[0])
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
    locations: list[str],
    first: tuple[list[Pass], dict[str, int]],
    swept: list[list[Pass]],
    repeated: Rescans,
    queries: dict[str, tuple[int, int]],
    emulator_mb: float,
    workdir: Path,
) -> None:
    """Print the figures and ratios."""
    first_passes, first_rows = first
    rounds, added, worker_mb = repeated.rounds, repeated.added, repeated.worker_mb
    best = rounds[0][0].concurrency if rounds else 0
    workers = len(locations)
    print(
        f"pipeline:             dispatch → broker → {workers} worker{'s' * (workers > 1)} "
        f"(threads, one per location's queue) → {storage}"
    )
    print(f"servers:              {count} (pop3lab mixed fleet, one address each)")
    print(f"protocols:            {protocols.replace(',', ', ')} declared and served by each")
    print(f"locations:            {', '.join(locations)}: every server probed from each")
    first_scans = sum(p.scans for p in first_passes)
    for result in first_passes:
        print(
            f"first scan, {result.location:<9} {result.scans} in {result.seconds:.1f} s = "
            f"{result.rate:.1f} servers/s (concurrency {result.concurrency}); "
            f"{result.cpu_per_scan()}"
        )
    print(f"rows per first scan:  {per_scan(first_rows, first_scans)}")
    print(
        f"  in all:             {sum(first_rows.values()) / max(first_scans, 1):.1f} rows "
        "per first scan"
    )
    for declared, (first_queries, rescan_queries) in queries.items():
        print(
            f"queries per scan task ({declared}): first scan {first_queries}, "
            f"unchanged rescan {rescan_queries}"
        )
    for passes in swept:
        for result in passes:
            print(
                f"rescan, concurrency {result.concurrency:>2}, {result.location:<9} "
                f"{result.rate:6.1f} servers/s ({result.rate / TARGET:.2f}× the target of "
                f"{TARGET:.0f} per worker); {result.cpu_per_scan()}"
            )
    scans = 0
    for location in locations:
        mine = [p for passes in rounds for p in passes if p.location == location]
        located = sum(p.scans for p in mine)
        seconds = sum(p.seconds for p in mine)
        scans += located
        rate = located / max(seconds, 1e-9)
        verdict = "meets" if rate >= TARGET else "BELOW"
        print(
            f"{len(mine)} unchanged rescans, {location}: {located} scans in {seconds:.1f} s = "
            f"{rate:.1f} servers/s per worker (concurrency {best}; {verdict} the target of "
            f"{TARGET:.0f})"
        )
        together = Pass(
            best,
            located,
            seconds,
            location=location,
            worker_cpu=sum(p.worker_cpu for p in mine),
            emulator_cpu=sum(p.emulator_cpu for p in mine),
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
    parser.add_argument(
        "--locations", default="external,dmz", help="probe locations, one worker each"
    )
    parser.add_argument(
        "--base", default=scan_fleet.BASE, help="the fleet's first loopback address"
    )
    args = parser.parse_args()
    # Another range lets this bench run beside bench/scan_fleet.py on one machine.
    scan_fleet.BASE = args.base
    concurrencies = [int(value) for value in args.concurrency.split(",")]
    protocols = ",".join(parse_protocols(args.protocols))
    locations = [name.strip() for name in args.locations.split(",") if name.strip()]
    # Every process (this one, the workers) declares them, as a deployment's settings would.
    os.environ["POPC_LOCATIONS"] = ",".join(name for name in locations if name != "default")

    workdir = Path(tempfile.mkdtemp(prefix="popc-pipeline-"))
    emulator = start_emulator(
        "mixed", args.count, workdir / "lab-root.pem", parse_protocols(protocols)
    )
    dns_server = DnsServer({SERVICE_NAME: {"A": ["127.0.0.1"]}}).start()
    os.environ["POPC_DNS_RESOLVER"] = dns_server.address
    try:
        with services(args.embedded, workdir) as storage:
            setup_django()
            pem = (workdir / "lab-root.pem").read_text()
            add_fleet(args.count, pem, protocols, ",".join(locations))
            first = first_scan(max(concurrencies), workdir, emulator.pid, locations)
            swept = sweep(concurrencies, workdir, emulator.pid, locations)
            # The concurrency whose slowest location was fastest.
            best = max(swept, key=lambda passes: min(p.rate for p in passes))[0].concurrency
            repeated = rescans(args.rescans, best, workdir, emulator.pid, locations)
            # After the passes, so that no worker takes what these scans queue (alerts).
            queries = {
                declared: task_queries(declared, ",".join(locations))
                for declared in dict.fromkeys((protocols, "pop3"))
            }
            emulator_mb = peak_mb(emulator.pid)
            report(
                storage, args.count, protocols, locations, first, swept, repeated, queries,
                emulator_mb, workdir,
            )  # fmt: skip
        shutil.rmtree(workdir)  # kept when something failed: the worker logs are there
    finally:
        emulator.terminate()
        emulator.wait()
        dns_server.stop()


if __name__ == "__main__":
    main()
