"""Print the SQL of a host's PostgreSQL role: the tables and columns its worker uses, only.

    manage.py host_db_role --role host_gpu01 | psql -U postgres -d conda_distro -v ON_ERROR_STOP=1
    manage.py host_db_role --role host_gpu01 --create     # also CREATE ROLE, password on stderr

Run it on the web side (it reads the id sequences' names from the database), as the database's
owner or a superuser, after every migration that touches those tables (the output is the same
or grows). Then give the host DATABASE_URL=postgres://host_gpu01:<password>@<server>/<db> and
HOST_LIMITED_ROLE=1. See docs/operators.md, "What a host holds".
"""

import re
import secrets

from django.core.management.base import BaseCommand
from django.core.management.base import CommandError
from django.db import connection

from testing_app.management.host_db_role import grant_statements
from testing_app.management.host_db_role import inserted_tables

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class Command(BaseCommand):
    help = "Print the GRANTs of a host's PostgreSQL role (what distro_worker needs, only)."

    def add_arguments(self, parser):
        parser.add_argument("--role", required=True, help="Role name, e.g. host_gpu01.")
        parser.add_argument(
            "--create",
            action="store_true",
            help="Start with CREATE ROLE ... LOGIN with a new random password (printed once, "
            "on stderr).",
        )

    def handle(self, *args, **options):
        role = options["role"]
        if not ROLE_NAME.match(role):
            raise CommandError(
                f"Role name {role!r}: use lower-case letters, digits and '_' (at most 63)."
            )
        if connection.vendor != "postgresql":
            raise CommandError("A host's role exists on PostgreSQL only.")
        sequences = {}
        with connection.cursor() as cursor:
            for table, column in inserted_tables():
                cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, column])
                sequences[table] = cursor.fetchone()[0]
        lines = []
        if options["create"]:
            password = secrets.token_urlsafe(32)
            lines.append(f"CREATE ROLE {role} LOGIN PASSWORD '{password}';")
            self.stderr.write(f"password of {role} (shown once): {password}")
        lines += grant_statements(
            role=role, database=connection.settings_dict["NAME"], sequences=sequences
        )
        self.stdout.write("\n".join(lines))
