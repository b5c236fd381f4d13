"""Probe locations: a schedule and a claim per server × location, one scan each on its
location's queue, states and history kept per location, the server's status the worst of
them, the server page side by side, and silent locations named as such.

The scans here run in the test process, each with its location's DNS server (split-horizon,
tests/split_horizon.py); tests/test_workers.py runs them in real workers, one per queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from popcompliance.compliance.dispatch import Claim, claim_due
from popcompliance.compliance.models import Change, CheckState, Heartbeat, ScanRun, ServerAddress
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.compliance.tasks import dispatch_due_scans
from popcompliance.inventory.models import Policy, Server, ServerLocation
from popcompliance.ops.heartbeats import LOCATION_STALE_AFTER, liveness, served_locations
from tests import split_horizon
from tests.conftest import create_lab_policy
from tests.services import queued_tasks
from tests.split_horizon import LOCATIONS
from tests.test_dispatch import twice_at_once

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def two_locations(settings):
    settings.POPC_LOCATIONS = LOCATIONS


def add_servers(count, due_at, locations="inside,outside"):
    policy = Policy.default()
    return [
        Server.objects.create(
            name=f"mail{i:03}",
            host="127.0.0.1",
            policy=policy,
            locations=locations,
            next_scan_at=due_at,
        )
        for i in range(count)
    ]


def schedules(server):
    return dict(
        ServerLocation.objects.filter(server=server).values_list("location", "next_scan_at")
    )


def all_alive(now):
    """Beat, a plain worker and both locations' workers reported at `now`."""
    for name in ("beat", "worker w1@ops", "queue inside", "queue outside"):
        Heartbeat.beat(name, now)


# --- schedules and claims ----------------------------------------------------------------------


def test_a_server_gets_a_schedule_per_location_and_loses_those_it_no_longer_lists(
    db, two_locations
):
    (server,) = add_servers(1, T0)
    assert schedules(server) == {"inside": T0, "outside": T0}
    CheckState.objects.create(
        server=server,
        location="outside",
        check_id="pop3s.available",
        status="fail",
        summary="closed",
        since=T0,
    )
    server.locations = "inside"
    server.save(update_fields=["locations"])
    assert schedules(server) == {"inside": T0}
    # Its status is judged over the locations it is probed from: the old verdicts go.
    assert not CheckState.objects.filter(server=server).exists()


def test_an_unknown_location_is_refused_in_words(db, two_locations):
    server = Server(name="mail01", host="192.0.2.1", locations="inside,branch-paris")
    with pytest.raises(
        Exception,
        match="Unknown location 'branch-paris': the locations are default, inside, outside",
    ):
        server.full_clean()


@time_machine.travel(T0, tick=False)
def test_each_location_is_claimed_on_its_own_and_leased(db, two_locations, settings):
    settings.POPC_SCAN_LEASE = 600
    all_alive(T0)
    (server,) = add_servers(1, T0)
    ServerLocation.objects.filter(server=server, location="outside").update(
        next_scan_at=T0 + timedelta(minutes=30)
    )
    claims = claim_due(T0, 100, served_locations(T0))
    assert claims.claimed == [Claim(server.pk, "inside")]
    lease = T0 + timedelta(seconds=600)
    assert schedules(server) == {"inside": lease, "outside": T0 + timedelta(minutes=30)}
    # The server's own next time is the earliest of its locations'.
    assert Server.objects.get(pk=server.pk).next_scan_at == lease
    assert claim_due(T0, 100, served_locations(T0)).claimed == []


def test_two_dispatchers_at_once_never_claim_a_server_location_twice(transactional_db, settings):
    settings.POPC_LOCATIONS = LOCATIONS
    now = timezone.now()
    all_alive(now)
    servers = add_servers(100, now - timedelta(minutes=1))
    first, second = twice_at_once(claim_due, now, 5000, served_locations(now))
    claimed = first.claimed + second.claimed
    expected = {Claim(s.pk, location) for s in servers for location in LOCATIONS}
    assert len(claimed) == len(expected) and set(claimed) == expected


