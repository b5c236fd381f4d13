"""/api/v1/waivers/: exceptions for a check of a server or of a tag's servers. Any signed-in
account reads; admins grant (POST) and revoke (POST .../revoke/). A waiver is never edited
nor deleted: it is the record of who accepted which risk until when (the audit log records
the grant and the revocation)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from popcompliance.accounts.roles import ADMIN
from popcompliance.api.fields import server_reference, tag_reference
from popcompliance.api.permissions import RolePermission
from popcompliance.api.schema import errors
from popcompliance.waivers import settle
from popcompliance.waivers.models import Waiver

WRITABLE = ("server", "tag", "check_id", "justification", "starts_at", "expires_at")


class WaiverSerializer(serializers.ModelSerializer):
    server = server_reference()
    tag = tag_reference()
    check_id = serializers.CharField(help_text="A check of the catalog (docs/checks.md).")
    starts_at = serializers.DateTimeField(
        required=False, help_text="ISO 8601; without an offset it is UTC. Default: now."
    )
    approver = serializers.SlugRelatedField(slug_field="username", read_only=True)
    revoked_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    state = serializers.SerializerMethodField(
        help_text="`in force`, `upcoming`, `expired` or `revoked`."
    )

    class Meta:
        model = Waiver
        fields = [
            "id",
            "server",
            "tag",
            "check_id",
            "justification",
            "approver",
            "starts_at",
            "expires_at",
            "state",
            "created_at",
            "revoked_at",
            "revoked_by",
        ]
        read_only_fields = ["created_at", "revoked_at"]

    def get_state(self, waiver: Waiver) -> str:
        return waiver.state(self.context.get("now") or timezone.now())

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The model's rules (known check, one scope, expiry within a year), errors under
        the field they concern."""
        attrs.setdefault("starts_at", self.context.get("now") or timezone.now())
        probe = Waiver(**{name: attrs.get(name) for name in WRITABLE})
        try:
            probe.clean_fields(exclude=["approver"])
            probe.clean()
            probe.validate_constraints()
        except DjangoValidationError as exc:
            found = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
            general = found.pop(NON_FIELD_ERRORS, []) + found.pop("", [])
            raise serializers.ValidationError(
                {**found, **({"non_field_errors": general} if general else {})}
            ) from exc
        return attrs


WAIVER_RULES = (
    "Exactly one of `server` or `tag`; `check_id` a check of the catalog; `justification` "
    "required; `expires_at` required, after `starts_at` (default now) and at most a year "
    "later. While it holds, the check shows as `excepted` and its alerts are held; when it "
    "ends, the check is judged again and, if it still fails, the owners are alerted once."
)


@extend_schema_view(
    list=extend_schema(summary="List waivers", responses={200: WaiverSerializer, **errors(401)}),
    retrieve=extend_schema(
        summary="One waiver", responses={200: WaiverSerializer, **errors(401, 404)}
    ),
    create=extend_schema(
        summary="Grant a waiver (admin)",
        description=WAIVER_RULES,
        responses={201: WaiverSerializer, **errors(400, 401, 403)},
    ),
)
class WaiverViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    permission_classes = [RolePermission]
    action_roles = {"create": ADMIN, "revoke": ADMIN}
    serializer_class = WaiverSerializer

    def get_queryset(self) -> QuerySet[Waiver]:
        related = ("tag", "approver", "revoked_by")
        return Waiver.objects.select_related(*related).order_by("pk")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": timezone.now()}

    # Writes and their audit entries commit together, or not at all.
    @transaction.atomic
    def perform_create(self, serializer: Any) -> None:
        waiver = serializer.save(approver=self.request.user)
        settle.apply([waiver], timezone.now())

    @extend_schema(
        summary="Revoke a waiver (admin)",
        description="It ends now; the record stays. Alerts it held go out within a minute "
        "if their check still fails.",
        request=None,
        responses={200: WaiverSerializer, **errors(400, 401, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    @transaction.atomic
    def revoke(self, request: Request, pk: str) -> Response:
        waiver, ended = settle.revoke(self.get_object().pk, request.user, timezone.now())
        if ended:
            body = {"detail": f"The waiver had already ended ({ended})."}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.get_serializer(waiver).data)
