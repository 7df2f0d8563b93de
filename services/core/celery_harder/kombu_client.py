"""One synchronous Redis client per kombu channel, instead of one per command.

kombu's Redis channel builds a new `redis.Redis` around its connection pool for
every command it sends outside the consumer's poller (`Channel.conn_or_acquire`):
the `unacked` bookkeeping of each delivered message (QoS.append), each ack
(QoS.ack), each task message and each event publish. Building a client rebuilds
redis-py's case-insensitive table of response callbacks (a few hundred `str.upper`
calls). In the worker's main process, which does the first three per task, that was
about a tenth of its CPU while draining a queue (py-spy, bench B2); in a client
sending a canvas (the API's POST /workflows, the operator), two clients per task sent.
Every app create_celery_app makes installs it. The client holds no
connection of its own: it borrows one from the channel's pool per command, as
before, so sharing it changes no command and no connection. It is rebuilt when the
channel's pool is (a reconnect makes a new channel, and so a new pool).
"""

from typing import Any

from kombu.transport import redis as kombu_redis

_CACHE = "_celery_harder_sync_client"
_MARKER = "celery_harder_cached"  # set on the patched method


def installed() -> bool:
    """Whether kombu's Redis channel carries this patch (in this process)."""
    return bool(getattr(kombu_redis.Channel._create_client, _MARKER, False))


def install() -> None:
    """Patch kombu's Redis channel once (idempotent)."""
    if installed():
        return
    channel = kombu_redis.Channel
    original = channel._create_client

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:  # the poller's own client: kombu keeps it (Channel.client)
            return original(self, asynchronous=True)
        pool = self.pool
        cached = self.__dict__.get(_CACHE)
        if cached is None or cached[0] is not pool:
            cached = (pool, original(self, asynchronous=False))
            self.__dict__[_CACHE] = cached
        return cached[1]

    setattr(_create_client, _MARKER, True)
    channel._create_client = _create_client
