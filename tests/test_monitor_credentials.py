"""Per-server monitoring credentials: stored as Fernet tokens, set by admins through the form or
the API, never shown back, rotated by `rotate_credentials_key`, and used by the login check.
The cast: an admin, an operator and a viewer (API tokens for the API tests)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

import scanner
from pop3lab.config import EndpointConfig
from popcompliance.compliance.models import CheckState, ScanRun
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import UNDECRYPTABLE_SUMMARY, scan_servers
from popcompliance.inventory import credentials
from popcompliance.inventory.forms import ServerForm
from popcompliance.inventory.models import Server
from tests.conftest import lab_server, server_form_data
from tests.people import client_as, make_user, token_for
from tests.test_security import ROOT, deploy_check, production_env

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def server() -> Server:
    return Server.objects.create(name="mail01", host="pop.example.com")


def with_account(server: Server, username: str = "monitor", password: str = PASSWORD) -> Server:
    server.monitor_username = username
    server.set_monitor_password(password, timezone.now())
    server.save()
    return server


def stored_token(server: Server) -> str:
    """The column as the database holds it, read past the model."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT monitor_password_encrypted FROM inventory_server WHERE id = %s", [server.pk]
        )
        return str(cursor.fetchone()[0])


def edit(client: Client, server: Server, **overrides: Any) -> Any:
    url = reverse("inventory:server_edit", args=[server.pk])
    return client.post(url, server_form_data(server, **overrides))


# Storage and the form.


def test_the_database_holds_a_fernet_token_not_the_password(admin, server):
    assert (
        edit(admin, server, monitor_username="monitor", monitor_password=PASSWORD).status_code
        == 302
    )
    token = stored_token(server)
    assert PASSWORD not in token
    assert credentials.decrypt(token) == PASSWORD


def test_the_edit_page_shows_that_a_password_is_stored_but_never_it_or_its_token(admin, server):
    token = stored_token(with_account(server))
    page = admin.get(reverse("inventory:server_edit", args=[server.pk])).content
    assert b"A password is stored (set " in page and b"monitor" in page
    assert PASSWORD.encode() not in page and token.encode() not in page


def test_a_refused_edit_does_not_send_the_typed_password_back(admin, server):
    response = edit(
        admin, server, host="not a host!", monitor_username="m", monitor_password=PASSWORD
    )
    assert response.status_code == 200
    assert PASSWORD.encode() not in response.content


def test_a_blank_password_keeps_the_stored_one(admin, server):
    token = stored_token(with_account(server))
    assert edit(admin, server, monitor_username="renamed").status_code == 302
    server.refresh_from_db()
    assert (server.monitor_username, stored_token(server)) == ("renamed", token)


def test_an_edit_that_leaves_the_account_alone_keeps_a_rotation_made_meanwhile(server, settings):
    settings.POPC_CREDENTIALS_KEY = [KEY_A]
    with_account(server)
    # The form is built on the server as the edit view loaded it, before the rotation below:
    # a test client cannot slip the rotation in between the view's load and its save.
    loaded = Server.objects.get(pk=server.pk)
    form = ServerForm(server_form_data(server, site="lyon"), instance=loaded)
    settings.POPC_CREDENTIALS_KEY = [KEY_B, KEY_A]
    call_command("rotate_credentials_key", stdout=StringIO())
    assert form.is_valid(), form.errors
    form.save()
    settings.POPC_CREDENTIALS_KEY = [KEY_B]  # the operator drops the old key
    server.refresh_from_db()
    assert server.site == "lyon"
    assert credentials.decrypt(server.monitor_password_encrypted) == PASSWORD


def test_remove_forgets_username_and_password(admin, server):
    with_account(server)
    assert edit(admin, server, remove_monitor_credentials="on").status_code == 302
    server.refresh_from_db()
    assert (server.monitor_username, stored_token(server)) == ("", "")
    assert server.monitor_credentials_updated_at is None


