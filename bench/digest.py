"""Benchmark: one morning's daily digests at 10,000 servers and a year of history.

The fleet is bench/dashboard.py's (bench/dashboard_seed.py: 10,000 servers with their owners,
open and resolved alerts, certificates), in a throwaway PostgreSQL database
`popc_bench_digest`. Each server also gets a personal owner, so there are as many recipients
as a large organisation would have. Printed: recipients, digests queued, the queries and the
time it took to build every digest, and to build, render and queue them (what the beat task
does once a day), and the size of the messages. The database is dropped at the end. It is not
a test.

    python bench/digest.py [--servers 10000] [--owners 500]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import postgres_database  # noqa: E402
from bench.dashboard import production_environment, setup_django, vacuum_analyze  # noqa: E402

BENCH_DB = "popc_bench_digest"


def add_personal_owners(owners: int) -> None:
    """Server i also belongs to owner<i % owners>: that many recipients, ~N/owners servers each."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE inventory_server SET owner_emails = owner_emails"
            " || to_jsonb('owner' || (id %% %s) || '@corp.example')",
            [owners],
        )


def measure() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from popcompliance.alerts.digest import build_digests, digest_recipients, queue_digests
    from popcompliance.alerts.models import Notification

    now = timezone.now()
    recipients = digest_recipients()
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as built_queries:
        digests = build_digests(recipients, now)
    built = time.perf_counter() - started
    started = time.perf_counter()
    queued = queue_digests(recipients, now)
    whole = time.perf_counter() - started
    digests_queued = Notification.objects.filter(kind="digest")
    sizes = [len(n.body_text) + len(n.body_html) for n in digests_queued]
    lines = sum(len(d.open_alerts) for d in digests.values())
    print(f"recipients: {len(recipients)}, digests queued: {queued} (the rest had nothing to say)")
    print(f"open-alert lines across digests (before the 50-line cut): {lines}")
    print(f"build every digest: {built * 1000:.0f} ms, {len(built_queries)} queries")
    print(f"build, render and queue (the daily task): {whole * 1000:.0f} ms")
    if sizes:
        print(f"message size (text + HTML): median {sorted(sizes)[len(sizes) // 2] / 1024:.1f} KiB,"
              f" largest {max(sizes) / 1024:.1f} KiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--owners", type=int, default=500)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="No directory at")
    workdir = Path(tempfile.mkdtemp(prefix="popc-digest-"))
    with postgres_database(BENCH_DB) as url:
        setup_django(production_environment(url, workdir))
        from bench.dashboard_seed import scan_templates, seed

        seed(scan_templates(workdir), args.servers)
        add_personal_owners(args.owners)
        vacuum_analyze()
        measure()
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
