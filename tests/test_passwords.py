"""Password validators: every form where a person sets a password refuses a weak one, with
Django's message, and changes nothing; `ensure_admin` refuses a weak DJANGO_SUPERUSER_PASSWORD.

Each validator is hit through the real forms: too short (MinimumLength 12), common
(CommonPassword), like the username (UserAttributeSimilarity), all digits (Numeric)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from tests import people
from tests.people import client_as

pytestmark = pytest.mark.django_db

OLD_PASSWORD = "the-old-passphrase-42"
STRONG = "plum-orbit-lantern-9"

# (password, a phrase of the validator's message); the username is "harriet-vane".
WEAK = [
    ("Sh0rt-pw!", "too short"),
    ("password1234", "too common"),
    ("harriet-vane!", "too similar to the username"),
    ("739184620571", "entirely numeric"),
]


def test_the_user_add_form_refuses_each_weak_password() -> None:
    client = client_as("admin")
    for password, message in WEAK:
        form = {"username": "harriet-vane", "role": "viewer"}
        form |= {"password1": password, "password2": password}
        response = client.post(reverse("accounts:user_add"), form)
        assert response.status_code == 200
        assert message in response.content.decode(), password
    assert not User.objects.filter(username="harriet-vane").exists()


def test_the_user_add_form_takes_a_strong_password() -> None:
    form = {"username": "harriet-vane", "role": "viewer"}
    form |= {"password1": STRONG, "password2": STRONG}
    client_as("admin").post(reverse("accounts:user_add"), form)
    assert User.objects.get(username="harriet-vane").check_password(STRONG)


def test_the_password_change_refuses_each_weak_password() -> None:
    user = people.make_user("viewer", "harriet-vane", password=OLD_PASSWORD)
    client = Client()
    client.force_login(user)
    for password, message in WEAK:
        form = {"old_password": OLD_PASSWORD, "new_password1": password}
        response = client.post(
            reverse("accounts:password_change"), form | {"new_password2": password}
        )
        assert response.status_code == 200
        assert message in response.content.decode(), password
    user.refresh_from_db()
    assert user.check_password(OLD_PASSWORD)


def test_the_django_admin_refuses_each_weak_password() -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", password=OLD_PASSWORD))
    for password, message in WEAK:
        form = {"username": "harriet-vane", "password1": password, "password2": password}
        response = client.post(reverse("admin:auth_user_add"), form | {"usable_password": "true"})
        assert response.status_code == 200
        assert message in response.content.decode(), password
    assert not User.objects.filter(username="harriet-vane").exists()


def test_the_django_admin_password_change_refuses_a_weak_password() -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", password=OLD_PASSWORD))
    user = people.make_user("viewer", "harriet-vane", password=OLD_PASSWORD)
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    response = client.post(url, {"password1": "739184620571", "password2": "739184620571"})
    assert "entirely numeric" in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(OLD_PASSWORD)


@pytest.mark.parametrize(("password", "message"), WEAK)
def test_ensure_admin_refuses_a_weak_password(
    monkeypatch: pytest.MonkeyPatch, password: str, message: str
) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "harriet-vane")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)
    with pytest.raises(CommandError, match="DJANGO_SUPERUSER_PASSWORD is too weak") as caught:
        call_command("ensure_admin", stdout=StringIO())
    assert message in str(caught.value)
    assert password not in str(caught.value)
    assert not User.objects.filter(username="harriet-vane").exists()


def test_the_generated_admin_password_passes_the_validators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("USERNAME", "PASSWORD", "EMAIL"):
        monkeypatch.delenv(f"DJANGO_SUPERUSER_{name}", raising=False)
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    assert User.objects.get(username="admin").is_superuser
    assert len(out.getvalue().split(" with password ")[1].split()[0]) >= 12
