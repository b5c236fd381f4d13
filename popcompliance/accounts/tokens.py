"""The API tokens page: everyone sees their own tokens, creates one (shown once), and revokes
one; admins see and revoke everyone's. Tokens are accounts.models.ApiToken."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from popcompliance.accounts.forms import ApiTokenForm
from popcompliance.accounts.models import ApiToken
from popcompliance.accounts.roles import ADMIN, has_role


def tokens_of(user: object) -> QuerySet[ApiToken]:
    """The tokens a user may see and revoke: their own, or everyone's for an admin."""
    tokens = ApiToken.objects.select_related("user")
    return tokens if has_role(user, ADMIN) else tokens.filter(user=user)


@login_required
def api_tokens(request: HttpRequest) -> HttpResponse:
    return tokens_page(request, ApiTokenForm())


@login_required
@require_POST
@transaction.atomic
def api_token_create(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST)
    if not form.is_valid():
        return tokens_page(request, form)
    name, days = form.cleaned_data["name"], form.cleaned_data["days"]
    created, token = ApiToken.issue(request.user, name, timezone.now(), days or None)
    # Rendered, not redirected: a redirect would have to park the token in the session.
    return tokens_page(request, ApiTokenForm(), created=created, token=token)


@login_required
@require_POST
@transaction.atomic
def api_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(tokens_of(request.user), pk=pk)
    token.delete()
    messages.success(request, f"Token {token} of {token.user.get_username()} revoked.")
    return redirect("accounts:api_tokens")


def tokens_page(
    request: HttpRequest,
    form: ApiTokenForm,
    created: ApiToken | None = None,
    token: str = "",
) -> HttpResponse:
    """The page: two queries (the role, the tokens with their owners)."""
    context = {
        "form": form,
        "tokens": tokens_of(request.user),
        "everyone": has_role(request.user, ADMIN),
        "created": created,
        "token": token,
        "now": timezone.now(),
    }
    response = render(request, "accounts/api_tokens.html", context)
    # The page may carry a token: no cache keeps a copy.
    response["Cache-Control"] = "no-store"
    return response
