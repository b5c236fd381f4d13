"""Maintenance windows: when they are on (one-off, RRULE, cron, at each boundary), which servers
they cover (a server, a tag, a site), and the rules a window must follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from popcompliance.inventory.models import Server, Tag
from popcompliance.maintenance.models import MaintenanceWindow
from popcompliance.maintenance.windows import (
    fleet_panel,
    in_maintenance,
    servers_in_maintenance,
)

pytestmark = pytest.mark.django_db

START = datetime(2026, 6, 10, 22, 0, tzinfo=UTC)
END = datetime(2026, 6, 11, 0, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def make_server(name: str, site: str = "", tags: tuple[str, ...] = ()) -> Server:
    server = Server.objects.create(name=name, host=f"{name}.example.com", site=site)
    server.tags.set([Tag.objects.get_or_create(name=tag)[0] for tag in tags])
    return server


def window(**fields: object) -> MaintenanceWindow:
    """A saved window, after the same checks the forms and the API make."""
    values: dict[str, object] = {"name": "certificate swap", "starts_at": START, "ends_at": END}
    values.update(fields)
    made = MaintenanceWindow(**values)
    made.full_clean()
    made.save()
    return made


@pytest.mark.parametrize(
    ("moment", "on"),
    [
        (START - MINUTE, False),
        (START, True),
        (START + MINUTE, True),
        (END - MINUTE, True),
        (END, False),
        (END + MINUTE, False),
    ],
)
def test_a_one_off_window_is_on_from_its_start_until_its_end_excluded(moment, on):
    server = make_server("mail01")
    window(server=server)
    with time_machine.travel(moment, tick=False):
        assert in_maintenance(server, timezone.now()) is on
        assert (
            server.pk in set(servers_in_maintenance(timezone.now()).values_list("pk", flat=True))
        ) is on


def test_a_tag_window_covers_the_servers_with_the_tag_and_no_other():
    tagged, other = make_server("mail01", tags=("exchange",)), make_server("mail02", tags=("dmz",))
    window(tag=Tag.objects.get(name="exchange"))
    assert in_maintenance(tagged, START)
    assert not in_maintenance(other, START)


def test_a_site_window_covers_the_servers_of_the_site_and_no_other():
    paris, lyon = make_server("mail01", site="paris"), make_server("mail02", site="lyon")
    window(site="paris")
    assert in_maintenance(paris, START)
    assert not in_maintenance(lyon, START)
    assert list(servers_in_maintenance(START).values_list("pk", flat=True)) == [paris.pk]


def test_a_window_has_exactly_one_scope():
    server = make_server("mail01", site="paris")
    with pytest.raises(ValidationError, match="exactly one of a server, a tag or a site"):
        window(server=server, site="paris")
    with pytest.raises(ValidationError, match="exactly one of a server, a tag or a site"):
        window()
    # The database refuses it too, for rows written around the checks.
    with pytest.raises(IntegrityError), transaction.atomic():
        MaintenanceWindow.objects.create(name="x", starts_at=START, ends_at=END)


def test_a_one_off_window_ends_after_it_starts():
    server = make_server("mail01")
    with pytest.raises(ValidationError) as caught:
        window(server=server, ends_at=START)
    assert caught.value.message_dict == {"ends_at": ["The end must come after the start."]}
    with pytest.raises(ValidationError) as caught:
        window(server=server, ends_at=None)
    assert caught.value.message_dict == {"ends_at": ["A one-off window needs its end."]}


# --- Recurring windows ------------------------------------------------------------------


def occurrences(made: MaintenanceWindow, after: datetime, count: int) -> list[tuple[str, str]]:
    """The next `count` occurrences after `after`, as the window's clock reads them."""
    found, moment = [], after
    for _ in range(count):
        occurrence = made.next_occurrence(moment)
        assert occurrence is not None
        found.append((made.local(occurrence.start), made.local(occurrence.end)))
        moment = occurrence.start
    return found


