"""The Celery application: configured from Django settings (CELERY_*), tasks discovered in
the apps. Workers: `celery -A popcompliance worker`; scheduler: `celery -A popcompliance beat`."""

import os

from celery import Celery

from popcompliance.env import env_int

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "popcompliance.settings")

app = Celery("popcompliance", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Celery's scheduler, which also records on beat's heartbeat when it cannot send a task.
app.conf.beat_scheduler = "popcompliance.compliance.beat:HeartbeatScheduler"

# The beat schedule, in one place. The dispatcher is cheap when nothing is due, so it runs every
# minute: a server's scan starts at most a minute late. POPC_DISPATCH_EVERY (seconds) shortens it
# for tests that watch beat at work.
DISPATCH_EVERY = float(env_int("POPC_DISPATCH_EVERY", 60))
app.conf.beat_schedule = {
    "dispatch-due-scans": {"task": "compliance.dispatch_due_scans", "schedule": DISPATCH_EVERY},
    "snapshot-fleet": {"task": "compliance.snapshot_fleet", "schedule": 3600.0},
    "prune": {"task": "compliance.prune", "schedule": 86400.0},
    # Alerts: changes that no scan task handed over (manage.py scan, a lost task), the outbox
    # (retries come due by the minute), reminders, certificate expiry, daily digests, retention.
    "alerts-process-changes": {"task": "alerts.process_changes", "schedule": 60.0},
    "alerts-deliver": {"task": "alerts.deliver", "schedule": 60.0},
    "alerts-send-reminders": {"task": "alerts.send_reminders", "schedule": 300.0},
    "alerts-check-certificate-expiry": {
        "task": "alerts.check_certificate_expiry",
        "schedule": 3600.0,
    },
    "alerts-send-digests": {"task": "alerts.send_digests", "schedule": 900.0},
    "alerts-prune": {"task": "alerts.prune", "schedule": 86400.0},
    # The alerts held during a maintenance window go out within a minute of its end.
    "alerts-release-held": {"task": "alerts.release_held", "schedule": 60.0},
    # Waivers that started or expired re-settle their servers' statuses within a minute; the
    # owners hear a week before one expires.
    "waivers-settle": {"task": "waivers.settle", "schedule": 60.0},
    # The monthly compliance report to auditors, once the first of the month comes.
    "reports-send-monthly": {"task": "reports.send_monthly", "schedule": 3600.0},
}