def test_the_dispatcher_sends_each_scan_to_its_locations_queue(
    transactional_db, redis_broker, settings
):
    settings.POPC_LOCATIONS = LOCATIONS
    all_alive(timezone.now())
    servers = add_servers(3, timezone.now() - timedelta(minutes=1), "default,outside")
    assert dispatch_due_scans() == 6
    ids = sorted(s.pk for s in servers)
    for queue, location in (("celery", "default"), ("outside", "outside")):
        scans = [t for t in queued_tasks(redis_broker, queue) if t[0] == "compliance.scan_server"]
        assert sorted(args[0] for _, args, _ in scans) == ids
        assert {kwargs.get("location", "default") for _, _, kwargs in scans} == {location}
    assert [t for t in queued_tasks(redis_broker, "inside") if t[0] != "ops.ping"] == []
    # Each other location gets its ping, which keeps an idle location's heartbeat fresh.
    assert [t[0] for t in queued_tasks(redis_broker, "inside")] == ["ops.ping"]


# --- silent locations ------------------------------------------------------------------------


@time_machine.travel(T0, tick=False)
def test_a_silent_location_is_named_and_not_dispatched_to(db, two_locations, viewer, settings):
    all_alive(T0)
    Heartbeat.beat("queue outside", T0 - LOCATION_STALE_AFTER - timedelta(seconds=1), "w2@dmz")
    (server,) = add_servers(1, T0)
    Server.objects.filter(pk=server.pk).update(status="compliant")
    assert dispatch_due_scans() == 1  # inside only
    assert schedules(server)["outside"] == T0  # still due: sent once a worker is back
    judged = liveness(T0)
    assert [(x.location, x.silent) for x in judged.locations] == [
        ("inside", False),
        ("outside", True),
    ]
    page = viewer.get(reverse("dashboard:overview")).content.decode()
    assert "Location outside is silent." in page
    assert "celery -A popcompliance worker -Q outside" in page
    assert "Location inside is silent." not in page
    # Its servers keep their verdicts: silence is the location's, not theirs.
    assert Server.objects.get(pk=server.pk).status == "compliant"
    settings.POPC_METRICS_TOKEN = ""
    metrics = Client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'popc_heartbeat_timestamp_seconds{process="queue",name="queue outside"}' in metrics


@time_machine.travel(T0, tick=False)
def test_a_location_no_worker_ever_served_is_silent_too(db, two_locations, viewer):
    for name in ("beat", "worker w1@ops", "queue inside"):
        Heartbeat.beat(name, T0)
    page = viewer.get(reverse("dashboard:overview")).content.decode()
    assert "No worker has ever taken a task from its queue <code>outside</code>" in page


# --- recording per location ------------------------------------------------------------------


@pytest.fixture
def horizon(settings):
    yield from split_horizon.running(settings)


@pytest.fixture
def lab_policy_row(db):
    return create_lab_policy()


def scan_from(server, location, horizon, settings):
    """Scan `server` as a worker of `location` would (its DNS) and record it there."""
    settings.POPC_DNS_RESOLVER = horizon.resolver(location)
    loaded = Server.objects.select_related("policy").get(pk=server.pk)
    report = scan_servers([loaded])[server.pk]
    return record_report(server.pk, report, purpose="scheduled", location=location)


@pytest.fixture
def scanned(horizon, lab_policy_row, settings):
    settings.POPC_SCAN_TIMEOUT = 3
    server = horizon.server("mail01", lab_policy_row)
    for location in LOCATIONS:
        scan_from(server, location, horizon, settings)
    return server


def statuses(server, location, check_id):
    rows = CheckState.objects.filter(server=server, location=location, check_id=check_id)
    return sorted(rows.values_list("status", flat=True))


