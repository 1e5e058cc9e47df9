"""The PostgreSQL privileges of a host's role: what `distro_worker` reads and writes to claim,
run and record the jobs of its capability queues, and nothing else.

The grants are generated from the models (table and column names come from `_meta`), so a
renamed field or table follows, and the written columns come from the services' own field lists
(START_FIELDS, OUTCOME_FIELDS, CELL_FIELDS, HOST_FACT_FIELDS), so a field added there is granted
too. A write outside them must be added to HOST_ACCESS: the end-to-end test (a real worker
running real jobs under the role, tests/testing_app/test_host_least_privilege.py) fails until it
is.

What a worker does, and so what it needs:

- start-up: enroll or refresh its Host from the probe (an enrollment token is looked up by
  its hash and stamped used; a new subdir adds its Platform), register its WorkerProcess,
  and end the jobs of its host's dead workers;
- heartbeats: stamp its WorkerProcess and Host, read its host's state;
- a job: the guarded queued -> running -> finished updates of the Job, the cell (CellResult,
  PinnedCellResult), the Run's state and an automatic retry (a new Job); it reads the job's
  build, channel stack, PyTorch release and variant.

What it does not get: accounts (auth_user and the other auth and session tables),
maintainers, notifications, packages' status, proposals, promotions, waivers,
installability checks of the promotion gate, trusted publishing, the admin log. A finished
job's follow-ups that touch those (maintainers' notices, reinstating a package) are left to the
web side with HOST_LIMITED_ROLE (services/execution.py).
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.apps import apps
from django.db import models

from testing_app.services.execution import CELL_FIELDS
from testing_app.services.execution import OUTCOME_FIELDS
from testing_app.services.execution import START_FIELDS
from testing_app.services.hosts import HOST_FACT_FIELDS

ALL = "__all__"


@dataclass(frozen=True)
class TableAccess:
    """One model's privileges: SELECT, INSERT and UPDATE name fields (or ALL); DELETE none."""

    model: str
    select: str | tuple[str, ...] = ALL
    insert: str | tuple[str, ...] = ()
    update: str | tuple[str, ...] = ()
    why: str = ""


HOST_ACCESS: tuple[TableAccess, ...] = (
    TableAccess(
        "testing_app.Job",
        insert=ALL,
        update=(*START_FIELDS, *OUTCOME_FIELDS, "handoffs", "enqueued_at"),
        why="claim, run and record jobs; automatic retries",
    ),
    TableAccess("testing_app.Run", update=("state", "started_at", "finished_at")),
    TableAccess("testing_app.CellResult", insert=ALL, update=(*CELL_FIELDS, "detail")),
    TableAccess("testing_app.PinnedCellResult", insert=ALL, update=CELL_FIELDS),
    TableAccess(
        "testing_app.WorkerProcess",
        insert=ALL,
        update=("last_heartbeat_at", "stopped_at", "stop_reason", "current_job"),
    ),
    TableAccess(
        "testing_app.Host",
        # A new host is inserted whole (Django's INSERT names every column): pending, or
        # active with a pre-approved token. An enrolled host never writes its own state or
        # approval: UPDATE covers its probed facts and heartbeat only.
        insert=ALL,
        update=(*HOST_FACT_FIELDS, "last_heartbeat_at"),
    ),
    TableAccess(
        "testing_app.EnrollmentToken",
        update=("last_used_at",),
        why="enrollment: the token is looked up by its SHA-256 (only hashes are stored)",
    ),
    TableAccess("testing_app.Platform", insert=ALL, why="a host of a subdir not seen before"),
    TableAccess("testing_app.Variant"),
    TableAccess("packages_app.TorchRelease_variants"),
    TableAccess("packages_app.TorchRelease_platforms"),
    TableAccess("packages_app.TorchRelease"),
    TableAccess("packages_app.Build"),
    TableAccess("packages_app.Channel", why="the channel stack a test installs from"),
)


def _model(label: str) -> type[models.Model]:
    app_label, name = label.split(".")
    return apps.get_model(app_label, name)


def _columns(model: type[models.Model], fields: str | Iterable[str]) -> list[str] | None:
    """The columns of `fields` (None: the whole table)."""
    if fields == ALL:
        return None
    return list(dict.fromkeys(model._meta.get_field(name).column for name in fields))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _grant(privilege: str, table: str, columns: list[str] | None, role: str) -> str:
    column_list = f" ({', '.join(_quoted(c) for c in columns)})" if columns else ""
    return f"GRANT {privilege}{column_list} ON TABLE {_quoted(table)} TO {_quoted(role)};"


def host_role_tables() -> list[str]:
    """Every table the role gets any privilege on."""
    return [_model(access.model)._meta.db_table for access in HOST_ACCESS]


def inserted_tables() -> list[tuple[str, str]]:
    """(table, primary key column) of the tables the role inserts into: their id sequences."""
    tables = []
    for access in HOST_ACCESS:
        if access.insert:
            model = _model(access.model)
            tables.append((model._meta.db_table, model._meta.pk.column))
    return tables


def grant_statements(*, role: str, database: str, sequences: dict[str, str]) -> list[str]:
    """The SQL that gives `role` exactly HOST_ACCESS. `sequences` maps a table to its id
    sequence (pg_get_serial_sequence), whose USAGE an insert needs."""
    lines = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {_quoted(role)};",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {_quoted(role)};",
        f"GRANT CONNECT ON DATABASE {_quoted(database)} TO {_quoted(role)};",
        f"GRANT USAGE ON SCHEMA public TO {_quoted(role)};",
    ]
    for access in HOST_ACCESS:
        model = _model(access.model)
        table = model._meta.db_table
        lines.append(_grant("SELECT", table, _columns(model, access.select), role))
        if access.insert:
            lines.append(_grant("INSERT", table, _columns(model, access.insert), role))
        if access.update:
            lines.append(_grant("UPDATE", table, _columns(model, access.update), role))
    for table, _column in inserted_tables():
        sequence = sequences.get(table)
        if sequence:
            lines.append(f"GRANT USAGE ON SEQUENCE {sequence} TO {_quoted(role)};")
    return lines
