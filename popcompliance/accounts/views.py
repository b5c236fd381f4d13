"""Account management for admins: list accounts with their roles, add one, change a role.

Sign-in, sign-out and password change are Django's own views (see urls.py), with templates
under templates/registration/.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from popcompliance.accounts.forms import RoleForm, UserAddForm
from popcompliance.accounts.roles import ADMIN, ROLE_CHOICES, highest_role, role_required, set_role

USERS_PER_PAGE = 50


@role_required(ADMIN)
def users(request: HttpRequest) -> HttpResponse:
    """Every account with its role: three queries whatever the number of accounts."""
    accounts = get_user_model().objects.order_by("username").prefetch_related("groups")
    page = Paginator(accounts, USERS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [(user, _role_of_listed(user)) for user in page]
    context = {"page": page, "rows": rows, "role_choices": ROLE_CHOICES}
    return render(request, "accounts/users.html", context)


def _role_of_listed(user: object) -> str:
    """The role from the prefetched groups (role_of would query once per account)."""
    if getattr(user, "is_superuser", False):
        return ADMIN
    return highest_role(group.name for group in user.groups.all())  # type: ignore[attr-defined]


@role_required(ADMIN)
def user_add(request: HttpRequest) -> HttpResponse:
    form = UserAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        messages.success(request, f"Account {user.get_username()} created.")
        return redirect("accounts:users")
    return render(request, "accounts/user_add.html", {"form": form})


@role_required(ADMIN)
@require_POST
def user_role(request: HttpRequest, pk: int) -> HttpResponse:
    """Change an account's role. Admins cannot demote themselves, so the last admin cannot
    lock everybody out by accident."""
    user = get_object_or_404(get_user_model(), pk=pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Pick one of the roles.")
    elif user.pk == request.user.pk:
        messages.error(request, "You cannot change your own role.")
    else:
        set_role(user, form.cleaned_data["role"])
        messages.success(request, f"{user.get_username()} is now {form.cleaned_data['role']}.")
    return redirect("accounts:users")
