"""Input limits: every number a person types has a range, owners per server are bounded and
names hold no invisible characters, alike on the form, in the API and in the CSV import
(popcompliance.limits)."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from popcompliance.accounts.forms import UserAddForm
from popcompliance.inventory.csvio import import_csv
from popcompliance.inventory.models import Policy, Server, Tag
from popcompliance.limits import MAX_OWNERS, SCAN_INTERVAL_MAX
from tests.conftest import policy_form
from tests.people import client_as, make_user, token_for
from tests.test_alert_views import acknowledge_url, in_future, make_alert
from tests.test_api import make_server
from tests.test_scanner_guard import server_form

pytestmark = pytest.mark.django_db

SERVERS = "/api/v1/servers/"
ABSURD = 2**63 - 1
OWNERS = [f"owner{n}@example.com" for n in range(MAX_OWNERS + 1)]
HIDDEN = {
    "right-to-left override": "mail\u202eexe.txt",
    "left-to-right isolate": "mail\u2066x",
    "zero-width space": "mail\u200b01",
    "zero-width joiner": "mail\u200d01",
    "byte order mark": "\ufeffmail01",
    "control character": "mail\x0701",
    "line separator": "mail\u202801",
}


def api_as(role: str) -> APIClient:
    """A token-authenticated client of the test's one user with `role`."""
    user = User.objects.filter(username=f"{role}-api").first() or make_user(role, f"{role}-api")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def api_errors(method: str, url: str, data: dict[str, Any]) -> dict[str, Any]:
    response = getattr(api_as("admin"), method)(url, data, format="json")
    assert response.status_code == 400, response.content
    return response.json()


# --- Numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [0, SCAN_INTERVAL_MAX + 1, ABSURD])
def test_the_api_refuses_an_interval_out_of_range_on_create_and_edit(interval: int) -> None:
    server = make_server("alpha")
    data = {"name": "beta", "host": "pop.example.com", "scan_interval": interval}
    assert "scan_interval" in api_errors("post", SERVERS, data)
    message = api_errors("patch", f"{SERVERS}{server.pk}/", {"scan_interval": interval})
    assert str(SCAN_INTERVAL_MAX if interval else 1) in " ".join(message["scan_interval"])
    server.refresh_from_db()
    assert server.scan_interval == 60
    assert not Server.objects.filter(name="beta").exists()


def test_the_api_takes_the_longest_interval() -> None:
    server = make_server("alpha")
    response = api_as("admin").patch(
        f"{SERVERS}{server.pk}/", {"scan_interval": SCAN_INTERVAL_MAX}, format="json"
    )
    assert response.status_code == 200
    server.refresh_from_db()
    assert server.scan_interval == SCAN_INTERVAL_MAX


@pytest.mark.parametrize("port", [0, 65536, ABSURD])
def test_the_api_refuses_a_port_out_of_range(port: int) -> None:
    data = {"name": "beta", "host": "pop.example.com", "pop3s_port": port}
    assert "pop3s_port" in api_errors("post", SERVERS, data)


@pytest.mark.parametrize("interval", [0, SCAN_INTERVAL_MAX + 1, ABSURD])
def test_the_form_refuses_an_interval_out_of_range(interval: int) -> None:
    data = server_form("pop.example.com") | {"scan_interval": interval}
    response = client_as("admin").post(reverse("inventory:server_add"), data)
    assert response.status_code == 200
    assert response.context["form"].errors["scan_interval"]
    assert not Server.objects.exists()


def test_a_csv_row_with_an_absurd_interval_is_an_error_on_its_line_and_others_are_kept() -> None:
    text = (
        "name,host,scan_interval\n"
        "good1,a.example.com,30\n"
        f"bad,b.example.com,{ABSURD}\n"
        f"good2,c.example.com,{SCAN_INTERVAL_MAX}\n"
    )
    result = import_csv(io.StringIO(text))
    assert result.created == 2
    [error] = result.errors
    assert error.line == 3
    assert f"scan_interval: must be between 1 and {SCAN_INTERVAL_MAX}" in error.message
    assert sorted(Server.objects.values_list("name", flat=True)) == ["good1", "good2"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("warn_days", 366),
        ("warn_days", ABSURD),
        ("critical_days", ABSURD),
        ("error_runs_before_unknown", 0),
        ("error_runs_before_unknown", 25),
        ("error_runs_before_unknown", ABSURD),
    ],
)
def test_the_policy_form_refuses_numbers_out_of_range(field: str, value: int) -> None:
    admin = client_as("admin")
    response = admin.post(reverse("inventory:policy_add"), policy_form(**{field: value}))
    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert not Policy.objects.filter(name="Enterprise").exists()
    assert admin.post(reverse("inventory:policy_add"), policy_form()).status_code == 302


