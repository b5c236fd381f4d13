"""`manage.py digest`: read today's daily digests, or queue them now (alerts/digest.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from popcompliance.alerts.digest import (
    build_digests,
    digest_context,
    digest_day,
    digest_recipients,
    queue_digests,
)
from popcompliance.alerts.messages import render
from popcompliance.alerts.models import NotificationKind


class Command(BaseCommand):
    help = (
        "Queue today's daily digests now, whatever POPC_DIGEST_HOUR says (still one a day per "
        "recipient), or print them with --preview."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--to",
            action="append",
            metavar="ADDRESS",
            help="Only this recipient (repeat for more). Default: POPC_DIGEST_RECIPIENTS, or "
            "everyone who gets alerts.",
        )
        parser.add_argument(
            "--preview", action="store_true", help="Print the digests; queue nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        recipients = options["to"] or digest_recipients()
        if options["preview"]:
            self.preview(recipients, now)
            return
        queued = queue_digests(recipients, now)
        self.stdout.write(
            f"{queued} digest(s) queued for {len(recipients)} recipient(s); the workers send "
            "them within a minute. Recipients with nothing to report, or whose digest of "
            "today is already queued, get none."
        )

    def preview(self, recipients: list[str], now: datetime) -> None:
        day = digest_day(now)
        for to, digest in build_digests(recipients, now).items():
            if digest.is_empty():
                self.stdout.write(f"To: {to}\n(nothing to report: no digest)\n")
                continue
            subject, text, _ = render(NotificationKind.DIGEST, digest_context(digest, day, now))
            self.stdout.write(f"To: {to}\nSubject: {subject}\n\n{text}")
