"""/api/v1/channels/: the alert channels, for admins only (reads too: even redacted, a
channel names where alerts go). The URL is write-only, as the monitoring passwords are: it is
accepted, checked as Apprise reads it, stored encrypted and never returned; `url_redacted`
shows where it points ("jsons://hooks.example.com/…")."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from popcompliance.accounts.roles import ADMIN, has_role
from popcompliance.alerts.channels import check_url
from popcompliance.alerts.forms import URL_HELP
from popcompliance.alerts.models import Channel, ChannelScope
from popcompliance.api.schema import errors
from popcompliance.inventory.models import Tag


class AdminsOnly(BasePermission):
    """Admins read and write; anyone else signed in gets 403, anonymous requests 401."""

    message = "This needs the Admin role."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated) and has_role(user, ADMIN)


class ChannelSerializer(serializers.ModelSerializer):
    url = serializers.CharField(
        write_only=True,
        required=False,
        max_length=2000,
        style={"input_type": "password"},
        help_text=f"{URL_HELP} Required when creating; omitted on an update: the stored one "
        "is kept.",
    )
    tag = serializers.SlugRelatedField(
        slug_field="name",
        queryset=Tag.objects.all(),
        required=False,
        allow_null=True,
        help_text="The tag's name, for scope `tag`.",
    )
    owner_email = serializers.EmailField(
        required=False, allow_blank=True, help_text="For scope `owner`."
    )

    class Meta:
        model = Channel
        fields = [
            "id",
            "name",
            "url",
            "url_redacted",
            "service",
            "scope",
            "tag",
            "owner_email",
            "enabled",
            "broken_reason",
            "broken_at",
        ]
        read_only_fields = ["url_redacted", "service", "broken_reason", "broken_at"]

    def validate_url(self, url: str) -> str:
        try:
            check_url(url)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return url.strip()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        current = self.instance
        if current is None and not attrs.get("url"):
            raise serializers.ValidationError({"url": "Give the channel's Apprise URL."})
        scope = attrs.get("scope", current.scope if current else None)
        tag = attrs.get("tag", current.tag if current else None)
        owner = attrs.get("owner_email", current.owner_email if current else "")
        if scope == ChannelScope.TAG and tag is None:
            raise serializers.ValidationError({"tag": "Scope `tag` needs a tag."})
        if scope == ChannelScope.OWNER and not owner:
            raise serializers.ValidationError({"owner_email": "Scope `owner` needs an owner."})
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Channel:
        return self._save(Channel(), validated_data)

    def update(self, instance: Channel, validated_data: dict[str, Any]) -> Channel:
        return self._save(instance, validated_data)

    def _save(self, channel: Channel, data: dict[str, Any]) -> Channel:
        url = data.pop("url", None)
        scope = data.pop("scope", channel.scope)
        tag = data.pop("tag") if "tag" in data else channel.tag
        owner = data.pop("owner_email", channel.owner_email)
        for name, value in data.items():
            setattr(channel, name, value)
        channel.set_scope(scope, tag, owner)
        if url:
            channel.set_url(url)
        channel.save()
        return channel


@extend_schema_view(
    list=extend_schema(
        summary="List the alert channels (admin)",
        responses={200: ChannelSerializer, **errors(401, 403)},
    ),
    retrieve=extend_schema(
        summary="One alert channel (admin)",
        responses={200: ChannelSerializer, **errors(401, 403, 404)},
    ),
    create=extend_schema(
        summary="Add an alert channel (admin)",
        description="`url` is checked as Apprise reads it, stored encrypted, never returned.",
        responses={201: ChannelSerializer, **errors(400, 401, 403)},
    ),
    update=extend_schema(
        summary="Replace an alert channel's settings (admin)",
        responses={200: ChannelSerializer, **errors(400, 401, 403, 404)},
    ),
    partial_update=extend_schema(
        summary="Change some of an alert channel's settings (admin)",
        description="Without `url`, the stored URL is kept.",
        responses={200: ChannelSerializer, **errors(400, 401, 403, 404)},
    ),
    destroy=extend_schema(
        summary="Delete an alert channel and the messages waiting for it (admin)",
        responses={204: None, **errors(401, 403, 404)},
    ),
)
class ChannelViewSet(viewsets.ModelViewSet):
    """Alert channels: Apprise URLs alerts go to besides email."""

    permission_classes = [AdminsOnly]
    serializer_class = ChannelSerializer
    queryset = Channel.objects.select_related("tag").order_by("name")
