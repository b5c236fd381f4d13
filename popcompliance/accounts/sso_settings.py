"""The sign-in settings, read from the environment by settings.py: local accounts, LDAP or
Active Directory (django-auth-ldap), OpenID Connect (mozilla-django-oidc). See docs/sso.md.

Each single sign-on method is off until its first variable is set (POPC_LDAP_SERVER_URI,
POPC_OIDC_ISSUER); then whatever it lacks, or a setting that would send a password or a
client secret across the network in the clear, stops the start with a message naming the
variable. Imported by settings.py, so nothing here imports Django's models.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from popcompliance.env import ConfigurationError, env_bool, env_int, env_list, env_str

# The roles, highest first (the names of popcompliance.accounts.roles, which imports Django).
ROLE_NAMES = ("admin", "operator", "viewer")
NO_ROLE = "none"

AXES_BACKEND = "axes.backends.AxesStandaloneBackend"
LOCAL_BACKEND = "django.contrib.auth.backends.ModelBackend"
LDAP_BACKEND = "popcompliance.accounts.directory.DirectoryBackend"
OIDC_BACKEND = "popcompliance.accounts.oidc.OidcBackend"

# POPC_LDAP_GROUP_TYPE: django-auth-ldap's class for each kind of directory group, and the
# filter that finds such groups under POPC_LDAP_GROUP_SEARCH_BASE.
LDAP_GROUP_TYPES = {
    "groupOfNames": ("GroupOfNamesType", "(objectClass=groupOfNames)"),
    "groupOfUniqueNames": ("GroupOfUniqueNamesType", "(objectClass=groupOfUniqueNames)"),
    "posixGroup": ("PosixGroupType", "(objectClass=posixGroup)"),
    "activeDirectory": ("ActiveDirectoryGroupType", "(objectClass=group)"),
    # Active Directory's own "member of, through any depth of nesting" matching rule.
    "nestedActiveDirectory": ("NestedActiveDirectoryGroupType", "(objectClass=group)"),
}
OIDC_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def sign_in_settings() -> dict[str, Any]:
    """Every Django setting of sign-in, by name: AUTHENTICATION_BACKENDS, POPC_*, and the
    AUTH_LDAP_* and OIDC_* settings of the two libraries when their method is on."""
    local = env_bool("POPC_LOCAL_ACCOUNTS", True)
    ldap = ldap_settings()
    oidc = oidc_settings()
    if not (local or ldap or oidc):
        raise ConfigurationError(
            "POPC_LOCAL_ACCOUNTS=false leaves no way to sign in: configure LDAP "
            "(POPC_LDAP_SERVER_URI) or OpenID Connect (POPC_OIDC_ISSUER) first"
        )
    # Axes first, so that a locked-out client is refused before any password is checked or
    # any code is exchanged; then local passwords, the directory, the identity provider.
    backends = [AXES_BACKEND]
    backends += [LOCAL_BACKEND] if local else []
    backends += [LDAP_BACKEND] if ldap else []
    backends += [OIDC_BACKEND] if oidc else []
    return {
        "AUTHENTICATION_BACKENDS": backends,
        "POPC_LOCAL_ACCOUNTS": local,
        "POPC_SSO_DEFAULT_ROLE": default_role(),
        "POPC_LDAP_ENABLED": bool(ldap),
        "POPC_OIDC_ENABLED": bool(oidc),
        **ldap,
        **oidc,
    }


def default_role() -> str | None:
    """POPC_SSO_DEFAULT_ROLE: the role of a single sign-on account that no mapping names;
    None refuses its sign-in."""
    value = env_str("POPC_SSO_DEFAULT_ROLE", NO_ROLE).strip().lower() or NO_ROLE
    if value != NO_ROLE and value not in ROLE_NAMES:
        raise ConfigurationError(
            f"POPC_SSO_DEFAULT_ROLE must be none, viewer, operator or admin, not {value!r}"
        )
    return None if value == NO_ROLE else value


# --- LDAP ------------------------------------------------------------------------------------


def ldap_settings() -> dict[str, Any]:
    """django-auth-ldap's settings, or {} when POPC_LDAP_SERVER_URI is unset."""
    uri = env_str("POPC_LDAP_SERVER_URI").strip()
    if not uri:
        return {}
    import ldap
    from django_auth_ldap.config import LDAPSearch

    start_tls = env_bool("POPC_LDAP_START_TLS", False)
    refuse_cleartext_ldap(uri, start_tls)
    user_base = required("POPC_LDAP_USER_SEARCH_BASE", "the DN under which users are found")
    user_filter = env_str("POPC_LDAP_USER_FILTER").strip() or "(uid=%(user)s)"
    if "%(user)s" not in user_filter:
        raise ConfigurationError(
            "POPC_LDAP_USER_FILTER must contain %(user)s, where the username goes, e.g. "
            "(sAMAccountName=%(user)s)"
        )
    role_groups = {role: dn_list(f"POPC_LDAP_{role.upper()}_GROUPS") for role in ROLE_NAMES}
    check_some_role_is_given("POPC_LDAP_{ROLE}_GROUPS", role_groups)
    timeout = env_int("POPC_LDAP_TIMEOUT", 5)
    if timeout < 1:
        raise ConfigurationError("POPC_LDAP_TIMEOUT must be at least 1 (seconds)")
    settings: dict[str, Any] = {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_START_TLS": start_tls,
        "AUTH_LDAP_BIND_DN": env_str("POPC_LDAP_BIND_DN").strip(),
        "AUTH_LDAP_BIND_PASSWORD": env_str("POPC_LDAP_BIND_PASSWORD"),
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(user_base, ldap.SCOPE_SUBTREE, user_filter),
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_CONNECTION_OPTIONS": ldap_connection_options(timeout),
        "POPC_LDAP_ROLE_GROUPS": {
            role: [dn.lower() for dn in dns] for role, dns in role_groups.items()
        },
    }
    if any(role_groups.values()):
        settings.update(ldap_group_settings())
    return settings


