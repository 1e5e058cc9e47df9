"""The Redis ACL of one host: what its worker may read and write, and nothing of the trusted
side's queues. No ORM here; `manage.py redis_host_acl` prints the lines.

A host's worker (RQ) needs: the hosts' queues and their registries (wip, finished, failed,
scheduled, deferred, canceled, the scheduler's lock), the job hashes and results of the jobs
pushed there (ids `distro-job-<pk>`, `distro-installcheck-<pk>`: dispatch.py, installability.py),
the workers' set and its own worker hashes and pub/sub channel (names `<host>.<slot>.<pid>`),
RQ's queue set and suspension flag, and the queued-work counter. It gets no key of the trusted
queues (default, promote), no other job's hash (a trusted job's pickle could be rewritten),
and no admin or dangerous commands (CONFIG, FLUSHALL, KEYS, DEBUG, ACL, ...).
"""

from collections.abc import Iterable

HOST_QUEUE_SUFFIXES = ("test.*", "install")
HOST_JOB_ID_PREFIXES = ("distro-job-", "distro-installcheck-")
# RQ's per-queue keys are `rq:<kind>:<queue>` (the queue, its registries: wip, ready,
# finished, failed, scheduled, ..., the scheduler's lock); the kinds change between RQ
# versions, so the pattern names the queue, not the kind. No trusted key ends that way.
READ_ONLY_KEYS = ("rq:suspended", "rq:rl-keys", "rq:groups")


def host_acl_rules(*, host_name: str, queued_work_key: str) -> list[str]:
    """The ACL SETUSER rules of host `host_name` (password rules are the caller's)."""
    if not host_name or any(c in host_name for c in "*?[]\\ "):
        raise ValueError(f"host name {host_name!r} cannot be used in a key pattern")
    keys = [f"~rq:*:{suffix}" for suffix in HOST_QUEUE_SUFFIXES]
    for prefix in HOST_JOB_ID_PREFIXES:
        keys += [f"~rq:job:{prefix}*", f"~rq:results:{prefix}*", f"~rq:execution*:{prefix}*"]
        keys += [f"~rq:job::{prefix}*"]  # RQ spells a job's dependencies key with "::"
    keys += ["~rq:workers", f"~rq:worker:{host_name}.*", f"~{queued_work_key}"]
    # RQ's schedulers register under a random name (their own hash and the set of them).
    keys += ["~rq:scheduler:*", "~rq:schedulers"]
    keys += ["~rq:clean_groups"]  # the lock of RQ's periodic group clean-up
    # RQ's set of queue keys: a retry (a declined delivery) re-adds its queue. Adding a name
    # there makes no worker serve it; the trusted workers' queues come from their settings.
    keys += ["~rq:queues"]
    keys += [f"%R~{key}" for key in READ_ONLY_KEYS]
    channels = [f"&rq:pubsub:{host_name}.*"]
    commands = ["+@all", "-@admin", "-@dangerous", "+info", "+client|setname", "+client|id"]
    return ["reset", "on", "resetkeys", *keys, "resetchannels", *channels, *commands]


def acl_setuser_line(*, user: str, rules: Iterable[str], password_rule: str) -> str:
    """`ACL SETUSER <user> <rules...>` with the password rule (`>secret` or `#<sha256>`)."""
    return " ".join(["ACL", "SETUSER", user, *rules, password_rule])
