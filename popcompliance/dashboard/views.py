"""The dashboard's pages: fleet overview, server page (with history, comparison and "scan
now"), and certificates. Every view needs a signed-in user; "scan now" needs an operator.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Max
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from popcompliance.accounts.roles import OPERATOR, role_required
from popcompliance.compliance import history
from popcompliance.compliance.models import Certificate, ScanRun
from popcompliance.compliance.tasks import ScanNotQueued, TooManyScanRequests, request_scan
from popcompliance.dashboard import queries
from popcompliance.dashboard.catalog import CHECK_GROUPS, CLEARTEXT_LABEL
from popcompliance.dashboard.compare import compare
from popcompliance.dashboard.detail import newest_run_after, scan_result, server_context
from popcompliance.dashboard.forms import AsOfForm, CertificateFilter, ServerFilter
from popcompliance.inventory.models import Server, Tag
from popcompliance.maintenance.windows import fleet_panel
from popcompliance.ops import heartbeats

SERVERS_PER_PAGE = 50
CHANGES_PER_PAGE = 50
CERTIFICATES_PER_PAGE = 50


def _server(pk: int) -> Server:
    """A server with what every server page shows about it: its policy and tags."""
    servers = Server.objects.select_related("policy").prefetch_related("tags")
    return get_object_or_404(servers, pk=pk)


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    """Fleet counts, the servers × checks matrix (filtered, sorted, paginated), the trend,
    open alerts, maintenance windows on now or soon, expiring certificates, the liveness of
    beat and workers, and whether email is leaving. `?as_of=<day>` shows the counts and the
    matrix as they were at the end of that day instead, read-only."""
    now = timezone.now()
    as_of = AsOfForm(request.GET or None)
    tags = list(Tag.objects.values_list("name", flat=True))
    form = ServerFilter(request.GET or None, sites=queries.sites(), tags=tags)
    filters = form.filters()
    context = {
        "form": form,
        "as_of_form": as_of,
        "filtered": bool(filters),
        "groups": CHECK_GROUPS,
        "cleartext_label": CLEARTEXT_LABEL,
        "now": now,
    }
    when = as_of.moment
    if when is not None:
        return render(request, "dashboard/overview.html", context | _as_of(request, filters, when))
    servers = queries.filtered_servers(filters).prefetch_related("tags")
    page = Paginator(servers, SERVERS_PER_PAGE).get_page(request.GET.get("page"))
    counts = queries.status_counts()
    context |= {
        "counts": counts,
        "no_servers": not any(counts.values()),
        "cleartext": queries.cleartext_counts(),
        "page": page,
        "rows": queries.matrix(page),
        "trend": queries.trend(now),
        "expiring": queries.expiring_certificates_panel(now),
        "open_alerts": queries.open_alerts(now),
        "maintenance": fleet_panel(now),
        "liveness": heartbeats.liveness(now),
        "email_health": queries.email_health_banner(now),
    }
    return render(request, "dashboard/overview.html", context)


def _as_of(request: HttpRequest, filters: dict[str, Any], when: datetime) -> dict[str, Any]:
    """The overview's counts and matrix as they were at `when`, from the history."""
    fleet = history.fleet_as_of(when, Server.objects.all())
    ids = queries.filtered_server_ids_as_of(filters, fleet)
    page = Paginator(ids, SERVERS_PER_PAGE).get_page(request.GET.get("page"))
    found = Server.objects.filter(pk__in=list(page)).prefetch_related("tags").in_bulk()
    counts = history.count_statuses(fleet.statuses)
    return {
        "as_of": when,
        "as_of_day": when.date().isoformat(),
        "counts": counts,
        "no_servers": not any(counts.values()),
        "cleartext": queries.cleartext_counts_as_of(fleet),
        "page": page,
        "rows": queries.matrix([found[pk] for pk in page], fleet),
    }


@login_required
def server_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Everything about one server; `?scanning=<run id>` shows the progress of a scan that
    was started after that run, and `?scanned=<run id>` what that scan changed."""
    server = _server(pk)
    context = server_context(server, timezone.now())
    context["scanning"] = _run_id(request.GET.get("scanning"))
    context["scanned"] = scan_result(server, _run_id(request.GET.get("scanned")))
    return render(request, "dashboard/server.html", context)


def _run_id(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@login_required
def server_history(request: HttpRequest, pk: int) -> HttpResponse:
    """Every status change of the server's checks, newest first, paginated."""
    server = _server(pk)
    page = Paginator(server.changes.all(), CHANGES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "dashboard/history.html", {"server": server, "page": page})


@login_required
def server_compare(request: HttpRequest, pk: int) -> HttpResponse:
    """What changed between two scans (`?a=<run id>&b=<run id>`; default: the last two)."""
    server = _server(pk)
    runs = list(server.scan_runs.defer("facts")[:50])
    chosen = [_run_id(request.GET.get(k)) for k in ("a", "b")]
    if not all(chosen):
        # The last two scans from the newest one's location: two locations differ by design.
        same = [run for run in runs if run.location == runs[0].location] if runs else []
        chosen = [run.pk for run in same[1::-1]]
    picked = {run.pk: run for run in server.scan_runs.filter(pk__in=chosen)}
    if len(chosen) == 2 and not all(pk in picked for pk in chosen):
        raise Http404("No such scan of this server (it may have been pruned).")
    comparison = compare(*picked.values()) if len(picked) == 2 else None
    context = {"server": server, "runs": runs, "chosen": chosen, "comparison": comparison}
    return render(request, "dashboard/compare.html", context)


@role_required(OPERATOR)
@require_POST
def scan_now(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue a manual scan, then show the server page following its progress."""
    server = get_object_or_404(Server, pk=pk)
    after = server.scan_runs.aggregate(last=Max("pk"))["last"] or 0
    try:
        requested = request_scan(server, request.user)
    except TooManyScanRequests as exc:
        messages.error(request, str(exc))
        return redirect(server)
    except ScanNotQueued:
        messages.error(request, "Could not queue the scan: the task queue is unreachable.")
        return redirect(server)
    messages.info(request, f"{server}: {requested.message}")
    return redirect(f"{server.get_absolute_url()}?scanning={after}#scan-progress")


@login_required
def scan_status(request: HttpRequest, pk: int) -> JsonResponse:
    """Polled by static/js/server.js: whether a scan newer than run `after` is stored."""
    server = get_object_or_404(Server.objects.only("pk", "status"), pk=pk)
    run = newest_run_after(server.pk, _run_id(request.GET.get("after")) or 0)
    if run is None:
        return JsonResponse({"done": False})
    return JsonResponse({"done": True, "run": _run_json(run), "server_status": server.status})


def _run_json(run: ScanRun) -> dict[str, object]:
    return {
        "id": run.pk,
        "purpose": run.purpose,
        "finished_at": run.finished_at.isoformat(),
        "compliant": run.compliant,
        "error": run.error,
    }


@login_required
def certificates(request: HttpRequest) -> HttpResponse:
    """Every certificate seen in the fleet, soonest expiry first, with where it is served."""
    form = CertificateFilter(request.GET or None)
    found = queries.certificates(form.filters())
    page = Paginator(found, CERTIFICATES_PER_PAGE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "now": timezone.now()}
    return render(request, "dashboard/certificates.html", context)


@login_required
def certificate(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(Certificate, pk=pk)
    sightings = found.sightings.select_related("server").order_by("server__name", "address")
    context = {"certificate": found, "sightings": sightings, "now": timezone.now()}
    return render(request, "dashboard/certificate.html", context)
