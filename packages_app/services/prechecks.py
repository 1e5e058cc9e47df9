"""Automatic pre-checks of a proposal's recipe, run as an RQ job right after submission.

The job fetches the recipe (adapters.recipe_fetch), renders and parses it (adapters.recipe), and
applies the rules of recipe_checks; the results are stored on the Proposal. The network and
rendering happen outside any transaction; only the state changes are short transactions.
A recipe that cannot be fetched, rendered or parsed is a failed check with its reason; an
unexpected crash or a job timeout is recorded by the job's failure callback (outcome "error").
"""

import logging
import posixpath
from collections.abc import Callable

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rq import Callback

from packages_app.adapters.recipe import RecipeParseError
from packages_app.adapters.recipe import RecipeRenderError
from packages_app.adapters.recipe import RenderedRecipe
from packages_app.adapters.recipe import RenderTarget
from packages_app.adapters.recipe_fetch import FetchedText
from packages_app.adapters.recipe_fetch import FetchPolicy
from packages_app.adapters.recipe_fetch import RecipeFetchError
from packages_app.adapters.recipe_fetch import RecipeNotFoundError
from packages_app.adapters.recipe_fetch import fetch_recipe
from packages_app.adapters.recipe_fetch import fetch_text
from packages_app.adapters.recipe_limits import RenderLimits
from packages_app.adapters.recipe_limits import render_recipe_limited
from packages_app.lint.recipe_checks import FAIL
from packages_app.lint.recipe_checks import PASS
from packages_app.lint.recipe_checks import WARN
from packages_app.lint.recipe_checks import CheckResult
from packages_app.lint.recipe_checks import check_builds_proposed_package
from packages_app.lint.recipe_checks import check_dependencies_resolve
from packages_app.lint.recipe_checks import check_key_dependency_bounds
from packages_app.lint.recipe_checks import check_license
from packages_app.lint.recipe_checks import check_outputs
from packages_app.lint.recipe_checks import check_pytorch_bugfix_releases
from packages_app.lint.recipe_checks import check_pytorch_upper_bound
from packages_app.lint.recipe_checks import check_tests
from packages_app.lint.recipe_checks import overall_outcome
from packages_app.lint.recipe_checks import run_requirement_names
from packages_app.models import OPEN_PROPOSAL_STATES
from packages_app.models import Proposal
from packages_app.models import ProposalNote
from packages_app.selectors.proposals import catalog_has_builds
from packages_app.selectors.proposals import get_catalog_records

logger = logging.getLogger(__name__)

# Recipes are rendered for the platform every PyTorch release ships, CPU variant.
RENDER_TARGET = RenderTarget(platform="linux-64", python="3.11")
SIBLING_TEST_SCRIPTS = ("run_test.py", "run_test.sh", "run_test.bat")
PRECHECK_QUEUE = "default"
# RQ entry points are enqueued by dotted name: jobs.py imports the services, never the reverse.
PRECHECK_FUNCTION = "packages_app.jobs.rq_run_proposal_prechecks"
PRECHECK_FAILURE_CALLBACK = "packages_app.jobs.rq_record_precheck_failure"

# fetch(url, policy=...) -> FetchedText; the recipe fetcher and the one for sibling files.
Fetcher = Callable[..., FetchedText]


def fetch_policy() -> FetchPolicy:
    return FetchPolicy(
        timeout_s=settings.RECIPE_FETCH_TIMEOUT_S,
        max_bytes=settings.RECIPE_MAX_BYTES,
        allow_private=settings.RECIPE_FETCH_ALLOW_PRIVATE,
    )


def render_limits() -> RenderLimits:
    return RenderLimits(
        memory_bytes=settings.RECIPE_RENDER_MEMORY_MB * 1024 * 1024,
        cpu_s=settings.RECIPE_RENDER_CPU_S,
        wall_s=settings.RECIPE_RENDER_WALL_S,
    )


def enqueue_prechecks_on_commit(proposal_id: int) -> None:
    """Enqueue the pre-checks once the current transaction commits.

    Robust: if Redis is down, the committed proposal stays with pending pre-checks (the error is
    logged, the queue shows it pending) and a reviewer re-runs them later.
    """
    transaction.on_commit(lambda: enqueue_prechecks(proposal_id), robust=True)


def enqueue_prechecks(proposal_id: int) -> None:
    """Put the pre-check job of a proposal on the queue."""
    django_rq.get_queue(PRECHECK_QUEUE).enqueue(
        PRECHECK_FUNCTION,
        proposal_id,
        job_timeout=settings.PRECHECK_JOB_TIMEOUT_S,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        on_failure=Callback(PRECHECK_FAILURE_CALLBACK),
        description=f"pre-checks of proposal {proposal_id}",
    )


def run_proposal_prechecks(
    *, proposal_id: int, fetch: Fetcher = fetch_recipe, fetch_sibling: Fetcher = fetch_text
) -> Proposal | None:
    """Run every pre-check of one proposal and store the results.

    Returns None (and changes nothing) when the proposal is gone or no longer open.
    """
    proposal = _mark_checking(proposal_id)
    if proposal is None:
        return None
    results = evaluate_recipe_url(
        recipe_url=proposal.recipe_url,
        package_name=proposal.package_name,
        form_license=proposal.license,
        fetch=fetch,
        fetch_sibling=fetch_sibling,
    )
    return _record_results(proposal_id, results)


