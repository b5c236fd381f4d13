"""GET /api/v1/audit/: the audit log for admin tokens, newest first, filtered like the page."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from popcompliance.accounts.roles import ADMIN, has_role
from popcompliance.api.schema import errors
from popcompliance.audit.forms import OBJECT_TYPE_CHOICES, filtered_entries
from popcompliance.audit.models import Action, AuditEntry, Source


class AdminOnly(BasePermission):
    """Admins only, reading included: the log names every account and address. Requests
    without credentials get 401 from the token authenticator, other roles 403."""

    message = "This needs the Admin role."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(
            request.user and request.user.is_authenticated and has_role(request.user, ADMIN)
        )


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(
        source="actor_label", help_text='The username then, or e.g. "command import_servers".'
    )
    actor_id = serializers.IntegerField(
        allow_null=True,
        help_text="The account; null for commands and the system (it may have been deleted since).",
    )
    source = serializers.ChoiceField(choices=Source.choices)
    action = serializers.ChoiceField(choices=Action.choices)
    changes = serializers.JSONField(
        help_text='{"field": [old, new]}: names rather than ids; secrets only as "(set)", '
        '"(changed)", "(removed)" or "(none)".'
    )

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "actor",
            "actor_id",
            "source",
            "remote_address",
            "action",
            "object_type",
            "object_id",
            "object_label",
            "changes",
        ]


class AuditFilterSerializer(serializers.Serializer):
    """The list's query parameters, all optional."""

    actor = serializers.CharField(required=False, help_text="Exactly as recorded (a username).")
    object_type = serializers.ChoiceField(choices=OBJECT_TYPE_CHOICES, required=False)
    object_id = serializers.IntegerField(required=False)
    action = serializers.ChoiceField(choices=Action.choices, required=False)
    since = serializers.DateField(required=False, help_text="From this day (UTC), included.")
    until = serializers.DateField(required=False, help_text="Until this day (UTC), included.")
    q = serializers.CharField(required=False, help_text="Part of the object's name.")


@extend_schema_view(
    list=extend_schema(
        summary="The audit log (admin)",
        description="Who changed servers, policies, tags, users and API tokens, when, from "
        "where and what, newest first, 50 a page. Scans are not in it (see a server's history).",
        parameters=[AuditFilterSerializer],
        responses={200: AuditEntrySerializer, **errors(400, 401, 403)},
        tags=["audit"],
    )
)
class AuditEntryViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    permission_classes = [AdminOnly]
    serializer_class = AuditEntrySerializer

    def get_queryset(self) -> QuerySet[AuditEntry]:
        params = AuditFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return filtered_entries(params.validated_data)