@pytest.mark.parametrize(
    ("username", "password", "field", "message"),
    [
        ("", PASSWORD, "monitor_username", "Give the username this password belongs to."),
        ("monitor", "", "monitor_password", "Give this account's password."),
        ("two words", PASSWORD, "monitor_username", "Username must not contain spaces."),
    ],
)
def test_the_form_refuses_half_an_account(admin, server, username, password, field, message):
    response = edit(admin, server, monitor_username=username, monitor_password=password)
    assert response.context["form"].errors[field] == [message]
    assert stored_token(server) == ""


def test_a_new_account_is_scanned_now(admin, server):
    Server.objects.filter(pk=server.pk).update(next_scan_at=timezone.now() + timedelta(days=1))
    edit(admin, server, monitor_username="monitor", monitor_password=PASSWORD)
    server.refresh_from_db()
    assert server.next_scan_at <= timezone.now()


def test_the_server_page_names_the_account_but_never_shows_the_password(viewer, server):
    token = stored_token(with_account(server))
    page = viewer.get(server.get_absolute_url()).content
    assert b"login test as" in page and b"monitor" in page
    assert PASSWORD.encode() not in page and token.encode() not in page


def test_the_admin_site_never_shows_the_token(server):
    token = stored_token(with_account(server))
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="x"))
    page = client.get(reverse("admin:inventory_server_change", args=[server.pk])).content
    assert b"Monitoring password stored" in page
    assert PASSWORD.encode() not in page and token.encode() not in page


def test_the_csv_export_carries_no_credentials(viewer, server):
    token = stored_token(with_account(server))
    export = b"".join(viewer.get(reverse("inventory:server_export")).streaming_content)
    assert b"mail01" in export
    assert b"monitor" not in export and token.encode() not in export


# The API.


def api_as(role: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(make_user(role, f'api-{role}'))}")
    return client


def server_url(server: Server) -> str:
    return f"/api/v1/servers/{server.pk}/"


def test_the_api_sets_the_password_and_never_returns_it():
    api = api_as("admin")
    body = {"name": "mail02", "host": "pop2.example.com", "monitor_username": "monitor"}
    response = api.post("/api/v1/servers/", body | {"monitor_password": PASSWORD})
    assert response.status_code == 201, response.content
    server = Server.objects.get(name="mail02")
    token = stored_token(server)
    assert response.json()["monitor_password_set"] is True
    for answer in (response, api.get(server_url(server)), api.get("/api/v1/servers/")):
        assert PASSWORD.encode() not in answer.content and token.encode() not in answer.content
    assert credentials.decrypt(token) == PASSWORD


def test_the_api_keeps_the_password_when_it_is_left_out(server):
    token = stored_token(with_account(server))
    response = api_as("admin").patch(server_url(server), {"monitor_username": "renamed"})
    assert response.json()["monitor_password_set"] is True
    assert stored_token(server) == token


def test_a_null_password_removes_the_account_and_an_empty_one_is_refused(server):
    with_account(server)
    api = api_as("admin")
    empty = api.patch(server_url(server), {"monitor_password": ""})
    assert empty.status_code == 400 and "monitor_password" in empty.json()
    response = api.patch(server_url(server), {"monitor_password": None})
    assert response.json()["monitor_password_set"] is False
    server.refresh_from_db()
    assert (server.monitor_username, stored_token(server)) == ("", "")


def test_the_api_refuses_a_password_without_a_username(server):
    response = api_as("admin").patch(server_url(server), {"monitor_password": PASSWORD})
    assert response.status_code == 400
    assert response.json() == {"monitor_username": ["Give the username this password belongs to."]}


