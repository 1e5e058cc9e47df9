"""Many calls of one function pushed into an RQ queue with the Redis writes of RQ's
`Queue.enqueue_many`, without building an RQ Job object per call.

enqueue_many costs about 100 us of Python per job (an RQ Job object, its dict, three commands
of 40 arguments packed one by one), as much as writing the job's row to PostgreSQL, and a
full-distribution run pushes 100,000 jobs. Our jobs are all alike (one function, one int
argument; no dependencies, callbacks, meta, TTL or retry): each hash is a shared template plus
its data, description and timeout. One Lua script per chunk writes the hashes (the template
is sent once), pushes the ids in order and registers the queue, so Python only pickles each
call. What Redis holds afterwards is what enqueue_many leaves (its separate HSET of `status` is
covered by the full hash): tests/testing_app/test_rq_push.py compares both field by field, so
an RQ upgrade that changes the layout fails there, not on a worker.
"""

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from redis.client import Pipeline
from rq import Queue
from rq.job import JobStatus
from rq.utils import now
from rq.utils import utcformat


@dataclass(frozen=True)
class RqCall:
    """One job: RQ id, positional arguments, description and timeout (seconds)."""

    job_id: str
    args: tuple
    description: str
    timeout: int


# KEYS: the job hashes, then the queue. ARGV: the queues set's key, the template's field count,
# the template (field, value, ...), then id, data, description, timeout for each job.
_ENQUEUE_SCRIPT = """
local jobs = #KEYS - 1
local fields = tonumber(ARGV[2])
local template = {}
for i = 3, 2 + 2 * fields do template[#template + 1] = ARGV[i] end
local first = 3 + 2 * fields
local ids = {}
for j = 1, jobs do
    local at = first + 4 * (j - 1)
    ids[j] = ARGV[at]
    redis.call('HSET', KEYS[j], 'data', ARGV[at + 1], 'description', ARGV[at + 2],
               'timeout', ARGV[at + 3], unpack(template))
end
redis.call('SADD', ARGV[1], KEYS[#KEYS])
if jobs > 0 then redis.call('RPUSH', KEYS[#KEYS], unpack(ids)) end
return jobs
"""


def enqueue_calls(
    queue: Queue,
    calls: Sequence[RqCall],
    *,
    func_name: str,
    result_ttl: int,
    failure_ttl: int,
    pipeline: Pipeline,
) -> list[str]:
    """Queue `func_name(*call.args)` for every call, at the back of `queue`, in order, through
    `pipeline` (the caller executes it). Returns the RQ ids. Only for an asynchronous queue:
    RQ's synchronous mode runs jobs at enqueue time, which this does not do. Keep a call to a
    few thousand jobs (Lua's unpack limit)."""
    if not queue.is_async:
        raise ValueError("enqueue_calls writes to Redis only; use enqueue_many for a sync queue")
    stamp = utcformat(now())
    template = {
        "created_at": stamp,
        "enqueued_at": stamp,
        "success_callback_name": "",
        "failure_callback_name": "",
        "stopped_callback_name": "",
        "started_at": "",
        "ended_at": "",
        "last_heartbeat": "",
        "worker_name": "",
        "group_id": "",
        "origin": queue.name,
        "result_ttl": result_ttl,
        "failure_ttl": failure_ttl,
        "status": JobStatus.QUEUED.value,
    }
    dumps, key_for = queue.serializer.dumps, queue.job_class.key_for
    keys = [key_for(call.job_id) for call in calls]
    keys.append(queue.key)
    args = [queue.redis_queues_keys, len(template)]
    for field, value in template.items():
        args += (field, value)
    for call in calls:
        data = zlib.compress(dumps((func_name, None, call.args, {})))
        args += (call.job_id, data, call.description, call.timeout)
    pipeline.register_script(_ENQUEUE_SCRIPT)(keys=keys, args=args, client=pipeline)
    return [call.job_id for call in calls]
