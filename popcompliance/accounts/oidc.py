"""Sign-in with an OpenID Connect provider (Entra ID, Keycloak, Authentik...):
mozilla-django-oidc's authorization-code flow (with PKCE) and our rules on top
(popcompliance.accounts.sso). Settings: POPC_OIDC_* (sso_settings.py, docs/sso.md).

- The login page's button leads to OidcLoginView, which sends the browser to the provider.
- The provider sends it back to OidcCallbackView with a code; authenticate() (with axes'
  backend first, so a locked-out client is refused) gives it to OidcBackend, which exchanges
  it for tokens over a direct, verified connection, checks the ID token's signature, issuer,
  audience, expiry and nonce, reads the claims (the ID token's, completed by the userinfo
  endpoint), maps the roles claim to a role and signs in to the account tied to the `sub`.
- Endpoints left unset are read from the issuer's discovery document at the first sign-in
  (not at start-up, so the dashboard starts while the provider is down) and kept.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from popcompliance.accounts.models import SignInMethod
from popcompliance.accounts.sso import (
    SignInRefused,
    give_role,
    granted_role,
    refusal_to_tell,
    refuse,
    signing_in,
    tie,
    tied_account,
)
from popcompliance.accounts.sso_settings import refuse_cleartext_url
from popcompliance.audit.recorder import record_failed_sign_in
from popcompliance.env import ConfigurationError

OIDC = SignInMethod.OIDC
logger = logging.getLogger(__name__)


class ProviderUnavailable(Exception):
    """The provider's discovery document could not be read, or does not fit the settings."""


# --- Discovery -------------------------------------------------------------------------------

_documents: dict[str, dict[str, Any]] = {}
_documents_lock = threading.Lock()


def endpoint(key: str) -> str:
    """The provider's endpoint `key` (authorization_endpoint, token_endpoint, jwks_uri...):
    as set in POPC_OIDC_<KEY>, else from the discovery document."""
    configured: str = settings.POPC_OIDC_ENDPOINTS.get(key, "")
    if configured:
        return configured
    url = discovery_document().get(key)
    if not isinstance(url, str) or not url:
        raise ProviderUnavailable(
            f"the provider's discovery document has no {key}; set POPC_OIDC_{key.upper()}"
        )
    return url


def has_userinfo_endpoint() -> bool:
    """Whether claims are completed from the userinfo endpoint: unless POPC_OIDC_USERINFO is
    false, when the provider has one (it is optional)."""
    if not settings.POPC_OIDC_USERINFO:
        return False
    if settings.POPC_OIDC_ENDPOINTS.get("userinfo_endpoint"):
        return True
    return bool(discovery_document().get("userinfo_endpoint"))


def discovery_document() -> dict[str, Any]:
    """The issuer's /.well-known/openid-configuration, read once per process. It must name
    the configured issuer (as OpenID Connect Discovery requires), and https endpoints."""
    issuer: str = settings.POPC_OIDC_ISSUER
    with _documents_lock:
        if issuer in _documents:
            return _documents[issuer]
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, verify=settings.OIDC_VERIFY_SSL, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(f"cannot read {url} ({exc})") from None
    if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
        named = document.get("issuer") if isinstance(document, dict) else None
        raise ProviderUnavailable(f"{url} names the issuer {named!r}, not {issuer!r}")
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        if document.get(key):
            try:
                refuse_cleartext_url(f"the discovery document's {key}", str(document[key]))
            except ConfigurationError as exc:
                raise ProviderUnavailable(str(exc)) from None
    with _documents_lock:
        _documents[issuer] = document
    return document


def forget_discovery() -> None:
    """Read the discovery document again at the next sign-in (tests, a provider moved)."""
    with _documents_lock:
        _documents.clear()


# --- Claims ----------------------------------------------------------------------------------


