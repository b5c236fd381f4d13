"""Two indexes for the alert lists: the unresolved alerts newest first (the overview's panel, the
Open and Acknowledged tabs) and every alert by resolution (the Resolved tab and the tabs'
counts), each ending with the acknowledgement columns, so those queries read the index alone."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0003_alert_failing_certificate_validity"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="alert",
            index=models.Index(
                condition=models.Q(("resolved_at__isnull", True)),
                fields=["-opened_at", "-id", "acknowledged_at", "ack_until"],
                name="alert_unresolved_newest_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="alert",
            index=models.Index(
                fields=["-resolved_at", "-id", "acknowledged_at", "ack_until"],
                name="alert_resolved_newest_idx",
            ),
        ),
    ]
