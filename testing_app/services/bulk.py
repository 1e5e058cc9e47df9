"""Bulk writes of the dispatch path, fast on PostgreSQL: COPY for new jobs, one upsert for cells.

A full-distribution run writes 100,000 jobs at once; Django's bulk_create spends most of that
time preparing values field by field in Python. On PostgreSQL the rows go through COPY (values
shared by all jobs are prepared once) and the cells through one INSERT ... ON CONFLICT. Other
databases (the SQLite demo) take the ORM path; both paths are tested.
"""

from collections.abc import Sequence
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS
from django.db import connection
from django.utils import timezone
from psycopg import sql

from packages_app.models import Build
from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import PinnedCellResult
from testing_app.models.verdicts import IN_FLIGHT_VERDICTS
from testing_app.models.verdicts import Verdict

CREATE_BATCH = 2000
CELL_FIELDS = ("build_id", "torch_release_id", "variant_id", "platform_id", "python")


def use_fast_path() -> bool:
    return connection.vendor == "postgresql"


def insert_jobs(jobs: Sequence[Job]) -> list[Job]:
    """Insert unsaved jobs and give them their primary keys (in order)."""
    if not use_fast_path():
        return Job.objects.bulk_create(jobs, batch_size=CREATE_BATCH)
    now = timezone.now()
    table = Job._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, len(jobs)],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for job, pk in zip(jobs, ids, strict=True):
        job.pk, job.created_at = pk, now
        job._state.adding, job._state.db = False, DEFAULT_DB_ALIAS
    fields = Job._meta.concrete_fields
    columns = [_prepared_column(field, jobs) for field in fields]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(f.column) for f in fields)
    )
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(statement) as copy,
    ):
        for row in zip(*columns, strict=True):
            copy.write_row(row)
    return list(jobs)


def _prepared_column(field, jobs: Sequence[Job]) -> list:
    """One column's database values; a value every job shares is prepared only once."""
    values = [getattr(job, field.attname) for job in jobs]
    first = values[0]
    if all(value == first for value in values):
        return [field.get_db_prep_save(first, connection)] * len(values)
    return [field.get_db_prep_save(value, connection) for value in values]


# The cell takes the job, unless a newer job already owns it; a final verdict it had moves to
# previous_verdict, so a regression can be told from a failure that already existed.
_UPSERT_CELLS = """
INSERT INTO {cell} AS c (build_id, package_id, torch_release_id, variant_id, platform_id,
                         python, verdict, previous_verdict, latest_job_id, detail, updated_at)
SELECT u.build_id, b.package_id, u.torch_release_id, u.variant_id, u.platform_id, u.python,
       %(verdict)s, '', u.job_id, '', %(now)s
FROM unnest(%(builds)s::bigint[], %(releases)s::bigint[], %(variants)s::bigint[],
            %(platforms)s::bigint[], %(pythons)s::varchar[], %(jobs)s::bigint[])
     AS u(build_id, torch_release_id, variant_id, platform_id, python, job_id)
JOIN {build} b ON b.id = u.build_id
ON CONFLICT ON CONSTRAINT cellresult_unique_cell DO UPDATE SET
    previous_verdict = CASE WHEN c.verdict = ANY(%(in_flight)s) THEN c.previous_verdict
                            ELSE c.verdict END,
    verdict = EXCLUDED.verdict,
    latest_job_id = EXCLUDED.latest_job_id,
    detail = '',
    updated_at = EXCLUDED.updated_at
WHERE c.latest_job_id IS NULL OR c.latest_job_id < EXCLUDED.latest_job_id
"""


