"""settings.RQ_QUEUES that also lists the hosts' capability queues for django-rq's dashboard.

The service queues (default, install, promote) are configured; the test queues are named by the
hosts that serve them (test.<subdir>.<variant>[@runner], testing_app.services.queues), so no
setting can list them in advance and the dashboard showed none of them. django-rq builds its
list of queues from RQ_QUEUES.items() on every request: here that also yields every queue an
enrolled host declares and every queue RQ has registered in Redis, with the configured queues'
connection.
RQ_QUEUES[name] answers for those queues too (the dashboard opens each by name); `in` and
.get() still see only the configured ones.
"""

import logging

import redis
from django.apps import apps
from django.db import DatabaseError

logger = logging.getLogger(__name__)
RQ_QUEUE_SET = "rq:queues"  # rq.Queue.redis_queues_keys: the keys of every queue RQ has used
RQ_QUEUE_PREFIX = "rq:queue:"


class QueuesWithHostQueues(dict):
    def __init__(self, configured: dict, *, template: dict):
        super().__init__(configured)
        self._template = template  # the connection every extra queue shares

    def __missing__(self, name: str) -> dict:
        """RQ_QUEUES[name] of a listed host queue (the dashboard opens its connection by name)."""
        if name in self._served_queue_names():
            return self._template
        raise KeyError(name)

    def items(self):
        found = dict(super().items())
        for name in sorted(self._served_queue_names() - set(found)):
            found[name] = self._template
        return found.items()

    def _served_queue_names(self) -> set[str]:
        names: set[str] = set()
        if apps.ready:
            from testing_app.models import Host

            try:
                for queues in Host.objects.exclude(state="pending").values_list(
                    "queues", flat=True
                ):
                    names.update(q for q in queues or () if isinstance(q, str) and q)
            except DatabaseError as exc:  # the dashboard still lists the configured queues
                logger.warning("host queues unreadable for the RQ dashboard: %s", exc)
        client = redis.Redis.from_url(self._template["URL"], socket_timeout=1)
        try:
            for key in client.smembers(RQ_QUEUE_SET):
                key = key.decode() if isinstance(key, bytes) else key
                if key.startswith(RQ_QUEUE_PREFIX):
                    names.add(key.removeprefix(RQ_QUEUE_PREFIX))
        except (redis.RedisError, OSError) as exc:
            logger.warning("RQ queue registry unreadable for the RQ dashboard: %s", exc)
        finally:
            client.close()
        return names