def test_a_refused_api_password_is_not_quoted_back(server):
    body = {"monitor_username": "monitor", "monitor_password": "bell\x07secret"}
    response = api_as("admin").patch(server_url(server), body)
    assert response.json() == {
        "monitor_password": ["Password must not contain control characters."]
    }
    assert b"secret" not in response.content and stored_token(server) == ""


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_set_credentials_through_the_api(server, role):
    body = {"monitor_username": "monitor", "monitor_password": PASSWORD}
    assert api_as(role).patch(server_url(server), body).status_code == 403
    assert stored_token(server) == ""


def test_a_new_api_password_is_scanned_now(server):
    Server.objects.filter(pk=server.pk).update(next_scan_at=timezone.now() + timedelta(days=1))
    body = {"monitor_username": "monitor", "monitor_password": PASSWORD}
    api_as("admin").patch(server_url(server), body)
    server.refresh_from_db()
    assert server.next_scan_at <= timezone.now()


def renamer(way: str, server: Server) -> Callable[[str], None]:
    """Renames the server's monitoring account through the form or the API, as an admin."""
    api, client = api_as("admin"), client_as("admin")
    # The page posts the policy's hidden initial value too (its default is a callable);
    # without it the policy would count as edited and bring the scan forward by itself.
    policy = {"initial-policy": server.policy_id}

    def rename(username: str) -> None:
        if way == "api":
            response = api.patch(server_url(server), {"monitor_username": username})
            assert response.status_code == 200, response.content
        else:
            response = edit(client, server, monitor_username=username, **policy)
            assert response.status_code == 302

    return rename


@pytest.mark.parametrize("way", ["form", "api"])
def test_a_renamed_account_is_dated_and_scanned_now_an_unchanged_one_is_not(server, way):
    rename = renamer(way, server)
    with_account(server)
    tomorrow, last_week = timezone.now() + timedelta(days=1), timezone.now() - timedelta(days=7)
    Server.objects.filter(pk=server.pk).update(
        next_scan_at=tomorrow, monitor_credentials_updated_at=last_week
    )
    rename("monitor")
    server.refresh_from_db()
    assert (server.next_scan_at, server.monitor_credentials_updated_at) == (tomorrow, last_week)
    rename("renamed")
    server.refresh_from_db()
    assert server.monitor_username == "renamed" and server.next_scan_at <= timezone.now()
    assert server.monitor_credentials_updated_at > last_week


# Keys.


def test_rotation_moves_every_password_to_the_first_key(server, settings):
    settings.POPC_CREDENTIALS_KEY = [KEY_A]
    with_account(server)
    settings.POPC_CREDENTIALS_KEY = [KEY_B, KEY_A]
    out = StringIO()
    call_command("rotate_credentials_key", stdout=out)
    assert "Re-encrypted 1 monitoring password(s)" in out.getvalue()
    assert Fernet(KEY_B).decrypt(stored_token(server).encode()).decode() == PASSWORD


def test_rotation_lists_the_passwords_no_key_decrypts_and_leaves_them(server, settings):
    settings.POPC_CREDENTIALS_KEY = [KEY_A]
    token = stored_token(with_account(server))
    settings.POPC_CREDENTIALS_KEY = [KEY_B]
    with pytest.raises(CommandError, match="set their passwords again: mail01"):
        call_command("rotate_credentials_key", stdout=StringIO())
    assert stored_token(server) == token


def test_without_a_key_the_password_follows_secret_key(server, settings):
    settings.POPC_CREDENTIALS_KEY = []
    token = stored_token(with_account(server))
    assert credentials.decrypt(token) == PASSWORD
    settings.SECRET_KEY = "another secret key"
    with pytest.raises(credentials.UndecryptablePassword):
        credentials.decrypt(token)


def store_under_secret_key(server: Server, secret_key: str) -> str:
    """A token as a release before POPC_CREDENTIALS_KEY existed wrote it, with the key it
    derived from `secret_key`, by Fernet itself."""
    token = Fernet(credentials.derived_key(secret_key)).encrypt(PASSWORD.encode()).decode()
    Server.objects.filter(pk=server.pk).update(
        monitor_username="monitor", monitor_password_encrypted=token
    )
    return token


