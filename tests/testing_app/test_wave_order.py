"""A wave's order: estimates from history, longest first with packages in turn, each queue's
remaining work counted in Redis (and recounted from PostgreSQL), and workers that take from
the queue with the most remaining work per serving worker. Plus the simulation parts of
bench/wave_sim.py, through a real distro_worker."""

import json
from dataclasses import dataclass
from datetime import timedelta

import django_rq
import pytest
from django.db import transaction
from django.utils import timezone
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from testing_app.models import Host
from testing_app.models import Job
from testing_app.models import Run
from testing_app.selectors.job_estimates import duration_history
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.execution import start_job
from testing_app.services.hosts import create_enrollment_token
from testing_app.services.queue_work import QUEUED_WORK_KEY
from testing_app.services.queue_work import busiest_first
from testing_app.services.queue_work import recount_queued_work
from testing_app.services.queue_work import work_per_serving_worker
from testing_app.services.simulation import simulated_host_facts
from testing_app.services.simulation import simulated_seconds
from testing_app.services.wave_order import push_order
from tests import factories
from tests.testing_app.conftest import cuda_variant
from tests.testing_app.conftest import wait_for


@dataclass
class Item:
    name: str
    priority: int
    expected_s: float
    share_key: int


def test_push_order_priority_then_longest_band_then_packages_in_turn():
    items = [
        Item("a-short", 0, 10, 1),
        Item("a-long-1", 0, 1000, 1),
        Item("a-long-2", 0, 900, 1),
        Item("b-long", 0, 600, 2),  # same band as 900 (512..1023): b's turn before a's second
        Item("urgent-short", 5, 1, 3),
        Item("c-mid", 0, 100, 3),
    ]
    order = [item.name for item in push_order(items)]
    assert order == ["urgent-short", "a-long-1", "b-long", "a-long-2", "c-mid", "a-short"]


def test_push_order_keeps_exact_longest_first_across_bands():
    items = [Item(str(s), 0, s, s) for s in (3, 70, 9000, 2, 400)]
    assert [item.expected_s for item in push_order(items)] == [9000, 400, 70, 3, 2]


@pytest.fixture
def history(cpu_cell):
    """Finished tests of package `hist` on the cpu cell: 10, 20 and 90 s."""
    build = factories.BuildFactory(package=factories.PackageFactory(name="hist"))
    run = Run.objects.create(trigger=Run.Trigger.FULL)
    now = timezone.now()
    for attempt, seconds in enumerate((10.0, 20.0, 90.0), start=1):
        Job.objects.create(
            run=run, kind=Job.Kind.TEST, build=build, status=Job.Status.FINISHED,
            verdict="passed", queue_name="h", attempt=attempt, started_at=now,
            finished_at=now, duration_s=seconds, **cpu_cell,
        )  # fmt: skip
    return build


@pytest.mark.django_db
def test_estimate_is_the_median_of_the_cell_then_the_package_then_the_default(
    history, cpu_cell, settings
):
    settings.EXPECTED_TEST_S = 333.0
    tests = duration_history(kind=Job.Kind.TEST, package_ids=[history.package_id])
    cell = {"variant_id": cpu_cell["variant"].pk, "platform_id": cpu_cell["platform"].pk}
    assert tests.expected_s(package_id=history.package_id, **cell) == 20.0
    other_variant = cuda_variant("12.8")
    assert (
        tests.expected_s(
            package_id=history.package_id,
            variant_id=other_variant.pk,
            platform_id=cpu_cell["platform"].pk,
        )
        == 20.0  # the package's median on any cell
    )
    assert tests.expected_s(package_id=None, **cell) == 333.0


@pytest.mark.django_db
def test_old_history_is_ignored(history, settings):
    settings.EXPECTED_DURATION_WINDOW_DAYS = 30
    Job.objects.update(finished_at=timezone.now() - timedelta(days=31))
    assert duration_history(kind=Job.Kind.TEST, package_ids=[history.package_id]).medians == {}


def _queued_ids(queue: str) -> list[int]:
    connection = django_rq.get_connection("default")
    return [
        int(raw.decode().rsplit("-", 1)[1]) for raw in connection.lrange(f"rq:queue:{queue}", 0, -1)
    ]


def _queued_work() -> dict[str, float]:
    raw = django_rq.get_connection("default").hgetall(QUEUED_WORK_KEY)
    return {key.decode(): float(value) for key, value in raw.items()}


