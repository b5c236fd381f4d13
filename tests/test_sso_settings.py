"""The sign-in settings read from the environment (popcompliance.accounts.sso_settings): what is
on, in which order the backends run, and the settings refused at start-up, among them every
one that would let a password or a client secret cross the network in the clear. The examples
of docs/sso.md are read as a deployment would. No network, no database."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import ldap
import pytest
from django_auth_ldap.config import GroupOfNamesType, NestedActiveDirectoryGroupType

from popcompliance.accounts.sso_settings import (
    AXES_BACKEND,
    LDAP_BACKEND,
    LOCAL_BACKEND,
    OIDC_BACKEND,
    sign_in_settings,
)
from popcompliance.env import ConfigurationError
from tests.sso import PREFIXES

SSO_DOC = Path(__file__).resolve().parent.parent / "docs" / "sso.md"
LDAP_MINIMAL = {
    "POPC_LDAP_SERVER_URI": "ldaps://ldap.example.test",
    "POPC_LDAP_USER_SEARCH_BASE": "ou=people,dc=example,dc=test",
    "POPC_SSO_DEFAULT_ROLE": "viewer",
}
OIDC_MINIMAL = {
    "POPC_OIDC_ISSUER": "https://idp.example.test/realms/corp/",
    "POPC_OIDC_CLIENT_ID": "popc",
    "POPC_OIDC_CLIENT_SECRET": "a-secret",
    "POPC_OIDC_ADMIN_ROLES": "popc-admin",
}


def read(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in list(os.environ):
        if name.startswith(PREFIXES):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return sign_in_settings()


def refused(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    with pytest.raises(ConfigurationError) as error:
        read(monkeypatch, **env)
    return str(error.value)


def test_by_default_only_local_accounts_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = read(monkeypatch)
    assert settings["AUTHENTICATION_BACKENDS"] == [AXES_BACKEND, LOCAL_BACKEND]
    assert not settings["POPC_LDAP_ENABLED"] and not settings["POPC_OIDC_ENABLED"]
    assert "AUTH_LDAP_SERVER_URI" not in settings and "OIDC_RP_CLIENT_ID" not in settings


def test_axes_comes_first_then_local_ldap_and_oidc(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = read(monkeypatch, **LDAP_MINIMAL, **OIDC_MINIMAL)
    assert settings["AUTHENTICATION_BACKENDS"] == [
        AXES_BACKEND,
        LOCAL_BACKEND,
        LDAP_BACKEND,
        OIDC_BACKEND,
    ]
    off = read(monkeypatch, **LDAP_MINIMAL, POPC_LOCAL_ACCOUNTS="false")
    assert off["AUTHENTICATION_BACKENDS"] == [AXES_BACKEND, LDAP_BACKEND]


def test_local_accounts_cannot_be_switched_off_without_another_method(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = refused(monkeypatch, POPC_LOCAL_ACCOUNTS="false")
    assert "leaves no way to sign in" in message


@pytest.mark.parametrize(
    "uri",
    ["ldap://dc1.corp.example.test", "ldap://127.0.0.1 ldap://dc2.corp.example.test"],
)
def test_ldap_in_the_clear_to_another_machine_is_refused(
    monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    message = refused(monkeypatch, **{**LDAP_MINIMAL, "POPC_LDAP_SERVER_URI": uri})
    assert "would send passwords in the clear" in message


@pytest.mark.parametrize(
    ("uri", "start_tls"),
    [
        ("ldaps://dc1.corp.example.test", "false"),
        ("ldap://dc1.corp.example.test", "true"),
        ("ldap://127.0.0.1:3389", "false"),
        ("ldap://localhost", "false"),
        ("ldapi:///", "false"),
    ],
)
def test_ldap_over_tls_or_on_this_machine_is_accepted(
    monkeypatch: pytest.MonkeyPatch, uri: str, start_tls: str
) -> None:
    env = {**LDAP_MINIMAL, "POPC_LDAP_SERVER_URI": uri, "POPC_LDAP_START_TLS": start_tls}
    settings = read(monkeypatch, **env)
    assert settings["AUTH_LDAP_SERVER_URI"] == uri
    assert settings["AUTH_LDAP_START_TLS"] is (start_tls == "true")


def test_the_directorys_certificate_is_always_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    options = read(monkeypatch, **LDAP_MINIMAL)["AUTH_LDAP_CONNECTION_OPTIONS"]
    assert options[ldap.OPT_X_TLS_REQUIRE_CERT] == ldap.OPT_X_TLS_DEMAND
    # The new TLS context is made last, so that it takes the options before it.
    assert list(options)[-1] == ldap.OPT_X_TLS_NEWCTX


def test_a_ca_file_that_cannot_be_read_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.pem"
    message = refused(monkeypatch, **LDAP_MINIMAL, POPC_LDAP_CA_FILE=str(missing))
    assert message.startswith(f"POPC_LDAP_CA_FILE={missing}: cannot read it")
    present = tmp_path / "ca.pem"
    present.write_text("PEM")
    options = read(monkeypatch, **LDAP_MINIMAL, POPC_LDAP_CA_FILE=str(present))[
        "AUTH_LDAP_CONNECTION_OPTIONS"
    ]
    assert options[ldap.OPT_X_TLS_CACERTFILE] == str(present)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"POPC_LDAP_USER_SEARCH_BASE": ""}, "POPC_LDAP_USER_SEARCH_BASE is not set"),
        ({"POPC_LDAP_USER_FILTER": "(uid=alice)"}, "must contain %(user)s"),
        ({"POPC_SSO_DEFAULT_ROLE": "none"}, "Nobody could sign in: set at least one of"),
        ({"POPC_SSO_DEFAULT_ROLE": "root"}, "must be none, viewer, operator or admin"),
        ({"POPC_LDAP_ADMIN_GROUPS": "cn=a,dc=x"}, "POPC_LDAP_GROUP_SEARCH_BASE is not set"),
        (
            {"POPC_LDAP_ADMIN_GROUPS": "cn=a,dc=x", "POPC_LDAP_GROUP_SEARCH_BASE": "dc=x"}
            | {"POPC_LDAP_GROUP_TYPE": "memberOf"},
            "POPC_LDAP_GROUP_TYPE must be one of",
        ),
        ({"POPC_LDAP_TIMEOUT": "0"}, "POPC_LDAP_TIMEOUT must be at least 1"),
        ({"POPC_LDAP_SERVER_URI": "dc1.corp.example.test"}, "is not an ldaps://"),
    ],
)
def test_an_impossible_ldap_setting_stops_the_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    assert expected in refused(monkeypatch, **{**LDAP_MINIMAL, **env})


def test_group_dns_are_split_on_semicolons_and_groups_are_searched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        **LDAP_MINIMAL,
        "POPC_LDAP_GROUP_SEARCH_BASE": "ou=groups,dc=example,dc=test",
        "POPC_LDAP_VIEWER_GROUPS": "CN=Help Desk, OU=Groups,DC=x;cn=staff,dc=x ;",
    }
    settings = read(monkeypatch, **env)
    assert settings["POPC_LDAP_ROLE_GROUPS"]["viewer"] == [
        "cn=help desk, ou=groups,dc=x",
        "cn=staff,dc=x",
    ]
    assert isinstance(settings["AUTH_LDAP_GROUP_TYPE"], GroupOfNamesType)
    assert settings["AUTH_LDAP_GROUP_SEARCH"].filterstr == "(objectClass=groupOfNames)"
    nested = read(monkeypatch, **env, POPC_LDAP_GROUP_TYPE="nestedActiveDirectory")
    assert isinstance(nested["AUTH_LDAP_GROUP_TYPE"], NestedActiveDirectoryGroupType)
    assert nested["AUTH_LDAP_GROUP_SEARCH"].filterstr == "(objectClass=group)"


def test_without_group_mappings_no_group_search_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "AUTH_LDAP_GROUP_SEARCH" not in read(monkeypatch, **LDAP_MINIMAL)


@pytest.mark.parametrize(
    "issuer",
    ["http://idp.example.test/realms/corp", "ftp://idp.example.test", "idp.example.test"],
)
def test_a_provider_not_over_https_is_refused(monkeypatch: pytest.MonkeyPatch, issuer: str) -> None:
    message = refused(monkeypatch, **{**OIDC_MINIMAL, "POPC_OIDC_ISSUER": issuer})
    assert message == f"POPC_OIDC_ISSUER={issuer.rstrip('/')} must be an https:// URL"


def test_an_endpoint_given_by_hand_in_the_clear_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {**OIDC_MINIMAL, "POPC_OIDC_TOKEN_ENDPOINT": "http://idp.example.test/token"}
    assert "POPC_OIDC_TOKEN_ENDPOINT=http://idp.example.test/token must be an https://" in (
        refused(monkeypatch, **env)
    )


def test_a_provider_on_this_machine_may_use_http(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**OIDC_MINIMAL, "POPC_OIDC_ISSUER": "http://127.0.0.1:9000/o"}
    assert read(monkeypatch, **env)["POPC_OIDC_ISSUER"] == "http://127.0.0.1:9000/o"


def test_oidc_settings_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = read(monkeypatch, **OIDC_MINIMAL)
    # The issuer without its trailing slash (Authentik writes one); compared so everywhere.
    assert settings["POPC_OIDC_ISSUER"] == "https://idp.example.test/realms/corp"
    assert settings["OIDC_USE_PKCE"] is True
    assert settings["OIDC_VERIFY_SSL"] is True
    assert settings["OIDC_RP_SIGN_ALGO"] == "RS256"
    assert settings["POPC_OIDC_ROLES_CLAIM"] == "roles"
    assert settings["POPC_OIDC_USERNAME_CLAIM"] == "preferred_username"
    assert settings["POPC_OIDC_ROLE_VALUES"] == {
        "admin": ["popc-admin"],
        "operator": [],
        "viewer": [],
    }
    assert settings["POPC_OIDC_PROVIDER_NAME"] == "single sign-on"


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("POPC_OIDC_CLIENT_ID", "POPC_OIDC_CLIENT_ID is not set"),
        ("POPC_OIDC_CLIENT_SECRET", "POPC_OIDC_CLIENT_SECRET is not set"),
        ("POPC_OIDC_ADMIN_ROLES", "Nobody could sign in"),
    ],
)
def test_an_incomplete_provider_setting_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, missing: str, expected: str
) -> None:
    env = {name: value for name, value in OIDC_MINIMAL.items() if name != missing}
    assert expected in refused(monkeypatch, **env)


def doc_example(heading: str) -> dict[str, str]:
    """The first ```sh block after the paragraph that starts with `heading` in docs/sso.md."""
    text = SSO_DOC.read_text()
    start = text.index(heading)
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert block, heading
    return dict(line.split("=", 1) for line in block.group(1).splitlines() if "=" in line)


@pytest.mark.parametrize(
    "heading", ["Active Directory, over LDAPS", "OpenLDAP, with", "**Entra ID**"]
)
def test_the_examples_of_the_documentation_are_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, heading: str
) -> None:
    env = doc_example(heading)
    # The files they name are the deployment's: stand-ins here.
    for name in list(env):
        if name.endswith("_FILE"):
            stand_in = tmp_path / name.lower()
            stand_in.write_text("stand-in")
            env[name] = str(stand_in)
    settings = read(monkeypatch, **env)
    if "POPC_LDAP_SERVER_URI" in env:
        assert settings["POPC_LDAP_ENABLED"]
        assert any(settings["POPC_LDAP_ROLE_GROUPS"].values())
    else:
        assert settings["POPC_OIDC_ENABLED"]
        assert settings["POPC_OIDC_ROLE_VALUES"]["admin"] == ["PopCompliance.Admin"]
        assert settings["OIDC_RP_CLIENT_SECRET"] == "stand-in"
