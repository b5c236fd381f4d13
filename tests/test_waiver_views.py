"""The waiver pages and API: only admins grant and revoke (viewers and operators get 403 in
the browser and the API), every grant and revocation is in the audit log, and a waived check
shows as excepted on the overview's matrix, the server page and the API, with the pages'
query counts still fixed."""

from __future__ import annotations

from datetime import timedelta
from queue import SimpleQueue

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from popcompliance.audit.models import AuditEntry
from popcompliance.compliance.snapshots import take_snapshot
from popcompliance.inventory.models import Server, Tag
from popcompliance.waivers.models import Waiver
from tests.people import make_user, token_for
from tests.test_dashboard_views import make_server
from tests.test_dispatch import twice_at_once

pytestmark = pytest.mark.django_db

LIST, ADD = reverse("waivers:list"), reverse("waivers:add")
API = "/api/v1/waivers/"
CHECK = "pop3.plaintext_login"
EXCEPTED_CELL = f'title="{CHECK}: excepted"'


def form_data(target: Server, **overrides: object) -> dict[str, object]:
    now = timezone.now()
    data: dict[str, object] = {
        "server": target.pk,
        "check_id": CHECK,
        "justification": "legacy scanners until the March migration",
        "starts_at": f"{now:%Y-%m-%d %H:%M}",
        "expires_at": f"{now + timedelta(days=90):%Y-%m-%d %H:%M}",
    }
    data.update(overrides)
    return data


def failing(name: str = "mail01", **fields: object) -> Server:
    """A non-compliant server failing CHECK only."""
    return make_server(name, "non_compliant", checks={CHECK: "fail"}, **fields)


def in_force(target: Server, approver: object) -> Waiver:
    """A waiver of CHECK on `target`, in force from now for a day, justified "why"."""
    return Waiver.objects.create(
        server=target,
        check_id=CHECK,
        justification="why",
        approver=approver,
        starts_at=timezone.now(),
        expires_at=timezone.now() + timedelta(days=1),
    )


def api_as(role: str) -> APIClient:
    client = APIClient()
    user = make_user(role, f"api-{role}")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


# --- Browser ---------------------------------------------------------------------------------


def test_an_admin_grants_from_the_form_and_the_server_is_excepted_at_once(admin):
    server = failing()
    response = admin.post(ADD, form_data(server))
    assert response.status_code == 302, response.context["form"].errors
    assert response["Location"] == server.get_absolute_url()
    waiver = Waiver.objects.get()
    assert (waiver.approver.username, waiver.server, waiver.check_id) == (
        "admin-user",
        server,
        CHECK,
    )
    assert Server.objects.get(pk=server.pk).status == "excepted"
    entry = AuditEntry.objects.get(object_type="waiver")
    assert (entry.action, entry.source, entry.actor_label) == ("created", "web", "admin-user")
    assert entry.changes["check"] == [None, CHECK]
    assert entry.changes["approver"] == [None, "admin-user"]


def test_an_admin_revokes_and_the_record_stays_with_who_ended_it(admin):
    server = failing()
    admin.post(ADD, form_data(server))
    waiver = Waiver.objects.get()
    assert admin.post(reverse("waivers:revoke", args=[waiver.pk])).status_code == 302
    waiver.refresh_from_db()
    assert waiver.revoked_by.username == "admin-user" and waiver.revoked_at is not None
    assert Server.objects.get(pk=server.pk).status == "non_compliant"
    entry = AuditEntry.objects.get(object_type="waiver", action="changed")
    assert entry.changes["revoked by"] == [None, "admin-user"]
    page = admin.get(LIST).content.decode()
    assert "revoked" in page and "legacy scanners" in page


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_viewers_and_operators_read_but_cannot_grant_or_revoke(role, request):
    client = request.getfixturevalue(role)
    server = failing()
    waiver = in_force(server, make_user("admin", "boss"))
    page = client.get(LIST)
    assert page.status_code == 200 and "why" in page.content.decode()
    assert ADD not in page.content.decode()
    assert client.get(ADD).status_code == 403
    assert client.post(ADD, form_data(server)).status_code == 403
    assert client.post(reverse("waivers:revoke", args=[waiver.pk])).status_code == 403
    assert Waiver.objects.filter(revoked_at__isnull=True).count() == 1


def test_revoke_refuses_get(admin):
    assert admin.get(reverse("waivers:revoke", args=[1])).status_code == 405


