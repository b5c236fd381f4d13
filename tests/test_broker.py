"""The workers' Redis transport (popcompliance/broker.py) against the tests' own Redis: a task
that finishes after its worker lost Redis is logged and handed back, instead of stopping the
worker."""

import logging
import os
import subprocess
import sys

import pytest
from kombu import Connection, Queue

QUEUE = Queue("broker-test", routing_key="broker-test")
OURS = "popcompliance.broker:Transport"


def received_then_connection_lost(url, transport):
    """A message taken from the queue by a consumer whose connection is then lost, as a Celery
    worker handles it: unacknowledged messages handed back, the channel closed."""
    connection = Connection(url, transport=transport)
    with connection.Producer() as producer:
        producer.publish({"scan": 1}, routing_key=QUEUE.routing_key, declare=[QUEUE])
    channel = connection.default_channel
    message = QUEUE(channel).get(no_ack=False)
    assert message is not None
    channel.qos.restore_unacked_once()
    connection.close()
    return message, connection


def test_an_acknowledgement_after_the_connection_was_lost_is_logged_and_the_task_kept(
    redis_broker, caplog
):
    message, connection = received_then_connection_lost(redis_broker.url, OURS)
    logger = logging.getLogger("celery.worker")
    with caplog.at_level(logging.CRITICAL, logger="celery.worker"):
        message.ack_log_error(logger, connection.connection_errors)
    assert "Couldn't ack" in caplog.text
    assert "handed back to the queue" in caplog.text
    with Connection(redis_broker.url, transport=OURS) as again:
        redelivered = QUEUE(again.default_channel).get(no_ack=True)
    assert redelivered is not None and redelivered.payload == {"scan": 1}


def test_a_rejection_after_the_connection_was_lost_is_logged_too(redis_broker, caplog):
    message, connection = received_then_connection_lost(redis_broker.url, OURS)
    logger = logging.getLogger("celery.worker")
    with caplog.at_level(logging.CRITICAL, logger="celery.worker"):
        message.reject_log_error(logger, connection.connection_errors, requeue=True)
    assert "Couldn't reject" in caplog.text


def test_kombus_own_transport_still_fails_there(redis_broker):
    """Why the transport exists. Once kombu survives this, popcompliance/broker.py can go."""
    message, connection = received_then_connection_lost(redis_broker.url, "redis")
    with pytest.raises(AttributeError):
        message.ack_log_error(logging.getLogger("celery.worker"), connection.connection_errors)


def test_an_acknowledgement_on_a_live_connection_removes_the_task(redis_broker):
    with Connection(redis_broker.url, transport=OURS) as connection:
        with connection.Producer() as producer:
            producer.publish({"scan": 2}, routing_key=QUEUE.routing_key, declare=[QUEUE])
        message = QUEUE(connection.default_channel).get(no_ack=False)
        with redis_broker.client() as client:
            assert client.hlen("unacked") == 1  # kept until acknowledged
            message.ack()
            assert client.hlen("unacked") == 0
        assert QUEUE(connection.default_channel).get(no_ack=True) is None


def broker_transport_for(redis_url):
    """The transport a worker configured with `redis_url` connects with."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "popcompliance.settings", "REDIS_URL": redis_url}
    env.pop("CELERY_BROKER_URL", None)
    code = "from popcompliance.celery import app; print(app.connection_for_write().transport_cls)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    "url, transport",
    [
        ("redis://127.0.0.1:6379/0", OURS),
        ("rediss://:secret@redis.example.com:6380/0", OURS),
        ("sentinel://127.0.0.1:26379", "sentinel"),
    ],
)
def test_workers_use_it_for_redis_and_rediss_urls_only(url, transport):
    assert broker_transport_for(url) == transport
