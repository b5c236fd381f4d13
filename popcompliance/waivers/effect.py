"""What waivers do to the statuses shown: the layer over the stored check states.

A check's stored state stays the scanner's verdict (`fail` stays `fail`); where a waiver in
force covers the check, `fail` and `warn` are shown as `excepted` (not compliant, not
failing). `error` ("could not determine") and the passing statuses are shown as they are: a
waiver accepts a known finding, it does not vouch for what we could not see.

The server's status follows (compliance.recording.settled_status with `waived`, and
compliance.history as of a past moment): a server that would be compliant once its excepted
checks are set aside, and has some, is `excepted`; any other failure, or an undetermined
check, decides as before.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet

from popcompliance.inventory.models import Server
from popcompliance.waivers.models import Waiver

EXCEPTED = "excepted"
# The stored statuses a waiver turns into `excepted`.
WAIVABLE = frozenset({"fail", "warn"})

WaivedPairs = frozenset[tuple[int, str]]


def shown_status(status: str, waived: bool) -> str:
    """A stored check status as the pages show it."""
    return EXCEPTED if waived and status in WAIVABLE else status


def waived_pairs(server_ids: Collection[int] | QuerySet[Server], when: datetime) -> WaivedPairs:
    """The (server id, check id) pairs of `server_ids` a waiver in force at `when` covers,
    a tag's waivers expanded through the servers' tags. One query (a UNION of the servers'
    own waivers and their tags'), whatever the number of servers. `server_ids` may be a
    queryset of ids (`values("pk")`), read as a subquery: the whole fleet's as-of view
    passes one."""
    ids = server_ids if isinstance(server_ids, QuerySet) else list(server_ids)
    if not isinstance(ids, QuerySet) and not ids:
        return frozenset()
    in_force = Waiver.objects.in_force(when).order_by()
    own = in_force.filter(server_id__in=ids).values_list("server_id", "check_id")
    by_tag = in_force.filter(tag__servers__in=ids).values_list("tag__servers", "check_id")
    return frozenset(own.union(by_tag))


def waived_checks(server: Server, when: datetime) -> frozenset[str]:
    """The check ids of one server a waiver covers at `when` (one query)."""
    waivers = Waiver.objects.in_force(when).covering(server)
    return frozenset(waivers.values_list("check_id", flat=True))


def servers_covered(waivers: Iterable[Waiver]) -> set[int]:
    """The ids of the servers the waivers cover now (one query when any is a tag's)."""
    ids = {w.server_id for w in waivers if w.server_id is not None}
    tags = {w.tag_id for w in waivers if w.tag_id is not None}
    if tags:
        members = Server.tags.through.objects.filter(tag_id__in=tags)
        ids.update(members.values_list("server_id", flat=True))
    return ids


def waived_now(when: datetime) -> Exists:
    """For a queryset of rows with `server` and `check_id` (alerts): whether a waiver in
    force at `when` covers that check of that server, itself or through one of its tags."""
    covering = Q(server=OuterRef("server")) | Q(tag__servers=OuterRef("server"))
    return Exists(Waiver.objects.in_force(when).filter(covering, check_id=OuterRef("check_id")))


# A released alert names the waiver that held it if it ended this recently.
RECENTLY = timedelta(days=1)


def ended_waiver(server: Server, check_id: str, now: datetime) -> Waiver | None:
    """The waiver of `check_id` on `server` that ended last, within RECENTLY before `now`
    (None: what held the alert was a maintenance window). One query."""
    since = now - RECENTLY
    ended = Q(expires_at__gt=since, expires_at__lte=now) | Q(
        revoked_at__gt=since, revoked_at__lte=now
    )
    found = Waiver.objects.covering(server).filter(ended, check_id=check_id)
    return max(found.select_related("approver"), key=lambda w: w.ends_at, default=None)