# Sunday nights at 01:00 in Paris, for two hours; France moves to summer time on 2026-03-29
# at 02:00, in the middle of the second occurrence.
SUNDAY_NIGHTS = {
    "recurrence": "rrule",
    "rule": "RRULE:FREQ=WEEKLY;BYDAY=SU",
    "starts_at": datetime(2026, 3, 22, 0, 0, tzinfo=UTC),  # 01:00 CET
    "ends_at": None,
    "duration_minutes": 120,
    "time_zone": "Europe/Paris",
}


def test_an_rrule_window_recurs_on_the_local_clock_across_daylight_saving():
    made = window(server=make_server("mail01"), **SUNDAY_NIGHTS)
    assert occurrences(made, datetime(2026, 3, 1, tzinfo=UTC), 3) == [
        ("2026-03-22 01:00 CET", "2026-03-22 03:00 CET"),
        # Two real hours, over the hour the clock skips.
        ("2026-03-29 01:00 CET", "2026-03-29 04:00 CEST"),
        ("2026-04-05 01:00 CEST", "2026-04-05 03:00 CEST"),
    ]


@pytest.mark.parametrize(
    ("moment", "on"),
    [
        (datetime(2026, 4, 4, 22, 59, tzinfo=UTC), False),  # 00:59 CEST
        (datetime(2026, 4, 4, 23, 0, tzinfo=UTC), True),  # 01:00 CEST
        (datetime(2026, 4, 5, 0, 59, tzinfo=UTC), True),
        (datetime(2026, 4, 5, 1, 0, tzinfo=UTC), False),  # 03:00 CEST: over
        (datetime(2026, 4, 5, 1, 1, tzinfo=UTC), False),
        (datetime(2026, 4, 5, 23, 30, tzinfo=UTC), False),  # a Monday
    ],
)
def test_an_rrule_window_is_on_during_each_occurrence(moment, on):
    server = make_server("mail01")
    window(server=server, **SUNDAY_NIGHTS)
    assert in_maintenance(server, moment) is on


