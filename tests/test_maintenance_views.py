"""The maintenance pages and API: who may plan windows (operators and admins; viewers read),
the form's clock, the audit log, and where the overview and the server page show windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from rest_framework.test import APIClient

from popcompliance.audit.models import AuditEntry
from popcompliance.inventory.models import Server, Tag
from popcompliance.maintenance.models import MaintenanceWindow
from tests.people import make_user, token_for

pytestmark = pytest.mark.django_db

LIST, ADD = reverse("maintenance:list"), reverse("maintenance:add")
API = "/api/v1/maintenance/"
START = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)


def make_server(name: str = "mail01", **fields: object) -> Server:
    return Server.objects.create(name=name, host=f"{name}.example.com", **fields)


def form_data(server: Server, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "certificate swap",
        "server": server.pk,
        "recurrence": "once",
        "starts_at": "2026-07-01 02:00",
        "ends_at": "2026-07-01 04:00",
        "time_zone": "Europe/Paris",
    }
    data.update(overrides)
    return data


def make_window(server: Server, **fields: object) -> MaintenanceWindow:
    values: dict[str, object] = {
        "name": "swap",
        "server": server,
        "starts_at": START,
        "ends_at": START + timedelta(hours=2),
    }
    values.update(fields)
    return MaintenanceWindow.objects.create(**values)


# --- Browser pages ------------------------------------------------------------------------


def test_an_operator_plans_a_window_on_its_own_clock_and_the_audit_log_says_who(operator):
    server = make_server()
    response = operator.post(ADD, form_data(server))
    assert response.status_code == 302, response.context["form"].errors
    window = MaintenanceWindow.objects.get()
    # 02:00 in Paris in July is midnight UTC.
    assert (window.starts_at, window.ends_at) == (START, START + timedelta(hours=2))
    assert window.created_by.username == "operator-user"
    entry = AuditEntry.objects.get(object_type="maintenance window")
    assert (entry.action, entry.source, entry.actor_label) == ("created", "web", "operator-user")
    assert entry.changes["server"] == [None, "mail01"]
    # Edited, the form shows the window's own clock again.
    page = operator.get(reverse("maintenance:edit", args=[window.pk])).content.decode()
    assert 'value="2026-07-01 02:00"' in page


def test_a_viewer_reads_the_windows_but_cannot_plan_edit_or_delete_one(viewer):
    window = make_window(make_server())
    page = viewer.get(LIST)
    assert page.status_code == 200 and "swap" in page.content.decode()
    assert ADD not in page.content.decode()
    assert viewer.get(ADD).status_code == 403
    assert viewer.post(ADD, form_data(make_server("mail02"))).status_code == 403
    assert viewer.post(reverse("maintenance:edit", args=[window.pk]), {}).status_code == 403
    assert viewer.post(reverse("maintenance:delete", args=[window.pk])).status_code == 403
    assert MaintenanceWindow.objects.count() == 1


def test_an_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get(LIST)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_form_names_what_is_wrong(operator):
    server = make_server()
    Tag.objects.create(name="exchange")
    tag = Tag.objects.get(name="exchange")
    response = operator.post(ADD, form_data(server, tag=tag.pk, recurrence="cron", rule="bad"))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["__all__"] == ["Choose exactly one of a server, a tag or a site."]
    assert errors["rule"][0].startswith("Give five fields")
    assert errors["duration_minutes"] == ["A recurring window needs the length of each occurrence."]
    assert not MaintenanceWindow.objects.exists()


def test_an_operator_deletes_a_window_after_confirming(operator):
    window = make_window(make_server())
    url = reverse("maintenance:delete", args=[window.pk])
    assert "Delete maintenance window swap?" in operator.get(url).content.decode()
    assert operator.post(url).status_code == 302
    assert not MaintenanceWindow.objects.exists()
    assert AuditEntry.objects.filter(object_type="maintenance window", action="deleted").exists()


def test_the_overview_and_the_server_page_show_windows_on_now_and_soon(viewer):
    server, other = make_server(site="paris"), make_server("mail02")
    make_window(server, name="swap now")
    make_window(
        other,
        name="upgrade soon",
        starts_at=START + timedelta(days=2),
        ends_at=START + timedelta(days=2, hours=1),
    )
    make_window(
        server,
        name="far away",
        starts_at=START + timedelta(days=30),
        ends_at=START + timedelta(days=30, hours=1),
    )
    with time_machine.travel(START + timedelta(minutes=30), tick=False):
        overview = viewer.get(reverse("dashboard:overview")).content.decode()
        server_page = viewer.get(server.get_absolute_url()).content.decode()
        list_page = viewer.get(LIST).content.decode()
    assert "swap now" in overview and "upgrade soon" in overview and "far away" not in overview
    assert "until 2026-07-01 02:00 UTC, in 1\xa0hour, 30\xa0minutes" in overview
    assert "swap now" in server_page and "upgrade soon" not in server_page
    assert "far away" in list_page and "2026-07-31 00:00 UTC" in list_page  # its next start


def test_the_server_page_offers_operators_to_plan_maintenance(viewer, operator):
    server = make_server()
    link = f"{ADD}?server={server.pk}"
    assert link not in viewer.get(server.get_absolute_url()).content.decode()
    assert link in operator.get(server.get_absolute_url()).content.decode()
    form = operator.get(link).context["form"]
    assert str(form["server"].value()) == str(server.pk)


# --- API ----------------------------------------------------------------------------------


def api_as(role: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(make_user(role))}")
    return client


def test_the_api_creates_reads_changes_and_deletes_a_window():
    server = make_server()
    operator = api_as("operator")
    body = {
        "name": "weekly patching",
        "server": server.pk,
        "recurrence": "rrule",
        "rule": "FREQ=WEEKLY;BYDAY=SU",
        "starts_at": "2026-07-05T02:00:00+02:00",
        "duration_minutes": 120,
        "time_zone": "Europe/Paris",
    }
    created = operator.post(API, body, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    with time_machine.travel(datetime(2026, 7, 5, 0, 30, tzinfo=UTC), tick=False):
        read = api_as("viewer").get(f"{API}{pk}/").json()
    assert read["current"] == {"start": "2026-07-05T00:00:00Z", "end": "2026-07-05T02:00:00Z"}
    assert read["next"]["start"] == "2026-07-12T00:00:00Z"
    assert read["created_by"] == "operator-user"
    changed = operator.patch(f"{API}{pk}/", {"duration_minutes": 60}, format="json")
    assert changed.status_code == 200 and changed.json()["duration_minutes"] == 60
    assert [w["name"] for w in operator.get(API).json()["results"]] == ["weekly patching"]
    assert operator.delete(f"{API}{pk}/").status_code == 204
    actions = AuditEntry.objects.filter(object_type="maintenance window").order_by("at")
    assert [(e.action, e.source) for e in actions] == [
        ("created", "api"),
        ("changed", "api"),
        ("deleted", "api"),
    ]


def test_a_viewer_token_reads_windows_but_cannot_write_them():
    window = make_window(make_server())
    viewer = api_as("viewer")
    assert viewer.get(API).status_code == 200
    body = {
        "name": "x",
        "site": "paris",
        "starts_at": "2026-07-01T00:00Z",
        "ends_at": "2026-07-01T01:00Z",
    }
    assert viewer.post(API, body, format="json").status_code == 403
    assert viewer.patch(f"{API}{window.pk}/", {"name": "y"}, format="json").status_code == 403
    assert viewer.delete(f"{API}{window.pk}/").status_code == 403
    assert APIClient().get(API).status_code == 401
    assert MaintenanceWindow.objects.get().name == "swap"


def test_the_api_refuses_a_bad_window_with_the_reason_under_each_field():
    make_server(site="paris")
    operator = api_as("operator")
    both = operator.post(
        API,
        {
            "name": "x",
            "site": "paris",
            "tag": None,
            "server": Server.objects.get().pk,
            "starts_at": "2026-07-01T00:00Z",
            "ends_at": "2026-07-01T01:00Z",
        },
        format="json",
    )
    assert both.status_code == 400
    assert both.json() == {"non_field_errors": ["Choose exactly one of a server, a tag or a site."]}
    unknown = operator.post(
        API,
        {
            "name": "x",
            "site": "lyon",
            "tag": "nope",
            "starts_at": "2026-07-01T00:00Z",
            "recurrence": "cron",
            "rule": "0 2 * * 0",
            "duration_minutes": 30,
        },
        format="json",
    )
    assert unknown.status_code == 400
    assert unknown.json() == {
        "site": ["No server is at site 'lyon'."],
        "tag": ["Object with name=nope does not exist."],
    }
    backwards = operator.post(
        API,
        {
            "name": "x",
            "site": "paris",
            "starts_at": "2026-07-01T02:00Z",
            "ends_at": "2026-07-01T01:00Z",
        },
        format="json",
    )
    assert backwards.json() == {"ends_at": ["The end must come after the start."]}
    assert not MaintenanceWindow.objects.exists()


def test_the_api_lists_windows_in_a_fixed_number_of_queries(django_assert_num_queries):
    viewer = api_as("viewer")
    for i in range(2):
        make_window(make_server(f"a{i}"), tag=None)
    viewer.get(API)  # the token's first use is written down
    # The token with its user, the count, the page with its tags and creators.
    with django_assert_num_queries(3):
        viewer.get(API)
    for i in range(2, 8):
        make_window(make_server(f"a{i}"))
    with django_assert_num_queries(3):
        assert viewer.get(API).json()["count"] == 8
