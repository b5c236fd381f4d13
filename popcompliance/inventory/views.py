"""The inventory pages: the server list with filters, server and policy editors, CSV import and
export. Reading needs the viewer role, changing anything the admin role; every change is a POST.
"""

from __future__ import annotations

import io

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, ProtectedError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from kombu.exceptions import OperationalError as BrokerError

import scanner
from popcompliance.accounts.roles import has_role, role_required
from popcompliance.dashboard import queries
from popcompliance.dashboard.forms import ServerFilter
from popcompliance.inventory import csvio
from popcompliance.inventory.forms import CsvUploadForm, PolicyForm, ServerForm
from popcompliance.inventory.models import ImportJob, ImportState, Policy, Server, Tag
from popcompliance.inventory.tasks import import_servers

# How many server names a refusal to delete a policy quotes before "and N more".
_NAMES_QUOTED = 5


def _server_filter(request: HttpRequest) -> ServerFilter:
    """The list's filter form, bound to the query string, with the sites and tags in use."""
    tags = list(Tag.objects.values_list("name", flat=True))
    return ServerFilter(request.GET, sites=queries.sites(), tags=tags)


@role_required("viewer")
@require_GET
def server_list(request: HttpRequest) -> HttpResponse:
    """The inventory: every server with its settings and status, filtered and paginated by
    the same query as the overview's matrix, with its policy and tags fetched alongside: one
    query for the rows and one for all their tags, whatever the page size."""
    filters = _server_filter(request)
    servers = queries.filtered_servers(filters.filters())
    servers = servers.select_related("policy").prefetch_related("tags")
    page = Paginator(servers, filters.page_size).get_page(request.GET.get("page"))
    context = {
        "filters": filters,
        "page": page,
        "can_edit": has_role(request.user, "admin"),
        "here": request.get_full_path(),
    }
    return render(request, "inventory/server_list.html", context)


@role_required("admin")
@require_http_methods(["GET", "POST"])
def server_add(request: HttpRequest) -> HttpResponse:
    form = ServerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        server = form.save()
        messages.success(request, f"Added {server}; it will be scanned shortly.")
        return redirect("inventory:server_list")
    return render(request, "inventory/server_form.html", {"form": form})


@role_required("admin")
@require_http_methods(["GET", "POST"])
def server_edit(request: HttpRequest, pk: int) -> HttpResponse:
    server = get_object_or_404(Server, pk=pk)
    form = ServerForm(request.POST or None, instance=server)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved {server}.")
        return redirect("inventory:server_list")
    return render(request, "inventory/server_form.html", {"form": form, "server": server})


@role_required("admin")
@require_POST
@transaction.atomic
def server_pause(request: HttpRequest, pk: int) -> HttpResponse:
    """Stop scanning a server; its history is kept. Pausing twice changes nothing."""
    server = get_object_or_404(Server, pk=pk)
    if not server.paused:
        server.pause(timezone.now())
    messages.success(request, f"Paused {server}: it will not be scanned until resumed.")
    return redirect(_back(request))


@role_required("admin")
@require_POST
@transaction.atomic
def server_resume(request: HttpRequest, pk: int) -> HttpResponse:
    """Scan a paused server again, starting now."""
    server = get_object_or_404(Server, pk=pk)
    if server.paused:
        server.resume(timezone.now())
    messages.success(request, f"Resumed {server}: it will be scanned shortly.")
    return redirect(_back(request))


