"""Sign-in with LDAP, against a real OpenLDAP slapd on loopback (tests/ldap_server.py): the
directory's groups give the role, wrong passwords are counted by axes, StartTLS and LDAPS with
the tests' CA, failures recorded in the audit log with their reason."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from popcompliance.accounts.models import SsoIdentity
from popcompliance.accounts.roles import role_of
from popcompliance.audit.models import AuditEntry
from tests.ldap_server import (
    GROUPS,
    PASSWORDS,
    PEOPLE,
    READER_DN,
    READER_PASSWORD,
    Slapd,
    group_dn,
    slapd,  # noqa: F401  (fixtures)
    slapd_tls_only,  # noqa: F401
)
from tests.people import make_user
from tests.ports import free_port
from tests.sso import configure_sign_in

pytestmark = pytest.mark.django_db


def ldap_env(server: Slapd, **extra: str) -> dict[str, str]:
    """The settings of a deployment on this directory; the admins' group DN is written the
    way Active Directory shows DNs, to be matched whatever its case and spacing."""
    return {
        "POPC_LDAP_SERVER_URI": server.uri,
        "POPC_LDAP_BIND_DN": READER_DN,
        "POPC_LDAP_BIND_PASSWORD": READER_PASSWORD,
        "POPC_LDAP_USER_SEARCH_BASE": PEOPLE,
        "POPC_LDAP_GROUP_SEARCH_BASE": GROUPS,
        "POPC_LDAP_ADMIN_GROUPS": "CN=popc-admins, OU=groups, DC=example, DC=test",
        "POPC_LDAP_OPERATOR_GROUPS": group_dn("popc-operators"),
        "POPC_LDAP_VIEWER_GROUPS": group_dn("popc-viewers"),
        **extra,
    }


@pytest.fixture
def directory(slapd: Slapd, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Slapd:  # noqa: F811
    configure_sign_in(monkeypatch, settings, **ldap_env(slapd))
    return slapd


def sign_in(client: Client, username: str, password: str | None = None) -> Any:
    password = PASSWORDS[username.lower()] if password is None else password
    form = {"username": username, "password": password}
    return client.post(reverse("accounts:login"), form)


def latest(action: str) -> AuditEntry:
    return AuditEntry.objects.filter(action=action).latest("pk")


def test_a_member_of_the_admins_group_signs_in_as_admin(directory: Slapd) -> None:
    client = Client()
    response = sign_in(client, "alice")
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:overview")
    alice = User.objects.get(username="alice")
    # Also in the viewers' group: the highest role wins.
    assert role_of(alice) == "admin"
    assert (alice.email, alice.first_name, alice.last_name) == (
        "alice@example.test",
        "Alice",
        "Example",
    )
    # Its password is the directory's, never one here.
    assert not alice.has_usable_password()
    assert SsoIdentity.objects.get(user=alice).method == "ldap"
    assert client.get(reverse("accounts:users")).status_code == 200


def test_the_operators_and_viewers_groups_give_their_roles(directory: Slapd) -> None:
    for name, role in (("oscar", "operator"), ("vera", "viewer")):
        assert sign_in(Client(), name).status_code == 302
        assert role_of(User.objects.get(username=name)) == role


def test_the_sign_in_and_the_account_it_created_are_in_the_audit_log(directory: Slapd) -> None:
    assert sign_in(Client(REMOTE_ADDR="192.0.2.20"), "oscar").status_code == 302
    created = latest("created")
    assert (created.actor_label, created.object_label) == ("LDAP sign-in", "oscar")
    assert created.changes["groups"] == [[], ["operator"]]
    signed_in = latest("signed in")
    assert (signed_in.actor_label, signed_in.object_label) == ("oscar", "oscar")
    assert signed_in.changes == {"method": [None, "LDAP"]}
    assert signed_in.remote_address == "192.0.2.20"


def test_a_user_in_no_mapped_group_is_refused_and_told_why(directory: Slapd) -> None:
    response = sign_in(Client(), "nina")
    assert response.status_code == 200
    assert "You cannot sign in: the directory account &#x27;nina&#x27; is in none" in (
        response.content.decode()
    )
    assert not User.objects.filter(username="nina").exists()
    failed = latest("sign-in failed")
    assert failed.object_label == "nina"
    assert failed.changes["method"] == [None, "password or LDAP"]
    assert "in none of the groups" in failed.changes["reason"][1]


def test_with_a_default_role_a_user_in_no_mapped_group_is_a_viewer(
    slapd: Slapd,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    configure_sign_in(monkeypatch, settings, **ldap_env(slapd, POPC_SSO_DEFAULT_ROLE="viewer"))
    assert sign_in(Client(), "nina").status_code == 302
    assert role_of(User.objects.get(username="nina")) == "viewer"


def test_the_role_follows_the_directory_at_each_sign_in(directory: Slapd) -> None:
    try:
        directory.set_members("popc-operators", ["oscar", "nina"])
        assert sign_in(Client(), "nina").status_code == 302
        nina = User.objects.get(username="nina")
        assert role_of(nina) == "operator"
        # Removed from the group in the directory: the next sign-in is refused.
        directory.set_members("popc-operators", ["oscar"])
        assert sign_in(Client(), "nina").status_code == 200
        assert role_of(User.objects.get(pk=nina.pk)) == "operator"  # until a sign-in works
        directory.set_members("popc-admins", ["alice", "nina"])
        assert sign_in(Client(), "nina").status_code == 302
        assert role_of(User.objects.get(pk=nina.pk)) == "admin"
    finally:
        directory.set_members("popc-operators", ["oscar"])
        directory.set_members("popc-admins", ["alice"])


def test_a_wrong_password_is_refused_and_counted_by_axes(directory: Slapd, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    client = Client(REMOTE_ADDR="192.0.2.21")
    assert sign_in(client, "alice", "not-her-password").status_code == 200
    assert not User.objects.filter(username="alice").exists()
    attempt = AccessAttempt.objects.get(username="alice", ip_address="192.0.2.21")
    assert attempt.failures_since_start == 1
    failed = latest("sign-in failed")
    assert failed.changes["reason"] == [None, "wrong username or password"]
    assert sign_in(client, "alice", "still-not-it").status_code == 200
    # The third failure locks the pair out; then even her right password is refused.
    assert sign_in(client, "alice", "nor-this").status_code == 429
    assert sign_in(client, "alice").status_code == 429
    assert not User.objects.filter(username="alice").exists()
    # From another address she still signs in.
    assert sign_in(Client(REMOTE_ADDR="192.0.2.22"), "alice").status_code == 302


def test_usernames_are_one_account_whatever_their_case(directory: Slapd) -> None:
    assert sign_in(Client(), "Alice").status_code == 302
    assert sign_in(Client(), "ALICE").status_code == 302
    assert list(User.objects.values_list("username", flat=True)) == ["alice"]


def test_a_directory_user_never_takes_over_a_local_account_of_that_name(
    directory: Slapd,
) -> None:
    local = make_user("viewer", "chief", password="the-local-password")
    make_user("viewer", "vera", password="veras-local-password")
    directory.set_members("popc-viewers", ["vera", "alice", "chief"])
    try:
        response = sign_in(Client(), "chief")
        assert response.status_code == 200
        assert "already exists here and is not tied to this LDAP identity" in (
            response.content.decode()
        )
        assert not SsoIdentity.objects.filter(user=local).exists()
        # The local account still signs in with its own password.
        assert sign_in(Client(), "chief", "the-local-password").status_code == 302
    finally:
        directory.set_members("popc-viewers", ["vera", "alice"])


def test_an_unreachable_directory_is_a_refused_sign_in_with_its_reason(
    slapd: Slapd,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    nothing_there = f"ldap://127.0.0.1:{free_port()}"
    env = ldap_env(slapd, POPC_LDAP_SERVER_URI=nothing_there, POPC_LDAP_TIMEOUT="2")
    configure_sign_in(monkeypatch, settings, **env)
    response = sign_in(Client(), "alice")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    reason = latest("sign-in failed").changes["reason"][1]
    assert reason.startswith("the directory could not be used (Can't contact LDAP server")


def test_starttls_with_the_ca_file_signs_in_to_a_directory_that_requires_tls(
    slapd_tls_only: Slapd,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    assert slapd_tls_only.tls is not None
    env = ldap_env(
        slapd_tls_only,
        POPC_LDAP_START_TLS="true",
        POPC_LDAP_CA_FILE=str(slapd_tls_only.tls.ca),
    )
    configure_sign_in(monkeypatch, settings, **env)
    assert sign_in(Client(), "alice").status_code == 302
    assert role_of(User.objects.get(username="alice")) == "admin"
    # The StartTLS extended operation, then the binds over it.
    assert "EXT oid=1.3.6.1.4.1.1466.20037" in slapd_tls_only.log()


def test_without_starttls_that_directory_refuses_the_sign_in(
    slapd_tls_only: Slapd,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    # In the clear: allowed by the settings only because the directory is on loopback.
    configure_sign_in(monkeypatch, settings, **ldap_env(slapd_tls_only))
    assert sign_in(Client(), "alice").status_code == 200
    reason = latest("sign-in failed").changes["reason"][1]
    assert "Confidentiality required" in reason


def test_starttls_refuses_a_directory_certificate_from_another_ca(
    slapd_tls_only: Slapd,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    assert slapd_tls_only.tls is not None
    env = ldap_env(
        slapd_tls_only,
        POPC_LDAP_START_TLS="true",
        POPC_LDAP_CA_FILE=str(slapd_tls_only.tls.other_ca),
    )
    configure_sign_in(monkeypatch, settings, **env)
    assert sign_in(Client(), "alice").status_code == 200
    assert not User.objects.filter(username="alice").exists()
    # python-ldap says no more than this of a certificate it does not trust.
    reason = latest("sign-in failed").changes["reason"][1]
    assert reason.startswith("the directory could not be used (Connect error")


def test_ldaps_with_the_ca_file_signs_in(
    slapd_tls_only: Slapd,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    assert slapd_tls_only.tls is not None
    env = ldap_env(
        slapd_tls_only,
        POPC_LDAP_SERVER_URI=slapd_tls_only.ldaps_uri,
        POPC_LDAP_CA_FILE=str(slapd_tls_only.tls.ca),
    )
    configure_sign_in(monkeypatch, settings, **env)
    assert sign_in(Client(), "oscar").status_code == 302
    assert role_of(User.objects.get(username="oscar")) == "operator"


def test_an_ldap_account_has_no_password_to_change_here(directory: Slapd) -> None:
    client = Client()
    assert sign_in(client, "vera").status_code == 302
    overview = client.get(reverse("dashboard:overview"))
    assert reverse("accounts:password_change") not in overview.content.decode()
    response = client.get(reverse("accounts:password_change"))
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:overview")


def test_the_users_page_shows_which_accounts_come_from_the_directory(directory: Slapd) -> None:
    client = Client()
    assert sign_in(client, "alice").status_code == 302
    page = client.get(reverse("accounts:users")).content.decode()
    assert "alice <small>(LDAP)</small>" in page
