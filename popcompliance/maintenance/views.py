"""The maintenance page: every window with where it stands, and its forms. Any signed-in
account reads; operators and admins plan, edit and delete windows."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from popcompliance.accounts.roles import OPERATOR, VIEWER, has_role, role_required
from popcompliance.maintenance.forms import WindowForm
from popcompliance.maintenance.models import MaintenanceWindow
from popcompliance.maintenance.windows import listing


@role_required(VIEWER)
@require_GET
def window_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    context = {"rows": listing(now), "can_edit": has_role(request.user, OPERATOR), "now": now}
    return render(request, "maintenance/list.html", context)


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def window_add(request: HttpRequest) -> HttpResponse:
    """A new window; `?server=<id>` (the server page's link) picks its server."""
    window = MaintenanceWindow(created_by=request.user)
    initial = {"server": request.GET.get("server")} if request.GET.get("server") else None
    return _window_form(request, window, initial)


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def window_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _window_form(request, get_object_or_404(MaintenanceWindow, pk=pk))


@transaction.atomic
def _window_form(
    request: HttpRequest, window: MaintenanceWindow, initial: dict[str, object] | None = None
) -> HttpResponse:
    form = WindowForm(request.POST or None, instance=window, initial=initial)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Saved maintenance window {saved} ({saved.scope_label}).")
        return redirect("maintenance:list")
    return render(request, "maintenance/form.html", {"form": form, "window": window})


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
@transaction.atomic
def window_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes the window (alerts it holds go out within a
    minute if their problem is still there)."""
    window = get_object_or_404(MaintenanceWindow.objects.select_related("server", "tag"), pk=pk)
    if request.method == "POST":
        window.delete()
        messages.success(request, f"Deleted maintenance window {window}.")
        return redirect("maintenance:list")
    return render(request, "maintenance/confirm_delete.html", {"window": window})
