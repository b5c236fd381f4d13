"""The Waivers page: every waiver with where it stands, and its forms. Any signed-in
account reads; only admins grant and revoke."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from popcompliance.accounts.roles import ADMIN, VIEWER, has_role, role_required
from popcompliance.waivers import settle
from popcompliance.waivers.forms import WaiverForm
from popcompliance.waivers.models import Waiver


@role_required(VIEWER)
@require_GET
def waiver_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    waivers = Waiver.objects.select_related("server", "tag", "approver", "revoked_by")
    rows = [(waiver, waiver.state(now)) for waiver in waivers]
    context = {"rows": rows, "can_grant": has_role(request.user, ADMIN), "now": now}
    return render(request, "waivers/list.html", context)


@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
@transaction.atomic
def waiver_add(request: HttpRequest) -> HttpResponse:
    """Grant a waiver; `?server=<id>&check=<id>` (the server page's failing check) fills
    them in."""
    now = timezone.now().replace(second=0, microsecond=0)
    initial = {"server": request.GET.get("server"), "check_id": request.GET.get("check")}
    form = WaiverForm(request.POST or None, initial={**initial, "starts_at": now})
    form.instance.approver = request.user
    if request.method == "POST" and form.is_valid():
        waiver = form.save()
        settle.apply([waiver], timezone.now())
        messages.success(
            request,
            f"Granted an exception for {waiver} until {waiver.expires_at:%Y-%m-%d %H:%M} UTC.",
        )
        return redirect(waiver.server or "waivers:list")
    return render(request, "waivers/form.html", {"form": form})


@role_required(ADMIN)
@require_POST
@transaction.atomic
def waiver_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """End a waiver now; the record stays. Alerts it held go out within a minute if their
    check still fails."""
    try:
        waiver, ended = settle.revoke(pk, request.user, timezone.now())
    except Waiver.DoesNotExist:
        raise Http404("No such waiver.") from None
    if ended:
        messages.info(request, f"The exception for {waiver} had already ended ({ended}).")
        return redirect("waivers:list")
    messages.success(request, f"Revoked the exception for {waiver}.")
    return redirect("waivers:list")
