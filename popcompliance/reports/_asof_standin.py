"""TEMPORARY STAND-IN for popcompliance.compliance.history (the as-of layer, on its way to main).

It answers with the current state (CheckState and Server.status) whatever moment it is asked
about, with the signatures the real layer has. Delete this file once history.py is merged, and
import from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, QuerySet

from popcompliance.compliance.models import CheckState
from popcompliance.dashboard.catalog import SERVER_STATUS_ORDER
from popcompliance.inventory.models import Server


@dataclass(frozen=True)
class CheckAsOf:
    server_id: int
    location: str
    address: str
    check_id: str
    status: str
    since: datetime | None
    summary: str
    remediation: str


def checks_as_of(when: datetime | None, servers: QuerySet[Server]) -> Iterator[CheckAsOf]:
    rows = (
        CheckState.objects.filter(server__in=servers.order_by().values("pk"))
        .order_by("server_id", "location", "address", "check_id")
        .values_list(
            "server_id",
            "location",
            "address",
            "check_id",
            "status",
            "since",
            "summary",
            "remediation",
        )
    )
    for row in rows.iterator(chunk_size=2000):
        yield CheckAsOf(*row)


def statuses_as_of(when: datetime | None, servers: QuerySet[Server]) -> dict[int, str]:
    return dict(servers.order_by().values_list("pk", "status"))


def counts_as_of(when: datetime | None, servers: QuerySet[Server]) -> dict[str, int]:
    found = dict(servers.order_by().values_list("status").annotate(n=Count("pk")))
    return {status.value: found.get(status.value, 0) for status in SERVER_STATUS_ORDER}
