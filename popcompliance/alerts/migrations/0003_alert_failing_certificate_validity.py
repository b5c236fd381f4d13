"""Failing certificate validity opens alerts now: hand the Changes that settled it before this
release back to the alert processing, which opens the alerts without mailing an expiry the
expiry warnings already mailed.

Only the latest Change of each (server, address) and only where the check still fails: the
next alert run then opens one alert per server, dated now, for what is still wrong.
"""

from django.db import migrations
from django.db.models import Exists, OuterRef


def reopen_failing_validity(apps, schema_editor):
    Change = apps.get_model("compliance", "Change")
    CheckState = apps.get_model("compliance", "CheckState")
    newer = Change.objects.filter(
        server=OuterRef("server"),
        address=OuterRef("address"),
        check_id="cert.validity",
        created_at__gt=OuterRef("created_at"),
    )
    failing_now = CheckState.objects.filter(
        server=OuterRef("server"), address=OuterRef("address"), check_id="cert.validity"
    ).filter(status="fail")
    latest = Change.objects.filter(check_id="cert.validity", status="fail").filter(
        ~Exists(newer), Exists(failing_now), alerted_at__isnull=False
    )
    latest.update(alerted_at=None)


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0002_notification_kind_digest"),
        ("compliance", "0003_checkstate_check_status_index"),
    ]

    operations = [
        # Reversed, nothing is undone: the alerts opened meanwhile are kept.
        migrations.RunPython(reopen_failing_validity, migrations.RunPython.noop),
    ]
