"""Design-scale data for bench/matrix_scale.py, generated inside PostgreSQL.

DESIGN.md section 7: 2,000 packages x 20 builds (5 versions x 4 subdirs), 10 supported PyTorch
releases, 6 variants, 4 platforms; 480,000 CellResult rows and 5,000,000 Job rows.

Rows are produced by `INSERT ... SELECT generate_series(...)` so no row crosses the wire, and
the job table's secondary indexes and constraints are dropped during the bulk insert and rebuilt
afterwards (one sort per index instead of 5 M index updates each). Columns the generator does
not choose get the model field's default, so new fields on the models need no change here.

Layout (all ids explicit, tables truncated first):
- package p (0-based) has builds p*20 + version*4 + subdir (+1); version 4 is the latest;
- cell c = build_index*60 + release_index*6 + variant_index; a build's platform is its subdir;
- job j (0-based) tests cell j mod 2,400,000 in run j div 2,000 (+1), so cells have 2-3 jobs;
  the last run is in flight (its jobs queued or running);
- CellResult: the latest version's builds on the 8 newest releases, the previous version's on
  the 2 oldest (a package that dropped old PyTorch in its new version): 2,000 x 4 x 6 x 10 cells,
  each pointing at its newest job and showing that job's verdict.
"""

import json
import time
from datetime import datetime

PACKAGES = 2000
VERSIONS = 5
SUBDIRS = ["linux-64", "linux-aarch64", "osx-arm64", "win-64"]
VARIANTS = ["cpu", "cuda11.8", "cuda12.1", "cuda12.4", "cuda12.6", "rocm6.2"]
RELEASES = [
    "2.10.0",
    "2.9.1",
    "2.8.0",
    "2.7.1",
    "2.6.0",
    "2.5.1",
    "2.4.1",
    "2.3.1",
    "2.2.2",
    "2.1.2",
]
MAINTAINERS = 500
HOSTS = 50
JOBS = 5_000_000
JOBS_PER_RUN = 2000
BUILDS = PACKAGES * VERSIONS * len(SUBDIRS)
CELLS_PER_BUILD = len(RELEASES) * len(VARIANTS)
ALL_CELLS = BUILDS * CELLS_PER_BUILD  # 2,400,000 possible cells
HISTORY_DAYS = 365

# verdict of job j: a stable pseudo-random spread (80 % passed, 6 % failed, ...).
VERDICT_SQL_FUNCTION = """
CREATE OR REPLACE FUNCTION pg_temp.bench_verdict(j bigint) RETURNS text AS $$
  SELECT CASE
    WHEN r < 800 THEN 'passed' WHEN r < 860 THEN 'failed' WHEN r < 900 THEN 'uninstallable'
    WHEN r < 920 THEN 'error' WHEN r < 930 THEN 'timeout' WHEN r < 960 THEN 'no_tests'
    ELSE 'not_applicable' END
  FROM (SELECT ((j * 2654435761) % 1000) AS r) AS x
$$ LANGUAGE sql IMMUTABLE;
"""


def _literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return "now()"
    if isinstance(value, list | dict):
        return "'" + json.dumps(value).replace("'", "''") + "'::jsonb"
    return "'" + str(value).replace("'", "''") + "'"


def insert_select(cursor, model, expressions: dict[str, str], source: str) -> None:
    """INSERT INTO model's table every concrete column: `expressions` where given (SQL over
    `source`), else the field's default, else NULL for nullable fields."""
    columns, values = [], []
    for field in model._meta.concrete_fields:
        if field.primary_key and field.column not in expressions:
            continue  # the sequence numbers it
        columns.append(f'"{field.column}"')
        if field.column in expressions:
            values.append(expressions[field.column])
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            values.append("now()")
        elif field.has_default():
            values.append(_literal(field.get_default()))
        elif field.null:
            values.append("NULL")
        elif field.blank and field.get_internal_type() in ("CharField", "TextField"):
            values.append("''")
        else:
            raise RuntimeError(f"{model.__name__}.{field.name} needs a value in the generator")
    cursor.execute(
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM {source}"
    )