def test_a_cron_window_fires_from_its_first_start_on():
    made = window(
        server=make_server("mail01"),
        recurrence="cron",
        rule="0  2 * * 0",  # Sundays at 02:00; the spaces are tidied
        starts_at=datetime(2026, 6, 8, 0, 0, tzinfo=UTC),  # a Monday
        ends_at=END,  # ignored: emptied for a recurring window
        duration_minutes=90,
    )
    assert made.rule == "0 2 * * 0" and made.ends_at is None
    # Not the Sunday before its first start.
    assert occurrences(made, datetime(2026, 6, 1, tzinfo=UTC), 2) == [
        ("2026-06-14 02:00 UTC", "2026-06-14 03:30 UTC"),
        ("2026-06-21 02:00 UTC", "2026-06-21 03:30 UTC"),
    ]
    assert made.occurrence_at(datetime(2026, 6, 7, 2, 30, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("moment", "on"),
    [
        (datetime(2026, 6, 14, 1, 59, tzinfo=UTC), False),
        (datetime(2026, 6, 14, 2, 0, tzinfo=UTC), True),
        (datetime(2026, 6, 14, 2, 0, 30, tzinfo=UTC), True),
        (datetime(2026, 6, 14, 3, 29, tzinfo=UTC), True),
        (datetime(2026, 6, 14, 3, 30, tzinfo=UTC), False),
        (datetime(2026, 6, 14, 3, 31, tzinfo=UTC), False),
    ],
)
def test_a_cron_window_is_on_at_its_boundaries(moment, on):
    server = make_server("mail01")
    window(
        server=server,
        recurrence="cron",
        rule="0 2 * * 0",
        starts_at=datetime(2026, 6, 8, tzinfo=UTC),
        ends_at=None,
        duration_minutes=90,
    )
    assert in_maintenance(server, moment) is on


def test_a_cron_window_reads_its_expression_on_the_local_clock():
    made = window(
        site="paris",
        recurrence="cron",
        rule="30 1 * * *",
        starts_at=datetime(2026, 10, 24, tzinfo=UTC),
        ends_at=None,
        duration_minutes=30,
        time_zone="Europe/Paris",
    )
    # Summer time ends on 2026-10-25: 01:30 local is 23:30 UTC, then 00:30 UTC.
    starts = [made.next_occurrence(datetime(2026, 10, d, 12, tzinfo=UTC)) for d in (24, 25)]
    assert [o.start for o in starts if o] == [
        datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 0, 30, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"recurrence": "cron", "rule": "0 2 * *", "duration_minutes": 60},
            {
                "rule": [
                    "Give five fields: minute hour day-of-month month day-of-week, for "
                    "example 0 2 * * 0 (Sundays at 02:00)."
                ]
            },
        ),
        (
            {"recurrence": "cron", "rule": "0 2 30 2 *", "duration_minutes": 60},
            {"rule": ["This expression never fires (a day that no month has?)."]},
        ),
        (
            {"recurrence": "cron", "rule": "0 2 * * 0"},
            {"duration_minutes": ["A recurring window needs the length of each occurrence."]},
        ),
        (
            {"recurrence": "rrule", "rule": "FREQ=MINUTELY", "duration_minutes": 5},
            {
                "rule": [
                    "FREQ must be one of DAILY, WEEKLY, MONTHLY, YEARLY (a window recurs at "
                    "most a few times a day), for example FREQ=WEEKLY;BYDAY=SU."
                ]
            },
        ),
        (
            {
                "recurrence": "rrule",
                "rule": "FREQ=DAILY;BYHOUR=0,4,8,12,16,20",
                "duration_minutes": 5,
            },
            {"rule": ["The rule starts 42 times in its first week; at most 28 are allowed."]},
        ),
        (
            {
                "recurrence": "rrule",
                "rule": "DTSTART:20200101T000000\nRRULE:FREQ=DAILY",
                "duration_minutes": 5,
            },
            {
                "rule": [
                    "Give one rule such as FREQ=WEEKLY;BYDAY=SU: the first start is its own field."
                ]
            },
        ),
        (
            {"recurrence": "rrule", "rule": "FREQ=DAILY;BOGUS=1", "duration_minutes": 5},
            {
                "rule": [
                    "Not a valid RRULE (unknown parameter 'BOGUS'); for example "
                    "FREQ=WEEKLY;BYDAY=SU."
                ]
            },
        ),
        (
            {
                "recurrence": "rrule",
                "rule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
                "duration_minutes": 5,
            },
            {"rule": ["The rule never starts on or after the first start."]},
        ),
        (
            {"time_zone": "Mars/Olympus"},
            {"time_zone": ["Unknown time zone 'Mars/Olympus': use an IANA name such as UTC."]},
        ),
        (
            {"recurrence": "cron", "rule": "0 2 * * 0", "duration_minutes": 8 * 24 * 60},
            {"duration_minutes": ["Ensure this value is less than or equal to 10080."]},
        ),
    ],
)
def test_a_window_that_cannot_be_read_is_refused_with_the_reason(fields, errors):
    with pytest.raises(ValidationError) as caught:
        window(server=make_server("mail01"), **fields)
    assert caught.value.message_dict == errors
    assert not MaintenanceWindow.objects.exists()


def test_a_stored_rule_that_cannot_be_read_is_never_on_rather_than_an_error(caplog):
    server = make_server("mail01")
    MaintenanceWindow.objects.create(
        name="hand-written",
        server=server,
        recurrence="cron",
        rule="nonsense",
        starts_at=START,
        duration_minutes=60,
    )
    assert not in_maintenance(server, START + timedelta(days=3))
    assert "is never on" in caplog.text


def test_the_overview_panel_lists_windows_on_now_then_those_starting_within_a_week():
    server = make_server("mail01", site="paris", tags=("exchange",))
    window(name="now", server=server)
    window(
        name="tomorrow",
        site="paris",
        starts_at=START + timedelta(days=1),
        ends_at=END + timedelta(days=1),
    )
    window(
        name="next month",
        tag=Tag.objects.get(name="exchange"),
        starts_at=START + timedelta(days=30),
        ends_at=END + timedelta(days=30),
    )
    window(
        name="over",
        server=server,
        starts_at=START - timedelta(days=2),
        ends_at=END - timedelta(days=2),
    )
    shown = fleet_panel(START + MINUTE)
    assert [(row.window.name, row.on) for row in shown] == [("now", True), ("tomorrow", False)]
