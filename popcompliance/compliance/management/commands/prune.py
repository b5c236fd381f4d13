"""`manage.py prune`: delete rows past their retention (see compliance/retention.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from popcompliance.compliance.retention import prune


class Command(BaseCommand):
    help = "Delete scan runs, changes and heartbeats past their retention."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = prune(timezone.now())
        self.stdout.write(", ".join(f"{kind}: {count} deleted" for kind, count in deleted.items()))