def test_revoking_a_waiver_that_does_not_exist_is_404(admin):
    assert admin.post(reverse("waivers:revoke", args=[999999])).status_code == 404


def test_the_form_names_what_is_wrong(admin):
    server = failing()
    tag = Tag.objects.create(name="legacy")
    data = form_data(server, tag=tag.pk, expires_at="2099-01-01 00:00", justification="")
    errors = admin.post(ADD, data).context["form"].errors
    assert errors["__all__"] == ["Choose exactly one of a server or a tag."]
    assert errors["expires_at"] == ["An exception lasts at most a year: grant a new one then."]
    assert "justification" in errors
    assert not Waiver.objects.exists()


def test_the_server_pages_failing_check_offers_an_admin_to_grant_one(admin, viewer):
    server = failing()
    link = f"{ADD}?server={server.pk}&amp;check={CHECK}"
    assert link in admin.get(server.get_absolute_url()).content.decode()
    assert link not in viewer.get(server.get_absolute_url()).content.decode()
    form = admin.get(f"{ADD}?server={server.pk}&check={CHECK}").context["form"]
    assert (form.initial["server"], form.initial["check_id"]) == (str(server.pk), CHECK)


def test_the_matrix_the_server_page_and_the_api_show_excepted(admin, viewer):
    server = failing()
    admin.post(ADD, form_data(server))
    overview = viewer.get(reverse("dashboard:overview")).content.decode()
    assert EXCEPTED_CELL in overview
    page = viewer.get(server.get_absolute_url()).content.decode()
    assert "Excepted: the check fails, accepted by admin-user" in page
    assert "legacy scanners until the March migration" in page
    api = api_as("viewer")
    [listed] = api.get("/api/v1/servers/").json()["results"]
    assert (listed["status"], listed["checks"][CHECK]) == ("excepted", "excepted")
    detail = api.get(f"/api/v1/servers/{server.pk}/").json()
    assert detail["checks"][CHECK] == "excepted"
    raw = {s["status"] for s in detail["check_states"] if s["id"] == CHECK}
    assert raw == {"fail"}  # the stored verdict is kept under the waiver
    assert viewer.get(reverse("dashboard:overview") + "?status=excepted").context["rows"]


def test_a_tag_waiver_shows_on_every_tagged_server(admin, viewer):
    servers = [failing(f"edge{n}", tags=("legacy",)) for n in range(2)]
    other = failing("core01")
    tag = Tag.objects.get(name="legacy")
    assert admin.post(ADD, form_data(servers[0], server="", tag=tag.pk)).status_code == 302
    statuses = dict(Server.objects.values_list("name", "status"))
    assert statuses == {"edge0": "excepted", "edge1": "excepted", "core01": "non_compliant"}
    overview = viewer.get(reverse("dashboard:overview")).content.decode()
    assert overview.count(EXCEPTED_CELL) == 2
    assert other.status == "non_compliant"


def test_the_pages_query_counts_stay_fixed_with_waivers(admin, viewer, django_assert_num_queries):
    for n in range(3):
        admin.post(ADD, form_data(failing(f"a{n}", tags=("prod",))))
    tag = Tag.objects.get(name="prod")
    admin.post(ADD, form_data(Server.objects.first(), server="", tag=tag.pk, check_id="cert.name"))
    url = reverse("dashboard:overview") + "?tag=prod"
    cache.clear()
    # The overview's 17 (tests/test_dashboard_views.py) and one for the waivers in force.
    with django_assert_num_queries(18):
        viewer.get(url)
    for n in range(5):
        admin.post(ADD, form_data(failing(f"b{n}", tags=("prod",))))
    cache.clear()
    with django_assert_num_queries(18):
        viewer.get(url)
    api = api_as("viewer")
    api.get("/api/v1/servers/")  # the token's first use is written once
    # The API list's 4 (tests/test_api.py) and one for the waivers in force.
    with django_assert_num_queries(5):
        assert len(api.get("/api/v1/servers/").json()["results"]) == 8
    with django_assert_num_queries(3):
        assert len(api.get(API).json()["results"]) == 9


# --- API -------------------------------------------------------------------------------------


