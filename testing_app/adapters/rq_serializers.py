"""How RQ job data is written to and read from Redis, by side.

Hosts run strangers' packages, so a host may be compromised; what it reads from Redis must
never be able to run code in it, and what it writes must never run code on the trusted side.
Pickle can do both (unpickling calls any importable callable), so:

- the hosts' queues (install, test.*) hold RQ's JSONSerializer data only, and a worker that
  serves only those queues reads JSON only (HOST_SERIALIZER): a pickle there is refused;
- the trusted side's queues (default, promote) keep RQ's pickle (RQ's own cron enqueues with
  its default serializer, and nothing a host writes goes there once the Redis ACL is applied);
  a trusted worker reads both (TrustedSideSerializer). No worker serves host queues and
  trusted queues together (services/queues.py, worker_serializer), so a worker that may
  unpickle never takes a job a host can write.

JSON data still names a function by its dotted path: JSON alone does not stop a host that can
write to a trusted queue, the Redis ACL (docs/operators.md) does. No ORM here.
"""

import json
import pickle  # noqa: S403 - trusted side only; see the module docstring

from rq.serializers import DefaultSerializer
from rq.serializers import JSONSerializer

HOST_SERIALIZER = JSONSerializer


class TrustedSideSerializer:
    """Writes pickle (RQ's default), reads JSON (the hosts' queues) or pickle (its own)."""

    dumps = staticmethod(DefaultSerializer.dumps)

    @staticmethod
    def loads(data: bytes):
        if data[:1] in (b"[", b"{", b'"') or data[:1].isdigit():
            try:
                return json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                pass
        return pickle.loads(data)  # noqa: S301 - trusted queues only (Redis ACL)