def claim(claims: dict[str, Any], name: str) -> Any:
    """A claim by name, or by a dotted path into nested claims (Keycloak's
    realm_access.roles); None when absent."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def claim_values(claims: dict[str, Any], name: str) -> list[str]:
    """The claim as a list of strings: a list as it is, one string as a list of one."""
    value = claim(claims, name)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item) for item in value if isinstance(item, str | int)]
    return []


def identity_of(claims: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, username, role) from the claims; SignInRefused when one is missing or no
    role is granted."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise SignInRefused("the provider sent no sub claim")
    username_claim: str = settings.POPC_OIDC_USERNAME_CLAIM
    username = claim(claims, username_claim)
    if not isinstance(username, str) or not username.strip():
        raise SignInRefused(f"the provider sent no {username_claim} claim to name the account")
    username = username.strip()
    try:
        UnicodeUsernameValidator()(username)
        if len(username) > 150:
            raise ValidationError("too long")
    except ValidationError:
        raise SignInRefused(
            f"the {username_claim} claim {username[:160]!r} cannot name an account here (at "
            "most 150 letters, digits and @ . + - _)"
        ) from None
    roles_claim: str = settings.POPC_OIDC_ROLES_CLAIM
    values = claim_values(claims, roles_claim)
    role = granted_role(values, settings.POPC_OIDC_ROLE_VALUES)
    if role is None:
        held = ", ".join(values) if values else "nothing"
        raise SignInRefused(
            f"the {roles_claim} claim of {username!r} holds {held}, which none of "
            "POPC_OIDC_ADMIN_ROLES, POPC_OIDC_OPERATOR_ROLES or POPC_OIDC_VIEWER_ROLES names, "
            "and POPC_SSO_DEFAULT_ROLE is none"
        )
    return subject, username, role


# --- The backend -----------------------------------------------------------------------------


class OidcBackend(OIDCAuthenticationBackend):  # type: ignore[misc]
    """mozilla-django-oidc's backend: endpoints read when a sign-in needs them, the ID
    token's issuer and audience checked, claims mapped by our rules, every failure a refused
    sign-in with its reason (never an error page)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Not the library's __init__, which reads every endpoint: Django makes a backend for
        # each authenticate() call, a local password's included, and discovery may need the
        # network.
        self.UserModel = get_user_model()
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:
        return endpoint("token_endpoint")

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:
        return endpoint("userinfo_endpoint")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:
        return endpoint("jwks_uri")

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        """The account of the callback's code, or None with the reason noted. Only the
        callback view (which passes the nonce) gets here; a password sign-in never does."""
        if request is None or "nonce" not in kwargs:
            return None
        with signing_in(OIDC, request):
            try:
                return super().authenticate(request, **kwargs)
            except SignInRefused as exc:
                refuse(request, str(exc), tell_user=True)
            except ProviderUnavailable as exc:
                refuse(request, f"the provider could not be used: {exc}")
            except requests.RequestException as exc:
                refuse(request, f"the provider did not accept the code: {exc}")
            except (SuspiciousOperation, jwt.PyJWTError) as exc:
                refuse(request, f"the ID token was refused: {exc}")
        return None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The library checks the signature, the expiry and the nonce; the issuer and the
        audience are checked here (the library leaves the audience out)."""
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        if str(payload.get("iss", "")).rstrip("/") != settings.POPC_OIDC_ISSUER:
            raise SuspiciousOperation(f"it was issued by {payload.get('iss')!r}")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation(f"it was issued for {audience!r}, not this client")
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        """The ID token's claims, completed by the userinfo endpoint's when the provider has
        one (Keycloak puts groups there; Entra ID's roles are only in the ID token). The ID
        token wins where both say something."""
        claims = dict(payload)
        if has_userinfo_endpoint():
            info = super().get_userinfo(access_token, id_token, payload)
            if not isinstance(info, dict) or info.get("sub") != payload.get("sub"):
                raise SignInRefused("the userinfo endpoint answered for another subject")
            claims = {**info, **payload}
        return claims

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        """The account tied to the `sub`, created at its first sign-in; its role, name and
        email brought up to date from the claims."""
        claims = self.get_userinfo(access_token, id_token, payload)
        subject, username, role = identity_of(claims)
        with transaction.atomic():
            user = tied_account(OIDC, subject, username)
            if user is None:
                user = self.UserModel.objects.create_user(username)  # unusable password
                tie(user, OIDC, subject)
            elif not user.is_active:
                raise SignInRefused(f"the account {user.get_username()!r} is disabled here")
            update_profile(user, claims)
            give_role(user, role)
        return user


def update_profile(user: Any, claims: dict[str, Any]) -> None:
    """Email and names from the standard claims, saved only when they changed."""
    wanted = {
        "email": claims.get("email"),
        "first_name": claims.get("given_name"),
        "last_name": claims.get("family_name"),
    }
    changed = []
    for field, value in wanted.items():
        limit = user._meta.get_field(field).max_length
        if isinstance(value, str) and value[:limit] != getattr(user, field):
            setattr(user, field, value[:limit])
            changed.append(field)
    if changed:
        user.save(update_fields=changed)


# --- The views -------------------------------------------------------------------------------


def provider_name() -> str:
    name: str = settings.POPC_OIDC_PROVIDER_NAME
    return name


class OidcLoginView(OIDCAuthenticationRequestView):  # type: ignore[misc]
    """Sends the browser to the provider (the login page's "Sign in with ..." button)."""

    def __init__(self, **kwargs: Any) -> None:
        # Not the library's __init__, which reads the endpoint at once: 404 when OIDC is off.
        View.__init__(self, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.POPC_OIDC_ENABLED:
            raise Http404("OpenID Connect is not configured")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = endpoint("authorization_endpoint")
        except ProviderUnavailable as exc:
            logger.warning("OpenID Connect provider unavailable: %s", exc)
            messages.error(
                request,
                f"{provider_name()} cannot be reached now. Try again later, or ask an admin "
                "(the server's log says why).",
            )
            return redirect("accounts:login")
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        response: HttpResponse = super().get(request)
        return response


class OidcCallbackView(OIDCAuthenticationCallbackView):  # type: ignore[misc]
    """Where the provider sends the browser back. A failure returns to the login page with a
    message, and is in the audit log with its reason."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.POPC_OIDC_ENABLED:
            raise Http404("OpenID Connect is not configured")
        if request.GET.get("error"):
            self.record_provider_error(request)
        try:
            response: HttpResponse = super().get(request)
        except SuspiciousOperation:
            # A state this session did not start: the link was used already, or the sign-in
            # was started in another browser.
            refuse(request, "the sign-in's state is unknown to this session (used already?)")
            return self.login_failure()
        return response

    @staticmethod
    def record_provider_error(request: HttpRequest) -> None:
        """The provider refused the sign-in itself (the person cancelled, or is not
        allowed to use this application there); nothing reaches authenticate()."""
        error = request.GET.get("error", "")[:100]
        description = request.GET.get("error_description", "")[:300]
        reason = f"the provider answered {error}" + (f": {description}" if description else "")
        refuse(request, reason, tell_user=True)
        record_failed_sign_in(OIDC.label, reason)

    def login_failure(self) -> HttpResponse:
        told = refusal_to_tell(self.request)
        message = f"Sign-in with {provider_name()} failed"
        messages.error(
            self.request,
            f"{message}: {told}."
            if told
            else f"{message}. Try again, or ask an admin: the audit log says why.",
        )
        return redirect("accounts:login")
