"""`/healthz` (open: load balancers and compose health checks) and `/metrics` (a bearer token).

`/metrics` access: with POPC_METRICS_TOKEN set, a request needs `Authorization: Bearer
<token>`; with it empty, only clients on loopback may read it (behind a reverse proxy on the
same host every client looks like loopback: set a token there).
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from popcompliance.ops import metrics
from popcompliance.ops.health import health


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker are reachable, 503 otherwise; JSON either way."""
    report = health()
    healthy = all(value == "ok" for value in report.values())
    return JsonResponse(report, status=200 if healthy else 503)


def metrics_allowed(request: HttpRequest) -> bool:
    """Whether the request may read /metrics (see the module docstring)."""
    token = settings.POPC_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given_bytes, token_bytes = given.strip().encode(), token.encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, token_bytes)
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition, or 403."""
    if not metrics_allowed(request):
        return HttpResponse("Forbidden: a metrics token is required.\n", status=403)
    return HttpResponse(metrics.render(timezone.now()), content_type=metrics.CONTENT_TYPE)
