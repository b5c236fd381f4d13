"""Heartbeats: when beat, the dispatcher, the workers and each location's queue last proved
they were alive, recorded from Celery's signals and read by the overview and /metrics.

Writers (each process records its own, at most every HEARTBEAT_EVERY seconds; a failure at once):
- "beat": when the broker took a task beat sent (beat.py records when it cannot send one);
- "dispatcher": each dispatcher run, with what it dispatched (compliance.tasks);
- "worker <hostname>": a worker that serves the default location's queue, when it starts and
  after each task from that queue;
- "queue <name>": a location's queue (popcompliance.locations), when a worker serving it starts
  and after each task taken from it, with the worker's name. The dispatcher sends a `ops.ping`
  to every other location each minute, so an idle location's workers still report.

Readers: `liveness(now)` (one query) for the overview, `served_locations(now)` for the
dispatcher, `samples()` for /metrics.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from celery.signals import after_task_publish, beat_init, task_postrun, worker_ready
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from popcompliance import locations
from popcompliance.celery import DISPATCH_EVERY
from popcompliance.compliance.models import Heartbeat

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY = 30.0
# Beat sends tasks every DISPATCH_EVERY seconds (and alerts.deliver every minute); three
# rounds without a heartbeat (at least three minutes) mean it stopped, not that it is busy.
BEAT_STALE_AFTER = timedelta(seconds=max(180.0, 3 * DISPATCH_EVERY))
# Workers record theirs after a task, at most every 30 s, and beat gives the default queue one
# a minute (alerts.deliver), the dispatcher every other location's queue one (ops.ping).
WORKERS_STALE_AFTER = timedelta(minutes=3)
LOCATION_STALE_AFTER = WORKERS_STALE_AFTER
PING_TASK = "ops.ping"


def queue_heartbeat(location: str) -> str:
    """The heartbeat name of a location's queue."""
    return f"queue {locations.queue(location)}"


# --- recording -----------------------------------------------------------------------------


class Recorder:
    """What one process remembers to keep its heartbeats cheap: whether it is beat, and when
    it last recorded each heartbeat (so a busy worker writes one row every HEARTBEAT_EVERY
    seconds, not one per task)."""

    def __init__(self) -> None:
        self.in_beat = False
        self.recorded: dict[str, float] = {}

    def record(
        self, name: str, *, force: bool = False, detail: str = "", failure: str = ""
    ) -> None:
        """Record that `name` is alive (and what failed, if anything); a failure forces the
        next heartbeat too, so it clears as soon as the process works again."""
        clock = time.monotonic()
        if not force and clock - self.recorded.get(name, 0.0) < HEARTBEAT_EVERY:
            return
        self.recorded[name] = 0.0 if failure else clock
        try:
            if self.in_beat:
                # Beat has no task boundaries where Celery would recycle its connection: drop
                # one that a database restart broke, or this heartbeat would fail forever.
                close_old_connections()
            Heartbeat.beat(name, timezone.now(), detail=detail, failure=failure)
        except DatabaseError:
            logger.warning("could not record the heartbeat of %s", name)

    def beat_failed(self, failure: str) -> None:
        """Beat could not send its tasks (the broker is away): say so on its heartbeat, and
        record the next task it does send at once, so the failure clears as soon as sending
        works."""
        self.recorded.pop("beat", None)
        try:
            close_old_connections()
            Heartbeat.fail("beat", timezone.now(), failure)
        except DatabaseError:
            logger.warning("could not record that beat failed: %s", failure)


# One per process: beat and each worker record their own.
RECORDER = Recorder()


def beat_failed(failure: str) -> None:
    RECORDER.beat_failed(failure)


def dispatcher_ran(now: datetime, detail: str, failure: str = "") -> None:
    Heartbeat.beat("dispatcher", now, detail, failure)


def dispatcher_failed(now: datetime, failure: str) -> None:
    try:
        Heartbeat.fail("dispatcher", now, failure)
    except DatabaseError:
        logger.exception("could not record the dispatcher's failure")


def _worker_names(hostname: str, queue: str) -> tuple[str, str]:
    """The heartbeat a task from `queue` refreshes on worker `hostname`, and its detail."""
    location = locations.location_of_queue(queue)
    if location == locations.DEFAULT_LOCATION:
        return f"worker {hostname}", ""
    return f"queue {queue}", hostname


@beat_init.connect
def _beat_started(sender: object = None, **kwargs: object) -> None:
    RECORDER.in_beat = True
    RECORDER.record("beat", force=True)


@after_task_publish.connect
def _task_sent(sender: object = None, **kwargs: object) -> None:
    # After the broker took the task: a beat that cannot send must not look alive.
    if RECORDER.in_beat:
        RECORDER.record("beat")


@worker_ready.connect
def _worker_started(sender: Any = None, **kwargs: object) -> None:
    hostname = getattr(sender, "hostname", "worker")
    consumer = getattr(sender, "task_consumer", None)
    queues = [queue.name for queue in getattr(consumer, "queues", [])] or [
        locations.queue(locations.DEFAULT_LOCATION)
    ]
    for queue in queues:
        name, detail = _worker_names(hostname, queue)
        RECORDER.record(name, force=True, detail=detail)


