"""The PopCompliance Django project: settings, URLs and, app by app, the fleet pipeline."""

# Load the Celery app with Django, so tasks' `delay_on_commit` finds it (Celery's documented
# project layout).
from popcompliance.celery import app as celery_app

__all__ = ["celery_app"]