def test_a_configured_key_refuses_the_key_derived_from_secret_key(server, settings):
    token = store_under_secret_key(server, settings.SECRET_KEY)
    settings.POPC_CREDENTIALS_KEY = [KEY_A]
    with pytest.raises(credentials.UndecryptablePassword):
        credentials.decrypt(token)


@pytest.mark.parametrize("former", ["SECRET_KEY", "POPC_DEVELOPMENT_SECRET_KEY"])
def test_migrate_moves_passwords_of_a_derived_key_to_the_configured_key(
    server, settings, capsys, former
):
    # `make run` before it generated keys ran on the development key; now SECRET_KEY is new.
    store_under_secret_key(server, getattr(settings, former))
    settings.POPC_CREDENTIALS_KEY = [KEY_A]
    call_command("migrate", stdout=StringIO())
    assert "Moved 1 monitoring password(s) to POPC_CREDENTIALS_KEY" in capsys.readouterr().out
    assert Fernet(KEY_A).decrypt(stored_token(server).encode()).decode() == PASSWORD
    server.refresh_from_db()
    assert server.monitoring_credentials() == scanner.Credentials("monitor", PASSWORD)


def test_migrate_leaves_passwords_of_the_configured_keys_alone(server, settings, capsys):
    settings.POPC_CREDENTIALS_KEY = [KEY_A]
    token = stored_token(with_account(server))
    settings.POPC_CREDENTIALS_KEY = [KEY_B, KEY_A]  # rotation is the command's job
    call_command("migrate", stdout=StringIO())
    assert stored_token(server) == token
    assert "Moved" not in capsys.readouterr().out


def test_migrate_names_the_passwords_no_key_decrypts(server, settings, capsys):
    token = store_under_secret_key(server, "a key nobody has any more")
    settings.POPC_CREDENTIALS_KEY = [KEY_A]
    call_command("migrate", stdout=StringIO())
    assert "set their passwords again: mail01" in capsys.readouterr().err
    assert stored_token(server) == token


def test_rotation_moves_passwords_of_the_derived_key_too(server, settings):
    store_under_secret_key(server, settings.SECRET_KEY)
    settings.POPC_CREDENTIALS_KEY = [KEY_A]
    call_command("rotate_credentials_key", stdout=StringIO())
    assert Fernet(KEY_A).decrypt(stored_token(server).encode()).decode() == PASSWORD


def test_the_cipher_is_built_once_per_key_setting(settings):
    settings.POPC_CREDENTIALS_KEY = [KEY_A]
    assert credentials.cipher() is credentials.cipher()
    first = credentials.cipher()
    settings.POPC_CREDENTIALS_KEY = [KEY_B]
    assert credentials.cipher() is not first