@role_required("admin")
@require_http_methods(["GET", "POST"])
@transaction.atomic
def server_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes the server with its whole history."""
    server = get_object_or_404(Server, pk=pk)
    if request.method == "POST":
        server.delete()
        messages.success(request, f"Deleted {server} and its history.")
        return redirect("inventory:server_list")
    return render(request, "inventory/server_confirm_delete.html", {"server": server})


@role_required("admin")
@require_http_methods(["GET", "POST"])
def server_import(request: HttpRequest) -> HttpResponse:
    """Upload a CSV file: good rows are saved, bad ones listed with their line and reason. A file
    of more than POPC_IMPORT_INLINE_ROWS rows is imported by a worker, on a page that follows it."""
    form = CsvUploadForm(request.POST or None, request.FILES or None)
    result = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            text = csvio.decode_csv(upload.read())
            rows = csvio.count_rows(text)
            if rows > settings.POPC_IMPORT_INLINE_ROWS:
                return redirect(queue_import(request, text, upload.name, rows))
            result = csvio.import_csv(io.StringIO(text, newline=""))
        except csvio.CsvFileError as exc:
            form.add_error("file", f"{exc}. Nothing was imported.")
    context = {
        "form": form,
        "result": result,
        "columns": csvio.COLUMNS,
        "protocols": scanner.CLIENT_PROTOCOLS,
    }
    return render(request, "inventory/server_import.html", context)


def queue_import(request: HttpRequest, text: str, file_name: str, rows: int) -> ImportJob:
    """Store the file as a job and hand it to a worker; a queue that is down fails the job with
    the reason, and the page says so (the file is kept: importing it again is safe)."""
    job = ImportJob.objects.create(
        created_by=request.user, file_name=file_name[:255], text=text, total_rows=rows
    )
    try:
        import_servers.delay(job.pk)
    except BrokerError as exc:
        job.end(ImportState.FAILED, [], f"The task queue did not take the import: {exc}")
    return job


@role_required("admin")
@require_GET
def import_job(request: HttpRequest, pk: int) -> HttpResponse:
    """A background import's progress (the page reloads itself until it ends) and report."""
    job = get_object_or_404(ImportJob.objects.select_related("created_by"), pk=pk)
    errors = [csvio.RowError(line, reason) for line, reason in job.errors]
    return render(request, "inventory/import_job.html", {"job": job, "errors": errors})


@role_required("viewer")
@require_GET
def server_export(request: HttpRequest) -> HttpResponse:
    """The listed servers (all of them without filters) as CSV that the import reads back."""
    servers = queries.filtered_servers(_server_filter(request).filters())
    lines = csvio.export_lines(servers)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    filename = f"servers-{timezone.now():%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@role_required("viewer")
@require_GET
def policy_list(request: HttpRequest) -> HttpResponse:
    policies = Policy.objects.annotate(server_count=Count("servers")).order_by("name")
    context = {"policies": policies, "can_edit": has_role(request.user, "admin")}
    return render(request, "inventory/policy_list.html", context)


@role_required("admin")
@require_http_methods(["GET", "POST"])
def policy_add(request: HttpRequest) -> HttpResponse:
    return _policy_form(request, Policy())


@role_required("admin")
@require_http_methods(["GET", "POST"])
def policy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _policy_form(request, get_object_or_404(Policy, pk=pk))


def _policy_form(request: HttpRequest, policy: Policy) -> HttpResponse:
    form = PolicyForm(request.POST or None, instance=policy)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Saved policy {saved}.")
        return redirect("inventory:policy_list")
    return render(request, "inventory/policy_form.html", {"form": form, "policy": policy})


@role_required("admin")
@require_http_methods(["GET", "POST"])
def policy_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation, or explains why the policy must stay; POST deletes it."""
    policy = get_object_or_404(Policy, pk=pk)
    reason = why_policy_stays(policy)
    if request.method == "POST" and reason is None:
        try:
            policy.delete()
        except ProtectedError:
            # A server was given this policy between the check and the delete.
            reason = why_policy_stays(policy)
        else:
            messages.success(request, f"Deleted policy {policy}.")
            return redirect("inventory:policy_list")
    context = {"policy": policy, "reason": reason}
    status = 409 if request.method == "POST" else 200
    return render(request, "inventory/policy_confirm_delete.html", context, status=status)


def why_policy_stays(policy: Policy) -> str | None:
    """Why `policy` cannot be deleted, worded for the admin, or None when it can."""
    if policy.is_default:
        return "It is the default policy for new servers: make another policy the default first."
    names = list(policy.servers.values_list("name", flat=True)[: _NAMES_QUOTED + 1])
    if not names:
        return None
    count = policy.servers.count() if len(names) > _NAMES_QUOTED else len(names)
    quoted = ", ".join(names[:_NAMES_QUOTED])
    more = f" and {count - _NAMES_QUOTED} more" if count > _NAMES_QUOTED else ""
    return (
        f"It is used by {count} server{'s' if count != 1 else ''} ({quoted}{more}): "
        "give them another policy first."
    )


def _back(request: HttpRequest) -> str:
    """Where a form posted from a list page returns to: its `next` field when it is a path on
    this site (so filters and page survive), else the server list."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return reverse("inventory:server_list")
