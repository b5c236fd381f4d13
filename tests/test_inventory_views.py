"""The inventory pages: server list, server and policy editors, pause/resume/delete, CSV
import and export. The cast: an admin, an operator, a viewer, and an anonymous visitor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import scanner
from pop3lab.certs import root_ca_pem
from popcompliance.accounts.roles import set_role
from popcompliance.inventory.forms import ServerForm
from popcompliance.inventory.models import PORT_FIELDS, Policy, Server, ServerStatus, Tag
from tests.conftest import policy_form, server_form_data
from tests.people import client_as

pytestmark = pytest.mark.django_db


@pytest.fixture
def server() -> Server:
    return Server.objects.create(name="mail01", host="pop.example.com", site="paris")


@pytest.fixture
def spare_policy() -> Policy:
    return Policy.objects.create(name="Legacy", tls_profile="mozilla-old")


# The policy form's switches, by the protocol whose cleartext port each allows.
CLEARTEXT_SWITCHES = {
    "pop3": "allow_cleartext_port",
    "imap": "allow_cleartext_imap",
    "submission": "allow_cleartext_submission",
}


def make_servers(count: int, prefix: str = "srv") -> None:
    prod, eu = Tag.objects.get_or_create(name="prod")[0], Tag.objects.get_or_create(name="eu")[0]
    for i in range(count):
        server = Server.objects.create(
            name=f"{prefix}{i:03}", host=f"{prefix}{i}.example.com", owner_emails=["o@example.com"]
        )
        server.tags.set([prod, eu])


def server_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "mail02",
        "host": "pop2.example.com",
        "service_name": "",
        "protocols": ["pop3"],
        "pop3_port": 110,
        "pop3s_port": 995,
        "imap_port": 143,
        "imaps_port": 993,
        "submission_port": 587,
        "submissions_port": 465,
        "site": "lyon",
        "policy": Policy.default().pk,
        "scan_interval": 30,
        "owners": "a@example.com; b@example.com, c@example.com",
        "tag_names": "prod, eu;new-tag",
    }
    return data | overrides


# Access: reads for every role, writes for admins only, sign-in for everyone.

READ_PAGES = ["inventory:server_list", "inventory:server_export", "inventory:policy_list"]
ADMIN_PAGES = [
    ("inventory:server_add", False),
    ("inventory:server_import", False),
    ("inventory:server_edit", True),
    ("inventory:server_delete", True),
    ("inventory:policy_add", False),
]
POST_ONLY = ["inventory:server_pause", "inventory:server_resume"]


def url_of(name: str, needs_pk: bool, server: Server) -> str:
    return reverse(name, args=[server.pk]) if needs_pk else reverse(name)


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
@pytest.mark.parametrize("name", READ_PAGES)
def test_every_role_can_read(role, name, server):
    assert client_as(role).get(reverse(name)).status_code == 200


@pytest.mark.parametrize("name", READ_PAGES + [n for n, _ in ADMIN_PAGES if n.endswith("_add")])
def test_anonymous_visitors_are_sent_to_sign_in(name):
    response = Client().get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(resolve_url(settings.LOGIN_URL))


@pytest.mark.parametrize("role", ["viewer", "operator"])
@pytest.mark.parametrize(("name", "needs_pk"), ADMIN_PAGES)
def test_only_admins_open_editing_pages(role, name, needs_pk, server):
    url = url_of(name, needs_pk, server)
    assert client_as(role).get(url).status_code == 403


@pytest.mark.parametrize(("name", "needs_pk"), ADMIN_PAGES)
def test_admins_open_editing_pages(admin, name, needs_pk, server):
    assert admin.get(url_of(name, needs_pk, server)).status_code == 200


@pytest.mark.parametrize("role", ["viewer", "operator"])
@pytest.mark.parametrize("name", [*POST_ONLY, "inventory:server_delete"])
def test_non_admins_cannot_change_a_server(role, name, server):
    assert client_as(role).post(reverse(name, args=[server.pk])).status_code == 403
    server.refresh_from_db()
    assert not server.paused


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_non_admins_cannot_add_a_server_or_import(role):
    client = client_as(role)
    assert client.post(reverse("inventory:server_add"), server_form()).status_code == 403
    upload = SimpleUploadedFile("s.csv", b"name,host\nx,x.example.com\n")
    assert client.post(reverse("inventory:server_import"), {"file": upload}).status_code == 403
    assert not Server.objects.exists()


@pytest.mark.parametrize("name", POST_ONLY)
def test_get_on_a_post_only_view_is_405(admin, name, server):
    assert admin.get(reverse(name, args=[server.pk])).status_code == 405


def test_a_post_without_the_csrf_token_is_refused(server):
    client = Client(enforce_csrf_checks=True)
    user = User.objects.create_user("csrf-admin")
    set_role(user, "admin")
    client.force_login(user)
    assert client.post(reverse("inventory:server_pause", args=[server.pk])).status_code == 403


# The server list.


def listed(client: Client, query: str = "") -> list[str]:
    response = client.get(reverse("inventory:server_list") + query)
    return [server.name for server in response.context["page"].object_list]


def test_the_list_shows_each_servers_settings(viewer, server):
    server.tags.set([Tag.objects.create(name="prod")])
    server.owner_emails = ["ops@example.com"]
    server.save()
    html = viewer.get(reverse("inventory:server_list")).content.decode()
    for text in ("mail01", "pop.example.com", "paris", "prod", "ops@example.com", "60 min", "New"):
        assert text in html


def test_viewers_see_no_editing_controls(viewer, admin, server):
    edit = reverse("inventory:server_edit", args=[server.pk])
    assert edit not in viewer.get(reverse("inventory:server_list")).content.decode()
    assert edit in admin.get(reverse("inventory:server_list")).content.decode()


def test_the_list_filters_by_site_tag_status_policy_and_search(viewer, spare_policy):
    Server.objects.create(name="a", host="a.example.com", site="paris")
    Server.objects.create(name="b", host="b.example.net", status=ServerStatus.COMPLIANT)
    Server.objects.create(name="c", host="c.example.com", policy=spare_policy)
    Server.objects.get(name="a").tags.set([Tag.objects.create(name="prod")])
    assert listed(viewer, "?site=paris") == ["a"]
    assert listed(viewer, "?tag=prod") == ["a"]
    assert listed(viewer, "?status=compliant") == ["b"]
    assert listed(viewer, f"?policy={spare_policy.pk}") == ["c"]
    assert listed(viewer, "?q=example.net") == ["b"]


def test_the_site_filter_offers_each_site_once(viewer):
    for name, site in (("a", "paris"), ("b", "paris"), ("c", "lyon"), ("d", "")):
        Server.objects.create(name=name, host=f"{name}.example.com", site=site)
    filters = viewer.get(reverse("inventory:server_list")).context["filters"]
    choices = filters.fields["site"].choices
    assert choices == [("", "Any site"), ("lyon", "lyon"), ("paris", "paris")]


def test_an_invalid_filter_is_ignored_not_fatal(viewer, server):
    assert listed(viewer, "?site=nowhere&status=bogus&per_page=7") == ["mail01"]


def test_the_list_sorts_and_paginates(viewer):
    make_servers(30)
    assert listed(viewer, "?per_page=25&page=2") == [f"srv{i:03}" for i in range(25, 30)]
    assert listed(viewer, "?sort=-name&per_page=25")[0] == "srv029"


def test_the_list_page_runs_a_constant_number_of_queries(viewer, django_assert_num_queries):
    make_servers(20)
    url = reverse("inventory:server_list")
    # Session, user, role; sites, tags and policies for the filters; count, page, page's tags.
    with django_assert_num_queries(9):
        assert len(viewer.get(url).context["page"].object_list) == 20
    make_servers(20, prefix="more")
    with django_assert_num_queries(9):
        assert len(viewer.get(url + "?per_page=100").context["page"].object_list) == 40


# Adding, editing, pausing, deleting servers.


def test_an_admin_adds_a_server_with_owners_and_new_tags(admin):
    response = admin.post(reverse("inventory:server_add"), server_form())
    assert response.status_code == 302
    server = Server.objects.get(name="mail02")
    assert server.owner_emails == ["a@example.com", "b@example.com", "c@example.com"]
    assert sorted(tag.name for tag in server.tags.all()) == ["eu", "new-tag", "prod"]


def test_the_form_shows_the_scanners_host_error(admin):
    response = admin.post(reverse("inventory:server_add"), server_form(host="not a host!"))
    assert response.status_code == 200
    assert "not a host name or IP address" in " ".join(response.context["form"].errors["host"])
    assert not Server.objects.exists()


def test_the_form_names_bad_owner_emails_and_ports(admin):
    data = server_form(owners="ok@example.com; nope", pop3_port=70000)
    errors = admin.post(reverse("inventory:server_add"), data).context["form"].errors
    assert "nope" in errors["owners"][0]
    assert "pop3_port" in errors and "host" not in errors


def test_the_edit_form_shows_owners_and_tags_as_text(admin, server):
    server.owner_emails = ["a@example.com", "b@example.com"]
    server.save()
    server.tags.set([Tag.objects.create(name="eu")])
    form = admin.get(reverse("inventory:server_edit", args=[server.pk])).context["form"]
    assert form["owners"].value() == "a@example.com; b@example.com"
    assert form["tag_names"].value() == "eu"


def test_an_admin_edits_a_server(admin, server):
    url = reverse("inventory:server_edit", args=[server.pk])
    admin.post(url, server_form(name="mail01", host="pop9.example.com", tag_names=""))
    server.refresh_from_db()
    assert (server.host, list(server.tags.all())) == ("pop9.example.com", [])


def test_an_edit_keeps_the_status_a_worker_settled_meanwhile(admin, server):
    Server.objects.filter(pk=server.pk).update(status=ServerStatus.COMPLIANT)
    form = ServerForm(server_form(name="mail01", site="lyon"), instance=server)
    assert form.is_valid()
    form.save()
    server.refresh_from_db()
    assert (server.site, server.status) == ("lyon", ServerStatus.COMPLIANT)


def test_a_new_address_is_scanned_now_and_a_shorter_interval_counts_from_now(server):
    later = timezone.now() + timedelta(days=1)
    Server.objects.filter(pk=server.pk).update(next_scan_at=later, scan_interval=1440)
    server.refresh_from_db()
    edit(server, scan_interval=10)
    # Ten minutes from now: the interval counts from now, and no scan is due at once.
    assert (
        timezone.now() + timedelta(minutes=9)
        < server.next_scan_at
        <= timezone.now() + timedelta(minutes=10)
    )
    Server.objects.filter(pk=server.pk).update(next_scan_at=later)
    server.refresh_from_db()
    edit(server, host="pop9.example.com", scan_interval=10)
    assert server.next_scan_at <= timezone.now()


def edit(server: Server, **changes: Any) -> None:
    initial = {"name": server.name, "host": server.host, "scan_interval": server.scan_interval}
    # The policy field has a callable default, so the page posts its initial value too;
    # without it the form would read every edit as a change of policy.
    initial["initial-policy"] = server.policy_id
    form = ServerForm(server_form(**(initial | changes)), instance=server)
    assert form.is_valid(), form.errors
    form.save()
    server.refresh_from_db()


# Protocols and their ports.


def test_the_add_form_offers_every_protocol_with_pop3_ticked_and_the_default_ports(admin):
    form = admin.get(reverse("inventory:server_add")).context["form"]
    assert form.fields["protocols"].choices == [
        ("pop3", "POP3"),
        ("imap", "IMAP4"),
        ("submission", "SMTP submission"),
    ]
    assert form["protocols"].value() == ["pop3"]
    ports = {field: form[field].value() for field in PORT_FIELDS}
    assert ports == dict(zip(PORT_FIELDS, (110, 995, 143, 993, 587, 465), strict=True))
    labels = [box.choice_label for box, _, _ in form.service_rows]
    assert labels == [protocol.label for protocol in scanner.CLIENT_PROTOCOLS]


def test_an_admin_adds_a_server_serving_imap_and_submission_on_own_ports(admin):
    data = server_form(protocols=["submission", "imap"], imap_port=1143, submissions_port=2465)
    assert admin.post(reverse("inventory:server_add"), data).status_code == 302
    target = Server.objects.get(name="mail02").as_target()
    assert target.protocols == ("imap", "submission")
    assert [target.ports(p) for p in scanner.CLIENT_PROTOCOLS] == [
        (110, 995),
        (1143, 993),
        (587, 2465),
    ]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"protocols": []}, "protocols", "Choose at least one protocol."),
        ({"protocols": ["pop3", "ftp"]}, "protocols", "Select a valid choice. ftp is not one"),
        ({"imap_port": 0}, "imap_port", "Ensure this value is greater than or equal to 1."),
        ({"submissions_port": 65536}, "submissions_port", "less than or equal to 65535"),
        ({"imaps_port": ""}, "imaps_port", "This field is required."),
    ],
)
def test_the_form_refuses_no_protocol_an_unknown_one_or_a_bad_port(admin, change, field, message):
    response = admin.post(reverse("inventory:server_add"), server_form(**change))
    errors = response.context["form"].errors
    assert list(errors) == [field] and message in errors[field][0]
    assert not Server.objects.exists()


def test_the_edit_form_ticks_the_stored_protocols_and_shows_their_ports(admin, server):
    Server.objects.filter(pk=server.pk).update(protocols="submission,pop3", submission_port=2587)
    response = admin.get(reverse("inventory:server_edit", args=[server.pk]))
    form, html = response.context["form"], response.content.decode()
    assert (form["protocols"].value(), form["submission_port"].value()) == (
        ["pop3", "submission"],
        2587,
    )
    assert 'value="submission" id="id_protocols_2" checked' in html
    assert 'value="imap" id="id_protocols_1">' in html  # not ticked
    assert 'name="submission_port" value="2587"' in html


@pytest.mark.parametrize(
    "change", [{"protocols": ["pop3", "imap"]}, {"imaps_port": 1993}, {"submission_port": 2587}]
)
def test_new_protocols_or_ports_are_scanned_now(server, change):
    later = timezone.now() + timedelta(days=1)
    Server.objects.filter(pk=server.pk).update(next_scan_at=later)
    server.refresh_from_db()
    edit(server, **change)
    assert server.next_scan_at <= timezone.now()
    assert server.protocols == ",".join(change.get("protocols", ["pop3"]))


def test_resubmitting_the_same_protocols_changes_nothing(server):
    later = timezone.now() + timedelta(days=1)
    Server.objects.filter(pk=server.pk).update(protocols="pop3,imap", next_scan_at=later)
    server.refresh_from_db()
    form = ServerForm(server_form_data(server, protocols=["imap", "pop3"]), instance=server)
    assert form.is_valid(), form.errors
    assert form.changed_data == []
    form.save()
    server.refresh_from_db()
    assert (server.protocols, server.next_scan_at) == ("pop3,imap", later)


def test_the_list_shows_each_servers_protocols(viewer, server):
    Server.objects.create(name="mail02", host="h2.example.com", protocols="imap,submission")
    rows = viewer.get(reverse("inventory:server_list")).content.decode().split("<tr>")[2:]
    assert "<td>POP3</td>" in rows[0]
    assert "<td>IMAP4<br>SMTP submission</td>" in rows[1]


def test_an_admin_pauses_and_resumes_a_server_and_returns_to_the_list(admin, server):
    back = reverse("inventory:server_list") + "?site=paris"
    response = admin.post(reverse("inventory:server_pause", args=[server.pk]), {"next": back})
    server.refresh_from_db()
    assert (response["Location"], server.paused, server.status) == (back, True, "paused")
    admin.post(reverse("inventory:server_resume", args=[server.pk]))
    server.refresh_from_db()
    assert (server.paused, server.status) == (False, ServerStatus.NEW)


def test_pause_never_redirects_off_site(admin, server):
    url = reverse("inventory:server_pause", args=[server.pk])
    response = admin.post(url, {"next": "https://evil.example/"})
    assert response["Location"] == reverse("inventory:server_list")


def test_deleting_a_server_asks_first(admin, server):
    url = reverse("inventory:server_delete", args=[server.pk])
    assert "Delete mail01?" in admin.get(url).content.decode()
    assert Server.objects.exists()
    assert admin.post(url).status_code == 302
    assert not Server.objects.exists()


# Policies.


def test_an_admin_adds_a_policy_with_a_ca_bundle(admin):
    data = policy_form(ca_bundle_pem=root_ca_pem().decode(), use_system_trust=None)
    assert admin.post(reverse("inventory:policy_add"), data).status_code == 302
    assert Policy.objects.get(name="Enterprise").ca_bundle_pem.startswith("-----BEGIN")


@pytest.mark.parametrize(
    "bundle", ["not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]
)
def test_a_ca_bundle_without_a_loadable_certificate_is_refused(admin, bundle):
    response = admin.post(reverse("inventory:policy_add"), policy_form(ca_bundle_pem=bundle))
    assert "ca_bundle_pem" in response.context["form"].errors
    assert not Policy.objects.filter(name="Enterprise").exists()


def test_the_policy_model_rules_show_on_the_form(admin):
    response = admin.post(reverse("inventory:policy_add"), policy_form(critical_days=40))
    assert "critical_days must be between 0 and warn_days" in str(response.context["form"].errors)


def test_the_policy_form_offers_a_switch_per_cleartext_port(admin):
    form = admin.get(reverse("inventory:policy_add")).context["form"]
    labels = [form[name].label for name in CLEARTEXT_SWITCHES.values()]
    assert labels == ["Allow port 110", "Allow port 143", "Allow port 587"]
    assert all(form[name].value() for name in CLEARTEXT_SWITCHES.values())  # allowed by default


@pytest.mark.parametrize("closed", CLEARTEXT_SWITCHES.values())
def test_the_policy_forms_cleartext_switches_reach_the_scanner_policy(admin, closed):
    assert (
        admin.post(reverse("inventory:policy_add"), policy_form(**{closed: None})).status_code
        == 302
    )
    judged = Policy.objects.get(name="Enterprise").as_scanner_policy()
    allowed = {p.name: judged.allows_cleartext(p.name) for p in scanner.CLIENT_PROTOCOLS}
    assert allowed == {name: field != closed for name, field in CLEARTEXT_SWITCHES.items()}


def test_the_policy_list_says_which_cleartext_ports_must_be_closed(viewer):
    Policy.objects.create(name="Strict", allow_cleartext_imap=False)
    html = " ".join(viewer.get(reverse("inventory:policy_list")).content.decode().split())
    assert "110 allowed<br> 143 must be closed<br> 587 allowed</td>" in html


def test_making_a_policy_the_default_moves_the_default(admin, spare_policy):
    old = Policy.default()
    url = reverse("inventory:policy_edit", args=[spare_policy.pk])
    admin.post(url, policy_form(name="Legacy", make_default="on"))
    assert Policy.default() == spare_policy
    assert not Policy.objects.get(pk=old.pk).is_default


def test_the_default_policy_cannot_stop_being_the_default_alone(admin):
    policy = Policy.default()
    url = reverse("inventory:policy_edit", args=[policy.pk])
    response = admin.post(url, policy_form(name=policy.name))
    assert "make_default" in response.context["form"].errors


def test_a_policy_in_use_cannot_be_deleted_and_the_page_says_why(admin, spare_policy, server):
    server.policy = spare_policy
    server.save()
    url = reverse("inventory:policy_delete", args=[spare_policy.pk])
    assert "used by 1 server (mail01)" in admin.get(url).content.decode()
    assert admin.post(url).status_code == 409
    assert Policy.objects.filter(pk=spare_policy.pk).exists()


def test_an_unused_policy_is_deleted(admin, spare_policy):
    assert admin.post(reverse("inventory:policy_delete", args=[spare_policy.pk])).status_code == 302
    assert not Policy.objects.filter(pk=spare_policy.pk).exists()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_non_admins_cannot_change_policies(role, spare_policy):
    client = client_as(role)
    assert client.post(reverse("inventory:policy_add"), policy_form()).status_code == 403
    edit = reverse("inventory:policy_edit", args=[spare_policy.pk])
    assert client.post(edit, policy_form(name="Renamed")).status_code == 403
    delete = reverse("inventory:policy_delete", args=[spare_policy.pk])
    assert client.post(delete).status_code == 403
    assert Policy.objects.filter(name="Legacy").exists()


# CSV import and export.


def upload(client: Client, data: bytes) -> Any:
    file = SimpleUploadedFile("servers.csv", data, content_type="text/csv")
    return client.post(reverse("inventory:server_import"), {"file": file})


def test_an_import_with_one_bad_row_shows_it_and_keeps_the_good_rows(admin, server):
    csv = b"name,host,scan_interval\nmail01,pop.example.com,30\nbad,x,0\nmail03,p3.example.com,\n"
    html = upload(admin, csv).content.decode()
    assert sorted(Server.objects.values_list("name", flat=True)) == ["mail01", "mail03"]
    assert "Created 1, updated 1, unchanged 0, refused 1" in " ".join(html.split())
    assert "<td>3</td><td>scan_interval: must be between 1 and 10080, not 0</td>" in html


def test_an_unusable_file_imports_nothing_and_says_why(admin):
    response = upload(admin, b"name,host\nok,ok.example.com\n\xff\n")
    assert "not UTF-8 text" in response.context["form"].errors["file"][0]
    assert not Server.objects.exists()


def test_the_export_is_csv_the_import_reads_back(viewer, server):
    response = viewer.get(reverse("inventory:server_export"))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    assert response.streaming  # written as it is read, never whole in memory
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("name,host,") and lines[1].startswith("mail01,pop.example.com,")


def test_the_export_follows_the_lists_filters(viewer, server):
    Server.objects.create(name="other", host="other.example.com", site="lyon")
    response = viewer.get(reverse("inventory:server_export") + "?site=lyon")
    content = b"".join(response.streaming_content).decode()
    assert [line.split(",")[0] for line in content.splitlines()[1:]] == ["other"]


def test_the_inventory_and_the_overview_list_servers_by_one_query(viewer):
    """One filter form and one query behind both server lists: the same filters and sort
    select the same servers in the same order on both pages."""
    for name, site in (("b1", "paris"), ("a2", "paris"), ("c3", "lyon")):
        Server.objects.create(name=name, host=f"{name}.example.com", site=site)
    query = "?site=paris&sort=-name"
    inventory = viewer.get(reverse("inventory:server_list") + query).context["page"]
    overview = viewer.get(reverse("dashboard:overview") + query).context["page"]
    assert [s.name for s in inventory] == [s.name for s in overview] == ["b1", "a2"]


def test_every_sort_key_orders_both_ways(viewer):
    for name, interval in (("a", 30), ("b", 10), ("c", 20)):
        Server.objects.create(name=name, host=f"{name}.example.com", scan_interval=interval)
    assert listed(viewer, "?sort=interval") == ["b", "c", "a"]
    assert listed(viewer, "?sort=-interval") == ["a", "c", "b"]
