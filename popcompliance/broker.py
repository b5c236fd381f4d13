"""kombu's Redis transport, with the acknowledgements of a lost connection made harmless.

A worker that loses Redis closes its channel and hands the unacknowledged messages back to the
queue. A scan still running then finishes, and Celery acknowledges its message on that closed
channel. kombu's Redis channel has by then dropped its connection pool and fails with
AttributeError, which Celery does not expect from an acknowledgement: it escapes the worker's
event loop and the worker stops consuming for good.

Here that acknowledgement fails as one over a lost connection does: Celery logs "Couldn't ack"
and goes on. Nothing is lost: the message was handed back (a scan is idempotent), and the
claim's lease in the database makes a server due again if Redis lost the message too.
"""

from kombu.transport import redis


class ChannelClosed(ConnectionError):
    """An acknowledgement on a channel closed after its connection was lost.

    A ConnectionError, so that it is among the transport's connection errors, the ones Celery
    logs and survives when acknowledging."""


class Channel(redis.Channel):
    def basic_ack(self, delivery_tag, multiple=False):
        self._refuse_if_closed(delivery_tag)
        super().basic_ack(delivery_tag, multiple=multiple)

    def basic_reject(self, delivery_tag, requeue=False):
        self._refuse_if_closed(delivery_tag)
        super().basic_reject(delivery_tag, requeue=requeue)

    def _refuse_if_closed(self, delivery_tag) -> None:
        if self.closed:
            raise ChannelClosed(
                f"message {delivery_tag} arrived over a connection to Redis that was lost; "
                "it was handed back to the queue"
            )


class Transport(redis.Transport):
    Channel = Channel
