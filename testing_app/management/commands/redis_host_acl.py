"""Print the Redis ACL line of one host's user: its worker reaches the hosts' queues only.

    manage.py redis_host_acl --host gpu-01            # a new random password, printed once
    manage.py redis_host_acl --host gpu-01 --password-sha256 <hex>

Run the printed line with redis-cli as an admin (or add it to the server's ACL file), then give
the host REDIS_URL=redis://<user>:<password>@<server>/<db>. See docs/operators.md.
"""

import hashlib
import secrets

from django.core.management.base import BaseCommand
from django.core.management.base import CommandError

from testing_app.adapters.redis_acl import acl_setuser_line
from testing_app.adapters.redis_acl import host_acl_rules
from testing_app.services.queue_work import QUEUED_WORK_KEY


class Command(BaseCommand):
    help = "Print the Redis ACL SETUSER line of a host's user (the hosts' queues only)."

    def add_arguments(self, parser):
        parser.add_argument("--host", required=True, help="The host's name (its worker names).")
        parser.add_argument("--user", help="Redis user name (default: host-<host>).")
        parser.add_argument("--password-sha256", help="Store this password hash instead.")

    def handle(self, *args, **options):
        host = options["host"]
        try:
            rules = host_acl_rules(host_name=host, queued_work_key=QUEUED_WORK_KEY)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        user = options["user"] or f"host-{host}"
        password = ""
        digest = options["password_sha256"]
        if not digest:
            password = secrets.token_urlsafe(32)
            digest = hashlib.sha256(password.encode()).hexdigest()
        self.stdout.write(acl_setuser_line(user=user, rules=rules, password_rule=f"#{digest}"))
        if password:
            self.stderr.write(f"password of {user} (shown once): {password}")
