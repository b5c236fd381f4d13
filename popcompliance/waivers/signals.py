"""A server joining or leaving a tag gains or loses that tag's waivers at once: its stored
status (which lists filter and count) is judged again, as a grant or a revocation does."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed
from django.dispatch import receiver
from django.utils import timezone

from popcompliance.inventory.models import Server, Tag
from popcompliance.waivers import settle
from popcompliance.waivers.models import Waiver


@receiver(m2m_changed, sender=Server.tags.through)
def _tags_changed(
    sender: Any,
    instance: Server | Tag,
    action: str,
    reverse: bool,
    pk_set: set[int] | None,
    **_: Any,
) -> None:
    if action == "pre_clear":
        # Which servers a tag loses is known only before it loses them.
        if reverse:
            instance._cleared_servers = list(instance.servers.values_list("pk", flat=True))  # type: ignore[union-attr]
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    now = timezone.now()
    if not Waiver.objects.in_force(now).filter(tag__isnull=False).exists():
        return
    if reverse:
        servers = getattr(instance, "_cleared_servers", None) if action == "post_clear" else pk_set
    else:
        servers = [instance.pk]
    settle.resettle(servers or [], now)
