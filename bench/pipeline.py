"""Benchmark: the fleet pipeline end to end, dispatch → broker → one Celery worker → database.

1,000 emulated servers (pop3lab's mixed fleet, in its own process as in bench/scan_fleet.py)
are added as Server rows trusting the emulator's root CA. The real dispatcher claims them and
enqueues one task each; one worker process (threads pool) scans and records them. Measured:

- servers/s from the dispatcher's call to the last ScanRun stored, first scans and rescans,
  for each worker concurrency asked for (the best one is used for the rest);
- rows written per scan, by table, on the first scan;
- ten unchanged rescans: they must add no CheckState or Change rows (ScanRun: one per scan,
  by design, pruned by retention).

Default services: a private redis-server on a free loopback port and a throwaway PostgreSQL
database `popc_bench` on 127.0.0.1:5432 (user postgres, dropped at the end). `--embedded` uses
what `make run` uses instead: SQLite (WAL) and kombu's filesystem broker in a temporary folder.
DNS goes only to a DnsServer of our own. Prints figures; it is not a test.

    python bench/pipeline.py [--count 1000] [--concurrency 8,16,32] [--rescans 10] [--embedded]
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
    BASE,
    POP3_PORT,
    POP3S_PORT,
    SERVICE_NAME,
    start_emulator,
)
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

    @property
    def rate(self) -> float:
        return self.scans / self.seconds


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


def add_fleet(count: int, ca_pem: str) -> None:
    """One Server per emulated endpoint, not due yet, judged by a policy trusting the lab CA."""
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
            pop3_port=POP3_PORT,
            pop3s_port=POP3S_PORT,
            policy=policy,
            next_scan_at=later,
        )
        for i, address in enumerate(addresses(BASE, count))
    )


def row_counts() -> dict[str, int]:
    from django.apps import apps

    return {name: apps.get_model("compliance", name).objects.count() for name in TABLES}


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


def dispatch_and_wait(worker: Worker) -> Pass:
    """Make every server due, run the real dispatcher, wait for the last scheduled ScanRun."""
    from django.utils import timezone

    from popcompliance.compliance.tasks import dispatch_due_scans
    from popcompliance.inventory.models import Server

    Server.objects.update(next_scan_at=timezone.now())
    before = scheduled_runs()
    started = time.perf_counter()
    claimed = dispatch_due_scans()
    deadline = time.monotonic() + PASS_TIMEOUT
    while (done := scheduled_runs() - before) < claimed and time.monotonic() < deadline:
        if not worker.running:
            raise SystemExit(f"the worker died; see {worker.log}")
        time.sleep(0.2)
    return Pass(worker.concurrency, done, time.perf_counter() - started)


# --- the run ---------------------------------------------------------------------------------


def first_scan(concurrency: int, workdir: Path) -> tuple[Pass, dict[str, int]]:
    """Scan the new fleet once; the pass and the rows it added per table."""
    before = row_counts()
    worker = Worker(concurrency, workdir)
    try:
        result = dispatch_and_wait(worker)
    finally:
        worker.stop()
    after = row_counts()
    return result, {name: after[name] - before[name] for name in TABLES}


def sweep(concurrencies: list[int], workdir: Path) -> list[Pass]:
    """One unchanged rescan per concurrency, each with a fresh worker."""
    results = []
    for concurrency in concurrencies:
        worker = Worker(concurrency, workdir)
        try:
            results.append(dispatch_and_wait(worker))
        finally:
            worker.stop()
    return results


def rescans(
    times: int, concurrency: int, workdir: Path
) -> tuple[list[Pass], dict[str, int], float]:
    """`times` unchanged rescans; the passes, rows added per table and the worker's peak MB."""
    before = row_counts()
    worker = Worker(concurrency, workdir)
    try:
        passes = [dispatch_and_wait(worker) for _ in range(times)]
        peak = peak_mb(worker.process.pid)
    finally:
        worker.stop()
    after = row_counts()
    return passes, {name: after[name] - before[name] for name in TABLES}, peak


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
    first: tuple[Pass, dict[str, int]],
    swept: list[Pass],
    repeated: tuple[list[Pass], dict[str, int], float],
    emulator_mb: float,
    workdir: Path,
) -> None:
    """Print the figures and ratios."""
    first_pass, first_rows = first
    passes, added, worker_mb = repeated
    best = passes[0].concurrency if passes else 0
    print(f"pipeline:             dispatch → broker → 1 worker (threads) → {storage}")
    print(f"servers:              {count} (pop3lab mixed fleet, one address each)")
    print(
        f"first scan:           {first_pass.scans} in {first_pass.seconds:.1f} s = "
        f"{first_pass.rate:.1f} servers/s (concurrency {first_pass.concurrency})"
    )
    print(f"rows per first scan:  {per_scan(first_rows, first_pass.scans)}")
    for result in swept:
        print(
            f"rescan, concurrency {result.concurrency:>2}: {result.rate:6.1f} servers/s "
            f"({result.rate / TARGET:.2f}× the target of {TARGET:.0f})"
        )
    scans = sum(p.scans for p in passes)
    seconds = sum(p.seconds for p in passes)
    print(
        f"{len(passes)} unchanged rescans: {scans} scans in {seconds:.1f} s = "
        f"{scans / max(seconds, 1e-9):.1f} servers/s (concurrency {best})"
    )
    print(f"  rows they added:    {', '.join(f'{n} +{c}' for n, c in added.items())}")
    print(
        f"  per rescan:         {per_scan(added, scans)} "
        "(ScanRun: one per scan by design, pruned after POPC_SCAN_RUN_RETENTION_DAYS)"
    )
    verdict = "none" if added["CheckState"] == added["Change"] == 0 else "SOME (unexpected)"
    print(f"  CheckState/Change rows added by unchanged rescans: {verdict}")
    print(f"worker peak memory:   {worker_mb:.0f} MB; emulator peak memory: {emulator_mb:.0f} MB")
    for name, value in outcome_counts(workdir).items():
        print(f"{name + ':':<26}{value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", default="8,16,32", help="worker concurrencies to try")
    parser.add_argument("--rescans", type=int, default=10)
    parser.add_argument("--embedded", action="store_true", help="SQLite + filesystem broker")
    args = parser.parse_args()
    concurrencies = [int(value) for value in args.concurrency.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="popc-pipeline-"))
    emulator = start_emulator("mixed", args.count, workdir / "lab-root.pem")
    dns_server = DnsServer({SERVICE_NAME: {"A": ["127.0.0.1"]}}).start()
    os.environ["POPC_DNS_RESOLVER"] = dns_server.address
    try:
        with services(args.embedded, workdir) as storage:
            setup_django()
            add_fleet(args.count, (workdir / "lab-root.pem").read_text())
            first = first_scan(max(concurrencies), workdir)
            swept = sweep(concurrencies, workdir)
            best = max(swept, key=lambda p: p.rate).concurrency
            repeated = rescans(args.rescans, best, workdir)
            emulator_mb = peak_mb(emulator.pid)
            report(storage, args.count, first, swept, repeated, emulator_mb, workdir)
        shutil.rmtree(workdir)  # kept when something failed: the worker logs are there
    finally:
        emulator.terminate()
        emulator.wait()
        dns_server.stop()


if __name__ == "__main__":
    main()
