"""The Reports page: any signed-in account downloads a report (reading only, as every page
lets a viewer read); admins set who gets the monthly one."""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from popcompliance.accounts.roles import ADMIN, VIEWER, has_role, role_required
from popcompliance.dashboard import queries
from popcompliance.inventory.models import Policy, Tag
from popcompliance.reports.formats import content_type, csv_lines, filename, pdf_bytes, xlsx_bytes
from popcompliance.reports.forms import ReportForm, ScheduleForm, scope_choices
from popcompliance.reports.models import ReportSchedule
from popcompliance.reports.params import ReportParams


def download(params: ReportParams, file_format: str, now: datetime) -> HttpResponse:
    """The report as an attachment; the CSV streams as the rows are read."""
    response: HttpResponse
    if file_format == "csv":
        response = StreamingHttpResponse(csv_lines(params, now), content_type=content_type("csv"))
    else:
        made = xlsx_bytes(params, now) if file_format == "xlsx" else pdf_bytes(params, now)
        response = HttpResponse(made, content_type=content_type(file_format))
    response["Content-Disposition"] = f'attachment; filename="{filename(params, file_format)}"'
    return response


def report_form(data: object, now: datetime) -> ReportForm:
    tags = list(Tag.objects.values_list("name", flat=True))
    policies = list(Policy.objects.values_list("name", flat=True))
    scopes = scope_choices(queries.sites(), tags, policies)
    return ReportForm(data, scopes=scopes, now=now)


@role_required(VIEWER)
@require_GET
def report_page(request: HttpRequest) -> HttpResponse:
    """The form; submitted and valid, the report itself."""
    now = timezone.now()
    form = report_form(request.GET or None, now)
    if form.is_bound and form.is_valid():
        return download(form.params(), form.cleaned_data["format"], now)
    context = {
        "form": form,
        "schedule": ReportSchedule.current(),
        "can_admin": has_role(request.user, ADMIN),
    }
    return render(request, "reports/page.html", context)


@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
@transaction.atomic
def schedule(request: HttpRequest) -> HttpResponse:
    """Who gets the monthly report, of which scope (the audit log records the change)."""
    form = ScheduleForm(request.POST or None, instance=ReportSchedule.current())
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        count = len(saved.recipients)
        messages.success(request, f"The monthly report goes to {count} address(es).")
        return redirect("reports:page")
    return render(request, "reports/schedule.html", {"form": form})
