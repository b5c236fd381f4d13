"""The cast of the web tests: accounts holding a role, and clients signed in as them.

Fixtures (registered by conftest's pytest_plugins): `viewer`, `operator`, `admin`, each a
Client signed in as a new account with that role. A test module may override them (the API
tests do, with token-authenticated clients)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from popcompliance.accounts.models import ApiToken
from popcompliance.accounts.roles import set_role


def make_user(role: str | None, name: str | None = None, *, password: str = "x") -> User:
    """A new account `name` (default "<role>-user") holding `role`; none for None."""
    user = User.objects.create_user(name or f"{role}-user", password=password)
    if role:
        set_role(user, role)
    return user


def token_for(user: User, name: str = "tests", days: int | None = None) -> str:
    """A new API token of `user` (never expiring unless `days`), as a client sends it."""
    return ApiToken.issue(user, name, timezone.now(), days)[1]


def client_as(role: str | None) -> Client:
    """A client signed in with `role`, or anonymous for None."""
    client = Client()
    if role is not None:
        client.force_login(make_user(role))
    return client


@pytest.fixture
def viewer() -> Client:
    return client_as("viewer")


@pytest.fixture
def operator() -> Client:
    return client_as("operator")


@pytest.fixture
def admin() -> Client:
    return client_as("admin")