def test_an_acknowledgement_lasts_at_most_a_year_on_the_page_and_in_the_api() -> None:
    alert = make_alert(make_server("alpha"))
    operator = client_as("operator")
    data = {"comment": "change window", "until": in_future(days=366)}
    response = operator.post(acknowledge_url(alert), data)
    assert "At most 365 days ahead" in " ".join(response.context["form"].errors["until"])
    api = api_as("operator")
    url = f"/api/v1/alerts/{alert.pk}/acknowledge/"
    far = (timezone.now() + timedelta(days=366)).isoformat()
    response = api.post(url, {"comment": "x", "until": far}, format="json")
    assert response.status_code == 400
    assert "At most 365 days ahead" in " ".join(response.json()["until"])
    alert.refresh_from_db()
    assert alert.acknowledged_at is None
    near = (timezone.now() + timedelta(days=364)).isoformat()
    assert api.post(url, {"comment": "x", "until": near}, format="json").status_code == 200


# --- Owners ------------------------------------------------------------------------------------


def test_the_form_refuses_more_owners_than_the_limit() -> None:
    admin = client_as("admin")
    data = server_form("pop.example.com") | {"owners": "; ".join(OWNERS)}
    response = admin.post(reverse("inventory:server_add"), data)
    assert f"at most {MAX_OWNERS}" in " ".join(response.context["form"].errors["owners"])
    data["owners"] = "; ".join(OWNERS[:MAX_OWNERS])
    assert admin.post(reverse("inventory:server_add"), data).status_code == 302
    assert len(Server.objects.get().owner_emails) == MAX_OWNERS


def test_the_api_refuses_more_owners_than_the_limit() -> None:
    data = {"name": "beta", "host": "pop.example.com", "owner_emails": OWNERS}
    assert f"at most {MAX_OWNERS}" in " ".join(api_errors("post", SERVERS, data)["owner_emails"])
    server = make_server("alpha")
    errors = api_errors("patch", f"{SERVERS}{server.pk}/", {"owner_emails": OWNERS})
    assert "owner_emails" in errors
    assert not Server.objects.filter(name="beta").exists()


def test_a_csv_row_with_too_many_owners_is_an_error_and_others_are_kept() -> None:
    text = (
        "name,host,owner_email\n"
        f"big,a.example.com,{';'.join(OWNERS)}\n"
        "small,b.example.com,a@x.org\n"
    )
    result = import_csv(io.StringIO(text))
    [error] = result.errors
    assert error.line == 2 and f"at most {MAX_OWNERS}" in error.message
    assert list(Server.objects.values_list("name", flat=True)) == ["small"]


# --- Names -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HIDDEN.values(), ids=HIDDEN.keys())
def test_the_form_refuses_invisible_characters_in_names_sites_and_tags(name: str) -> None:
    admin = client_as("admin")
    for field in ("name", "site", "tag_names"):
        data = server_form("pop.example.com") | {field: name}
        errors = admin.post(reverse("inventory:server_add"), data).context["form"].errors
        assert "invisible or control character" in " ".join(errors[field]), field
    assert not Server.objects.exists() and not Tag.objects.exists()


@pytest.mark.parametrize("name", HIDDEN.values(), ids=HIDDEN.keys())
def test_the_api_refuses_invisible_characters_in_names_sites_and_tags(name: str) -> None:
    base = {"name": "beta", "host": "pop.example.com"}
    assert "name" in api_errors("post", SERVERS, base | {"name": name})
    assert "site" in api_errors("post", SERVERS, base | {"site": name})
    assert "tags" in api_errors("post", SERVERS, base | {"tags": ["prod", name]})
    assert not Server.objects.exists() and not Tag.objects.exists()


def test_a_csv_row_with_a_bidi_override_in_its_name_is_an_error_on_its_line() -> None:
    text = (
        "name,host,tags\n"
        "mail\u202eexe,a.example.com,\n"
        "good,b.example.com,ok\u200bay\n"
        "fine,c.example.com,\n"
    )
    result = import_csv(io.StringIO(text))
    assert [error.line for error in result.errors] == [2, 3]
    assert "U+202E" in result.errors[0].message and "U+200B" in result.errors[1].message
    assert list(Server.objects.values_list("name", flat=True)) == ["fine"]


def test_the_policy_form_refuses_a_name_with_a_zero_width_character() -> None:
    response = client_as("admin").post(
        reverse("inventory:policy_add"), policy_form(name="stri\u200bct")
    )
    assert "U+200B" in " ".join(response.context["form"].errors["name"])


def test_names_with_accents_and_other_scripts_are_kept() -> None:
    data = server_form("pop.example.com") | {
        "name": "Messagerie Zürich — 東京",
        "site": "Genève",
        "tag_names": "prod; été",
    }
    assert client_as("admin").post(reverse("inventory:server_add"), data).status_code == 302
    assert Server.objects.get().site == "Genève"


def test_a_new_account_name_refuses_a_bidi_override() -> None:
    # Django's username validator takes letters, digits and @.+-_ only, so format characters
    # never reach an account name either.
    form = UserAddForm(
        data={"username": "ad\u202emin", "password1": "a long passphrase", "role": "viewer"}
        | {"password2": "a long passphrase"}
    )
    assert "username" in form.errors