@pytest.mark.django_db(transaction=True)
def test_enqueue_estimates_orders_and_counts_work_and_start_takes_it(history, cpu_cell, settings):
    settings.EXPECTED_TEST_S = 5.0
    settings.EXPECTED_INSTALL_CHECK_S = 1.0
    new = factories.BuildFactory(package=factories.PackageFactory(name="new"))
    run = Run.objects.create(trigger=Run.Trigger.MANUAL)
    with transaction.atomic():
        jobs = enqueue_jobs(
            run=run,
            jobs=[
                Job(kind=Job.Kind.TEST, build=new, **cpu_cell),
                Job(kind=Job.Kind.TEST, build=history, **cpu_cell),
                Job(kind=Job.Kind.INSTALL_CHECK, build=history, **cpu_cell),
            ],
        )
    no_history, known, check = jobs
    assert (no_history.expected_s, known.expected_s) == (5.0, 20.0)
    assert check.expected_s == 21.0  # its own (default) + the test it unlocks
    assert _queued_ids("test.linux-64.cpu") == [known.pk, no_history.pk]  # longest first
    assert (check.unlocks_s, check.unlocks_queue) == (20.0, "test.linux-64.cpu")
    # The check's test counts in its test queue already (latent work, test_queue_work.py).
    assert _queued_work() == {"test.linux-64.cpu": 45.0, "install": 21.0}
    with transaction.atomic():
        start_job(job_id=known.pk, worker=None)
    assert _queued_work()["test.linux-64.cpu"] == 25.0
    # PostgreSQL is the truth: a lost update is corrected by the recount.
    django_rq.get_connection("default").hset(QUEUED_WORK_KEY, "test.linux-64.cpu", 999)
    assert recount_queued_work() == {"test.linux-64.cpu": 25.0, "install": 21.0}
    assert _queued_work() == {"test.linux-64.cpu": 25.0, "install": 21.0}


def test_busiest_queue_per_serving_worker_goes_first(settings):
    connection = django_rq.get_connection("default")
    connection.hset(QUEUED_WORK_KEY, mapping={"scarce": 100.0, "common": 300.0, "empty": 0})
    connection.sadd(WORKERS_BY_QUEUE_KEY % "scarce", "w1")
    connection.sadd(WORKERS_BY_QUEUE_KEY % "common", "w1", "w2", "w3", "w4", "w5", "w6")
    names = ["common", "empty", "scarce", "unknown"]
    share = work_per_serving_worker(connection, names)
    assert share == {"common": 50.0, "empty": 0.0, "scarce": 100.0, "unknown": 0.0}
    # Equal shares keep the configured order; every queue stays in the list.
    assert busiest_first(names, share) == ["scarce", "common", "empty", "unknown"]


def test_simulated_durations_are_fixed_by_the_cell_and_heavy_tailed(settings):
    settings.SIMULATION_SEED = "7"
    cell = {"kind": "test", "variant": "cpu", "subdir": "linux-64", "python": "3.12"}
    first = simulated_seconds(package="p", release="2.9.0", **cell)
    assert first == simulated_seconds(package="p", release="2.9.0", **cell)
    assert first != simulated_seconds(package="p", release="2.10.0", **cell)
    tests = sorted(simulated_seconds(package=f"p{i}", release="2.9.0", **cell) for i in range(2000))
    median = tests[len(tests) // 2]
    assert tests[-1] > 10 * median  # a few long jobs


def test_simulated_host_facts_reject_bad_input():
    facts = simulated_host_facts(json.dumps({"subdir": "win-64", "max_cuda": "12.8"}))
    assert (facts.subdir, facts.max_cuda, facts.gpus) == ("win-64", "12.8", [])
    for text in ("{", "[]", '{"max_cuda": "12.8"}', '{"subdir": "win-64", "bogus": 1}'):
        with pytest.raises(ValueError, match="SIMULATED_HOST_FACTS"):
            simulated_host_facts(text)


@pytest.mark.django_db(transaction=True)
def test_a_simulated_host_runs_a_planned_cell_with_the_sleeping_runner(
    start_worker, make_build, cpu_cell
):
    """A real distro_worker playing a win-64 host: enrolled with the given facts, it takes the
    install check and then the test it unlocks, and both pass through the sleeping runner."""
    win = factories.PlatformFactory(subdir="win-64")
    build = make_build("simpkg")
    token = create_enrollment_token(name="sim", pre_approved=True)[1]
    facts = {"subdir": "win-64", "max_cuda": "", "rattler_version": "sim"}
    start_worker(
        "--name", "sim-win", "--enroll-token", token, "--cpu-queue", "install",
        env={
            "SIMULATED_HOST_FACTS": json.dumps(facts),
            "SIMULATED_JOB_RUNNER": "testing_app.services.simulation.sleeping_runner",
            "SIMULATION_TIME_SCALE": "0.0001",
        },
    )  # fmt: skip
    run = Run.objects.create(trigger=Run.Trigger.MANUAL)
    axes = {**cpu_cell, "platform": win}
    with transaction.atomic():
        enqueue_jobs(run=run, jobs=[Job(kind=Job.Kind.INSTALL_CHECK, build=build, **axes)])
    wait_for(
        lambda: Job.objects.filter(run=run, kind="test", status="finished").exists(),
        what="the simulated test to finish",
    )
    assert Host.objects.get(name="sim-win").platform.subdir == "win-64"
    jobs = Job.objects.filter(run=run).order_by("pk")
    assert [(j.kind, j.verdict, j.runner) for j in jobs] == [
        ("install_check", "passed", "simulated"),
        ("test", "passed", "simulated"),
    ]
    assert all(j.command[0] == "sleep" for j in jobs)