@task_postrun.connect
def _task_finished(sender: object = None, **kwargs: Any) -> None:
    task = kwargs.get("task")
    request = getattr(task, "request", None)
    hostname = getattr(request, "hostname", None)
    if not hostname:
        return
    delivery = getattr(request, "delivery_info", None) or {}
    queue = delivery.get("routing_key") or locations.queue(locations.DEFAULT_LOCATION)
    name, detail = _worker_names(hostname, queue)
    if kwargs.get("state") == "FAILURE":
        # At once, and the next success clears it: a worker whose tasks fail is not healthy.
        failure = f"{getattr(task, 'name', 'a task')} failed: {kwargs.get('retval')!r}"
        RECORDER.record(name, force=True, detail=detail, failure=failure)
    else:
        RECORDER.record(name, detail=detail)


@shared_task(name=PING_TASK, ignore_result=True)
def ping() -> str:
    """Sent to each location's queue every minute: taking it is the proof that the location's
    workers are alive (its heartbeat is recorded after it, as after any task)."""
    return "pong"


def send_pings(now: datetime) -> None:
    """Ping every location but the default one (beat keeps that queue busy). Each ping
    expires with the next, so a silent location's queue holds no pile of them."""
    for location in locations.declared()[1:]:
        try:
            ping.apply_async(queue=locations.queue(location), expires=max(60.0, DISPATCH_EVERY))
        except Exception:
            logger.warning("could not ping location %s", location, exc_info=True)
            return


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocationLiveness:
    """One location other than the default: when a worker last took a task from its queue
    (`heartbeat`, None: never), and whether it counts as silent."""

    location: str
    queue: str
    heartbeat: Heartbeat | None
    silent: bool

    @property
    def label(self) -> str:
        return locations.label(self.location)


@dataclass(frozen=True)
class Liveness:
    """When beat, the dispatcher, the workers and each location last proved they were alive,
    and what that shows.

    Beat records its own heartbeat as it sends tasks: a stale one means no scheduled scan is
    being made. While beat runs it sends alerts.deliver every minute, so some worker runs a
    task every minute: no worker heartbeat for WORKERS_STALE_AFTER means none is taking tasks.
    Likewise each other location gets a ping a minute: a queue silent for LOCATION_STALE_AFTER
    has no worker. Without beat, an idle worker is as silent as a dead one, so neither workers
    nor locations are judged then."""

    beat: Heartbeat | None
    dispatcher: Heartbeat | None
    workers: list[Heartbeat]  # the newest five
    beat_dead: bool
    workers_dead: bool
    locations: list[LocationLiveness] = field(default_factory=list)

    @property
    def beat_failing(self) -> bool:
        """Beat runs but could not send its last task (the broker is away)."""
        return not self.beat_dead and self.beat is not None and bool(self.beat.failure)

    @property
    def dispatcher_failing(self) -> bool:
        """The dispatcher's last round failed, wholly or for some servers."""
        return self.dispatcher is not None and bool(self.dispatcher.failure)

    @property
    def silent_locations(self) -> list[LocationLiveness]:
        return [location for location in self.locations if location.silent]


def liveness(now: datetime) -> Liveness:
    """One query: every heartbeat, newest first."""
    rows = list(Heartbeat.objects.order_by("-last_seen_at"))
    named = {row.name: row for row in rows}
    beat, dispatcher = named.get("beat"), named.get("dispatcher")
    workers = [row for row in rows if row.name.startswith("worker ")]
    beat_dead = beat is None or now - beat.last_seen_at > BEAT_STALE_AFTER
    newest_worker_age = now - workers[0].last_seen_at if workers else None
    workers_dead = not beat_dead and (
        newest_worker_age is None or newest_worker_age > WORKERS_STALE_AFTER
    )
    judged = []
    for location in locations.declared()[1:]:
        heartbeat = named.get(queue_heartbeat(location))
        silent = not beat_dead and not _fresh(heartbeat, now, LOCATION_STALE_AFTER)
        judged.append(LocationLiveness(location, locations.queue(location), heartbeat, silent))
    return Liveness(beat, dispatcher, workers[:5], beat_dead, workers_dead, judged)


def _fresh(heartbeat: Heartbeat | None, now: datetime, within: timedelta) -> bool:
    return heartbeat is not None and now - heartbeat.last_seen_at <= within


def served_locations(now: datetime) -> list[str]:
    """The locations the dispatcher sends scans to (one query): the default one always, each
    other one while a worker has taken a task from its queue within LOCATION_STALE_AFTER."""
    others = {queue_heartbeat(name): name for name in locations.declared()[1:]}
    if not others:
        return [locations.DEFAULT_LOCATION]
    fresh = Heartbeat.objects.filter(
        name__in=others, last_seen_at__gte=now - LOCATION_STALE_AFTER
    ).values_list("name", flat=True)
    return [locations.DEFAULT_LOCATION, *(others[name] for name in fresh)]


Sample = tuple[dict[str, str], float]


def samples() -> tuple[list[Sample], list[Sample]]:
    """For /metrics: when each process last ran, and whether its last round failed (1) or
    not (0), labelled by kind (beat, dispatcher, worker, queue) and name. One query."""
    rows = Heartbeat.objects.order_by("name").values_list("name", "last_seen_at", "failure")
    seen, failing = [], []
    for name, last_seen_at, failure in rows:
        labels = {"process": name.split()[0], "name": name}
        seen.append((labels, int(last_seen_at.timestamp())))
        failing.append((labels, int(bool(failure))))
    return seen, failing
