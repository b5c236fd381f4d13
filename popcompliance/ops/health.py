"""Reachability of the database and the Celery broker, each as "ok" or "error: <kind>".

Only the exception's class name is reported, never its message: messages carry host names,
user names and URLs, and `/healthz` is open to anyone who can reach the web server. The full
error goes to the log.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)
# Seconds the broker check may take: a load balancer's probe must get an answer quickly.
BROKER_TIMEOUT = 2.0


def _error(what: str, exc: Exception) -> str:
    logger.warning("healthz: %s unreachable: %s", what, exc)
    return f"error: {type(exc).__name__}"


def database_status() -> str:
    """ "ok" when the default database answers a trivial query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return _error("database", exc)
    return "ok"


def broker_status() -> str:
    """ "ok" when the Celery broker accepts a connection within BROKER_TIMEOUT seconds.

    The embedded filesystem broker has no server: it is reachable when its queue folder exists.
    """
    from popcompliance.celery import app

    if str(app.conf.broker_url).startswith("filesystem://"):
        options = app.conf.broker_transport_options or {}
        folder = Path(options.get("data_folder_in") or settings.BROKER_DIR / "queue")
        if folder.is_dir():
            return "ok"
        return _error("broker", FileNotFoundError(f"no broker folder {folder}"))
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT)
    except Exception as exc:
        return _error("broker", exc)
    return "ok"


def health() -> dict[str, str]:
    """The health report: {"database": ..., "broker": ...}."""
    return {"database": database_status(), "broker": broker_status()}
