"""Trusted publishers of a package: registered and removed by its maintainers (issue 21).

testing_app.services.trusted_publishing accepts their GitHub Actions OIDC tokens on
POST /api/test-this-build/.
"""

import re

from django.core.exceptions import ValidationError
from django.db import transaction

from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import TrustedPublisher

# GitHub's rules: owners are letters, digits and single hyphens (39 at most); repository names
# letters, digits, ".", "_" and "-" (100 at most).
REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
WORKFLOW = re.compile(r"^[A-Za-z0-9._-]+\.ya?ml$")


def normalised_publisher_fields(*, repository: str, workflow: str, environment: str) -> dict:
    """The fields as stored; ValidationError names each field that cannot be a GitHub one."""
    repository = repository.strip().removeprefix("https://github.com/").strip("/")
    workflow = workflow.strip().removeprefix(".github/workflows/")
    environment = environment.strip()
    errors = {}
    if not REPOSITORY.match(repository) or repository.split("/")[1] in (".", ".."):
        errors["repository"] = "The repository as owner/name, e.g. kornia/kornia."
    if not WORKFLOW.match(workflow):
        errors["workflow"] = "The workflow's file name under .github/workflows/, e.g. release.yml."
    if len(environment) > 255:
        errors["environment"] = "At most 255 characters."
    if errors:
        raise ValidationError(errors)
    return {"repository": repository, "workflow": workflow, "environment": environment}


@transaction.atomic
def register_trusted_publisher(
    *,
    package: Package,
    repository: str,
    workflow: str,
    environment: str = "",
    created_by: Maintainer | None = None,
) -> TrustedPublisher:
    fields = normalised_publisher_fields(
        repository=repository, workflow=workflow, environment=environment
    )
    duplicate = TrustedPublisher.objects.filter(
        package=package,
        repository__iexact=fields["repository"],
        workflow__iexact=fields["workflow"],
        environment__iexact=fields["environment"],
    )
    if duplicate.exists():
        raise ValidationError(f"{package.name} already trusts this workflow.")
    return TrustedPublisher.objects.create(package=package, created_by=created_by, **fields)


@transaction.atomic
def remove_trusted_publisher(*, publisher: TrustedPublisher) -> None:
    """Stop accepting the publisher's tokens at once."""
    publisher.delete()