def _step(label: str, func, *args) -> float:
    start = time.perf_counter()
    func(*args)
    seconds = time.perf_counter() - start
    print(f"  {label:<52}{seconds:8.1f} s", flush=True)
    return seconds


def _reference(cursor, models) -> None:
    Platform, Variant, TorchRelease, Channel, Maintainer, Host = (
        models["Platform"],
        models["Variant"],
        models["TorchRelease"],
        models["Channel"],
        models["Maintainer"],
        models["Host"],
    )
    subdirs = ",".join(f"('{s}', {i})" for i, s in enumerate(SUBDIRS))
    insert_select(
        cursor,
        Platform,
        {
            "id": "v.i + 1",
            "subdir": "v.s",
            "os_name": "split_part(v.s, '-', 1)",
            "arch": "split_part(v.s, '-', 2)",
            "sort_order": "v.i",
        },
        f"(VALUES {subdirs}) AS v(s, i)",
    )
    variants = ",".join(f"('{n}', {i})" for i, n in enumerate(VARIANTS))
    insert_select(
        cursor,
        Variant,
        {
            "id": "v.i + 1",
            "name": "v.n",
            "kind": "CASE WHEN v.n = 'cpu' THEN 'cpu' "
            "WHEN v.n LIKE 'rocm%' THEN 'rocm' ELSE 'cuda' END",
            "accelerator_version": "regexp_replace(v.n, '^[a-z]+', '')",
            "needs_gpu": "v.n <> 'cpu'",
            "sort_order": "v.i",
        },
        f"(VALUES {variants}) AS v(n, i)",
    )
    releases = ",".join(f"('{r}', {i})" for i, r in enumerate(RELEASES))
    insert_select(
        cursor,
        TorchRelease,
        {
            "id": "v.i + 1",
            "version": "v.r",
            "supported": "TRUE",
            "kind": "'final'",
            "released_on": "(date '2026-06-01' - (v.i * 60))",
        },
        f"(VALUES {releases}) AS v(r, i)",
    )
    insert_select(
        cursor,
        Channel,
        {
            "id": "1",
            "name": "'bench-staging'",
            "url": "'https://conda.example.org/bench'",
            "role": "'staging'",
        },
        "(SELECT 1) AS one",
    )
    insert_select(
        cursor,
        Maintainer,
        {
            "id": "m + 1",
            "name": "'Maintainer ' || m",
            "email": "'m' || m || '@example.org'",
            "github_handle": "'maint' || m",
            "unsubscribe_salt": "md5('u' || m)",
        },
        f"generate_series(0, {MAINTAINERS - 1}) AS m",
    )
    insert_select(
        cursor,
        Host,
        {
            "id": "h + 1",
            "name": "'gpu-host-' || h",
            "platform_id": "1",
            "state": "'active'",
            "gpus": """'[{"index": 0, "name": "NVIDIA H100", "memory_mib": 81559}]'::jsonb""",
            "driver_version": "'550.54.15'",
            "max_cuda": "'12.4'",
            "last_heartbeat_at": "now()",
            "queues": """'["test.linux-64.cpu", "test.linux-64.cuda12.4"]'::jsonb""",
        },
        f"generate_series(0, {HOSTS - 1}) AS h",
    )


