"""The whole product for its four kinds of users, end to end, in Chromium on a live server with a
real `distro_worker` subprocess (the rattler runner; no conda-build, no GPU):

a proposer submits a package (its recipe served over HTTP) -> the worker runs the pre-checks ->
a reviewer approves -> the package's sample build lands in staging and is synced and planned ->
the worker runs the install checks and the tests -> the maintainer reads the matrix and the
failure log -> a release manager promotes a passing build into the local target channel -> a
solver installs it from there. Every step's page is saved under var/screenshots/journey-*.png.
"""

import io
import json
import platform
import re

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from playwright.sync_api import expect

from packages_app.models import Build
from packages_app.models import Maintainer
from packages_app.models import TorchRelease
from packages_app.services.packages import register_package
from testing_app.adapters.host_probe import conda_subdir
from testing_app.adapters.solver import solve_environment
from testing_app.models import InstallabilityCheck
from testing_app.models import Job
from testing_app.models import Promotion
from testing_app.models import Run
from testing_app.models import Variant
from testing_app.services.installability import solver_channels
from testing_app.services.installability import target_channel
from tests.browser.helpers import WorkerProcess
from tests.browser.helpers import fill_proposal_form
from tests.browser.helpers import open_person
from tests.browser.helpers import sign_in
from tests.browser.helpers import trusted_worker_command
from tests.browser.helpers import wait_until
from tests.browser.helpers import worker_command
from tests.browser.helpers import worker_env
from tests.factories import UserFactory
from tests.packages_app.proposal_helpers import RecipeServer
from tests.packages_app.proposal_helpers import restore_migrated_groups

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a long journey passphrase"  # noqa: S105
PACKAGE = "sample-fails-on-torch-2-5"  # the demo's sample whose test fails with PyTorch 2.5
GREEN = "sample-passes"  # a sample already in the distribution, green everywhere
INSTALL_SETS = [["pytorch"]]
SUBDIR = conda_subdir(platform.system(), platform.machine())


def _account(username: str, *, email: str = "", group: str = ""):
    user = UserFactory(username=username, email=email or f"{username}@example.org")
    user.set_password(PASSWORD)
    user.save()
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def distribution(tmp_path, settings):
    """What the operators set up before anyone arrives: the demo catalog (the real upstream
    channels), an empty local target channel, the people's accounts, and one green sample
    package already registered with its maintainer."""
    settings.VAR_DIR = tmp_path / "var"
    settings.RECIPE_FETCH_ALLOW_PRIVATE = True  # the recipe server is on 127.0.0.1
    # What users install together here: the demo's upstream torchvision needs PyTorch 2.7,
    # which the samples (<2.6) exclude, so the default set would rightly block them.
    settings.INSTALL_SETS = INSTALL_SETS
    call_command("seed_demo", "--no-samples", stdout=io.StringIO())
    call_command("init_target_channel", "--dir", str(tmp_path / "target"), stdout=io.StringIO())
    restore_migrated_groups()
    _account("rita", group="reviewers")
    _account("rm", group="release managers")
    _account("ada", email="ada@example.org")  # made by staff; matched to her by email
    grace = Maintainer.objects.create(name="Grace Hopper", email="grace@example.org")
    register_package(name=GREEN, summary="SAMPLE: passes with every PyTorch", maintainers=[grace])
    return settings


@pytest.fixture
def worker(distribution, tmp_path, transactional_db):
    """This machine as an enrolled test host: one long-running worker on the capability queue
    of its CPU variant plus the install queue, and the web side's worker on the default and
    promote queues."""
    env = worker_env(
        tmp_path,
        distribution,
        RECIPE_FETCH_ALLOW_PRIVATE="true",
        INSTALL_SETS=json.dumps(INSTALL_SETS),
    )
    command = worker_command("journey-host", "install")
    trusted = trusted_worker_command("default", "promote")
    with (
        WorkerProcess(trusted, env=env, log_path=tmp_path / "trusted-worker.log"),
        WorkerProcess(command, env=env, log_path=tmp_path / "worker.log") as process,
    ):
        yield process


@pytest.fixture
def recipe_url():
    with RecipeServer() as server:
        yield server.serve(f"/{PACKAGE}/recipe/meta.yaml", f"{PACKAGE}.meta.yaml")


def _reload_until(page, locator, text: str, *, worker, what: str):
    """Reload a page until `locator` shows `text` (the worker updates the database)."""

    def shows() -> bool:
        page.reload()
        return locator.count() > 0 and text in locator.first.inner_text()

    wait_until(shows, what=what, worker=worker)


