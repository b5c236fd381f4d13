"""Account management for admins: list accounts with their roles and lockouts, add one, change
a role, unlock an account or a client address locked out by the login throttle (throttle.py).

Sign-in is Django's view with the single sign-on methods that are on (sso_settings.py),
sign-out Django's own, the password change Django's with the current password throttled like a
sign-in; templates under templates/registration/.
"""

from __future__ import annotations

from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from popcompliance.accounts.forms import (
    AddressForm,
    RoleForm,
    SignInForm,
    ThrottledPasswordChangeForm,
    UserAddForm,
)
from popcompliance.accounts.roles import ADMIN, ROLE_CHOICES, highest_role, role_required, set_role
from popcompliance.accounts.throttle import (
    locked_out_addresses,
    locked_out_usernames,
    lockout_response,
    unlock_address,
    unlock_username,
)
from popcompliance.audit.recorder import record_unlock

USERS_PER_PAGE = 50


class SignInView(auth_views.LoginView):
    """The login page: the username and password form when local accounts or LDAP are on,
    a "Sign in with ..." button when OpenID Connect is."""

    form_class = SignInForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["password_form"] = settings.POPC_LOCAL_ACCOUNTS or settings.POPC_LDAP_ENABLED
        context["directory"] = settings.POPC_LDAP_ENABLED
        context["oidc_provider"] = (
            settings.POPC_OIDC_PROVIDER_NAME if settings.POPC_OIDC_ENABLED else None
        )
        return context


def signs_in_elsewhere(user: Any) -> bool:
    """Whether the account's password is not ours to change: it signs in with the directory
    or the identity provider (an unusable password here), or local passwords are off."""
    return not (settings.POPC_LOCAL_ACCOUNTS and user.has_usable_password())


# Atomic like every view that changes an audited object: the new password and its audit entry
# commit together.
@method_decorator(transaction.atomic, name="dispatch")
class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change, with wrong current passwords counted by the login throttle.
    At the limit the session ends and the lockout page shows: the account is then locked out
    from this address, for sign-ins and password changes alike."""

    form_class = ThrottledPasswordChangeForm

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated and signs_in_elsewhere(request.user):
            messages.info(request, "Your password is not set here: change it where you sign in.")
            return redirect("dashboard:overview")
        if request.user.is_authenticated and self.locked_out(request):
            return self.end_session(request)
        return super().dispatch(request, *args, **kwargs)  # type: ignore[no-any-return]

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}

    def form_invalid(self, form: Any) -> HttpResponse:
        # Axes marks the request when this failure reached the limit.
        if getattr(self.request, "axes_locked_out", False):
            return self.end_session(self.request)
        return super().form_invalid(form)  # type: ignore[no-any-return]

    @staticmethod
    def locked_out(request: HttpRequest) -> bool:
        credentials = {"username": request.user.get_username()}
        return bool(AxesProxyHandler.is_locked(request, credentials))

    @staticmethod
    def end_session(request: HttpRequest) -> HttpResponse:
        logout(request)
        return lockout_response(request, None, None)


@role_required(ADMIN)
def users(request: HttpRequest) -> HttpResponse:
    """Every account with its role and whether it is locked out, and the locked-out client
    addresses: five queries whatever the number of accounts."""
    accounts = (
        get_user_model()
        .objects.order_by("username")
        .select_related("sso_identity")
        .prefetch_related("groups")
    )
    page = Paginator(accounts, USERS_PER_PAGE).get_page(request.GET.get("page"))
    locked = locked_out_usernames(user.get_username() for user in page)
    rows = [(user, _role_of_listed(user), user.get_username() in locked) for user in page]
    context = {
        "page": page,
        "rows": rows,
        "role_choices": ROLE_CHOICES,
        "locked_addresses": locked_out_addresses(),
        "local_accounts": settings.POPC_LOCAL_ACCOUNTS,
    }
    return render(request, "accounts/users.html", context)


def _role_of_listed(user: object) -> str:
    """The role from the prefetched groups (role_of would query once per account)."""
    if getattr(user, "is_superuser", False):
        return ADMIN
    return highest_role(group.name for group in user.groups.all())  # type: ignore[attr-defined]


@role_required(ADMIN)
@transaction.atomic
def user_add(request: HttpRequest) -> HttpResponse:
    if not settings.POPC_LOCAL_ACCOUNTS:
        messages.error(
            request,
            "Local accounts are off (POPC_LOCAL_ACCOUNTS=false): accounts are created at their "
            "first single sign-on.",
        )
        return redirect("accounts:users")
    form = UserAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        messages.success(request, f"Account {user.get_username()} created.")
        return redirect("accounts:users")
    return render(request, "accounts/user_add.html", {"form": form})


@role_required(ADMIN)
@require_POST
@transaction.atomic
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


@role_required(ADMIN)
@require_POST
@transaction.atomic
def user_unlock(request: HttpRequest, pk: int) -> HttpResponse:
    """Forget an account's failed sign-ins from every address, so it can sign in at once."""
    user = get_object_or_404(get_user_model(), pk=pk)
    unlock_username(user.get_username())
    record_unlock(user.get_username(), user.pk)
    messages.success(request, f"{user.get_username()} can sign in again.")
    return redirect("accounts:users")


@role_required(ADMIN)
@require_POST
@transaction.atomic
def address_unlock(request: HttpRequest) -> HttpResponse:
    """Forget every failed sign-in from a client address locked out for all usernames."""
    form = AddressForm(request.POST)
    if form.is_valid():
        address = form.cleaned_data["address"]
        unlock_address(address)
        record_unlock(f"sign-ins from {address}")
        messages.success(request, f"Sign-ins from {address} are allowed again.")
    else:
        messages.error(request, "That is not an IP address.")
    return redirect("accounts:users")
