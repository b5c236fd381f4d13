"""The API's documentation pages (popcompliance.api.docs) and its schema: who may read them,
that every asset they load is our own, and the Content Security Policy each page gets. The
pages at work in a browser: tests/test_browser_api_docs.py."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from popcompliance.security import CONTENT_SECURITY_POLICY, REDOC_CONTENT_SECURITY_POLICY
from tests.people import client_as, make_user, token_for

pytestmark = pytest.mark.django_db

DOCS, REDOC, SCHEMA = "/api/v1/docs/", "/api/v1/redoc/", "/api/v1/schema/"
# Every URL a page loads or links: scripts, styles, icons, the schema.
LINKED_URL = re.compile(r'(?:src|href|spec-url)="([^"]*)"')


def linked_urls(response) -> list[str]:
    return LINKED_URL.findall(response.content.decode())


def token_client(role: str = "viewer") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(make_user(role))}")
    return client


@pytest.mark.parametrize("page", [DOCS, REDOC])
def test_a_docs_page_loads_only_our_own_static_files(page: str) -> None:
    client = client_as("viewer")
    response = client.get(page)
    assert response.status_code == 200
    urls = linked_urls(response)
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_swagger_ui_starts_from_a_script_url_not_inline_code() -> None:
    client = client_as("viewer")
    html = client.get(DOCS).content.decode()
    assert re.search(r"<script>", html) is None
    script = client.get(f"{DOCS}?script=")
    assert script["Content-Type"].startswith("application/javascript")
    assert f'url: "{SCHEMA}"' in script.content.decode()


def test_swagger_ui_passes_the_strict_policy_and_only_redoc_is_relaxed() -> None:
    client = client_as("viewer")
    assert client.get(DOCS)["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    relaxed = client.get(REDOC)["Content-Security-Policy"]
    assert relaxed == REDOC_CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in relaxed  # styles and workers only: scripts stay ours


@pytest.mark.parametrize("page", [DOCS, REDOC])
def test_an_anonymous_visitor_is_sent_to_sign_in_and_back(page: str) -> None:
    response = Client().get(page)
    assert response.status_code == 302
    assert response.url == f"/accounts/login/?next={page}"


@pytest.mark.parametrize("page", [DOCS, REDOC])
def test_a_token_opens_the_docs_and_a_wrong_one_is_refused(page: str) -> None:
    assert token_client().get(page).status_code == 200
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert wrong.get(page).status_code == 401


def test_the_schema_needs_an_account() -> None:
    response = Client().get(SCHEMA)
    assert response.status_code == 401
    assert token_client().get(f"{SCHEMA}?format=json").status_code == 200


def test_the_schema_documents_the_token_errors_and_an_example_server() -> None:
    schema = token_client().get(f"{SCHEMA}?format=json").json()
    assert "create_api_token" in schema["components"]["securitySchemes"]["tokenAuth"]["description"]
    scan = schema["paths"]["/api/v1/servers/{id}/scan/"]["post"]
    assert scan["summary"] == "Scan a server now (operator)"
    assert set(scan["responses"]) == {"202", "401", "403", "404", "429", "503"}
    listing = schema["paths"]["/api/v1/servers/"]["get"]["responses"]["200"]
    (example,) = listing["content"]["application/json"]["examples"].values()
    assert example["value"]["results"][0]["status"] == "non_compliant"


def test_every_page_links_the_api_docs_for_signed_in_users() -> None:
    assert f'href="{DOCS}"' in client_as("viewer").get("/").content.decode()
    assert f'href="{DOCS}"' not in Client().get("/accounts/login/").content.decode()
