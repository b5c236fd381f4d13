"""/api/v1/reports/: a compliance report as JSON, and /api/v1/reports/{pdf,csv,xlsx}/ as a file.
Any signed-in account (token or session) reads them. Query: `as_of` (YYYY-MM-DD, default
today), `scope` (all, site:NAME, tag:NAME, policy:NAME), `profile` (a TLS profile's name)."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from popcompliance.api.permissions import RolePermission
from popcompliance.api.schema import errors
from popcompliance.reports.content import FailingCheck, Report, build_report
from popcompliance.reports.formats import FORMATS
from popcompliance.reports.params import (
    SCOPE_HELP,
    ReportParams,
    check_day,
    parse_day,
    parse_profile,
    parse_scope,
)
from popcompliance.reports.views import download

PARAMETERS = [
    OpenApiParameter("as_of", OpenApiTypes.DATE, description="The end of this day (default: now)."),
    OpenApiParameter("scope", str, description=f"{SCOPE_HELP} (default: all)."),
    OpenApiParameter("profile", str, description="Only the servers judged by this TLS profile."),
]


def params_of(request: Request) -> ReportParams:
    """The query's report; a 400 naming each bad parameter otherwise."""
    query, now = request.query_params, timezone.now()
    problems: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    readers = {
        "as_of": lambda text: check_day(parse_day(text), now) if text else timezone.localdate(now),
        "scope": parse_scope,
        "profile": parse_profile,
    }
    for name, read in readers.items():
        try:
            values[name] = read(query.get(name, "").strip())
        except ValueError as exc:
            problems[name] = [str(exc)]
    if problems:
        raise ValidationError(problems)
    return ReportParams(values["as_of"], values["scope"], values["profile"])


class ReportFailingCheckSerializer(serializers.Serializer):
    check_id = serializers.CharField()
    title = serializers.CharField()
    location = serializers.CharField()
    address = serializers.CharField(help_text='"" when about the name.')
    since = serializers.DateTimeField(allow_null=True)
    evidence = serializers.CharField()
    transcript = serializers.ListField(
        child=serializers.CharField(),
        help_text="The probe's conversation the finding rests on (C: sent, S: received, "
        "# our notes; secrets redacted), as the PDF quotes it; empty when none is kept.",
    )
    remediation = serializers.SerializerMethodField()

    def get_remediation(self, check: FailingCheck) -> str:
        return str(self.context["remediations"][check.remediation])


class ReportFailingServerSerializer(serializers.Serializer):
    name = serializers.CharField(source="server.name")
    host = serializers.CharField(source="server.host")
    site = serializers.CharField(source="server.site")
    status = serializers.CharField()
    checks = ReportFailingCheckSerializer(many=True)


class ReportCertificateSerializer(serializers.Serializer):
    name = serializers.CharField()
    issuer = serializers.CharField()
    not_after = serializers.DateTimeField()
    days_left = serializers.IntegerField()
    fingerprint = serializers.CharField()
    servers = serializers.ListField(child=serializers.CharField())


class ReportExceptionSerializer(serializers.Serializer):
    applies_to = serializers.CharField()
    check_id = serializers.CharField()
    justification = serializers.CharField()
    approver = serializers.CharField()
    starts_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class ReportSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(source="moment", help_text="The instant described.")
    scope = serializers.CharField(source="params.scope")
    profile = serializers.CharField(source="params.profile.name", allow_null=True, default=None)
    total = serializers.IntegerField()
    by_status = serializers.DictField(source="counts", child=serializers.IntegerField())
    excepted = serializers.IntegerField(
        help_text="Servers with any check under an exception (by_status.excepted: those whose "
        "only failures are excepted)."
    )
    failing = ReportFailingServerSerializer(many=True)
    exceptions = ReportExceptionSerializer(many=True)
    certificates = ReportCertificateSerializer(many=True, help_text="Expiring within 60 days.")


def as_json(report: Report) -> dict[str, Any]:
    """The report, each failing check with its remediation's text (the PDF numbers them)."""
    texts = {remedy.number: remedy.text for remedy in report.remediations}
    return dict(ReportSerializer(report, context={"remediations": texts}).data)


class FileRenderer(BaseRenderer):
    """Lets a client ask for the file's own type (Accept: application/pdf) without a 406;
    errors then go out as JSON all the same."""

    media_type = "*/*"
    format = "file"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> bytes:
        return json.dumps(data).encode()


class ReportView(APIView):
    permission_classes = [RolePermission]

    @extend_schema(
        operation_id="reports_retrieve",
        summary="A compliance report as of a day",
        parameters=PARAMETERS,
        responses={200: ReportSerializer, **errors(400, 401)},
    )
    def get(self, request: Request) -> Response:
        return Response(as_json(build_report(params_of(request), timezone.now())))


class ReportFileView(APIView):
    permission_classes = [RolePermission]
    renderer_classes = [JSONRenderer, FileRenderer]

    @extend_schema(
        operation_id="reports_file_retrieve",
        summary="A compliance report as a PDF, CSV or XLSX file",
        parameters=[
            OpenApiParameter("file_format", str, OpenApiParameter.PATH, enum=sorted(FORMATS)),
            *PARAMETERS,
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The file, as an attachment."
            ),
            **errors(400, 401, 404),
        },
    )
    def get(self, request: Request, file_format: str) -> HttpResponse:
        return download(params_of(request), file_format, timezone.now())