def test_an_admin_token_grants_and_revokes_and_the_audit_log_says_api():
    server = failing()
    api = api_as("admin")
    expires = (timezone.now() + timedelta(days=30)).isoformat()
    body = {"server": server.pk, "check_id": CHECK, "justification": "why", "expires_at": expires}
    created = api.post(API, body, format="json")
    assert created.status_code == 201, created.json()
    assert (created.json()["state"], created.json()["approver"]) == ("in force", "api-admin")
    assert Server.objects.get(pk=server.pk).status == "excepted"
    revoked = api.post(f"{API}{created.json()['id']}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert Server.objects.get(pk=server.pk).status == "non_compliant"
    again = api.post(f"{API}{created.json()['id']}/revoke/")
    assert again.status_code == 400 and "already ended" in again.json()["detail"]
    actions = AuditEntry.objects.filter(object_type="waiver").values_list("action", "source")
    assert sorted(actions) == [("changed", "api"), ("created", "api")]


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_viewer_and_operator_tokens_read_but_get_403_on_writes(role):
    server = failing()
    api = api_as(role)
    expires = (timezone.now() + timedelta(days=30)).isoformat()
    body = {"server": server.pk, "check_id": CHECK, "justification": "why", "expires_at": expires}
    assert api.get(API).status_code == 200
    assert api.post(API, body, format="json").status_code == 403
    waiver = in_force(server, make_user("admin", "boss"))
    assert api.post(f"{API}{waiver.pk}/revoke/").status_code == 403
    assert not AuditEntry.objects.filter(object_type="waiver", source="api").exists()


def test_the_api_names_what_is_wrong():
    server = failing()
    api = api_as("admin")
    start = timezone.now()
    body = {
        "server": server.pk,
        "check_id": "pop3.nonsense",
        "justification": "why",
        "starts_at": start.isoformat(),
        "expires_at": (start + timedelta(days=400)).isoformat(),
    }
    errors = api.post(API, body, format="json").json()
    assert "is not a check of the catalog" in errors["check_id"][0]
    body["check_id"] = CHECK
    errors = api.post(API, body, format="json").json()
    assert errors["expires_at"] == ["An exception lasts at most a year: grant a new one then."]
    del body["expires_at"]
    assert "expires_at" in api.post(API, body, format="json").json()
    body |= {"tag": "nope", "expires_at": (start + timedelta(days=1)).isoformat()}
    assert "tag" in api.post(API, body, format="json").json()
    assert not Waiver.objects.exists()


def test_the_waivers_page_and_a_waived_server_page_run_fixed_numbers_of_queries(
    admin, viewer, django_assert_num_queries
):
    server = failing(tags=("prod",))
    admin.post(ADD, form_data(server))
    # Session, user, role, the waivers with their servers, tags, approvers and revokers.
    with django_assert_num_queries(4):
        viewer.get(LIST)
    # As tests/test_dashboard_views.py pins it, the waivers in force included.
    with django_assert_num_queries(14):
        viewer.get(server.get_absolute_url())
    tag = Tag.objects.get(name="prod")
    for check in ("cert.name", "cert.trusted", "dns.srv"):
        admin.post(ADD, form_data(server, server="", tag=tag.pk, check_id=check))
    admin.post(reverse("waivers:revoke", args=[Waiver.objects.first().pk]))
    with django_assert_num_queries(4):
        assert len(viewer.get(LIST).context["rows"]) == 4
    with django_assert_num_queries(14):
        viewer.get(server.get_absolute_url())


def test_excepted_servers_have_their_tile_metric_and_daily_count(admin, viewer, settings):
    admin.post(ADD, form_data(failing()))
    failing("mail02")
    counts = viewer.get(reverse("dashboard:overview")).context["counts"]
    assert (counts["excepted"], counts["non_compliant"]) == (1, 1)
    settings.POPC_METRICS_TOKEN = "metrics-token"
    metrics = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token")
    assert 'popc_servers{status="excepted"} 1' in metrics.content.decode()
    assert take_snapshot(timezone.now()).excepted == 1


@pytest.mark.django_db(transaction=True)
def test_two_admins_revoking_at_once_end_it_once():
    server = failing()
    admin = make_user("admin", "first-admin")
    waiver = in_force(server, admin)
    tokens = SimpleQueue()  # one admin's token for each thread
    tokens.put(token_for(admin))
    tokens.put(token_for(make_user("admin", "second-admin")))

    def revoke():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {tokens.get()}")
        return client.post(f"{API}{waiver.pk}/revoke/").status_code

    assert sorted(twice_at_once(revoke)) == [200, 400]
    revocations = AuditEntry.objects.filter(object_type="waiver", action="changed")
    assert revocations.count() == 1
    assert Waiver.objects.get(pk=waiver.pk).revoked_by_id == revocations.get().actor_id
