"""PyTorch release pages: the list, registering a release, and following its wave per package."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.shortcuts import redirect
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.http import require_http_methods
from rattler import Version

from distro_site.paging import paginate
from packages_app.models import TorchRelease
from packages_app.views.proposals import add_service_errors
from testing_app.forms.maintenance import RegisterReleaseForm
from testing_app.models import ReleaseImpact
from testing_app.selectors.releases import WAVE_STATES
from testing_app.selectors.releases import attach_maintainers
from testing_app.selectors.releases import get_release_follow
from testing_app.selectors.releases import list_releases_with_impact
from testing_app.selectors.trends import get_release_wave
from testing_app.services.releases import register_torch_release
from testing_app.views import charts

REGISTER_PERMISSION = "packages_app.add_torchrelease"
# Packages per page of the wave table (2,000 rows at once is a 1.4 MB page).
ROWS_PER_PAGE = 100


@require_GET
def release_list(request):
    return render(
        request,
        "testing_app/releases/release_list.html",
        {
            "releases": list_releases_with_impact(),
            "categories": ReleaseImpact.Category.choices,
            "can_register": request.user.has_perm(REGISTER_PERMISSION),
        },
    )


def _initial_from_newest() -> dict:
    """The newest release's variants, platforms and pythons: a new one usually ships the same."""
    newest = max(TorchRelease.objects.all(), key=lambda r: Version(r.version), default=None)
    if newest is None:
        return {}
    return {
        "variants": list(newest.variants.all()),
        "platforms": list(newest.platforms.all()),
        "python_versions": ", ".join(newest.python_versions),
    }


@login_required(login_url="accounts:login")
@permission_required(REGISTER_PERMISSION, raise_exception=True)
@require_http_methods(["GET", "POST"])
def release_register(request):
    form = RegisterReleaseForm(request.POST or None, initial=_initial_from_newest())
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                done = register_torch_release(data=form.to_input(), registered_by=request.user)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    f"PyTorch {done.release.version} is registered: its impact is below, and "
                    f"its release wave started ({done.wave.summary()}).",
                )
                return redirect("testing:torchrelease-wave", version=done.release.version)
    return render(request, "testing_app/releases/release_form.html", {"form": form}, status=status)


@require_GET
def release_detail(request, version):
    """Impact before any test ran, then the wave per package: ready / failing / needs bump /
    waiting, with the maintainers to contact (and the cells' progress chart)."""
    release = get_object_or_404(TorchRelease, version=version)
    follow = get_release_follow(release)
    state = request.GET.get("state", "")
    state = state if state in WAVE_STATES else ""
    rows = [r for r in follow.rows if r.state == state] if state else follow.rows
    page, page_query = paginate(request, rows, per_page=ROWS_PER_PAGE)
    attach_maintainers([row.impact for row in page.object_list])
    wave = get_release_wave(release)
    return render(
        request,
        "testing_app/releases/release_detail.html",
        {
            "release": release,
            "follow": follow,
            "page": page,
            "page_query": page_query,
            "state": state,
            "states": WAVE_STATES,
            "wave": wave,
            "chart": charts.release_wave_progress(wave),
            "categories": ReleaseImpact.Category,
            "show_emails": request.user.has_perm(REGISTER_PERMISSION),
        },
    )
