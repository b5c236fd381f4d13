"""Sign-in with OpenID Connect against a real provider in a process of its own
(django-oauth-toolkit over https, tests/oidc_server.py), driven through the whole
authorization-code flow by a real HTTP client: the provider's login page, its authorization
endpoint, the dashboard's callback, the code exchanged for tokens by the dashboard itself."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from axes.models import AccessAttempt
from django.contrib.auth.models import User

from popcompliance.accounts.models import SsoIdentity
from popcompliance.accounts.roles import role_of
from popcompliance.audit.models import AuditEntry
from tests.oidc_server import (
    CALLBACK_PATH,
    CONSENT_CLIENT_ID,
    CONSENT_CLIENT_SECRET,
    HTTP_TIMEOUT,
    OidcProvider,
    browser_session,
    first_form,
    oidc_env,
    oidc_provider,  # noqa: F401  (a fixture)
    sign_in_through,
    start_sign_in,
    submit_provider_login,
)
from tests.people import make_user
from tests.ports import free_port
from tests.sso import configure_sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def provider(
    oidc_provider: OidcProvider,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> OidcProvider:
    """The provider, and the dashboard configured for it (local accounts still on)."""
    configure_sign_in(monkeypatch, settings, **oidc_env(oidc_provider))
    return oidc_provider


def latest(action: str) -> AuditEntry:
    return AuditEntry.objects.filter(action=action).latest("pk")


def test_the_flow_signs_in_with_the_role_of_the_roles_claim(
    provider: OidcProvider, live_server: Any
) -> None:
    session, page = sign_in_through(provider, live_server.url, "pat")
    assert page.status_code == 200 and page.url == f"{live_server.url}/"
    assert "pat <small>(Admin)</small>" in page.text
    pat = User.objects.get(username="pat")
    assert role_of(pat) == "admin"
    assert (pat.email, pat.first_name, pat.last_name) == ("pat@provider.test", "Pat", "Provider")
    assert not pat.has_usable_password()
    identity = SsoIdentity.objects.get(user=pat)
    assert identity.method == "oidc" and identity.subject.isdigit()  # the provider's user id
    # The dashboard itself exchanged the code and read the keys and the userinfo.
    log = provider.log()
    for request in ("POST /o/token/", "GET /o/.well-known/jwks.json", "GET /o/userinfo/"):
        assert request in log, request
    # An admin's session: the users page opens.
    users = session.get(f"{live_server.url}/accounts/users/", timeout=HTTP_TIMEOUT)
    assert users.status_code == 200 and "pat <small>(OpenID Connect)</small>" in users.text


def test_the_sign_in_and_the_account_it_created_are_in_the_audit_log(
    provider: OidcProvider, live_server: Any
) -> None:
    sign_in_through(provider, live_server.url, "olga")
    created = latest("created")
    assert (created.actor_label, created.object_label) == ("OpenID Connect sign-in", "olga")
    assert created.changes["groups"] == [[], ["operator"]]
    signed_in = latest("signed in")
    assert (signed_in.actor_label, signed_in.object_label) == ("olga", "olga")
    assert signed_in.changes == {"method": [None, "OpenID Connect"]}
    assert signed_in.remote_address == "127.0.0.1"


def test_signing_in_again_uses_the_same_account(provider: OidcProvider, live_server: Any) -> None:
    for _ in range(2):
        _, page = sign_in_through(provider, live_server.url, "olga")
        assert page.url == f"{live_server.url}/"
    assert User.objects.filter(username="olga").count() == 1
    assert role_of(User.objects.get(username="olga")) == "operator"


def test_a_provider_user_with_no_mapped_role_is_refused_and_told_why(
    provider: OidcProvider, live_server: Any
) -> None:
    _, page = sign_in_through(provider, live_server.url, "nico")
    assert page.url == f"{live_server.url}/accounts/login/"
    assert (
        "Sign-in with Test provider failed: the roles claim of &#x27;nico&#x27; holds nothing"
        in page.text
    )
    assert not User.objects.filter(username="nico").exists()
    failed = latest("sign-in failed")
    assert failed.changes["method"] == [None, "OpenID Connect"]
    assert "holds nothing" in failed.changes["reason"][1]


def test_with_a_default_role_such_a_user_is_a_viewer(
    oidc_provider: OidcProvider,  # noqa: F811
    live_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    env = oidc_env(oidc_provider, POPC_SSO_DEFAULT_ROLE="viewer")
    configure_sign_in(monkeypatch, settings, **env)
    _, page = sign_in_through(oidc_provider, live_server.url, "nico")
    assert page.url == f"{live_server.url}/"
    assert role_of(User.objects.get(username="nico")) == "viewer"


def test_roles_can_come_from_a_nested_claim(
    oidc_provider: OidcProvider,  # noqa: F811
    live_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    # Keycloak's realm roles; the values mapped are the same.
    env = oidc_env(oidc_provider, POPC_OIDC_ROLES_CLAIM="realm_access.roles")
    configure_sign_in(monkeypatch, settings, **env)
    sign_in_through(oidc_provider, live_server.url, "olga")
    assert role_of(User.objects.get(username="olga")) == "operator"


def test_without_userinfo_the_id_tokens_claims_are_enough(
    oidc_provider: OidcProvider,  # noqa: F811
    live_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    configure_sign_in(monkeypatch, settings, **oidc_env(oidc_provider, POPC_OIDC_USERINFO="false"))
    asked = oidc_provider.log().count("GET /o/userinfo/")
    _, page = sign_in_through(oidc_provider, live_server.url, "pat")
    assert page.url == f"{live_server.url}/"
    assert role_of(User.objects.get(username="pat")) == "admin"
    assert oidc_provider.log().count("GET /o/userinfo/") == asked


def test_a_provider_user_never_takes_over_a_local_account_of_that_name(
    provider: OidcProvider, live_server: Any
) -> None:
    local = make_user("admin", "chief", password="the-local-password")
    _, page = sign_in_through(provider, live_server.url, "chief")
    assert page.url == f"{live_server.url}/accounts/login/"
    assert "already exists here and is not tied to this OpenID Connect identity" in page.text
    assert not SsoIdentity.objects.filter(user=local).exists()
    assert role_of(User.objects.get(pk=local.pk)) == "admin"


def test_a_consent_refused_at_the_provider_is_a_failed_sign_in(
    oidc_provider: OidcProvider,  # noqa: F811
    live_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    env = oidc_env(
        oidc_provider,
        POPC_OIDC_CLIENT_ID=CONSENT_CLIENT_ID,
        POPC_OIDC_CLIENT_SECRET=CONSENT_CLIENT_SECRET,
    )
    configure_sign_in(monkeypatch, settings, **env)
    session = browser_session(oidc_provider)
    login_page = start_sign_in(session, live_server.url)
    consent = submit_provider_login(session, login_page, "pat", "pat-provider-pw")
    assert "Authorize PopCompliance (asks consent)?" in consent.text
    form = first_form(consent.text)
    # "Cancel": the form without its "allow" button.
    page = session.post(
        consent.url, data=form.fields, headers={"Referer": consent.url}, timeout=HTTP_TIMEOUT
    )
    assert page.url == f"{live_server.url}/accounts/login/"
    assert "Sign-in with Test provider failed: the provider answered access_denied" in page.text
    assert not User.objects.filter(username="pat").exists()
    failed = latest("sign-in failed")
    assert failed.changes["reason"][1].startswith("the provider answered access_denied")


def test_a_consent_given_at_the_provider_signs_in(
    oidc_provider: OidcProvider,  # noqa: F811
    live_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    env = oidc_env(
        oidc_provider,
        POPC_OIDC_CLIENT_ID=CONSENT_CLIENT_ID,
        POPC_OIDC_CLIENT_SECRET=CONSENT_CLIENT_SECRET,
    )
    configure_sign_in(monkeypatch, settings, **env)
    session = browser_session(oidc_provider)
    login_page = start_sign_in(session, live_server.url)
    consent = submit_provider_login(session, login_page, "olga", "olga-provider-pw")
    data = {**first_form(consent.text).fields, "allow": "Authorize"}
    page = session.post(
        consent.url, data=data, headers={"Referer": consent.url}, timeout=HTTP_TIMEOUT
    )
    assert page.url == f"{live_server.url}/"
    assert role_of(User.objects.get(username="olga")) == "operator"


def test_a_wrong_provider_password_never_reaches_the_dashboard(
    provider: OidcProvider, live_server: Any
) -> None:
    _, page = sign_in_through(provider, live_server.url, "pat", "not-pats-password")
    # Still on the provider's login page: it refused, the dashboard saw nothing.
    assert urlsplit(page.url).port == provider.port and "Test identity provider" in page.text
    assert not User.objects.exists()


def callback_url(live_server: Any, state: str, code: str) -> str:
    return f"{live_server.url}{CALLBACK_PATH}?state={state}&code={code}"


def state_of(login_page: Any) -> str:
    """The state the dashboard sent to the provider (in the login page's `next`)."""
    authorize = parse_qs(urlsplit(login_page.url).query)["next"][0]
    return parse_qs(urlsplit(authorize).query)["state"][0]


def test_a_forged_code_is_refused_and_counted_by_axes(
    provider: OidcProvider, live_server: Any, settings: Any
) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    session = browser_session(provider)
    state = state_of(start_sign_in(session, live_server.url))
    page = session.get(callback_url(live_server, state, "forged"), timeout=HTTP_TIMEOUT)
    assert page.url == f"{live_server.url}/accounts/login/"
    assert "Sign-in with Test provider failed. Try again" in page.text
    reason = latest("sign-in failed").changes["reason"][1]
    assert reason.startswith("the provider did not accept the code") and "invalid_grant" in reason
    assert AccessAttempt.objects.get(ip_address="127.0.0.1").failures_since_start == 1
    # A second forged code locks the address out of OpenID Connect sign-ins...
    state = state_of(start_sign_in(session, live_server.url))
    locked = session.get(callback_url(live_server, state, "forged"), timeout=HTTP_TIMEOUT)
    assert locked.status_code == 429
    assert latest("locked out").remote_address == "127.0.0.1"
    # ...so that a real sign-in from it is refused before its code is even exchanged.
    exchanges = provider.log().count("POST /o/token/")
    _, page = sign_in_through(provider, live_server.url, "pat")
    assert page.status_code == 429
    assert provider.log().count("POST /o/token/") == exchanges
    assert not User.objects.filter(username="pat").exists()


def test_a_callback_replayed_is_a_failed_sign_in_not_an_error(
    provider: OidcProvider, live_server: Any
) -> None:
    session, page = sign_in_through(provider, live_server.url, "olga")
    callback = next(step.url for step in page.history if CALLBACK_PATH in step.url)
    replayed = session.get(callback, timeout=HTTP_TIMEOUT)
    assert replayed.status_code == 200 and replayed.url == f"{live_server.url}/accounts/login/"
    assert "Sign-in with Test provider failed" in replayed.text


def test_an_id_token_from_another_issuer_is_refused(
    oidc_provider: OidcProvider,  # noqa: F811
    live_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    # Every endpoint given by hand (nothing discovered), the issuer not the provider's.
    base = oidc_provider.issuer
    env = oidc_env(
        oidc_provider,
        POPC_OIDC_ISSUER=f"{oidc_provider.url}/elsewhere",
        POPC_OIDC_AUTHORIZATION_ENDPOINT=f"{base}/authorize/",
        POPC_OIDC_TOKEN_ENDPOINT=f"{base}/token/",
        POPC_OIDC_USERINFO_ENDPOINT=f"{base}/userinfo/",
        POPC_OIDC_JWKS_URI=f"{base}/.well-known/jwks.json",
    )
    configure_sign_in(monkeypatch, settings, **env)
    _, page = sign_in_through(oidc_provider, live_server.url, "pat")
    assert page.url == f"{live_server.url}/accounts/login/"
    reason = latest("sign-in failed").changes["reason"][1]
    assert reason == f"the ID token was refused: it was issued by '{base}'"
    assert not User.objects.exists()


def test_the_login_page_has_the_provider_button(provider: OidcProvider, live_server: Any) -> None:
    page = browser_session(provider).get(f"{live_server.url}/accounts/login/", timeout=10)
    assert 'href="/accounts/oidc/login/">Sign in with Test provider</a>' in page.text
    # Local accounts are still on: the password form too.
    assert 'name="password"' in page.text


def test_an_unreachable_provider_sends_back_to_the_login_page(
    oidc_provider: OidcProvider,  # noqa: F811
    live_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    env = oidc_env(oidc_provider, POPC_OIDC_ISSUER=f"https://127.0.0.1:{free_port()}/o")
    configure_sign_in(monkeypatch, settings, **env)
    page = browser_session(oidc_provider).get(
        f"{live_server.url}/accounts/oidc/login/", timeout=HTTP_TIMEOUT
    )
    assert page.url == f"{live_server.url}/accounts/login/"
    assert "Test provider cannot be reached now" in page.text


def test_without_openid_connect_its_pages_are_not_found(
    live_server: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    configure_sign_in(monkeypatch, settings)
    session = requests.Session()
    session.trust_env = False
    for path in ("/accounts/oidc/login/", f"{CALLBACK_PATH}?state=x&code=y"):
        assert session.get(f"{live_server.url}{path}", timeout=10).status_code == 404
    page = session.get(f"{live_server.url}/accounts/login/", timeout=10)
    assert "Sign in with" not in page.text
