"""Catalog pages: home counts, the package list and a package's builds."""

from django.conf import settings
from django.http import Http404
from django.shortcuts import render

from distro_site.page_cache import cache_anonymous_get
from distro_site.paging import paginate
from packages_app.models import Build
from packages_app.models import Package
from packages_app.selectors.catalog import get_catalog_counts
from packages_app.selectors.catalog import get_install_command
from packages_app.selectors.catalog import get_package_builds
from packages_app.selectors.catalog import get_reverse_dependencies
from packages_app.selectors.catalog import list_packages
from packages_app.selectors.catalog import list_versions
from testing_app.selectors.badges import list_badge_snippets
from testing_app.selectors.home import get_recent_activity
from testing_app.selectors.maintenance import get_package_health
from testing_app.selectors.matrix import list_supported_releases
from testing_app.selectors.package_matrix import get_package_matrix
from testing_app.selectors.pinned_retests import retests_of_dependent

VERSIONS_PER_PAGE = 10


def home(request):
    return render(
        request,
        "packages_app/home.html",
        {"counts": get_catalog_counts(), "activity": get_recent_activity()},
    )


def package_list(request):
    search = request.GET.get("q", "").strip()[:100]
    status = request.GET.get("status", "")
    if status not in Package.Status.values:
        status = ""
    page, page_query = paginate(request, list_packages(search=search, status=status))
    return render(
        request,
        "packages_app/package_list.html",
        {
            "page": page,
            "page_query": page_query,
            "search": search,
            "status": status,
            "statuses": Package.Status.choices,
        },
    )


@cache_anonymous_get
def package_detail(request, name):
    package = Package.objects.filter(name=name).prefetch_related("maintainers").first()
    versions = list_versions(name=name)
    if package is None and not versions:
        raise Http404(f"No package or build named {name!r}")
    page, page_query = paginate(request, versions, per_page=VERSIONS_PER_PAGE)
    transitive = request.GET.get("rdeps") == "all"
    reverse_dependencies = get_reverse_dependencies(name=name, transitive=transitive)
    registered = set(
        Package.objects.filter(name__in=reverse_dependencies).values_list("name", flat=True)
    )
    supported_releases = list_supported_releases()  # the badges' and the matrix's columns
    return render(
        request,
        "packages_app/package_detail.html",
        {
            "name": name,
            "package": package,
            "maintainers": list(package.maintainers.all()) if package else [],
            "page": page,
            "page_query": page_query,
            "builds": get_package_builds(name=name, versions=list(page.object_list)),
            "reverse_dependencies": [
                (dep, depth, dep in registered)
                for dep, depth in sorted(reverse_dependencies.items(), key=lambda i: (i[1], i[0]))
            ],
            "transitive": transitive,
            "build_states": Build.State,
            "health": get_package_health(name=name, package=package, versions=versions),
            "install": get_install_command(name=name) if package else None,
            "badges": (
                list_badge_snippets(
                    name=name, site_url=settings.SITE_URL, supported_releases=supported_releases
                )
                if package
                else []
            ),
            "pinned_retests": retests_of_dependent(name=name),
            "test_matrix": get_package_matrix(
                name=name,
                versions=versions,
                requested_version=request.GET.get("mv", ""),
                all_columns=request.GET.get("mcols") == "all",
                supported_releases=supported_releases,
            ),
        },
    )
