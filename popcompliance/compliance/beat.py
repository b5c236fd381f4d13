"""Beat's scheduler: Celery's own, recording on beat's heartbeat when it cannot send a task.

Beat that runs but cannot reach the broker sends nothing: without this it would look alive
(its heartbeat is recorded as it sends) while no scan is dispatched.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.beat import PersistentScheduler

logger = logging.getLogger("celery.beat")


class HeartbeatScheduler(PersistentScheduler):
    def apply_async(
        self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        try:
            return super().apply_async(entry, producer, advance, **kwargs)
        except Exception as exc:
            _failed(f"could not send {entry.name}", exc)
            raise

    def _ensure_connected(self) -> Any:
        # Celery's own, with the failure recorded at each retry: beat retries a broker that
        # refuses it for as long as it runs, sending nothing meanwhile.
        def retrying(exc: Exception, interval: float) -> None:
            logger.error("beat: Connection error: %s. Trying again in %s seconds...", exc, interval)
            _failed("cannot reach the task queue", exc)

        return self.connection.ensure_connection(
            retrying, self.app.conf.broker_connection_max_retries
        )


def _failed(what: str, exc: Exception) -> None:
    from popcompliance.ops.heartbeats import beat_failed

    beat_failed(f"{what}: {exc}")