def mark_cells_queued(jobs: Sequence[Job]) -> None:
    """Point each job's cell at it with verdict `queued` (one job per cell: the last wins).
    Re-tests with an upstream build pinned go to their own cells (mark_pinned_cells_queued)."""
    now = timezone.now()
    pinned = [job for job in jobs if job.pinned_build_id]
    if pinned:
        mark_pinned_cells_queued(pinned, now=now)
    by_cell = {
        tuple(getattr(job, f) for f in CELL_FIELDS): job for job in jobs if not job.pinned_build_id
    }
    if not by_cell:
        return
    if not use_fast_path():
        _mark_cells_queued_orm(by_cell, now=now)
        return
    keys = list(by_cell)
    params = {
        "builds": [k[0] for k in keys],
        "releases": [k[1] for k in keys],
        "variants": [k[2] for k in keys],
        "platforms": [k[3] for k in keys],
        "pythons": [k[4] for k in keys],
        "jobs": [by_cell[k].pk for k in keys],
        "verdict": Verdict.QUEUED.value,
        "now": now,
        "in_flight": sorted(str(v) for v in IN_FLIGHT_VERDICTS),
    }
    statement = _UPSERT_CELLS.format(
        cell=connection.ops.quote_name(CellResult._meta.db_table),
        build=connection.ops.quote_name(Build._meta.db_table),
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _queued_rows(
    model, by_cell: dict, existing: dict, fields: tuple, *, now: datetime, clear_detail: bool
):
    """(rows to update, rows to insert) that mark each cell of `by_cell` queued for its newest
    job: one rule for the distribution's cells and for the pinned re-tests' cells (which keep
    no detail of their own)."""
    packages = dict(
        Build.objects.filter(pk__in={key[0] for key in by_cell}).values_list("pk", "package_id")
    )
    updates, inserts = [], []
    for key, job in by_cell.items():
        cell = existing.get(key)
        if cell is None:
            values = dict(zip(fields, key, strict=True))
            inserts.append(
                model(
                    **values,
                    package_id=packages.get(key[0]),
                    verdict=Verdict.QUEUED,
                    latest_job_id=job.pk,
                    updated_at=now,
                )
            )
        elif cell.latest_job_id is None or cell.latest_job_id < job.pk:
            if cell.verdict not in IN_FLIGHT_VERDICTS:
                cell.previous_verdict = cell.verdict
            cell.verdict, cell.latest_job_id, cell.updated_at = Verdict.QUEUED, job.pk, now
            if clear_detail:
                cell.detail = ""
            updates.append(cell)
    return updates, inserts


def _mark_cells_queued_orm(by_cell: dict, *, now: datetime) -> None:
    existing = {
        tuple(getattr(cell, f) for f in CELL_FIELDS): cell
        for cell in CellResult.objects.select_for_update().filter(
            build_id__in={key[0] for key in by_cell},
            torch_release_id__in={key[1] for key in by_cell},
        )
    }
    updates, inserts = _queued_rows(
        CellResult, by_cell, existing, CELL_FIELDS, now=now, clear_detail=True
    )
    CellResult.objects.bulk_update(
        updates,
        ["verdict", "previous_verdict", "latest_job", "detail", "updated_at"],
        batch_size=500,
    )
    CellResult.objects.bulk_create(inserts, batch_size=CREATE_BATCH)


def mark_pinned_cells_queued(jobs: Sequence[Job], *, now: datetime) -> None:
    """The same for re-tests with a pinned upstream build, in PinnedCellResult (ORM path: a
    trigger pins one build, so these are the dependents' cells, not the distribution's)."""
    by_cell = {(*(getattr(job, f) for f in CELL_FIELDS), job.pinned_build_id): job for job in jobs}
    existing = {
        (*(getattr(cell, f) for f in CELL_FIELDS), cell.pinned_build_id): cell
        for cell in PinnedCellResult.objects.select_for_update().filter(
            build_id__in={key[0] for key in by_cell},
            pinned_build_id__in={key[-1] for key in by_cell},
        )
    }
    fields = (*CELL_FIELDS, "pinned_build_id")
    updates, inserts = _queued_rows(
        PinnedCellResult, by_cell, existing, fields, now=now, clear_detail=False
    )
    PinnedCellResult.objects.bulk_update(
        updates, ["verdict", "previous_verdict", "latest_job", "updated_at"], batch_size=500
    )
    PinnedCellResult.objects.bulk_create(inserts, batch_size=CREATE_BATCH)


def mark_enqueued(pks: list[int]) -> None:
    """Stamp `enqueued_at` on jobs just pushed to Redis (still queued: one may have started)."""
    now = timezone.now()
    if not use_fast_path():
        Job.objects.filter(pk__in=pks, status=Job.Status.QUEUED).update(enqueued_at=now)
        return
    # One array parameter instead of an IN list of 100,000 placeholders.
    table = connection.ops.quote_name(Job._meta.db_table)
    statement = f"UPDATE {table} SET enqueued_at = %s WHERE id = ANY(%s) AND status = %s"
    with connection.cursor() as cursor:
        cursor.execute(statement, [now, pks, Job.Status.QUEUED.value])