def _catalog(cursor, models) -> None:
    Package, Build, Run = models["Package"], models["Build"], models["Run"]
    insert_select(
        cursor,
        Package,
        {
            "id": "p + 1",
            "name": "'pkg' || lpad(p::text, 4, '0')",
            "status": "'active'",
            "summary": "'Benchmark package ' || p",
            "latest_version": f"'1.{VERSIONS - 1}'",
        },
        f"generate_series(0, {PACKAGES - 1}) AS p",
    )
    cursor.execute(
        f"INSERT INTO {Package.maintainers.through._meta.db_table} (package_id, maintainer_id) "
        f"SELECT p + 1, (p % {MAINTAINERS}) + 1 FROM generate_series(0, {PACKAGES - 1}) AS p "
        f"UNION ALL SELECT p + 1, ((p + 7) % {MAINTAINERS}) + 1 "
        f"FROM generate_series(0, {PACKAGES - 1}, 10) AS p"
    )
    subdirs = "ARRAY[" + ",".join(f"'{s}'" for s in SUBDIRS) + "]"
    name = "'pkg' || lpad((b / 20)::text, 4, '0')"
    version = "'1.' || ((b / 4) % 5)"
    subdir = f"({subdirs})[(b % 4) + 1]"
    insert_select(
        cursor,
        Build,
        {
            "id": "b + 1",
            "channel_id": "1",
            "package_id": "b / 20 + 1",
            "subdir": subdir,
            "name": name,
            "version": version,
            "build_string": "'py311_0'",
            "filename": f"{name} || '-' || {version} || '-py311_0.conda'",
            "depends": """'["pytorch >=2.1,<2.11", "numpy"]'::jsonb""",
            "depends_names": """'["numpy", "pytorch"]'::jsonb""",
            "record_digest": "md5(b::text)",
            "sha256": "md5(b::text) || md5(b::text)",
            "timestamp": "now() - ((4 - (b / 4) % 5) * interval '60 days')",
        },
        f"generate_series(0, {BUILDS - 1}) AS b",
    )
    runs = JOBS // JOBS_PER_RUN
    insert_select(
        cursor,
        Run,
        {
            "id": "r + 1",
            "trigger": "'full'",
            "state": f"CASE WHEN r = {runs - 1} THEN 'running' ELSE 'finished' END",
            "trigger_detail": "'benchmark run ' || r",
            "created_at": f"now() - interval '{HISTORY_DAYS} days' "
            f"+ r * interval '{HISTORY_DAYS * 86400 // runs} seconds'",
        },
        f"generate_series(0, {runs - 1}) AS r",
    )


def _job_expressions() -> dict[str, str]:
    in_flight_from = JOBS - JOBS_PER_RUN
    status = (
        f"CASE WHEN j < {in_flight_from} THEN 'finished' "
        f"WHEN j < {in_flight_from + 100} THEN 'running' ELSE 'queued' END"
    )
    seconds = HISTORY_DAYS * 86400 / JOBS
    subdirs = "ARRAY[" + ",".join(f"'{s}'" for s in SUBDIRS) + "]"
    variants = "ARRAY[" + ",".join(f"'{v}'" for v in VARIANTS) + "]"
    cell = f"(j % {ALL_CELLS})"
    build_index = f"({cell} / {CELLS_PER_BUILD})"
    finished = f"j < {in_flight_from}"
    return {
        "id": "j + 1",
        "run_id": f"j / {JOBS_PER_RUN} + 1",
        "kind": "'test'",
        "build_id": f"{build_index} + 1",
        "torch_release_id": f"(({cell} % {CELLS_PER_BUILD}) / 6) + 1",
        "variant_id": f"({cell} % 6) + 1",
        "platform_id": f"({build_index} % 4) + 1",
        "status": status,
        "verdict": f"CASE WHEN {finished} THEN pg_temp.bench_verdict(j) ELSE '' END",
        "queue_name": f"'test.' || ({subdirs})[({build_index} % 4) + 1] || '.' "
        f"|| ({variants})[({cell} % 6) + 1]",
        "host_id": f"CASE WHEN j < {in_flight_from + 100} THEN (j % {HOSTS}) + 1 END",
        "created_at": f"now() - interval '{HISTORY_DAYS} days' + j * interval '{seconds} seconds'",
        "started_at": f"CASE WHEN j < {in_flight_from + 100} THEN now() - interval "
        f"'{HISTORY_DAYS} days' + j * interval '{seconds} seconds' END",
        "finished_at": f"CASE WHEN {finished} THEN now() - interval '{HISTORY_DAYS} days' "
        f"+ j * interval '{seconds} seconds' + interval '10 minutes' END",
        "duration_s": f"CASE WHEN {finished} THEN 120 + (j * 7919) % 1800 END",
        "exit_code": f"CASE WHEN {finished} THEN 0 END",
    }