def test_the_deploy_check_asks_for_a_key_of_its_own(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["POPC_CREDENTIALS_KEY"]
    result = deploy_check(env)
    assert result.returncode != 0
    assert "inventory.W001" in result.stderr and "POPC_CREDENTIALS_KEY" in result.stderr


def test_a_malformed_key_fails_at_start_without_quoting_it(tmp_path: Path) -> None:
    result = deploy_check(production_env(tmp_path, POPC_CREDENTIALS_KEY=f"{KEY_A},oops-secret"))
    assert result.returncode != 0
    assert "POPC_CREDENTIALS_KEY: key 2 is not a Fernet key" in result.stderr
    assert "oops-secret" not in result.stderr


def test_generate_credentials_key_prints_a_working_key() -> None:
    out = StringIO()
    call_command("generate_credentials_key", stdout=out)
    Fernet(out.getvalue().strip())


# Scanning with the account, through the pipeline, against the emulator.

LAB_ACCOUNT = EndpointConfig(accounts={"monitor": PASSWORD})


@pytest.fixture
def lab_mail(fixed, settings, lab_dns) -> Server:
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    return lab_server("lab01", fixed.address, *fixed.ports)


def scan_and_record(fixed, *servers: Server) -> None:
    loaded = list(Server.objects.select_related("policy").filter(pk__in=[s.pk for s in servers]))
    with fixed.serving(LAB_ACCOUNT):
        reports = scan_servers(loaded)
    for server in loaded:
        record_report(server.pk, reports[server.pk], purpose="scheduled")


def login_state(server: Server) -> CheckState:
    return CheckState.objects.get(server=server, check_id="pop3.tls_login")


def test_the_login_check_passes_with_credentials_set_through_the_api(lab_mail, fixed):
    body = {"monitor_username": "monitor", "monitor_password": PASSWORD}
    assert api_as("admin").patch(server_url(lab_mail), body).status_code == 200
    scan_and_record(fixed, lab_mail)
    assert login_state(lab_mail).status == "pass"
    run = ScanRun.objects.get(server=lab_mail)
    assert PASSWORD not in json.dumps(run.facts)


def test_the_login_check_fails_with_a_wrong_password_set_through_the_form(admin, lab_mail, fixed):
    response = edit(admin, lab_mail, monitor_username="monitor", monitor_password="wrong one")
    assert response.status_code == 302
    scan_and_record(fixed, lab_mail)
    assert login_state(lab_mail).status == "fail"


def test_an_undecryptable_password_is_explained_and_spares_the_batch(lab_mail, fixed, settings):
    settings.POPC_CREDENTIALS_KEY = [KEY_A]
    with_account(lab_mail)
    healthy = lab_server("lab02", fixed.address, *fixed.ports, policy=lab_mail.policy)
    settings.POPC_CREDENTIALS_KEY = [KEY_B]
    with_account(healthy)
    scan_and_record(fixed, lab_mail, healthy)
    state = login_state(lab_mail)
    assert (state.status, state.summary) == ("error", UNDECRYPTABLE_SUMMARY)
    assert "set the monitoring password again" in state.remediation.lower()
    assert login_state(healthy).status == "pass"


def test_the_first_start_with_generated_keys_moves_passwords_off_the_development_key(
    tmp_path: Path,
) -> None:
    """What `make run` does on its first start with a key of its own: a new SECRET_KEY and
    POPC_CREDENTIALS_KEY, then `migrate`, on a database of the development key's days."""
    database = tmp_path / "popcompliance.sqlite3"
    base = production_env(tmp_path, DATABASE_URL=f"sqlite:///{database}")
    old = {**base, "DEBUG": "true", "POPC_CREDENTIALS_KEY": ""}
    del old["SECRET_KEY"]
    assert migrate(old).returncode == 0
    # Stored as the development key's days stored it, through the model.
    store = (
        "from django.utils import timezone; from popcompliance.inventory.models import Server; "
        "server = Server(name='mail01', host='pop.example.com', monitor_username='monitor'); "
        f"server.set_monitor_password({PASSWORD!r}, timezone.now()); server.save()"
    )
    command = [sys.executable, "manage.py", "shell", "-c", store]
    assert subprocess.run(command, cwd=ROOT, env=old, timeout=120).returncode == 0
    with sqlite3.connect(database) as db:
        [(token,)] = db.execute("SELECT monitor_password_encrypted FROM inventory_server")
    dev_key = credentials.derived_key("insecure-development-key-set-SECRET_KEY-in-production")
    assert Fernet(dev_key).decrypt(token.encode()).decode() == PASSWORD

    result = migrate({**base, "POPC_CREDENTIALS_KEY": KEY_A})

    assert "Moved 1 monitoring password(s) to POPC_CREDENTIALS_KEY" in result.stdout
    with sqlite3.connect(database) as db:
        [(token,)] = db.execute("SELECT monitor_password_encrypted FROM inventory_server")
    assert Fernet(KEY_A).decrypt(token.encode()).decode() == PASSWORD


def migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "manage.py", "migrate", "--noinput"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
