"""Benchmark: a 100,000-row CSV import and export, as an admin does them in the browser.

In a throwaway PostgreSQL database `popc_bench_csv`: the file is uploaded to the import page
(the web side stores it as a job and answers at once), a worker's task imports it in bulk
(timed in this process), the same file is imported again (every row unchanged), and the export
page streams the inventory back. Printed: the time of each step against its target, and the
resident memory of the web side while it takes the upload and streams the export (sampled, so
a flat figure means the file is never held whole). It is not a test.

    python bench/csv_io.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import postgres_database  # noqa: E402
from bench.dashboard import production_environment, setup_django  # noqa: E402

BENCH_DB = "popc_bench_csv"
IMPORT_TARGET_S = 60.0
EXPORT_TARGET_S = 10.0
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def resident_mib() -> float:
    """This process's resident memory now (not its peak)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE / 2**20


def fleet_csv(rows: int) -> bytes:
    lines = ["name,host,service_name,pop3_port,pop3s_port,site,tags,owner_email,scan_interval"]
    for n in range(rows):
        lines.append(
            f"cas{n:06},10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256},mail{n % 50}.corp.example,"
            f"110,995,site{n % 40},tier{n % 3};region{n % 7},ops{n % 90}@corp.example,60"
        )
    return ("\n".join(lines) + "\n").encode()


def admin_client():  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import User
    from django.test import Client

    from popcompliance.accounts.roles import set_role

    admin = User.objects.create_user("bench-admin")
    set_role(admin, "admin")
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(admin)
    return client


def upload(client, data: bytes) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """The web side's share: seconds, memory growth in MiB, and the job it queued."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from popcompliance.inventory.models import ImportJob

    before = resident_mib()
    started = time.perf_counter()
    file = SimpleUploadedFile("fleet.csv", data, "text/csv")
    response = client.post("/servers/import/", {"file": file}, secure=True)
    elapsed = time.perf_counter() - started
    assert response.status_code == 302, response.status_code
    return elapsed, resident_mib() - before, ImportJob.objects.latest("created_at").pk


def run_job(job_id: int) -> float:
    from popcompliance.inventory.models import ImportJob
    from popcompliance.inventory.tasks import import_servers

    started = time.perf_counter()
    summary = import_servers(job_id)
    elapsed = time.perf_counter() - started
    errors = len(ImportJob.objects.get(pk=job_id).errors)
    print(f"  {summary} ({errors} refused)")
    return elapsed


def export(client) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """Seconds to stream the whole export, the largest memory growth seen while it streams,
    and its size in bytes."""
    before, peak, size = resident_mib(), 0.0, 0
    started = time.perf_counter()
    response = client.get("/servers/export.csv", secure=True)
    for count, chunk in enumerate(response.streaming_content):
        size += len(chunk)
        if count % 5000 == 0:
            peak = max(peak, resident_mib() - before)
    return time.perf_counter() - started, peak, size


def verdict(seconds: float, target: float) -> str:
    return f"{seconds:.1f} s (target < {target:.0f} s: {'met' if seconds < target else 'MISSED'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="popc-csv-"))
    data = fleet_csv(args.rows)
    print(f"CSV import and export, {args.rows:,} rows ({len(data) / 2**20:.1f} MiB)")
    with postgres_database(BENCH_DB) as url:
        setup_django(production_environment(url, workdir))
        from popcompliance.run import embedded_folders

        # The page queues the job on the embedded broker; this process then runs it itself.
        for folder in embedded_folders():
            folder.mkdir(parents=True, exist_ok=True)
        client = admin_client()
        seconds, growth, job = upload(client, data)
        print(f"upload (web request): {seconds:.2f} s, web memory +{growth:.0f} MiB")
        print(f"import by the worker: {verdict(run_job(job), IMPORT_TARGET_S)}")
        _, _, again = upload(client, data)
        print(f"same file again: {verdict(run_job(again), IMPORT_TARGET_S)}")
        seconds, growth, size = export(client)
        print(f"export (streamed, {size / 2**20:.1f} MiB): {verdict(seconds, EXPORT_TARGET_S)}, "
              f"web memory +{growth:.0f} MiB at most while streaming")  # fmt: skip
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
