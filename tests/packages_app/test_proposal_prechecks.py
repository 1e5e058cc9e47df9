"""Pre-checks as an RQ job: enqueued on commit, run by a real worker, recipes from a real HTTP
server on 127.0.0.1, dependencies resolved against Build rows of the catalog."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.template.loader import render_to_string

from packages_app.models import Proposal
from packages_app.models import ProposalNote
from packages_app.services.proposals import submit_proposal
from packages_app.services.proposals import withdraw_proposal
from packages_app.services.reviews import rerun_proposal_prechecks
from tests.factories import UserFactory
from tests.packages_app.proposal_helpers import RecipeServer
from tests.packages_app.proposal_helpers import drain_default_queue
from tests.packages_app.proposal_helpers import proposal_input
from tests.packages_app.proposal_helpers import queued_jobs
from tests.packages_app.proposal_helpers import seed_catalog

pytestmark = pytest.mark.django_db


@pytest.fixture
def recipes(settings):
    settings.RECIPE_FETCH_ALLOW_PRIVATE = True  # the recipe server is on 127.0.0.1
    with RecipeServer() as server:
        yield server


@pytest.fixture
def catalog(db):
    seed_catalog()


def _submit(capture, **overrides) -> Proposal:
    with capture(execute=True):
        proposal, _token = submit_proposal(
            data=proposal_input(**overrides),
            client_fingerprint="fp-test",
            site_url="http://testserver/",
        )
    return proposal


def _results(proposal: Proposal) -> dict[str, tuple[str, str]]:
    proposal.refresh_from_db()
    return {r["check"]: (r["outcome"], r["detail"]) for r in proposal.precheck_results}


def test_prechecks_are_enqueued_on_commit_and_not_run_in_the_request(
    recipes, catalog, django_capture_on_commit_callbacks
):
    url = recipes.serve("/kornia/meta.yaml", "kornia.meta.yaml")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        proposal, _ = submit_proposal(
            data=proposal_input(recipe_url=url), client_fingerprint="fp", site_url="http://t/"
        )
    assert queued_jobs() == []
    assert recipes.requests == []
    for callback in callbacks:
        callback()
    (job,) = queued_jobs()
    assert job.func_name == "packages_app.jobs.rq_run_proposal_prechecks"
    assert job.args == (proposal.pk,)
    assert recipes.requests == []  # still nothing fetched: the worker does that


def test_prechecks_of_a_good_recipe_all_pass(recipes, catalog, django_capture_on_commit_callbacks):
    url = recipes.serve("/kornia/meta.yaml", "kornia.meta.yaml")
    proposal = _submit(django_capture_on_commit_callbacks, recipe_url=url)
    assert proposal.state == Proposal.State.SUBMITTED
    assert drain_default_queue() == 1
    results = _results(proposal)
    assert list(results) == [
        "recipe_fetch",
        "recipe_render",
        "builds_package",
        "outputs",
        "test_section",
        "pytorch_upper_bound",
        "pytorch_bugfix",
        "dependencies_resolve",
        "license",
    ]
    assert {outcome for outcome, _ in results.values()} == {"pass"}, results
    assert "All 4 run requirements match" in results["dependencies_resolve"][1]
    assert proposal.state == Proposal.State.IN_REVIEW
    assert proposal.precheck_outcome == "pass"
    assert proposal.prechecked_at is not None


def test_prechecks_recipe_without_tests_fails_unless_run_test_file_exists(
    recipes, catalog, django_capture_on_commit_callbacks
):
    url = recipes.serve("/untested/meta.yaml", "no-tests.meta.yaml")
    proposal = _submit(
        django_capture_on_commit_callbacks, package_name="torch-untested", recipe_url=url
    )
    drain_default_queue()
    outcome, detail = _results(proposal)["test_section"]
    assert outcome == "fail"
    assert "torch-untested has no tests" in detail
    assert "/untested/run_test.py" in recipes.requests

    recipes.files["/untested/run_test.py"] = "import torch_untested\n"
    with django_capture_on_commit_callbacks(execute=True):
        rerun_proposal_prechecks(proposal=proposal, requested_by=UserFactory())
    drain_default_queue()
    outcome, detail = _results(proposal)["test_section"]
    assert outcome == "pass"
    assert "next to the recipe: run_test.py" in detail


def test_prechecks_recipe_without_upper_bound_fails(
    recipes, catalog, django_capture_on_commit_callbacks
):
    url = recipes.serve("/unbounded/meta.yaml", "no-upper-bound.meta.yaml")
    proposal = _submit(
        django_capture_on_commit_callbacks, package_name="torch-unbounded", recipe_url=url
    )
    drain_default_queue()
    results = _results(proposal)
    assert results["pytorch_upper_bound"][0] == "fail"
    assert "pytorch >=2.0" in results["pytorch_upper_bound"][1]
    assert "pytorch_bugfix" not in results
    assert proposal.precheck_outcome == "fail"
    assert proposal.state == Proposal.State.IN_REVIEW  # reviewers still decide


def test_prechecks_bound_excluding_bugfix_releases_warns(
    recipes, catalog, django_capture_on_commit_callbacks
):
    url = recipes.serve("/tight/meta.yaml", "tight-bound.meta.yaml")
    proposal = _submit(
        django_capture_on_commit_callbacks,
        package_name="torch-tight",
        recipe_url=url,
        license="MIT",
    )
    drain_default_queue()
    results = _results(proposal)
    assert results["pytorch_upper_bound"][0] == "pass"
    # The same lint as the promotion gate (packages_app.lint.rules): an error for a staged build
    # there, a warning for a recipe here (`<2.6` passes, `<=2.5.0` warns).
    assert results["pytorch_bugfix"] == (
        "warn",
        "torch-tight: pytorch >=2.4,<=2.5.0 excludes 2.5.1, a bugfix release of 2.5.0; "
        "prefer <2.6.0.",
    )
    assert results["key_dependency_bounds"][0] == "warn"
    assert "python >=3.9 has no upper bound" in results["key_dependency_bounds"][1]
    assert proposal.precheck_outcome == "warn"


def test_prechecks_multiple_outputs_check_each_output(
    recipes, catalog, django_capture_on_commit_callbacks
):
    url = recipes.serve("/vision/meta.yaml", "torchvision-split.meta.yaml")
    proposal = _submit(
        django_capture_on_commit_callbacks,
        package_name="torchvision",
        recipe_url=url,
        license="BSD-3-Clause",
    )
    drain_default_queue()
    results = _results(proposal)
    assert results["builds_package"][0] == "pass"
    assert results["outputs"][1].startswith(
        "3 outputs (libtorchvision, torchvision, torchvision-tests)"
    )
    # torchvision-tests has no tests of its own: a warning, not a failure.
    assert results["test_section"][0] == "warn"
    assert "Without tests: torchvision-tests" in results["test_section"][1]
    # libtorchvision's own outputs are not looked up in the channels; the rest resolve.
    assert results["dependencies_resolve"][0] == "pass"


def test_prechecks_unresolvable_dependencies_fail_with_names(
    recipes, catalog, django_capture_on_commit_callbacks
):
    text = (
        "package: {name: torch-deps, version: '1.0'}\n"
        "requirements:\n  run:\n"
        "    - pytorch >=2.4,<2.6\n    - python >=3.13\n    - no-such-package\n"
        "    - withdrawn-only\n    - __cuda >=12\n"
        "test: {imports: [torch_deps]}\nabout: {license: MIT, license_file: LICENSE}\n"
    )
    recipes.files["/deps/meta.yaml"] = text
    proposal = _submit(
        django_capture_on_commit_callbacks,
        package_name="torch-deps",
        recipe_url=recipes.url + "/deps/meta.yaml",
        license="MIT",
    )
    drain_default_queue()
    outcome, detail = _results(proposal)["dependencies_resolve"]
    assert outcome == "fail"
    assert "python >=3.13 (the channels have python 3.11.10, 3.12.7…)" in detail
    assert "no-such-package (no package named no-such-package)" in detail
    assert "withdrawn-only (no package named withdrawn-only)" in detail
    assert "pytorch" not in detail
    assert "__cuda" not in detail


def test_prechecks_with_an_empty_catalog_warn_instead_of_failing(
    recipes, django_capture_on_commit_callbacks
):
    url = recipes.serve("/kornia/meta.yaml", "kornia.meta.yaml")
    proposal = _submit(django_capture_on_commit_callbacks, recipe_url=url)
    drain_default_queue()
    outcome, detail = _results(proposal)["dependencies_resolve"]
    assert outcome == "warn"
    assert "no builds yet" in detail


@pytest.mark.parametrize(
    ("recipe_file", "message"),
    [
        ("broken-yaml.meta.yaml", "not valid YAML on line 8"),
        ("broken-jinja.meta.yaml", "Jinja syntax error on line 5"),
    ],
)
def test_prechecks_recipe_that_does_not_render_or_parse_fails_cleanly(
    recipes, catalog, django_capture_on_commit_callbacks, recipe_file, message
):
    url = recipes.serve("/broken/meta.yaml", recipe_file)
    proposal = _submit(django_capture_on_commit_callbacks, recipe_url=url)
    assert drain_default_queue() == 1
    results = _results(proposal)
    assert list(results) == ["recipe_fetch", "recipe_render"]
    assert results["recipe_render"][0] == "fail"
    assert message in results["recipe_render"][1]
    assert proposal.precheck_outcome == "fail"
    assert proposal.state == Proposal.State.IN_REVIEW


def test_prechecks_recipe_that_cannot_be_fetched_fails_with_the_reason(
    recipes, catalog, django_capture_on_commit_callbacks
):
    proposal = _submit(
        django_capture_on_commit_callbacks, recipe_url=recipes.url + "/missing/meta.yaml"
    )
    drain_default_queue()
    assert _results(proposal) == {
        "recipe_fetch": ("fail", f"no recipe found (404) at {recipes.url}/missing/meta.yaml")
    }
    # The status page must not claim a render that never happened.
    proposal.refresh_from_db()
    assert proposal.recipe_was_rendered is False
    page = render_to_string("packages_app/_prechecks.html", {"proposal": proposal})
    assert "recipe rendered for" not in page
    assert "the recipe was not rendered" in page


def test_prechecks_refuse_private_recipe_urls_by_default(
    settings, recipes, catalog, django_capture_on_commit_callbacks
):
    url = recipes.serve("/kornia/meta.yaml", "kornia.meta.yaml")
    settings.RECIPE_FETCH_ALLOW_PRIVATE = False
    proposal = _submit(django_capture_on_commit_callbacks, recipe_url=url)
    drain_default_queue()
    outcome, detail = _results(proposal)["recipe_fetch"]
    assert outcome == "fail"
    assert "127.0.0.1" in detail
    assert "public hosts" in detail
    assert recipes.requests == []


def test_prechecks_job_timeout_is_recorded_by_the_failure_callback(
    settings, recipes, catalog, django_capture_on_commit_callbacks
):
    settings.PRECHECK_JOB_TIMEOUT_S = 1
    # Templating that runs for minutes: the job's own limit stops it.
    recipes.files["/slow/meta.yaml"] = (
        "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}\n"
        "package: {name: kornia, version: '1'}\n"
    )
    proposal = _submit(
        django_capture_on_commit_callbacks, recipe_url=recipes.url + "/slow/meta.yaml"
    )
    drain_default_queue()
    proposal.refresh_from_db()
    assert proposal.precheck_outcome == Proposal.PrecheckOutcome.ERROR
    assert proposal.precheck_error.startswith("JobTimeoutException")
    assert proposal.state == Proposal.State.IN_REVIEW
    event = proposal.notes.get(kind=ProposalNote.Kind.EVENT)
    assert event.body.startswith("The pre-checks could not run: JobTimeoutException")


def test_prechecks_of_a_withdrawn_proposal_do_nothing(
    recipes, catalog, django_capture_on_commit_callbacks
):
    url = recipes.serve("/kornia/meta.yaml", "kornia.meta.yaml")
    proposal = _submit(django_capture_on_commit_callbacks, recipe_url=url)
    withdraw_proposal(proposal=proposal)
    assert drain_default_queue() == 1
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.WITHDRAWN
    assert proposal.precheck_results == []
    assert recipes.requests == []


def test_submission_emails_the_status_link_and_stores_only_its_hash(
    recipes, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        proposal, token = submit_proposal(
            data=proposal_input(), client_fingerprint="fp", site_url="https://distro.example.org/"
        )
    (message,) = mail.outbox
    assert message.to == ["ada@example.org"]
    assert f"https://distro.example.org/proposals/{token}/" in message.body
    proposal.refresh_from_db()
    stored = [str(value) for value in proposal.__dict__.values()]
    assert not any(token in value for value in stored)
    assert len(proposal.status_token_hash) == 64


@pytest.mark.django_db(transaction=True)
def test_prechecks_run_in_a_forked_rqworker_subprocess(recipes, catalog):
    """The deployment path: `manage.py rqworker` forks a work-horse per job (py-rattler is only
    used synchronously there, which is fork-safe)."""
    url = recipes.serve("/kornia/meta.yaml", "kornia.meta.yaml")
    proposal, _ = submit_proposal(
        data=proposal_input(recipe_url=url), client_fingerprint="fp", site_url="http://t/"
    )
    # Autocommit: the on-commit enqueue has run; a worker in another process picks it up.
    assert len(queued_jobs()) == 1
    database = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "distro_site.settings.test",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
        f"{database['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "RECIPE_FETCH_ALLOW_PRIVATE": "true",
    }
    completed = subprocess.run(
        [sys.executable, "manage.py", "rqworker", "default", "--burst"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.IN_REVIEW
    assert proposal.precheck_outcome == "pass"
    assert recipes.requests == ["/kornia/meta.yaml"]