def test_each_location_keeps_its_own_states_and_the_server_is_the_worst(scanned, horizon):
    assert statuses(scanned, "inside", "pop3.plaintext_login") == ["fail"]
    assert statuses(scanned, "outside", "pop3.plaintext_login") == ["skip"]
    assert Server.objects.get(pk=scanned.pk).status == "non_compliant"
    changes = Change.objects.filter(server=scanned, check_id="pop3.plaintext_login")
    assert list(changes.values_list("location", "status")) == [("inside", "fail")]
    addresses = ServerAddress.objects.filter(server=scanned)
    assert sorted(addresses.values_list("location", "address")) == sorted(horizon.addresses.items())
    assert sorted(ScanRun.objects.filter(server=scanned).values_list("location", flat=True)) == [
        "inside",
        "outside",
    ]


def test_an_unchanged_rescan_from_each_location_writes_no_state_or_change(
    scanned, horizon, settings
):
    states = list(CheckState.objects.order_by("pk").values_list("pk", "status", "since"))
    changes = Change.objects.count()
    for location in LOCATIONS:
        with CaptureQueriesContext(connection) as queries:
            scan_from(scanned, location, horizon, settings)
        writes = [q["sql"] for q in queries if q["sql"].startswith(("INSERT", "UPDATE"))]
        assert not any("compliance_checkstate" in sql for sql in writes)
        assert not any("compliance_change" in sql for sql in writes)
    assert list(CheckState.objects.order_by("pk").values_list("pk", "status", "since")) == states
    assert Change.objects.count() == changes


def test_fixing_one_location_leaves_the_server_non_compliant_until_every_one_is(
    scanned, horizon, settings
):
    # Outside is fine; the server stays non-compliant while inside accepts plaintext.
    scan_from(scanned, "outside", horizon, settings)
    assert Server.objects.get(pk=scanned.pk).status == "non_compliant"


def test_the_server_page_shows_each_location_side_by_side(scanned, viewer):
    page = viewer.get(scanned.get_absolute_url()).content.decode()
    section = page[page.index('id="section-locations"') :].split("</section>")[0]
    assert "POP3 port" in section
    assert "answers from location inside, but closed from location outside." in " ".join(
        section.split()
    )
    assert "Default location" not in section
    # The plaintext check differs: a fail from inside, skipped from outside.
    row = section[section.index("pop3.plaintext_login") :].split("</tr>")[0]
    assert row.index("fail") < row.index("skip")


def test_a_server_of_one_location_shows_no_comparison(db, viewer):
    (server,) = add_servers(1, T0, "default")
    page = viewer.get(server.get_absolute_url()).content.decode()
    assert 'id="section-locations"' not in page


# --- choosing the locations ------------------------------------------------------------------


def test_an_admin_ticks_the_locations_a_server_is_probed_from(db, two_locations, admin):
    from tests.test_inventory_views import server_form

    server = Server.objects.create(name="mail01", host="pop.example.com")
    url = reverse("inventory:server_edit", args=[server.pk])
    page = admin.get(url).content.decode()
    assert 'name="locations" value="outside"' in page
    admin.post(url, server_form(name="mail01", locations=["default", "outside"]))
    server.refresh_from_db()
    assert server.locations == "default,outside"
    assert set(schedules(server)) == {"default", "outside"}
    # The new location is scanned at the next dispatcher run, not an interval later.
    assert schedules(server)["outside"] <= timezone.now()


def test_the_locations_field_is_absent_while_only_the_default_exists(db, admin):
    server = Server.objects.create(name="mail01", host="pop.example.com")
    page = admin.get(reverse("inventory:server_edit", args=[server.pk])).content.decode()
    assert 'name="locations"' not in page


def test_the_history_says_from_which_location_a_change_was_seen(scanned, viewer):
    page = viewer.get(reverse("dashboard:server_history", args=[scanned.pk])).content.decode()
    assert "pop3.plaintext_login</strong>" in page
    item = page[page.index("pop3.plaintext_login</strong>") :].split("</li>")[0]
    assert "from location inside" in item