def test_journey_from_proposal_to_an_install_from_the_target(
    distribution, worker, recipe_url, live_server, browser, page, screenshot, request, tmp_path
):
    base = live_server.url

    # 1. The proposer (anonymous) submits the web form; the worker runs the pre-checks.
    page.goto(f"{base}/propose/")
    fill_proposal_form(
        page,
        name=PACKAGE,
        summary="SAMPLE: a package whose test genuinely fails with PyTorch 2.5",
        license_="BSD-3-Clause",
        home_url="https://example.org/sample-fails-on-torch-2-5",
        repo_url="https://example.org/sample-fails-on-torch-2-5.git",
        recipe_url=recipe_url,
        rationale="It runs on PyTorch tensors; the demo shows how a failure on 2.5 is handled.",
        maintainers=[("Ada Lovelace", "ada@example.org", "ada")],
        contact_email="ada@example.org",
    )
    screenshot("journey-01-proposer-form")
    page.get_by_role("button", name="Submit the proposal").click()
    page.wait_for_url(re.compile(r"/proposals/[A-Za-z0-9_-]{20,}/$"))
    expect(page.locator("h1")).to_contain_text(f"Proposal of {PACKAGE}")
    _reload_until(
        page, page.locator("h1"), "Waiting for review", worker=worker, what="the pre-checks"
    )
    checks = page.locator("table.checks tbody tr")
    expect(checks).to_have_count(9)
    expect(page.locator("table.checks .outcome-pass")).to_have_count(9)
    expect(page.locator("table.checks")).to_contain_text("pytorch >=2.4,<2.6")
    status_url = page.url
    screenshot("journey-02-proposer-prechecks")

    # 2. A reviewer signs in, finds it in the queue and approves it.
    reviewer = open_person(browser, request)
    sign_in(reviewer, base, username="rita", password=PASSWORD, next_path="/review/")
    row = reviewer.locator("table.review-queue tbody tr", has_text=PACKAGE)
    expect(row).to_have_count(1)
    screenshot("journey-03-reviewer-queue", of=reviewer)
    row.get_by_role("link", name=PACKAGE).click()
    reviewer.get_by_label("Approve: register the package and its maintainers").check()
    reviewer.get_by_label("Note to the proposer").fill("Welcome; the sample build comes next.")
    reviewer.get_by_role("button", name="Record the decision").click()
    expect(reviewer.locator(".messages")).to_contain_text(f"{PACKAGE}: approved.")
    screenshot("journey-04-reviewer-approved", of=reviewer)
    page.goto(status_url)
    expect(page.locator("h1")).to_contain_text("Approved")

    # 3. The package's sample build lands in the staging channel; the sync plans its cells.
    call_command("seed_demo", stdout=io.StringIO())
    # The samples' PyTorch stand-ins are CPU-only: staged first in the strict channel stack, they
    # shadow the real CUDA builds of 2.4.1 and 2.5.1, whose CUDA cells would rightly come out
    # uninstallable (the gate would block on them). In this journey those releases ship cpu only.
    cpu = Variant.objects.get(name="cpu")
    for release in TorchRelease.objects.filter(version__in=["2.4.1", "2.5.1"]):
        release.variants.set([cpu])
    build = Build.objects.get(name=PACKAGE, channel__name="samples")
    run = Run.objects.get(trigger="new_build")
    assert Job.objects.filter(run=run, build=build, kind="install_check").exists()
    page.goto(f"{base}/packages/{PACKAGE}/")
    expect(page.locator("h1")).to_contain_text(PACKAGE)
    expect(page.locator("body")).to_contain_text(build.filename)
    expect(page.locator("dl.facts")).to_contain_text("Ada Lovelace")
    screenshot("journey-05-package-build-staged")

    # 4. The worker runs the install checks and the tests (no conda-build here: the rattler
    # runner; the samples rattler-build built are tested by rattler-build itself).
    wait_until(
        lambda: Run.objects.get(pk=run.pk).state == Run.State.FINISHED,
        what="the run's install checks and tests",
        timeout_s=180,
        worker=worker,
    )
    jobs = Job.objects.filter(run=run)
    assert set(jobs.filter(kind="test").values_list("runner", flat=True)) == {
        "rattler",
        "rattler-build",
    }
    assert set(jobs.filter(kind="test", build=build).values_list("runner", flat=True)) == {
        "rattler-build"
    }
    # The build's own cells; its re-tests pinned to a staged PyTorch stand-in are kept apart.
    own = jobs.filter(pinned_build__isnull=True)
    failed = own.get(kind="test", build=build, verdict="failed")
    assert failed.torch_release.version == "2.5.1"
    assert own.filter(kind="test", build=build, verdict="passed").count() == 1
    page.goto(f"{base}/runs/{run.pk}/")
    expect(page.locator("h1")).to_contain_text(f"Run {run.pk}")
    expect(page.locator("body")).to_contain_text("Finished")
    screenshot("journey-06-run-finished")

    # 5. The maintainer signs in: her package, the matrix, the failure log.
    maintainer = open_person(browser, request)
    sign_in(maintainer, base, username="ada", password=PASSWORD, next_path="/accounts/")
    packages = maintainer.locator("section[aria-labelledby=packages]")
    expect(packages).to_contain_text(PACKAGE)
    screenshot("journey-07-maintainer-account", of=maintainer)
    maintainer.goto(f"{base}/matrix/?q=sample")
    mine = maintainer.locator("tr", has_text=PACKAGE)
    expect(mine.locator('td[data-verdict="failed"]')).to_have_count(1)
    expect(mine.locator('td[data-verdict="passed"]')).to_have_count(1)
    mine.locator('td[data-verdict="failed"]').scroll_into_view_if_needed()
    # Scrolled sideways, the row still says whose verdicts these are (a sticky first column).
    assert mine.locator("th[scope=row]").bounding_box()["x"] >= 0
    screenshot("journey-08-maintainer-matrix", of=maintainer)
    maintainer.goto(f"{base}/packages/{PACKAGE}/#test-matrix")
    failed_chip = maintainer.locator("section.package-matrix a.verdict.v-failed")
    # The newest releases come first: the maintainer scrolls to the end (2.5.1, 2.4.1).
    maintainer.locator("section.package-matrix .matrix-scroll").evaluate(
        "scroller => { scroller.scrollLeft = scroller.scrollWidth; }"
    )
    expect(failed_chip.first).to_be_visible()
    # The wide matrix scrolls inside its box; the page itself does not grow sideways.
    assert maintainer.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot("journey-09-maintainer-package-matrix", of=maintainer)
    failed_chip.first.click()
    # The chip opens the cell's own page (issue 15): its reason first, then the job behind it.
    maintainer.wait_for_url("**/matrix/cell/**")
    expect(maintainer.locator("body")).to_contain_text("does not work with PyTorch 2.5")
    maintainer.goto(f"{base}/jobs/{failed.pk}/")
    expect(maintainer.locator(".excerpt-text")).to_contain_text("does not work with PyTorch 2.5")
    expect(maintainer.locator("body")).to_contain_text("rattler_runner.py exited with 1")
    expect(maintainer.get_by_role("button", name="↻ Retry this cell")).to_be_visible()
    screenshot("journey-10-maintainer-failure-log", of=maintainer)

    # 6. The release manager checks installability and promotes the green build.
    green = Build.objects.get(name=GREEN, channel__name="samples")
    manager = open_person(browser, request)
    sign_in(manager, base, username="rm", password=PASSWORD, next_path="/promotions/")
    blocked = manager.locator('table[data-group="blocked"]')
    expect(blocked).to_contain_text(PACKAGE)
    expect(blocked.locator(f"#candidate-{build.pk}")).to_contain_text("failed")
    manager.get_by_role("button", name="Check installability of never-checked candidates").click()
    wait_until(
        lambda: (
            InstallabilityCheck.objects.filter(build=green).exists()
            and not InstallabilityCheck.objects.filter(state__in=["queued", "running"]).exists()
        ),
        what="the installability checks",
        worker=worker,
    )
    manager.goto(f"{base}/promotions/")
    promotable = manager.locator('table[data-group="promotable"]')
    expect(promotable.locator(f"#candidate-{green.pk}")).to_contain_text("Every policy passes")
    screenshot("journey-11-release-manager-queue", of=manager)
    manager.locator(f"#candidate-{green.pk}").get_by_role("link", name=f"{GREEN} 1.0.0").click()
    expect(manager.locator("#gate-summary")).to_have_text("Every policy passes")
    screenshot("journey-12-release-manager-excuses", of=manager)
    manager.get_by_role("link", name="Promote…").click()
    plan = manager.locator("#copy-plan")
    expect(plan).to_contain_text(green.filename)
    expect(plan).to_contain_text(str((tmp_path / "target").resolve()))
    screenshot("journey-13-release-manager-confirm", of=manager)
    manager.get_by_role("button", name="Promote 1 build into target").click()
    promotion = Promotion.objects.get()
    # Finished once every follow-up is recorded (target re-read, notices, install sets).
    wait_until(
        lambda: Promotion.objects.get(pk=promotion.pk).followups,
        what="the promote job and its follow-ups",
        worker=worker,
    )
    followups = {step["step"]: step["ok"] for step in Promotion.objects.get().followups}
    assert followups["re-sync the target channel"]
    assert followups["notify maintainers"]
    manager.reload()
    expect(manager.locator("#promotion-state")).to_have_attribute("data-state", "done")
    expect(manager.locator("body")).to_contain_text("1 of 1 item landed")
    screenshot("journey-14-release-manager-promoted", of=manager)
    manager.goto(f"{base}/promotions/target/")
    expect(manager.locator("#target-builds")).to_contain_text(green.filename)
    screenshot("journey-15-target-channel", of=manager)

    # 7. A user's solver installs the promoted set from the target channel.
    target = target_channel()
    solved = solve_environment(
        channels=solver_channels(target),
        platform=SUBDIR,
        specs=[GREEN],
        virtual_packages=distribution.INSTALL_CHECK_VIRTUAL_PACKAGES[SUBDIR],
    )
    assert solved.find(GREEN).channel.rstrip("/") == target.base_url.rstrip("/")
    assert Build.objects.get(pk=green.pk).state == Build.State.PROMOTED
    worker.check_alive()
