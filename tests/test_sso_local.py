"""Local accounts switched off (POPC_LOCAL_ACCOUNTS=false) beside LDAP, on the real slapd of
tests/ldap_server.py: local passwords stop working, directory ones keep working, and the
break-glass path (manage.py, then local accounts on again) still lets an admin in."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests.ldap_server import (
    Slapd,
    slapd,  # noqa: F401  (a fixture)
)
from tests.people import make_user
from tests.sso import configure_sign_in
from tests.test_sso_ldap import ldap_env, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def without_local_accounts(
    slapd: Slapd,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> Slapd:
    configure_sign_in(monkeypatch, settings, **ldap_env(slapd, POPC_LOCAL_ACCOUNTS="false"))
    return slapd


def test_a_local_password_no_longer_signs_in(without_local_accounts: Slapd) -> None:
    make_user("admin", "local-admin", password="a-local-passphrase")
    response = sign_in(Client(), "local-admin", "a-local-passphrase")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_a_directory_password_still_signs_in(without_local_accounts: Slapd) -> None:
    page = Client().get(reverse("accounts:login")).content.decode()
    assert "Your directory (LDAP) username and password work here." in page
    assert sign_in(Client(), "oscar").status_code == 302


def test_a_session_of_a_local_account_ends_when_local_accounts_are_switched_off(
    slapd: Slapd,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    configure_sign_in(monkeypatch, settings, **ldap_env(slapd))
    make_user("viewer", "local-viewer", password="a-local-passphrase")
    client = Client()
    assert sign_in(client, "local-viewer", "a-local-passphrase").status_code == 302
    assert client.get(reverse("dashboard:overview")).status_code == 200
    configure_sign_in(monkeypatch, settings, **ldap_env(slapd, POPC_LOCAL_ACCOUNTS="false"))
    response = client.get(reverse("dashboard:overview"))
    assert response.status_code == 302 and response["Location"].startswith(
        reverse("accounts:login")
    )


def test_no_local_account_can_be_added(without_local_accounts: Slapd) -> None:
    admin = Client()
    assert sign_in(admin, "alice").status_code == 302
    assert "Add a user" not in admin.get(reverse("accounts:users")).content.decode()
    form = {
        "username": "newbie",
        "password1": "a-long-passphrase",
        "password2": "a-long-passphrase",
        "role": "viewer",
    }
    response = admin.post(reverse("accounts:user_add"), form, follow=True)
    assert "Local accounts are off" in response.content.decode()
    assert not User.objects.filter(username="newbie").exists()


def test_the_break_glass_path_lets_the_local_admin_in_again(
    without_local_accounts: Slapd, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    # The directory is unusable; on the server, an operator of the machine resets the local
    # admin's password (manage.py works whatever the sign-in settings)...
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    make_user("admin", "admin", password="forgotten-long-ago")
    output = StringIO()
    call_command("ensure_admin", "--reset", stdout=output)
    password = output.getvalue().split("now has the password ")[1].split()[0]
    assert sign_in(Client(), "admin", password).status_code == 200
    # ...and switches local accounts on again (POPC_LOCAL_ACCOUNTS=true, and a restart).
    configure_sign_in(
        monkeypatch, settings, **ldap_env(without_local_accounts, POPC_LOCAL_ACCOUNTS="true")
    )
    assert sign_in(Client(), "admin", password).status_code == 302
