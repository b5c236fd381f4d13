"""The API's endpoints: servers (list, detail, create, update, pause, resume, scan), alerts
(list by state, acknowledge) and the fleet summary. Reads need any signed-in account;
writes need the role in each view's `action_roles` (see permissions.py).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from functools import cached_property
from typing import Any

from django.db import transaction
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from popcompliance.accounts.roles import ADMIN, OPERATOR
from popcompliance.alerts.models import Alert, AlertState
from popcompliance.api import serializers as s
from popcompliance.api.permissions import RolePermission
from popcompliance.api.schema import ALERT_RESOLVED, QUEUE_UNAVAILABLE, SERVER_EXAMPLE, errors
from popcompliance.compliance import history
from popcompliance.compliance.models import CertificateSighting, CheckState, ScanPurpose
from popcompliance.compliance.tasks import ScanNotQueued, TooManyScanRequests, request_scan
from popcompliance.inventory.models import Server, ServerStatus
from popcompliance.waivers.effect import waived_pairs

RECENT_CHANGES = 50


class QueueUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = QUEUE_UNAVAILABLE
    default_code = "queue_unavailable"


class TooManyRequests(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "too_many_requests"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


EDIT_RESCHEDULES = (
    "A new host, service name, list of protocols, port, policy or monitoring account is "
    "scanned at the next dispatch; a shorter `scan_interval` brings the next scan forward to "
    "at most one new interval from now, as in the web form."
)


def _check_states() -> Prefetch:
    """Only what the `checks` column needs, in one query for the whole page."""
    states = CheckState.objects.only("server_id", "check_id", "status").order_by()
    return Prefetch("check_states", queryset=states)


@extend_schema_view(
    list=extend_schema(
        summary="List servers",
        description="Filtered by `?status`, `?site`, `?tag` and `?search` (part of the name), "
        "by name, 50 a page; `?as_of=` gives statuses and checks as they were at a past "
        "moment. `checks` is the worst status of each check over the server's "
        "addresses; `compliant` is null while the server is new, unknown or paused.",
        parameters=[s.ServerFilterSerializer],
        examples=[SERVER_EXAMPLE],
        responses={200: s.ServerSerializer, **errors(400, 401)},
    ),
    retrieve=extend_schema(
        summary="One server in detail",
        description="Its settings, each check on each address with the remediation, its "
        f"addresses, the certificates it serves now and its last {RECENT_CHANGES} changes.",
        responses={200: s.ServerDetailSerializer, **errors(401, 404)},
    ),
    create=extend_schema(
        summary="Add a server (admin)",
        description="It is scanned at the next dispatch (within a minute).",
        responses={201: s.ServerWriteSerializer, **errors(400, 401, 403)},
    ),
    update=extend_schema(
        summary="Replace a server's settings (admin)",
        description=EDIT_RESCHEDULES,
        responses={200: s.ServerWriteSerializer, **errors(400, 401, 403, 404)},
    ),
    partial_update=extend_schema(
        summary="Change some of a server's settings (admin)",
        description=EDIT_RESCHEDULES,
        responses={200: s.ServerWriteSerializer, **errors(400, 401, 403, 404)},
    ),
)
class ServerViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Servers: list (filtered, paginated), one server in detail, create and update (admin),
    pause and resume (admin), and queue a manual scan (operator)."""

    permission_classes = [RolePermission]
    action_roles = {"scan": OPERATOR, "pause": ADMIN, "resume": ADMIN}
    queryset = Server.objects.all()

    def get_serializer_class(self) -> type[Any]:
        if self.action in ("create", "update", "partial_update"):
            return s.ServerWriteSerializer
        if self.action == "retrieve":
            return s.ServerDetailSerializer
        if self.action == "scan":
            return s.ScanQueuedSerializer
        return s.ServerSerializer

    def get_queryset(self) -> QuerySet[Server]:
        if self.action == "list":
            return self._filtered(Server.objects.prefetch_related(_check_states()))
        if self.action == "retrieve":
            return Server.objects.select_related("policy").prefetch_related(
                "tags", "addresses", _check_states_full()
            )
        return Server.objects.all()

    @cached_property
    def _params(self) -> dict[str, Any]:
        """The list's query parameters, validated once per request; an invalid value is a
        400."""
        params = s.ServerFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return params.validated_data  # type: ignore[no-any-return]

    def _filtered(self, servers: QuerySet[Server]) -> QuerySet[Server]:
        """Apply ?status (today's), ?site, ?tag and ?search."""
        wanted = self._params
        if "status" in wanted and wanted.get("as_of") is None:
            servers = servers.filter(status=wanted["status"])
        if "site" in wanted:
            servers = servers.filter(site=wanted["site"])
        if "tag" in wanted:
            servers = servers.filter(tags__name=wanted["tag"])
        if "search" in wanted:
            servers = servers.filter(name__icontains=wanted["search"])
        return servers.order_by("name", "pk")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        when = self._params.get("as_of")
        if when is None:
            return self._list_now()
        return self._list_as_of(when)

    def _list_now(self) -> Response:
        """A page of servers, with the waivers in force over the whole page in one query
        (their checks show as excepted)."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        servers = list(page or [])
        context = self._with_waivers([server.pk for server in servers])
        data = self.get_serializer(servers, many=True, context=context).data
        return self.get_paginated_response(data)

    def _list_as_of(self, when: datetime) -> Response:
        """The list as it was at `when`: statuses and checks from the history (?status
        filters on the status then)."""
        servers = self._filtered(Server.objects.all())
        fleet = history.fleet_as_of(when, servers)
        status_wanted = self._params.get("status")
        ids = [
            pk
            for pk in servers.values_list("pk", flat=True)
            if pk in fleet.statuses and status_wanted in (None, fleet.statuses[pk])
        ]
        page_ids = self.paginate_queryset(ids) or []
        page = Server.objects.filter(pk__in=page_ids)
        found = page.in_bulk()
        checks = history.worst_by_check(history.checks_as_of(when, page))
        shown = []
        for pk in page_ids:
            server = found[pk]
            server.status = fleet.statuses[pk]  # shown, never saved
            shown.append(server)
        context = self.get_serializer_context() | {"as_of_checks": checks}
        return self.get_paginated_response(
            s.ServerSerializer(shown, many=True, context=context).data
        )

    # Writes and their audit entries commit together, or not at all.
    @transaction.atomic
    def perform_create(self, serializer: Any) -> None:
        serializer.save()

    @transaction.atomic
    def perform_update(self, serializer: Any) -> None:
        serializer.save()

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        server = self.get_object()
        server.recent_changes = list(server.changes.all()[:RECENT_CHANGES])
        server.current_sightings = current_sightings(server)
        context = self._with_waivers([server.pk])
        return Response(self.get_serializer(server, context=context).data)

    def _with_waivers(self, server_ids: list[int]) -> dict[str, Any]:
        waived = waived_pairs(server_ids, timezone.now())
        return {**self.get_serializer_context(), "waived": waived}

    @extend_schema(
        summary="Pause a server (admin)",
        request=None,
        responses={200: s.ServerSerializer, **errors(401, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    @transaction.atomic
    def pause(self, request: Request, pk: str) -> Response:
        """Stop scanning the server; its status stays paused until it is resumed."""
        server = self.get_object()
        server.pause(timezone.now())
        return Response(s.ServerSerializer(server).data)

    @extend_schema(
        summary="Resume a paused server (admin)",
        request=None,
        responses={200: s.ServerSerializer, **errors(401, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    @transaction.atomic
    def resume(self, request: Request, pk: str) -> Response:
        """Scan the server again at the next dispatch; its status is unknown (or new) until
        that scan settles it."""
        server = self.get_object()
        if server.paused:
            server.resume(timezone.now())
        return Response(s.ServerSerializer(server).data)

    @extend_schema(
        summary="Scan a server now (operator)",
        request=None,
        responses={202: s.ScanQueuedSerializer, **errors(401, 403, 404, 429, 503)},
    )
    @action(detail=True, methods=["post"])
    def scan(self, request: Request, pk: str) -> Response:
        """Queue a manual scan, as "Scan now" on the dashboard does. While a scan of the
        server is queued or running the request joins it (`joined`). The result shows in the
        server's `last_scan_at` and checks once a worker has run it; 429 past the account's
        POPC_SCAN_REQUESTS_PER_MINUTE, 503 when the task queue is unreachable."""
        server = self.get_object()
        try:
            requested = request_scan(server, request.user)
        except TooManyScanRequests as exc:
            raise TooManyRequests(str(exc)) from exc
        except ScanNotQueued as exc:
            raise QueueUnavailable() from exc
        body = {
            "task_id": requested.task_id,
            "server": server.pk,
            "purpose": ScanPurpose.MANUAL,
            "joined": requested.joined,
            "detail": requested.message,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


def _check_states_full() -> Prefetch:
    return Prefetch("check_states", queryset=CheckState.objects.order_by("check_id", "address"))


def current_sightings(server: Server) -> list[CertificateSighting]:
    """The certificates served now: at each address and port, the one seen last (one query)."""
    sightings = server.certificate_sightings.select_related("certificate").order_by(
        "address", "port", "-last_seen_at"
    )
    newest: dict[tuple[str, int], CertificateSighting] = {}
    for sighting in sightings:
        newest.setdefault((sighting.address, sighting.port), sighting)
    return list(newest.values())


@extend_schema_view(
    list=extend_schema(
        summary="List alerts",
        description="By state (`?state=open|acknowledged|resolved`, default open), newest "
        "first, 50 a page. An alert covers one check of one server over all its addresses.",
        parameters=[s.AlertFilterSerializer],
        responses={200: s.AlertSerializer, **errors(400, 401)},
    ),
    retrieve=extend_schema(
        summary="One alert", responses={200: s.AlertSerializer, **errors(401, 404)}
    ),
)
class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Alerts by state (`?state=open|acknowledged|resolved`, default open), one alert, and
    acknowledging one (operator)."""

    permission_classes = [RolePermission]
    action_roles = {"acknowledge": OPERATOR}
    serializer_class = s.AlertSerializer
    queryset = Alert.objects.select_related("server", "acknowledged_by")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": timezone.now()}

    def get_queryset(self) -> QuerySet[Alert]:
        alerts = super().get_queryset()
        if self.action != "list":
            return alerts
        params = s.AlertFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        state = params.validated_data.get("state", AlertState.OPEN)
        order = ("-resolved_at", "-id") if state == AlertState.RESOLVED else ("-opened_at", "-id")
        return alerts.in_state(state, timezone.now()).order_by(*order)

    @extend_schema(
        summary="Acknowledge an alert (operator)",
        request=s.AcknowledgeSerializer,
        responses={200: s.AlertSerializer, **errors(400, 401, 403, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        """No reminders until `until` (or until resolved); 409 if it is resolved already."""
        now = timezone.now()
        alert = self.get_object()
        if alert.resolved_at is not None:
            raise Conflict(ALERT_RESOLVED)
        form = s.AcknowledgeSerializer(data=request.data, context={"now": now})
        form.is_valid(raise_exception=True)
        data = form.validated_data
        alert.acknowledge(request.user, data["comment"], data.get("until"), now=now)
        return Response(s.AlertSerializer(alert, context={"now": now}).data)


class SummaryView(APIView):
    """The fleet at a glance: servers by status, servers failing each check, open alerts."""

    permission_classes = [RolePermission]

    @extend_schema(
        summary="The fleet at a glance",
        description="`?as_of=` gives it as it was at a past moment; `open_alerts` then counts "
        "the alerts opened by then and not yet resolved.",
        parameters=[s.AsOfSerializer],
        responses={200: s.SummarySerializer, **errors(400, 401)},
    )
    def get(self, request: Request) -> Response:
        params = s.AsOfSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        when = params.validated_data.get("as_of")
        if when is not None:
            return Response(s.SummarySerializer(_summary_as_of(when)).data)
        rows = Server.objects.order_by().values_list("status").annotate(n=Count("pk"))
        found = dict(rows)
        by_status = {value: found.get(value, 0) for value in ServerStatus.values}
        failing = (
            CheckState.objects.filter(status="fail")
            .order_by("check_id")
            .values_list("check_id")
            .annotate(servers=Count("server", distinct=True))
        )
        body = {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "failing_checks": dict(failing),
            "open_alerts": Alert.objects.open().count(),
        }
        return Response(s.SummarySerializer(body).data)


def _summary_as_of(when: datetime) -> dict[str, Any]:
    """The summary as it was at `when`: statuses and failing checks from the history, the
    alerts opened by then and not yet resolved."""
    fleet = history.fleet_as_of(when, Server.objects.all())
    counted = Counter(fleet.statuses.values())
    failing: dict[str, set[int]] = {}
    for server_id, checks in fleet.problems.items():
        for check in checks:
            # The verdict, waived or not, as today's summary counts CheckState fails.
            if check.raw_status == "fail":
                failing.setdefault(check.check_id, set()).add(server_id)
    unresolved = Q(resolved_at__isnull=True) | Q(resolved_at__gt=when)
    return {
        "total": len(fleet.statuses),
        "by_status": {value: counted.get(value, 0) for value in ServerStatus.values},
        "failing_checks": {check_id: len(ids) for check_id, ids in sorted(failing.items())},
        "open_alerts": Alert.objects.filter(unresolved, opened_at__lte=when).count(),
    }
