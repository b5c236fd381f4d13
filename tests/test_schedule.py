"""Time boundaries of the schedule and of retention, travelled with time_machine."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command

from popcompliance.compliance.dispatch import claim_due_servers
from popcompliance.compliance.models import Change, Heartbeat, ScanRun
from popcompliance.compliance.retention import prune
from popcompliance.compliance.snapshots import take_snapshot
from popcompliance.inventory.models import Server

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.fixture
def server(db):
    return Server.objects.create(name="mail01", host="127.0.0.1", scan_interval=15, next_scan_at=T0)


def test_a_server_is_claimed_at_its_time_not_a_second_before(server):
    assert claim_due_servers(T0 - SECOND, 100) == []
    assert claim_due_servers(T0, 100) == [server.pk]


def test_a_claim_moves_the_next_scan_one_lease_on(server, settings):
    settings.POPC_SCAN_LEASE = 600
    claim_due_servers(T0, 100)
    lease_end = T0 + timedelta(seconds=600)
    assert Server.objects.get(pk=server.pk).next_scan_at == lease_end
    assert claim_due_servers(lease_end - SECOND, 100) == []
    assert claim_due_servers(lease_end, 100) == [server.pk]


def test_a_finished_scheduled_scan_schedules_from_when_it_finished_not_the_missed_slot(server):
    late = T0 + timedelta(hours=5)
    claim_due_servers(late, 100)
    schedule = server.schedules.get()
    schedule.save(update_fields=schedule.finish_scan(True, late + SECOND))
    assert schedule.next_scan_at == late + SECOND + timedelta(minutes=15)


def test_paused_servers_are_never_claimed(server):
    server.pause(T0)
    assert claim_due_servers(T0 + timedelta(days=1), 100) == []


def test_the_batch_limit_takes_the_most_overdue_first(db):
    for minutes in (3, 1, 2):
        Server.objects.create(
            name=f"s{minutes}", host="127.0.0.1", next_scan_at=T0 - timedelta(minutes=minutes)
        )
    claimed = claim_due_servers(T0, 2)
    assert [Server.objects.get(pk=pk).name for pk in claimed] == ["s3", "s2"]


def make_run(server, when):
    return ScanRun.objects.create(
        server=server, purpose="scheduled", started_at=when, finished_at=when
    )


def test_prune_keeps_scan_runs_for_the_retention_and_the_latest_always(server, settings):
    settings.POPC_SCAN_RUN_RETENTION_DAYS = 30
    oldest = make_run(server, T0 - timedelta(days=40))
    boundary = make_run(server, T0 - timedelta(days=30))
    other = Server.objects.create(name="quiet", host="127.0.0.2")
    only_run = make_run(other, T0 - timedelta(days=400))
    prune(T0)
    remaining = set(ScanRun.objects.values_list("pk", flat=True))
    assert remaining == {boundary.pk, only_run.pk}
    assert oldest.pk not in remaining


def test_prune_drops_changes_and_heartbeats_past_their_retention(server, settings):
    settings.POPC_CHANGE_RETENTION_DAYS = 365
    for age in (364, 366):
        Change.objects.create(
            server=server, check_id="pop3.stls", status="fail", summary="s",
            created_at=T0 - timedelta(days=age),
        )  # fmt: skip
    Heartbeat.beat("worker gone", T0 - timedelta(days=8))
    Heartbeat.beat("beat", T0 - timedelta(minutes=1))
    deleted = prune(T0)
    assert deleted["changes"] == 1 and deleted["heartbeats"] == 1
    assert list(Heartbeat.objects.values_list("name", flat=True)) == ["beat"]


def test_the_prune_command_reports_what_it_deleted(server, capsys):
    make_run(server, datetime(2000, 1, 1, tzinfo=UTC))
    make_run(server, datetime(2000, 1, 2, tzinfo=UTC))
    call_command("prune")
    assert "scan_runs: 1 deleted" in capsys.readouterr().out


def test_a_snapshot_counts_the_fleet_once_per_day(server):
    Server.objects.create(name="bad", host="127.0.0.2", status="non_compliant")
    with time_machine.travel(T0):
        take_snapshot(T0)
        snapshot = take_snapshot(T0 + timedelta(hours=3))
    assert (snapshot.day, snapshot.total, snapshot.new, snapshot.non_compliant) == (
        T0.date(), 2, 1, 1,
    )  # fmt: skip
    assert snapshot.__class__.objects.count() == 1
