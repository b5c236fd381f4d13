"""The audit log (popcompliance.audit): every way of changing servers, policies, tags, users
and API tokens leaves exactly the expected entry, with who, from where and what; scans and
rolled-back changes leave none; the page and the API are for admins, filter, and run a fixed
number of queries."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import signals
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from pop3lab.config import EndpointConfig
from popcompliance.audit import recorder
from popcompliance.audit.context import acting_as
from popcompliance.audit.models import AuditEntry
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.inventory.models import Policy, Server, Tag
from tests.conftest import lab_server, server_form_data
from tests.people import make_user, token_for

pytestmark = pytest.mark.django_db

PASSWORD = "x"
AUDIT = "/audit/"
AUDIT_API = "/api/v1/audit/"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def token_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


@pytest.fixture
def boss() -> User:
    """The admin whose changes the tests look for."""
    return make_user("admin", "boss")


@pytest.fixture
def server() -> Server:
    with acting_as("test setup"):
        created = Server.objects.create(name="mail01", host="pop.example.com", site="paris")
        created.tags.set([Tag.objects.create(name="prod")])
    return created


def entries_after(start: int) -> list[AuditEntry]:
    """The entries written since `start` (an id), oldest first."""
    return list(AuditEntry.objects.filter(pk__gt=start).order_by("pk"))


def last_id() -> int:
    return AuditEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def summary(entry: AuditEntry) -> tuple[str, str, str, str, str]:
    return (entry.actor_label, entry.source, entry.action, entry.object_type, entry.object_label)


# The dashboard's forms.


def test_a_web_edit_records_the_fields_and_tags_it_changed_as_one_entry(boss, server):
    start = last_id()
    data = server_form_data(server, host="pop2.example.com", tag_names="prod; eu")
    signed_in(boss).post(reverse("inventory:server_edit", args=[server.pk]), data)
    entry, new_tag = entries_after(start)
    assert summary(new_tag) == ("boss", "web", "created", "tag", "eu")
    assert summary(entry) == ("boss", "web", "changed", "server", "mail01")
    assert (entry.actor, entry.object_id, entry.remote_address) == (boss, server.pk, "127.0.0.1")
    assert entry.changes == {
        "host": ["pop.example.com", "pop2.example.com"],
        "tags": [["prod"], ["eu", "prod"]],
    }


def test_a_web_edit_of_protocols_and_ports_is_recorded(boss, server):
    start = last_id()
    data = server_form_data(server, protocols=["imap", "pop3"], imaps_port=1993)
    signed_in(boss).post(reverse("inventory:server_edit", args=[server.pk]), data)
    [entry] = entries_after(start)
    assert summary(entry) == ("boss", "web", "changed", "server", "mail01")
    assert entry.changes == {"protocols": ["pop3", "pop3,imap"], "IMAPS port": [993, 1993]}


def test_a_web_add_records_the_new_server_with_its_policy_and_tags_by_name(boss, server):
    start = last_id()
    data = server_form_data(server, name="mail02", host="pop2.example.com", tag_names="eu")
    data["owners"] = "a@example.com"
    signed_in(boss).post(reverse("inventory:server_add"), data)
    created = [e for e in entries_after(start) if e.object_type == "server"]
    assert [summary(e) for e in created] == [("boss", "web", "created", "server", "mail02")]
    changes = created[0].changes
    assert changes["policy"] == [None, Policy.default().name]
    assert changes["tags"] == [[], ["eu"]]
    assert changes["owners"] == [None, ["a@example.com"]]


def test_an_edit_that_changes_nothing_records_nothing(boss, server):
    start = last_id()
    signed_in(boss).post(
        reverse("inventory:server_edit", args=[server.pk]), server_form_data(server)
    )
    assert entries_after(start) == []


def test_a_new_policy_is_recorded_by_name_on_both_sides(boss, server):
    strict = Policy.objects.create(name="Strict")
    start = last_id()
    data = server_form_data(server, policy=strict.pk)
    signed_in(boss).post(reverse("inventory:server_edit", args=[server.pk]), data)
    [entry] = entries_after(start)
    assert entry.changes == {"policy": [Policy.default().name, "Strict"]}


def test_pause_resume_and_delete_are_recorded(boss, server):
    client, start = signed_in(boss), last_id()
    client.post(reverse("inventory:server_pause", args=[server.pk]))
    client.post(reverse("inventory:server_resume", args=[server.pk]))
    client.post(reverse("inventory:server_delete", args=[server.pk]))
    pause, resume, delete = entries_after(start)
    assert (pause.action, pause.changes) == ("changed", {"paused": [False, True]})
    assert (resume.action, resume.changes) == ("changed", {"paused": [True, False]})
    assert (delete.action, delete.object_id) == ("deleted", server.pk)
    assert delete.changes["host"] == ["pop.example.com", None]


def test_the_monitoring_password_is_recorded_as_set_never_as_its_value(boss, server):
    start, secret = last_id(), "monitor-secret-123"
    data = server_form_data(server, monitor_username="monitor", monitor_password=secret)
    signed_in(boss).post(reverse("inventory:server_edit", args=[server.pk]), data)
    [entry] = entries_after(start)
    assert entry.changes == {
        "monitor username": ["", "monitor"],
        "monitor password": ["(none)", "(set)"],
    }
    token = Server.objects.get(pk=server.pk).monitor_password_encrypted
    assert secret not in json.dumps(entry.changes) and token not in json.dumps(entry.changes)


def test_removing_the_monitoring_account_is_recorded_as_removed(boss, server):
    server.monitor_username = "monitor"
    server.set_monitor_password("monitor-secret-123", timezone.now())
    server.save()
    start = last_id()
    data = server_form_data(server, remove_monitor_credentials="on")
    signed_in(boss).post(reverse("inventory:server_edit", args=[server.pk]), data)
    [entry] = entries_after(start)
    assert entry.changes["monitor password"] == ["(set)", "(removed)"]


POLICY_FORM = {
    "description": "",
    "warn_days": 30,
    "critical_days": 7,
    "tls_profile": "mozilla-intermediate",
    "tls_enumeration_hours": 24,
    "use_system_trust": "on",
    "allow_cleartext_port": "on",
    "allow_cleartext_imap": "on",
    "allow_cleartext_submission": "on",
    "error_runs_before_unknown": 2,
}


def test_moving_the_default_policy_records_both_policies(boss):
    old = Policy.default()
    start = last_id()
    data = POLICY_FORM | {"name": "Enterprise", "make_default": "on"}
    signed_in(boss).post(reverse("inventory:policy_add"), data)
    previous, new = entries_after(start)
    assert (previous.action, previous.object_label) == ("changed", old.name)
    assert previous.changes == {"default": [True, False]}
    assert (new.action, new.object_label, new.changes["default"]) == (
        "created",
        "Enterprise",
        [None, True],
    )


def test_a_policy_edit_records_old_and_new_values_and_the_ca_bundle_only_as_changed(boss):
    policy = Policy.objects.create(name="Legacy", tls_profile="mozilla-old")
    start = last_id()
    from pop3lab.certs import root_ca_pem

    data = POLICY_FORM | {"name": "Legacy", "tls_profile": "mozilla-intermediate"}
    data["ca_bundle_pem"] = root_ca_pem().decode()
    signed_in(boss).post(reverse("inventory:policy_edit", args=[policy.pk]), data)
    [entry] = entries_after(start)
    assert entry.changes == {
        "TLS profile": ["mozilla-old", "mozilla-intermediate"],
        "CA bundle": ["(none)", "(set)"],
    }


# CSV import, in the browser and on the command line.

CSV = b"name,host,tags,policy\nmail03,pop3.example.com,prod;eu,\n"


def test_a_csv_import_in_the_browser_records_each_server_for_the_admin(boss):
    start = last_id()
    upload = SimpleUploadedFile("servers.csv", CSV, content_type="text/csv")
    signed_in(boss).post(reverse("inventory:server_import"), {"file": upload})
    servers = [e for e in entries_after(start) if e.object_type == "server"]
    assert [summary(e) for e in servers] == [("boss", "web", "created", "server", "mail03")]
    assert servers[0].changes["tags"] == [[], ["eu", "prod"]]


def test_import_servers_records_the_command_as_the_actor(tmp_path, server):
    file = tmp_path / "servers.csv"
    file.write_bytes(b"name,host\nmail01,pop9.example.com\n")
    start = last_id()
    call_command("import_servers", str(file), stdout=StringIO())
    [entry] = entries_after(start)
    assert summary(entry) == ("command import_servers", "command", "changed", "server", "mail01")
    assert entry.actor is None and entry.remote_address is None
    assert entry.changes == {"host": ["pop.example.com", "pop9.example.com"]}


# The JSON API.


def test_an_api_create_and_update_by_token_are_recorded_for_the_tokens_user(boss):
    api = token_client(boss)
    start = last_id()
    body = {"name": "mail04", "host": "pop4.example.com", "tags": ["eu"]}
    pk = api.post("/api/v1/servers/", body, format="json").json()["id"]
    api.patch(f"/api/v1/servers/{pk}/", {"site": "oslo", "tags": ["eu", "prod"]}, format="json")
    created, changed = [e for e in entries_after(start) if e.object_type == "server"]
    assert summary(created) == ("boss", "api", "created", "server", "mail04")
    assert created.actor == boss and created.changes["tags"] == [[], ["eu"]]
    assert summary(changed) == ("boss", "api", "changed", "server", "mail04")
    assert changed.changes == {"site": ["", "oslo"], "tags": [["eu"], ["eu", "prod"]]}


# The Django admin.


def test_an_edit_in_the_django_admin_is_recorded_with_source_admin():
    superuser = User.objects.create_superuser("root", password=PASSWORD)
    tag = Tag.objects.create(name="prd")
    start = last_id()
    url = reverse("admin:inventory_tag_change", args=[tag.pk])
    assert signed_in(superuser).post(url, {"name": "prod"}).status_code == 302
    [entry] = entries_after(start)
    assert summary(entry) == ("root", "admin", "changed", "tag", "prod")
    assert entry.changes == {"name": ["prd", "prod"]}


def test_the_audit_log_is_read_only_in_the_django_admin(boss, server):
    entry = AuditEntry.objects.latest("pk")
    client = signed_in(User.objects.create_superuser("root", password=PASSWORD))
    assert client.get(reverse("admin:audit_auditentry_change", args=[entry.pk])).status_code == 200
    assert client.post(reverse("admin:audit_auditentry_delete", args=[entry.pk])).status_code == 403
    assert client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


# Users: roles, passwords, tokens, lockouts.


def test_a_role_change_is_recorded_as_the_groups_before_and_after(boss):
    someone = make_user("viewer", "someone")
    start = last_id()
    url = reverse("accounts:user_role", args=[someone.pk])
    signed_in(boss).post(url, {"role": "operator"})
    [entry] = entries_after(start)
    assert summary(entry) == ("boss", "web", "changed", "user", "someone")
    assert entry.changes == {"groups": [["viewer"], ["operator"]]}


def test_a_password_change_is_recorded_without_the_hash():
    user = make_user("viewer", "someone", password="old-password-1")
    start = last_id()
    form = {
        "old_password": "old-password-1",
        "new_password1": "a-much-longer-passphrase",
        "new_password2": "a-much-longer-passphrase",
    }
    signed_in(user).post(reverse("accounts:password_change"), form)
    [entry] = entries_after(start)
    assert summary(entry) == ("someone", "web", "password changed", "user", "someone")
    assert entry.changes == {"password": ["(set)", "(changed)"]}
    user.refresh_from_db()
    assert user.password not in json.dumps(entry.changes)


def test_a_superuser_flag_set_in_a_shell_is_recorded_as_the_system(boss):
    start = last_id()
    boss.is_superuser = True
    boss.save()
    [entry] = entries_after(start)
    assert summary(entry) == ("system", "system", "changed", "user", "boss")
    assert entry.changes == {"superuser": [False, True]}


def test_create_api_token_records_the_token_by_its_owner_never_its_key(boss):
    start = last_id()
    out = StringIO()
    call_command("create_api_token", "boss", stdout=out)
    call_command("create_api_token", "boss", "--rotate", stdout=out)
    created, deleted, rotated = entries_after(start)
    first = out.getvalue().split()[0]
    assert summary(created) == (
        "command create_api_token",
        "command",
        "created",
        "api token",
        f"boss: command line ({first[:8]}…)",
    )
    assert (deleted.action, rotated.action) == ("deleted", "created")
    assert deleted.object_id == created.object_id != rotated.object_id
    keys = out.getvalue().split()
    stored = json.dumps(list(AuditEntry.objects.values()), default=str)
    assert all(key not in stored for key in keys)


def test_ensure_admin_records_the_account_it_creates(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "chief")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-passphrase")
    start = last_id()
    call_command("ensure_admin", stdout=StringIO())
    [entry] = entries_after(start)
    assert summary(entry) == ("command ensure_admin", "command", "created", "user", "chief")
    assert entry.changes["superuser"] == [None, True]
    assert entry.changes["password"] == [None, "(set)"]


def test_signing_in_records_the_sign_in_and_no_change_of_the_account():
    # The sign-in updates last_login, which is not audited: one "signed in" entry, no
    # "changed" one.
    make_user("viewer", "someone", password="a-passphrase")
    start = last_id()
    form = {"username": "someone", "password": "a-passphrase"}
    assert Client().post(reverse("accounts:login"), form).status_code == 302
    [entry] = entries_after(start)
    assert summary(entry) == ("someone", "web", "signed in", "user", "someone")
    assert entry.changes == {"method": [None, "password"]}


def test_an_admin_may_delete_their_own_account_and_the_deletion_is_recorded():
    root = User.objects.create_superuser("root", password=PASSWORD)
    key = token_for(root)
    start = last_id()
    url = reverse("admin:auth_user_delete", args=[root.pk])
    assert signed_in(root).post(url, {"post": "yes"}).status_code == 302
    token, account = entries_after(start)
    assert summary(token) == ("root", "admin", "deleted", "api token", f"root: tests ({key[:8]}…)")
    assert summary(account) == ("root", "admin", "deleted", "user", "root")
    assert not User.objects.filter(username="root").exists()


def test_a_lockout_by_axes_is_recorded_with_the_address(settings):
    settings.AXES_FAILURE_LIMIT = 2
    make_user("viewer", "someone")
    start = last_id()
    client = Client(REMOTE_ADDR="192.0.2.7")
    for _ in range(2):
        client.post(reverse("accounts:login"), {"username": "someone", "password": "wrong"})
    # The first failed sign-in; the second one is the lockout's own entry.
    *failures, entry = entries_after(start)
    assert [summary(failure)[2:] for failure in failures] == [("sign-in failed", "user", "someone")]
    assert failures[0].changes == {
        "method": [None, "password"],
        "reason": [None, "wrong username or password"],
    }
    assert summary(entry) == ("anonymous", "web", "locked out", "user", "someone")
    assert entry.remote_address == "192.0.2.7"
    assert entry.object_id == User.objects.get(username="someone").pk


def test_a_lockout_of_an_unknown_name_is_recorded_without_an_account(settings):
    settings.AXES_FAILURE_LIMIT = 2
    start = last_id()
    client = Client(REMOTE_ADDR="192.0.2.8")
    for _ in range(2):
        client.post(reverse("admin:login"), {"username": "guess", "password": "wrong"})
    *failures, entry = entries_after(start)
    assert [failure.action for failure in failures] == ["sign-in failed"]
    assert summary(entry) == ("anonymous", "admin", "locked out", "user", "guess")
    assert (entry.object_id, entry.remote_address) == (None, "192.0.2.8")


def test_a_try_while_locked_out_is_left_to_the_lockout_entry(settings):
    settings.AXES_FAILURE_LIMIT = 1
    make_user("viewer", "someone", password="a-passphrase")
    client = Client(REMOTE_ADDR="192.0.2.9")
    client.post(reverse("accounts:login"), {"username": "someone", "password": "wrong"})
    start = last_id()
    # The right password now: refused by the lockout, which records itself again.
    form = {"username": "someone", "password": "a-passphrase"}
    assert client.post(reverse("accounts:login"), form).status_code == 429
    assert [entry.action for entry in entries_after(start)] == ["locked out"]


# Tags changed from the tag's side: each server whose tags change gets its entry.


def test_adding_a_server_to_a_tag_records_the_servers_tags(server):
    with acting_as("test setup"):
        eu = Tag.objects.create(name="eu")
    start = last_id()
    with acting_as("x"):
        eu.servers.add(server)
    [entry] = entries_after(start)
    assert summary(entry) == ("x", "command", "changed", "server", "mail01")
    assert (entry.object_id, entry.changes) == (server.pk, {"tags": [["prod"], ["eu", "prod"]]})


def test_clearing_a_tags_servers_records_each_server_it_leaves(server):
    with acting_as("test setup"):
        other = Server.objects.create(name="mail02", host="pop2.example.com")
        other.tags.set([Tag.objects.get(name="prod"), Tag.objects.create(name="eu")])
    start = last_id()
    with acting_as("x"):
        Tag.objects.get(name="prod").servers.clear()
    # Written in the order of the tag's rows, which nothing orders.
    entries = sorted(entries_after(start), key=lambda entry: entry.object_label)
    assert [summary(e) for e in entries] == [
        ("x", "command", "changed", "server", "mail01"),
        ("x", "command", "changed", "server", "mail02"),
    ]
    assert [e.changes for e in entries] == [
        {"tags": [["prod"], []]},
        {"tags": [["eu", "prod"], ["eu"]]},
    ]


# What is not recorded.


def test_a_change_undone_in_the_same_scope_leaves_no_entry(server):
    start = last_id()
    with acting_as("a script"):
        server.host = "elsewhere.example.com"
        server.save()
        server.host = "pop.example.com"
        server.save()
    assert entries_after(start) == []
    with acting_as("a script"):
        server.host = "elsewhere.example.com"
        server.save()
        server.host = "pop.example.com"
        server.save()
        server.site = "lyon"
        server.save()
    [entry] = entries_after(start)
    assert entry.changes == {"site": ["paris", "lyon"]}


def test_a_rolled_back_change_leaves_no_entry(server):
    start = last_id()
    with pytest.raises(RuntimeError), transaction.atomic():
        server.host = "elsewhere.example.com"
        server.save()
        raise RuntimeError("something after the save failed")
    assert entries_after(start) == []


def test_a_save_the_database_refuses_leaves_no_entry(server):
    start = last_id()
    with pytest.raises(IntegrityError), transaction.atomic():
        Server.objects.create(name="mail01", host="duplicate.example.com")
    assert entries_after(start) == []


def test_saving_only_pipeline_fields_costs_no_query_and_no_entry(server, django_assert_num_queries):
    start = last_id()
    server.next_scan_at = timezone.now() + timedelta(minutes=5)
    server.status = "compliant"
    with django_assert_num_queries(1):
        server.save(update_fields=["next_scan_at", "status", "status_changed_at", "updated_at"])
    assert entries_after(start) == []


# The receivers that see every save, as recorder.connect() names them.
SAVE_RECEIVERS = [
    (signals.pre_save, "audit.pre_save"),
    (signals.post_save, "audit.post_save"),
    (signals.post_delete, "audit.post_delete"),
]


def recorded_queries(server: Server, report: Any) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        record_report(server.pk, report, purpose="scheduled")
    return [query["sql"] for query in queries.captured_queries]


def scan(fixed: Any, *servers: Server) -> dict[int, Any]:
    with fixed.serving(EndpointConfig()):
        return scan_servers(
            list(Server.objects.select_related("policy").filter(pk__in=[s.pk for s in servers]))
        )


def test_recording_a_scan_writes_no_entry_and_runs_no_extra_query(fixed, settings, lab_dns):
    settings.POPC_DNS_RESOLVER, settings.POPC_SCAN_TIMEOUT = lab_dns.address, 3
    plain = lab_server("a", fixed.address, *fixed.ports)
    audited = lab_server("b", fixed.address, *fixed.ports, policy=plain.policy)
    first = scan(fixed, plain, audited)
    for server in (plain, audited):
        record_report(server.pk, first[server.pk], purpose="scheduled")  # both in one state
    reports, start = scan(fixed, plain, audited), last_id()
    for signal, uid in SAVE_RECEIVERS:
        signal.disconnect(dispatch_uid=uid)
    try:
        without_audit = recorded_queries(plain, reports[plain.pk])
    finally:
        recorder.connect()
    with_audit = recorded_queries(audited, reports[audited.pk])
    assert len(with_audit) == len(without_audit)
    assert not any("audit" in sql for sql in with_audit)
    assert entries_after(start) == []


# The page and the API.


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_read_the_audit_log(role):
    user = make_user(role)
    assert signed_in(user).get(AUDIT).status_code == 403
    assert token_client(user).get(AUDIT_API).status_code == 403
    assert APIClient().get(AUDIT_API).status_code == 401


def test_the_page_shows_who_what_and_the_changes(boss, server):
    signed_in(boss).post(
        reverse("inventory:server_edit", args=[server.pk]), server_form_data(server, site="lyon")
    )
    page = signed_in(boss).get(AUDIT).content.decode()
    assert "boss" in page and "Dashboard" in page and "127.0.0.1" in page
    assert "paris → lyon" in page
    assert f"object_type=server&amp;object_id={server.pk}" in page


def make_entries(count: int) -> None:
    AuditEntry.objects.bulk_create(
        AuditEntry(
            actor_label=f"user{i % 3}",
            source="web",
            action="changed",
            object_type="server",
            object_id=i,
            object_label=f"srv{i}",
            changes={"site": ["a", "b"], "tags": [["x"], ["x", "y"]]},
        )
        for i in range(count)
    )


def test_the_page_runs_a_fixed_number_of_queries(boss, django_assert_num_queries):
    client = signed_in(boss)
    make_entries(3)
    client.get(AUDIT)  # the session is read and cached once
    with django_assert_num_queries(6):
        assert client.get(AUDIT).status_code == 200
    make_entries(40)
    with django_assert_num_queries(6):
        assert client.get(AUDIT).status_code == 200


def listed(client: Client, **filters: Any) -> list[str]:
    page = client.get(AUDIT, filters)
    return [entry.object_label for entry in page.context["page"].object_list]


def test_the_filters_narrow_the_list(boss, server):
    AuditEntry.objects.all().delete()
    make_entries(4)
    old = AuditEntry.objects.get(object_label="srv0")
    old.at = timezone.now() - timedelta(days=10)
    old.save()
    client = signed_in(boss)
    assert listed(client, actor="user1") == ["srv1"]
    assert listed(client, q="SRV2") == ["srv2"]
    assert listed(client, object_type="server", object_id=3) == ["srv3"]
    assert listed(client, action="deleted") == []
    today = timezone.now().date()
    assert "srv0" not in listed(client, since=today - timedelta(days=1))
    assert listed(client, until=today - timedelta(days=10)) == ["srv0"]
    assert len(listed(client, action="nonsense")) == 4  # an invalid filter is ignored


def test_the_api_lists_filtered_entries_for_admin_tokens(boss, server):
    api = token_client(boss)
    response = api.get(AUDIT_API, {"object_type": "server", "object_id": server.pk})
    assert response.status_code == 200
    [entry] = response.json()["results"]
    assert entry["actor"] == "test setup" and entry["action"] == "created"
    assert entry["changes"]["tags"] == [[], ["prod"]]
    assert api.get(AUDIT_API, {"action": "nonsense"}).status_code == 400


def test_the_api_is_documented_in_the_schema(boss):
    schema = signed_in(boss).get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/audit/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {
        "actor",
        "object_type",
        "since",
        "q",
        "page",
    }
