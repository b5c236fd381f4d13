"""Accounts and roles: sign-in, sign-out, password change, the role decorator, and the users
page. The cast: an admin, an operator, a viewer, and an anonymous visitor."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from popcompliance.accounts.roles import has_role, role_of, role_required, set_role
from tests import people
from tests.people import client_as

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")


PASSWORD = "s3cret-pass"


def make_user(role: str | None, name: str | None = None) -> User:
    return people.make_user(role, name, password=PASSWORD)


def test_the_three_role_groups_are_created_by_a_migration():
    assert set(Group.objects.values_list("name", flat=True)) >= {"viewer", "operator", "admin"}


def test_an_account_without_a_role_group_is_a_viewer():
    assert role_of(make_user(None, "plain")) == "viewer"


def test_roles_include_the_ones_below_them():
    operator = make_user("operator")
    assert has_role(operator, "viewer") and has_role(operator, "operator")
    assert not has_role(operator, "admin")


def test_a_superuser_is_an_admin():
    root = User.objects.create_superuser("root", password="x")
    assert role_of(root) == "admin"


def test_set_role_replaces_the_previous_role():
    user = make_user("admin")
    set_role(user, "viewer")
    assert role_of(User.objects.get(pk=user.pk)) == "viewer"


def test_the_role_is_read_once_per_user_object(django_assert_num_queries):
    user = User.objects.get(pk=make_user("operator").pk)
    with django_assert_num_queries(1):
        assert has_role(user, "operator") and not has_role(user, "admin")


def _protected(request):
    return HttpResponse("ok")


def test_role_required_refuses_a_lower_role_with_403():
    request = RequestFactory().get("/")
    request.user = make_user("viewer")
    with pytest.raises(PermissionDenied):
        role_required("operator")(_protected)(request)


def test_role_required_sends_anonymous_visitors_to_the_login_page():
    response = client_as(None).get(reverse("accounts:users"))
    assert response.status_code == 302
    assert response.url.startswith(f"{LOGIN}?next=")


def test_the_login_page_renders_and_signs_in():
    make_user("viewer")
    client = Client()
    assert client.get(LOGIN).status_code == 200
    response = client.post(LOGIN, {"username": "viewer-user", "password": PASSWORD})
    assert response.status_code == 302
    assert response.url == reverse("dashboard:overview")


def test_a_wrong_password_is_refused():
    make_user("viewer")
    response = Client().post(LOGIN, {"username": "viewer-user", "password": "nope"})
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()


def test_logout_is_a_post_and_leads_to_the_login_page():
    client = client_as("viewer")
    assert client.get(reverse("accounts:logout")).status_code == 405
    response = client.post(reverse("accounts:logout"))
    assert (response.status_code, response.url) == (302, LOGIN)
    assert client.get(reverse("dashboard:overview")).status_code == 302


def test_a_user_can_change_their_password():
    user = make_user("viewer")
    client = Client()
    client.force_login(user)
    form = {
        "old_password": PASSWORD,
        "new_password1": "a-much-longer-passphrase",
        "new_password2": "a-much-longer-passphrase",
    }
    response = client.post(reverse("accounts:password_change"), form)
    assert response.url == reverse("accounts:password_change_done")
    user.refresh_from_db()
    assert user.check_password("a-much-longer-passphrase")


def test_the_password_change_page_needs_a_signed_in_user():
    assert client_as(None).get(reverse("accounts:password_change")).status_code == 302


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_see_the_users_page(role):
    assert client_as(role).get(reverse("accounts:users")).status_code == 403


def test_an_admin_sees_every_account_with_its_role():
    make_user("operator")
    response = client_as("admin").get(reverse("accounts:users"))
    assert response.status_code == 200
    assert [(u.username, r) for u, r, _ in response.context["rows"]] == [
        ("admin-user", "admin"),
        ("operator-user", "operator"),
    ]


def test_the_users_page_runs_a_constant_number_of_queries(django_assert_num_queries):
    client = client_as("admin")
    for i in range(3):
        make_user("viewer", f"user{i}")
    # Session, user, role, count, page, groups, locked-out accounts, locked-out addresses.
    with django_assert_num_queries(8):
        client.get(reverse("accounts:users"))
    for i in range(3, 9):
        make_user("operator", f"user{i}")
    with django_assert_num_queries(8):
        client.get(reverse("accounts:users"))


def test_an_admin_adds_a_user_with_a_role():
    form = {
        "username": "newbie",
        "email": "newbie@example.com",
        "role": "operator",
        "password1": "a-much-longer-passphrase",
        "password2": "a-much-longer-passphrase",
    }
    response = client_as("admin").post(reverse("accounts:user_add"), form)
    assert response.url == reverse("accounts:users")
    assert role_of(User.objects.get(username="newbie")) == "operator"


def test_an_admin_changes_a_role_with_a_post():
    client, user = client_as("admin"), make_user("viewer")
    url = reverse("accounts:user_role", args=[user.pk])
    assert client.get(url).status_code == 405
    client.post(url, {"role": "operator"})
    assert role_of(User.objects.get(pk=user.pk)) == "operator"


def test_an_admin_cannot_change_their_own_role():
    client = client_as("admin")
    me = User.objects.get(username="admin-user")
    client.post(reverse("accounts:user_role", args=[me.pk]), {"role": "viewer"})
    assert role_of(User.objects.get(pk=me.pk)) == "admin"


def test_a_viewer_cannot_change_roles():
    user = make_user("operator")
    response = client_as("viewer").post(
        reverse("accounts:user_role", args=[user.pk]), {"role": "admin"}
    )
    assert response.status_code == 403
    assert role_of(User.objects.get(pk=user.pk)) == "operator"