def refuse_cleartext_ldap(uri: str, start_tls: bool) -> None:
    """Users' passwords are checked by binding as them: over ldap:// without StartTLS they
    would cross the network in the clear. Only a directory on this machine may be reached so."""
    for server in uri.split():
        parts = urlsplit(server)
        if parts.scheme not in ("ldap", "ldaps", "ldapi"):
            raise ConfigurationError(
                f"POPC_LDAP_SERVER_URI: {server!r} is not an ldaps://, ldap:// or ldapi:// URI"
            )
        if parts.scheme == "ldap" and not start_tls and not is_loopback(parts.hostname):
            raise ConfigurationError(
                f"POPC_LDAP_SERVER_URI={server} would send passwords in the clear: use "
                "ldaps://, or set POPC_LDAP_START_TLS=true"
            )


def ldap_connection_options(timeout: int) -> dict[int, Any]:
    """Options of each directory connection: certificates always verified (against
    POPC_LDAP_CA_FILE when set), referrals not chased (Active Directory answers searches of a
    whole domain with referrals the bind would not cover), bounded waits."""
    import ldap

    options: dict[int, Any] = {
        ldap.OPT_REFERRALS: 0,
        ldap.OPT_NETWORK_TIMEOUT: timeout,
        ldap.OPT_TIMEOUT: timeout,
        ldap.OPT_X_TLS_REQUIRE_CERT: ldap.OPT_X_TLS_DEMAND,
    }
    ca_file = readable_file("POPC_LDAP_CA_FILE")
    if ca_file:
        options[ldap.OPT_X_TLS_CACERTFILE] = ca_file
    # Last: makes the TLS options above take effect on this connection.
    options[ldap.OPT_X_TLS_NEWCTX] = 0
    return options


def ldap_group_settings() -> dict[str, Any]:
    """Where groups are found and how membership reads, for the role mapping."""
    import ldap
    from django_auth_ldap import config

    base = required(
        "POPC_LDAP_GROUP_SEARCH_BASE", "the DN under which the groups of the role mapping are"
    )
    kind = env_str("POPC_LDAP_GROUP_TYPE").strip() or "groupOfNames"
    if kind not in LDAP_GROUP_TYPES:
        raise ConfigurationError(
            f"POPC_LDAP_GROUP_TYPE must be one of {', '.join(LDAP_GROUP_TYPES)}, not {kind!r}"
        )
    class_name, default_filter = LDAP_GROUP_TYPES[kind]
    group_filter = env_str("POPC_LDAP_GROUP_FILTER").strip() or default_filter
    return {
        "AUTH_LDAP_GROUP_SEARCH": config.LDAPSearch(base, ldap.SCOPE_SUBTREE, group_filter),
        "AUTH_LDAP_GROUP_TYPE": getattr(config, class_name)(),
    }


def dn_list(name: str) -> list[str]:
    """Distinguished names separated by semicolons (a DN itself holds commas)."""
    return [dn.strip() for dn in env_str(name).split(";") if dn.strip()]


