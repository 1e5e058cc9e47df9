"""Package registration: a name enters the distribution and picks up its catalog builds."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.services.catalog import link_builds_to_package


@transaction.atomic
def register_package(
    *,
    name: str,
    summary: str = "",
    abi_coupled: bool = False,
    maintainers: list[Maintainer] | None = None,
    home_url: str = "",
    repo_url: str = "",
    recipe_url: str = "",
    license: str = "",  # noqa: A002 - the field's name in conda metadata
) -> Package:
    """Create (or update) an active Package and link the catalog's builds of that name."""
    package = Package.objects.filter(name=name).first() or Package(name=name)
    package.summary = summary or package.summary
    package.abi_coupled = abi_coupled
    package.home_url = home_url or package.home_url
    package.repo_url = repo_url or package.repo_url
    package.recipe_url = recipe_url or package.recipe_url
    package.license = license or package.license
    if package.pk is None:
        package.status = Package.Status.ACTIVE
        package.status_changed_at = timezone.now()
    try:
        package.full_clean()
    except ValidationError as exc:
        raise ValidationError({"name": exc.message_dict.get("name", exc.messages)}) from exc
    package.save()
    if maintainers:
        package.maintainers.add(*maintainers)
    link_builds_to_package(package=package)
    return package
