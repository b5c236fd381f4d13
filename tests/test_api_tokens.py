"""API tokens: stored as digests only, sent as `Authorization: Token <token>`, expiring, revoked
on the API tokens page (admins revoke anyone's), recorded in the audit log, and migrated from
the clear tokens of Django REST framework's authtoken table. The cast: a viewer who owns tokens,
another viewer, an admin."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from popcompliance.accounts.models import ApiToken
from popcompliance.audit.models import AuditEntry
from tests.people import make_user, token_for

pytestmark = pytest.mark.django_db

SERVERS = "/api/v1/servers/"
PAGE = reverse("accounts:api_tokens")
CREATE = reverse("accounts:api_token_create")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_status(token: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get(SERVERS).status_code


def create_on_the_page(client: Client, name: str = "nightly report", days: int = 30) -> str:
    """The token the page shows once, after its form is sent."""
    response = client.post(CREATE, {"name": name, "days": days})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    [token] = re.findall(r'id="new-token-value">([^<]+)<', response.content.decode())
    return token


def database_dump() -> str:
    """Every row of the token tables and the audit log, as text."""
    rows = [*ApiToken.objects.values(), *AuditEntry.objects.values()]
    return json.dumps(rows, default=str)


def revoke_url(token: str) -> str:
    return reverse("accounts:api_token_revoke", args=[ApiToken.objects.get(prefix=token[:8]).pk])


def test_a_token_made_on_the_page_works_and_the_database_holds_only_its_digest() -> None:
    owner = make_user("viewer", "owner")
    token = create_on_the_page(signed_in(owner))
    assert api_status(token) == 200
    stored = ApiToken.objects.get(user=owner)
    assert stored.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in database_dump()


def test_the_page_lists_a_token_without_showing_it_again() -> None:
    client = signed_in(make_user("viewer", "owner"))
    token = create_on_the_page(client)
    page = client.get(PAGE).content.decode()
    assert "nightly report" in page and f"{token[:8]}…" in page
    assert token not in page


def test_a_token_expires_after_its_days() -> None:
    token = token_for(make_user("viewer"), days=30)
    expires_at = ApiToken.objects.get().expires_at
    assert expires_at - ApiToken.objects.get().created_at == timedelta(days=30)
    with time_machine.travel(expires_at - timedelta(minutes=1), tick=False):
        assert api_status(token) == 200
    with time_machine.travel(expires_at, tick=False):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        response = client.get(SERVERS)
    assert response.status_code == 401
    assert "This token expired on" in response.json()["detail"]


def test_the_default_expiry_is_the_setting_and_zero_never_expires(settings) -> None:
    settings.POPC_API_TOKEN_DAYS = 7
    client = signed_in(make_user("viewer"))
    assert 'value="7"' in client.get(PAGE).content.decode()
    create_on_the_page(client, "forever", days=0)
    assert ApiToken.objects.get(name="forever").expires_at is None


def test_a_revoked_token_is_refused_and_the_revocation_recorded() -> None:
    owner = make_user("viewer", "owner")
    client = signed_in(owner)
    token = create_on_the_page(client)
    assert client.post(revoke_url(token)).url == PAGE
    assert api_status(token) == 401
    created, revoked = AuditEntry.objects.filter(object_type="api token").order_by("pk")
    assert (created.action, revoked.action) == ("created", "deleted")
    assert (created.actor_label, created.source) == ("owner", "web")
    assert revoked.object_label == f"owner: nightly report ({token[:8]}…)"
    assert token not in database_dump()


def test_nobody_sees_or_revokes_someone_elses_token_but_an_admin() -> None:
    token = token_for(make_user("viewer", "owner"))
    stranger = signed_in(make_user("viewer", "stranger"))
    assert "tests" not in stranger.get(PAGE).content.decode()
    assert stranger.post(revoke_url(token)).status_code == 404
    assert api_status(token) == 200
    admin = signed_in(make_user("admin", "chief"))
    assert "owner" in admin.get(PAGE).content.decode()
    assert admin.post(revoke_url(token)).status_code == 302
    assert api_status(token) == 401


def test_revoking_is_a_post_and_the_page_needs_a_signed_in_user() -> None:
    token = token_for(make_user("viewer", "owner"))
    assert signed_in(User.objects.get(username="owner")).get(revoke_url(token)).status_code == 405
    assert Client().get(PAGE).status_code == 302
    assert Client().post(CREATE, {"name": "x", "days": 1}).status_code == 302
    assert not ApiToken.objects.filter(name="x").exists()


def test_a_bad_expiry_is_explained_and_creates_nothing() -> None:
    response = signed_in(make_user("viewer")).post(CREATE, {"name": "cron", "days": -1})
    assert "greater than or equal to 0" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_a_token_of_a_disabled_account_is_refused() -> None:
    owner = make_user("viewer", "owner")
    token = token_for(owner)
    owner.is_active = False
    owner.save()
    assert api_status(token) == 401


def test_the_last_use_is_written_at_most_every_few_minutes(django_assert_num_queries) -> None:
    token = token_for(make_user("viewer"))
    first_use = timezone.now()
    with time_machine.travel(first_use, tick=False):
        api_status(token)
    assert ApiToken.objects.get().last_used_at == first_use
    with time_machine.travel(first_use + timedelta(minutes=4), tick=False):
        api_status(token)
    assert ApiToken.objects.get().last_used_at == first_use
    with time_machine.travel(first_use + timedelta(minutes=5), tick=False):
        api_status(token)
    assert ApiToken.objects.get().last_used_at == first_use + timedelta(minutes=5)


def test_the_clear_tokens_of_authtoken_are_migrated_and_keep_working() -> None:
    owner = make_user("operator", "owner")
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0002_api_tokens")])
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created timestamp with time zone NOT NULL, user_id integer NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)",
            ["9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", timezone.now(), owner.pk],
        )
    executor.loader.build_graph()
    executor.migrate([("accounts", "0003_hash_existing_api_tokens")])

    assert api_status("9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b") == 200
    migrated = ApiToken.objects.get(user=owner)
    assert (migrated.name, migrated.prefix, migrated.expires_at) == (
        "token from before hashing",
        "9944b091",
        None,
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)


def test_the_page_runs_a_fixed_number_of_queries(django_assert_num_queries) -> None:
    admin = make_user("admin", "chief")
    client = signed_in(admin)
    for n in range(3):
        token_for(make_user("viewer", f"user{n}"))
    # Session, user, role, the tokens with their owners.
    with django_assert_num_queries(4):
        client.get(PAGE)
    for n in range(3, 9):
        token_for(make_user("operator", f"user{n}"))
    with django_assert_num_queries(4):
        client.get(PAGE)