def _table_ddl(cursor, table: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(constraints other than the primary key, index definitions not backing a constraint)."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype <> 'p'",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
        [table, table],
    )
    return constraints, [row[0] for row in cursor.fetchall()]


def _jobs(cursor, models) -> None:
    Job = models["Job"]
    table = Job._meta.db_table
    constraints, indexes = _table_ddl(cursor, table)
    for name, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    cursor.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
        [table, table],
    )
    for (name,) in cursor.fetchall():
        cursor.execute(f'DROP INDEX "{name}"')

    def rebuild():
        for definition in indexes:
            cursor.execute(definition)
        for name, definition in constraints:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')

    try:
        _step(
            f"insert {JOBS:,} jobs (no secondary indexes)",
            insert_select,
            cursor,
            Job,
            _job_expressions(),
            f"generate_series(0::bigint, {JOBS - 1}) AS j",
        )
    except Exception:
        cursor.execute(f"TRUNCATE {table} CASCADE")  # leave the table whole, if empty
        rebuild()
        raise
    _step(f"rebuild {len(indexes)} indexes + {len(constraints)} constraints on jobs", rebuild)


def _cells(cursor, models) -> None:
    CellResult = models["CellResult"]
    latest = VERSIONS - 1
    # (build index, release index, variant index) of every cell the matrix shows.
    source = f"""(
      SELECT b, t, v, (b * {CELLS_PER_BUILD} + t * 6 + v) AS c
      FROM generate_series(0, {BUILDS - 1}) AS b, generate_series(0, {len(RELEASES) - 1}) AS t,
           generate_series(0, {len(VARIANTS) - 1}) AS v
      WHERE ((b / 4) % {VERSIONS} = {latest} AND t < 8)
         OR ((b / 4) % {VERSIONS} = {latest - 1} AND t >= 8)
    ) AS cells, LATERAL (
      SELECT c + {ALL_CELLS} * (({JOBS - 1} - c) / {ALL_CELLS}) AS j
    ) AS newest"""
    in_flight_from = JOBS - JOBS_PER_RUN
    verdict = (
        f"CASE WHEN newest.j < {in_flight_from} THEN pg_temp.bench_verdict(newest.j) "
        f"WHEN newest.j < {in_flight_from + 100} THEN 'running' ELSE 'queued' END"
    )
    insert_select(
        cursor,
        CellResult,
        {
            "build_id": "b + 1",
            "package_id": "b / 20 + 1",
            "torch_release_id": "t + 1",
            "variant_id": "v + 1",
            "platform_id": "(b % 4) + 1",
            "python": "''",
            "verdict": verdict,
            "latest_job_id": "newest.j + 1",
            "previous_verdict": f"CASE WHEN newest.j >= {ALL_CELLS} "
            f"THEN pg_temp.bench_verdict(newest.j - {ALL_CELLS}) ELSE '' END",
        },
        source,
    )


def generate(connection, models) -> dict[str, float]:
    """Truncate the benchmark tables and fill them; returns seconds per step."""
    timings = {}
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute("SET synchronous_commit = off")
        cursor.execute(VERDICT_SQL_FUNCTION)
        tables = ", ".join(m._meta.db_table for m in models.values())
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        timings["reference"] = _step(
            "platforms, variants, releases, maintainers, hosts", _reference, cursor, models
        )
        timings["catalog"] = _step(
            f"{PACKAGES:,} packages, {BUILDS:,} builds, runs", _catalog, cursor, models
        )
        start = time.perf_counter()
        _jobs(cursor, models)
        timings["jobs"] = time.perf_counter() - start
        timings["cells"] = _step("cell results", _cells, cursor, models)
        for model in models.values():
            table = model._meta.db_table
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        timings["analyze"] = _step("VACUUM ANALYZE", lambda: cursor.execute("VACUUM ANALYZE"))
    return timings
