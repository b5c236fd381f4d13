"""A real OpenID Connect provider for the single sign-on tests: django-oauth-toolkit's, in the
small Django project tests/oidc_provider, served by gunicorn over https (a certificate of the
tests' own CA for 127.0.0.1) in a process of its own, with a database of its own.

The provider's cast (PEOPLE): pat (its group popc-admins), olga (popc-operators), nico (no
group), chief (popc-viewers); each with the password PROVIDER_PASSWORDS[name]. Its clients:
CLIENT_ID, which signs in without a consent page, and CONSENT_CLIENT_ID, which asks first.
Both may only send the browser back to the dashboard's callback under test.

And a real HTTP client (requests) to go through the authorization-code flow as a browser does:
`sign_in_through(provider, dashboard_url, username)`.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.loopback_tls import ServerFiles, write_server_files
from tests.ports import free_port
from tests.processes import PrivateServer, ServerError

ROOT = Path(__file__).resolve().parent.parent
CALLBACK_PATH = "/accounts/oidc/callback/"
CLIENT_ID = "popcompliance-dashboard"
CLIENT_SECRET = "dashboard-client-secret-" + "x" * 16
CONSENT_CLIENT_ID = "popcompliance-dashboard-consent"
CONSENT_CLIENT_SECRET = "consent-client-secret-" + "y" * 16
PROVIDER_PASSWORDS = {
    "pat": "pat-provider-pw",
    "olga": "olga-provider-pw",
    "nico": "nico-provider-pw",
    "chief": "chief-provider-pw",
}
PEOPLE = {"pat": ["popc-admins"], "olga": ["popc-operators"], "nico": [], "chief": ["popc-viewers"]}
# Seconds a request of the test's HTTP client may take.
HTTP_TIMEOUT = 15


class OidcProvider(PrivateServer):
    """The provider at https://127.0.0.1:`port`, its issuer `issuer`."""

    kind = "oidc-provider"

    def __init__(self, callback_url: str) -> None:
        super().__init__(startup_timeout=60.0)
        self.callback_url = callback_url
        self.port = free_port()
        self.tls: ServerFiles | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/o"

    def _check_installed(self) -> None:
        try:
            import gunicorn  # noqa: F401
            import oauth2_provider  # noqa: F401
        except ImportError as exc:
            raise ServerError(
                f"{exc.name} is missing: pip install -r requirements-dev.txt"
            ) from None

    def _spawn(self, directory: Path) -> list[str]:
        self.tls = write_server_files(directory / "tls")
        (directory / "secret_key").write_text(secrets.token_urlsafe(40))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (directory / "signing.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cast = directory / "cast.json"
        cast.write_text(json.dumps(self._cast()))
        populated = subprocess.run(
            [sys.executable, "-m", "tests.oidc_provider.populate", str(cast)],
            cwd=ROOT,
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if populated.returncode != 0:
            raise ServerError(f"the provider's database could not be made:\n{populated.stderr}")
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "tests.oidc_provider.wsgi:application",
            "--chdir",
            str(ROOT),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--certfile",
            str(self.tls.certificate),
            "--keyfile",
            str(self.tls.key),
            "--access-logfile",
            "-",
        ]

    def _cast(self) -> dict[str, Any]:
        users = [
            {
                "username": name,
                "password": PROVIDER_PASSWORDS[name],
                "email": f"{name}@provider.test",
                "first_name": name.title(),
                "last_name": "Provider",
                "groups": groups,
            }
            for name, groups in PEOPLE.items()
        ]
        clients = [
            {
                "name": "PopCompliance",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uri": self.callback_url,
                "skip_authorization": True,
            },
            {
                "name": "PopCompliance (asks consent)",
                "client_id": CONSENT_CLIENT_ID,
                "client_secret": CONSENT_CLIENT_SECRET,
                "redirect_uri": self.callback_url,
                "skip_authorization": False,
            },
        ]
        return {"users": users, "clients": clients}

    def _ready_when(self) -> list[tuple[str, int, bytes]]:
        return [("127.0.0.1", self.port, b"")]

    def _environment(self) -> dict[str, str]:
        assert self.directory is not None
        return {
            **super()._environment(),
            "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
            "OIDC_PROVIDER_DIR": str(self.directory),
            "OIDC_PROVIDER_ISSUER": self.issuer,
            "PYTHONPATH": str(ROOT),
        }

    def log(self) -> str:
        """The provider's access log so far (every request it served)."""
        assert self.directory is not None
        return (self.directory / "startup.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def oidc_provider(live_server: Any) -> Iterator[OidcProvider]:
    """The provider, its clients sending the browser back to the live server's callback."""
    provider = OidcProvider(f"{live_server.url}{CALLBACK_PATH}")
    try:
        provider.start()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield provider
    finally:
        provider.stop()


def oidc_env(provider: OidcProvider, **extra: str) -> dict[str, str]:
    """The dashboard's settings for this provider, as a deployment would write them."""
    assert provider.tls is not None
    return {
        "POPC_OIDC_ISSUER": provider.issuer,
        "POPC_OIDC_CLIENT_ID": CLIENT_ID,
        "POPC_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "POPC_OIDC_CA_FILE": str(provider.tls.ca),
        "POPC_OIDC_PROVIDER_NAME": "Test provider",
        "POPC_OIDC_ADMIN_ROLES": "popc-admins",
        "POPC_OIDC_OPERATOR_ROLES": "popc-operators",
        "POPC_OIDC_VIEWER_ROLES": "popc-viewers",
        **extra,
    }


# --- A browser's part, with a real HTTP client ---------------------------------------------


class FormReader(HTMLParser):
    """The first form of a page: its action and its input fields' values."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self._done:
            self._in_form, self.action = True, values.get("action", "")
        elif (
            tag == "input" and self._in_form and "name" in values and values.get("type") != "submit"
        ):
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._in_form:
            self._in_form, self._done = False, True


def first_form(html: str) -> FormReader:
    reader = FormReader()
    reader.feed(html)
    assert reader.action is not None, f"no form in:\n{html[:2000]}"
    return reader


def browser_session(provider: OidcProvider) -> requests.Session:
    """An HTTP client with a cookie jar, trusting the tests' CA for the provider."""
    session = requests.Session()
    # Neither a proxy nor a CA bundle from the environment (REQUESTS_CA_BUNDLE would win over
    # session.verify): loopback only, and the tests' CA only.
    session.trust_env = False
    assert provider.tls is not None
    session.verify = str(provider.tls.ca)
    return session


def start_sign_in(session: requests.Session, dashboard_url: str) -> requests.Response:
    """Press "Sign in with ...": the dashboard sends the browser to the provider, which shows
    its login page."""
    response = session.get(f"{dashboard_url}/accounts/oidc/login/", timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return response


def submit_provider_login(
    session: requests.Session, login_page: requests.Response, username: str, password: str
) -> requests.Response:
    """Fill in and send the provider's login form; follow the redirects (to the provider's
    authorization endpoint, back to the dashboard's callback, on to where it leads)."""
    form = first_form(login_page.text)
    data = {**form.fields, "username": username, "password": password}
    return session.post(
        login_page.url,
        data=data,
        headers={"Referer": login_page.url},
        timeout=HTTP_TIMEOUT,
    )


def sign_in_through(
    provider: OidcProvider, dashboard_url: str, username: str, password: str | None = None
) -> tuple[requests.Session, requests.Response]:
    """The whole authorization-code flow as a browser goes through it: the session (signed in
    to the dashboard if it worked) and the last page."""
    session = browser_session(provider)
    login_page = start_sign_in(session, dashboard_url)
    assert re.search(r"Test identity provider", login_page.text), login_page.text[:500]
    password = PROVIDER_PASSWORDS[username] if password is None else password
    return session, submit_provider_login(session, login_page, username, password)
