"""Fields several endpoints share: what a maintenance window or a waiver applies to."""

from __future__ import annotations

from rest_framework import serializers

from popcompliance.inventory.models import Server, Tag


def server_reference() -> serializers.PrimaryKeyRelatedField:
    """A server by its id, optional (the scope may be a tag instead)."""
    return serializers.PrimaryKeyRelatedField(
        queryset=Server.objects.all(), required=False, allow_null=True, help_text="A server's id."
    )


def tag_reference() -> serializers.SlugRelatedField:
    """A tag by its name, optional: every server carrying it."""
    return serializers.SlugRelatedField(
        slug_field="name",
        queryset=Tag.objects.all(),
        required=False,
        allow_null=True,
        help_text="A tag's name: every server with it.",
    )