def evaluate_recipe_url(
    *,
    recipe_url: str,
    package_name: str,
    form_license: str,
    fetch: Fetcher = fetch_recipe,
    fetch_sibling: Fetcher = fetch_text,
) -> list[CheckResult]:
    """Fetch, render and check one recipe; each step that fails ends the list with its reason."""
    policy = fetch_policy()
    try:
        fetched = fetch(recipe_url, policy=policy)
    except RecipeFetchError as exc:
        return [CheckResult("recipe_fetch", "Recipe can be fetched", FAIL, str(exc))]
    results = [
        CheckResult(
            "recipe_fetch",
            "Recipe can be fetched",
            PASS,
            f"{fetched.url} ({fetched.size:,} bytes).",
        )
    ]
    filename = "recipe.yaml" if fetched.url.rstrip("/").endswith("recipe.yaml") else "meta.yaml"
    try:
        recipe = render_recipe_limited(
            fetched.text, filename=filename, target=RENDER_TARGET, limits=render_limits()
        )
    except (RecipeRenderError, RecipeParseError) as exc:
        results.append(CheckResult("recipe_render", "Recipe renders and parses", FAIL, str(exc)))
        return results
    results.append(_render_result(recipe))
    results.append(check_builds_proposed_package(recipe, package_name))
    results.append(check_outputs(recipe))
    siblings = _sibling_test_scripts(recipe, package_name, fetched.url, policy, fetch_sibling)
    results.append(check_tests(recipe, package_name, sibling_scripts=siblings))
    results.append(check_pytorch_upper_bound(recipe))
    bugfix = check_pytorch_bugfix_releases(recipe)
    if bugfix is not None:
        results.append(bugfix)
    key_dependencies = check_key_dependency_bounds(recipe)
    if key_dependencies is not None:
        results.append(key_dependencies)
    subdirs = (RENDER_TARGET.platform, "noarch")
    catalog = get_catalog_records(names=run_requirement_names(recipe), subdirs=subdirs)
    results.append(
        check_dependencies_resolve(recipe, catalog, catalog_is_empty=not catalog_has_builds())
    )
    results.append(check_license(recipe, form_license))
    return results


def _render_result(recipe: RenderedRecipe) -> CheckResult:
    title = "Recipe renders and parses"
    notes = list(recipe.warnings)
    if recipe.undefined:
        notes.append(
            "variables not defined for this render (left empty): " + ", ".join(recipe.undefined)
        )
    detail = (
        f"{recipe.format} of {recipe.name} {recipe.version}, "
        f"rendered for {recipe.target.describe()}."
    )
    if notes:
        return CheckResult("recipe_render", title, WARN, detail + " " + "; ".join(notes) + ".")
    return CheckResult("recipe_render", title, PASS, detail)


def _sibling_test_scripts(
    recipe: RenderedRecipe, package_name: str, recipe_url: str, policy: FetchPolicy, fetch_sibling
) -> list[str]:
    """run_test.* files next to the recipe, looked for only when the package declares no tests."""
    top = next((o for o in recipe.outputs if o.is_top_level and o.name == package_name), None)
    if top is None or top.tests.runnable or recipe.format != "meta.yaml":
        return []
    folder = recipe_url.rsplit("/", 1)[0]
    found = []
    for script in SIBLING_TEST_SCRIPTS:
        try:
            fetch_sibling(posixpath.join(folder, script), policy=policy)
        except RecipeNotFoundError:
            continue
        except RecipeFetchError as exc:
            logger.info("sibling %s of %s not readable: %s", script, recipe_url, exc)
            continue
        found.append(script)
    return found


@transaction.atomic
def _mark_checking(proposal_id: int) -> Proposal | None:
    proposal = Proposal.objects.select_for_update().filter(pk=proposal_id).first()
    if proposal is None or proposal.state not in OPEN_PROPOSAL_STATES:
        logger.info("pre-checks of proposal %s skipped: gone or closed", proposal_id)
        return None
    if proposal.state == Proposal.State.SUBMITTED:
        proposal.state = Proposal.State.CHECKING
    proposal.precheck_outcome = Proposal.PrecheckOutcome.PENDING
    proposal.save(update_fields=["state", "precheck_outcome", "updated_at"])
    return proposal


@transaction.atomic
def _record_results(proposal_id: int, results: list[CheckResult]) -> Proposal | None:
    proposal = Proposal.objects.select_for_update().filter(pk=proposal_id).first()
    if proposal is None:
        return None
    # Results are kept even if the proposal was decided meanwhile: they are part of the record.
    proposal.precheck_results = [r.as_dict() for r in results]
    proposal.precheck_outcome = overall_outcome(results)
    proposal.precheck_error = ""
    proposal.prechecked_at = timezone.now()
    if proposal.state == Proposal.State.CHECKING:
        proposal.state = Proposal.State.IN_REVIEW
    proposal.save()
    return proposal


@transaction.atomic
def record_precheck_failure(*, proposal_id: int, reason: str) -> Proposal | None:
    """The pre-check job crashed or ran past its time: say so, and hand over to the reviewers."""
    proposal = Proposal.objects.select_for_update().filter(pk=proposal_id).first()
    if proposal is None:
        return None
    proposal.precheck_outcome = Proposal.PrecheckOutcome.ERROR
    proposal.precheck_error = reason[:2000]
    proposal.prechecked_at = timezone.now()
    if proposal.state in (Proposal.State.SUBMITTED, Proposal.State.CHECKING):
        proposal.state = Proposal.State.IN_REVIEW
    proposal.save()
    ProposalNote.objects.create(
        proposal=proposal,
        author_name="pre-checks",
        kind=ProposalNote.Kind.EVENT,
        body=f"The pre-checks could not run: {reason[:2000]}",
    )
    logger.warning("pre-checks of proposal %s failed: %s", proposal_id, reason)
    return proposal