# --- OpenID Connect --------------------------------------------------------------------------


def oidc_settings() -> dict[str, Any]:
    """mozilla-django-oidc's settings, or {} when POPC_OIDC_ISSUER is unset."""
    issuer = env_str("POPC_OIDC_ISSUER").strip().rstrip("/")
    if not issuer:
        return {}
    refuse_cleartext_url("POPC_OIDC_ISSUER", issuer)
    # Keys of the discovery document; POPC_OIDC_<KEY> sets one by hand.
    endpoints = {key: env_str(f"POPC_OIDC_{key.upper()}").strip() for key in OIDC_ENDPOINTS}
    for key, url in endpoints.items():
        if url:
            refuse_cleartext_url(f"POPC_OIDC_{key.upper()}", url)
    role_values = {role: env_list(f"POPC_OIDC_{role.upper()}_ROLES", []) for role in ROLE_NAMES}
    check_some_role_is_given("POPC_OIDC_{ROLE}_ROLES", role_values)
    timeout = env_int("POPC_OIDC_TIMEOUT", 10)
    if timeout < 1:
        raise ConfigurationError("POPC_OIDC_TIMEOUT must be at least 1 (seconds)")
    return {
        "POPC_OIDC_ISSUER": issuer,
        # Each endpoint left empty is read from the issuer's discovery document at the first
        # sign-in (popcompliance.accounts.oidc), so the dashboard starts with the provider down.
        "POPC_OIDC_ENDPOINTS": endpoints,
        "POPC_OIDC_PROVIDER_NAME": env_str("POPC_OIDC_PROVIDER_NAME").strip() or "single sign-on",
        "POPC_OIDC_USERNAME_CLAIM": env_str("POPC_OIDC_USERNAME_CLAIM").strip()
        or "preferred_username",
        "POPC_OIDC_ROLES_CLAIM": env_str("POPC_OIDC_ROLES_CLAIM").strip() or "roles",
        "POPC_OIDC_ROLE_VALUES": role_values,
        # false: the ID token's claims alone, for a provider whose userinfo endpoint does not
        # fit (it answers for another subject, or wants an access token of another audience).
        "POPC_OIDC_USERINFO": env_bool("POPC_OIDC_USERINFO", True),
        "OIDC_RP_CLIENT_ID": required("POPC_OIDC_CLIENT_ID", "the client id of this dashboard"),
        "OIDC_RP_CLIENT_SECRET": required(
            "POPC_OIDC_CLIENT_SECRET", "the client secret the provider issued"
        ),
        "OIDC_RP_SIGN_ALGO": env_str("POPC_OIDC_SIGN_ALGO").strip() or "RS256",
        "OIDC_RP_SCOPES": env_str("POPC_OIDC_SCOPES").strip() or "openid email profile",
        # PKCE as well as the client secret: a stolen authorization code is worth nothing.
        "OIDC_USE_PKCE": True,
        "OIDC_VERIFY_SSL": readable_file("POPC_OIDC_CA_FILE") or True,
        "OIDC_TIMEOUT": timeout,
        "OIDC_AUTHENTICATION_CALLBACK_URL": "accounts:oidc_callback",
        "LOGIN_REDIRECT_URL_FAILURE": "accounts:login",
    }


def refuse_cleartext_url(name: str, url: str) -> None:
    """The client secret and the users' tokens travel to these URLs: https only, except to a
    provider on this machine."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return
    raise ConfigurationError(f"{name}={url} must be an https:// URL")


# --- Shared ----------------------------------------------------------------------------------


def check_some_role_is_given(pattern: str, mapping: dict[str, list[str]]) -> None:
    """With no mapping and no default role every sign-in would be refused."""
    if not any(mapping.values()) and default_role() is None:
        names = ", ".join(pattern.replace("{ROLE}", role.upper()) for role in ROLE_NAMES)
        raise ConfigurationError(
            f"Nobody could sign in: set at least one of {names}, or POPC_SSO_DEFAULT_ROLE"
        )


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def required(name: str, what: str) -> str:
    value = env_str(name).strip()
    if not value:
        raise ConfigurationError(f"{name} is not set: {what}")
    return value


def readable_file(name: str) -> str | None:
    """The path in `name`, checked readable now rather than at the first sign-in."""
    path = env_str(name).strip()
    if not path:
        return None
    try:
        Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{name}={path}: cannot read it ({exc.strerror})") from None
    return path
