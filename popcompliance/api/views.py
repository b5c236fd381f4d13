"""The API's endpoints: servers (list, detail, create, update, pause, resume, scan), alerts
(list by state, acknowledge) and the fleet summary. Reads need any signed-in account;
writes need the role in each view's `action_roles` (see permissions.py).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import transaction
from django.db.models import Count, Prefetch, QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from kombu.exceptions import OperationalError as BrokerError
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
from popcompliance.compliance.models import CertificateSighting, CheckState, ScanPurpose
from popcompliance.compliance.tasks import scan_server
from popcompliance.inventory.models import Server, ServerStatus

logger = logging.getLogger(__name__)

RECENT_CHANGES = 50


class QueueUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The task queue is unreachable; try again later."
    default_code = "queue_unavailable"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def _check_states() -> Prefetch:
    """Only what the `checks` column needs, in one query for the whole page."""
    states = CheckState.objects.only("server_id", "check_id", "status").order_by()
    return Prefetch("check_states", queryset=states)


@extend_schema_view(
    list=extend_schema(parameters=[s.ServerFilterSerializer]),
    create=extend_schema(responses={201: s.ServerWriteSerializer}),
    update=extend_schema(responses=s.ServerWriteSerializer),
    partial_update=extend_schema(responses=s.ServerWriteSerializer),
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

    def _filtered(self, servers: QuerySet[Server]) -> QuerySet[Server]:
        """Apply ?status, ?site, ?tag and ?search; an invalid value is a 400."""
        params = s.ServerFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        wanted = params.validated_data
        if "status" in wanted:
            servers = servers.filter(status=wanted["status"])
        if "site" in wanted:
            servers = servers.filter(site=wanted["site"])
        if "tag" in wanted:
            servers = servers.filter(tags__name=wanted["tag"])
        if "search" in wanted:
            servers = servers.filter(name__icontains=wanted["search"])
        return servers.order_by("name", "pk")

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        server = self.get_object()
        server.recent_changes = list(server.changes.all()[:RECENT_CHANGES])
        server.current_sightings = current_sightings(server)
        return Response(self.get_serializer(server).data)

    @extend_schema(request=None, responses={200: s.ServerSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        """Stop scanning the server (admin)."""
        server = self.get_object()
        server.pause(timezone.now())
        return Response(s.ServerSerializer(server).data)

    @extend_schema(request=None, responses={200: s.ServerSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        """Scan the server again, soon (admin)."""
        server = self.get_object()
        if server.paused:
            server.resume(timezone.now())
        return Response(s.ServerSerializer(server).data)

    @extend_schema(request=None, responses={202: s.ScanQueuedSerializer})
    @action(detail=True, methods=["post"])
    def scan(self, request: Request, pk: str) -> Response:
        """Queue a manual scan (operator); 202 with the task's id, sent after commit."""
        server = self.get_object()
        task_id = str(uuid.uuid4())
        try:
            transaction.on_commit(lambda: _enqueue_scan(server.pk, task_id), robust=False)
        except BrokerError as exc:
            # Outside a transaction on_commit runs at once, so the broker's failure shows here.
            logger.exception("could not queue a scan of %s", server)
            raise QueueUnavailable() from exc
        body = {"task_id": task_id, "server": server.pk, "purpose": ScanPurpose.MANUAL}
        return Response(body, status=status.HTTP_202_ACCEPTED)


def _enqueue_scan(server_id: int, task_id: str) -> None:
    scan_server.apply_async((server_id,), {"purpose": ScanPurpose.MANUAL}, task_id=task_id)


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


@extend_schema_view(list=extend_schema(parameters=[s.AlertFilterSerializer]))
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
        request=s.AcknowledgeSerializer,
        responses={200: s.AlertSerializer, 409: OpenApiResponse(description="Resolved.")},
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        """No reminders until `until` (or until resolved); 409 if it is resolved already."""
        now = timezone.now()
        alert = self.get_object()
        if alert.resolved_at is not None:
            raise Conflict("The alert is resolved: nothing to acknowledge.")
        form = s.AcknowledgeSerializer(data=request.data, context={"now": now})
        form.is_valid(raise_exception=True)
        data = form.validated_data
        alert.acknowledge(request.user, data["comment"], data.get("until"), now=now)
        return Response(s.AlertSerializer(alert, context={"now": now}).data)


class SummaryView(APIView):
    """The fleet at a glance: servers by status, servers failing each check, open alerts."""

    permission_classes = [RolePermission]

    @extend_schema(responses=s.SummarySerializer)
    def get(self, request: Request) -> Response:
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
