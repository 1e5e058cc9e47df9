"""Maintenance pages: the policy's overview and release-manager actions, and maintainer claims
(the public claim form and the reviewers' queue)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.shortcuts import redirect
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.http import require_http_methods
from django.views.decorators.http import require_POST

from distro_site.clients import client_address
from packages_app.forms.proposals import HONEYPOT_FIELD
from packages_app.models import Package
from packages_app.services.proposals import client_fingerprint
from packages_app.views.proposals import add_service_errors
from packages_app.views.reviews import reviewer_required
from testing_app.forms.maintenance import ClaimDecisionForm
from testing_app.forms.maintenance import ClaimForm
from testing_app.forms.maintenance import ReasonForm
from testing_app.models import MaintainerClaim
from testing_app.selectors.maintenance import get_maintenance_overview
from testing_app.selectors.maintenance import list_decided_claims
from testing_app.selectors.maintenance import list_open_claims
from testing_app.services.claims import ClaimRateLimited
from testing_app.services.claims import decide_claim
from testing_app.services.claims import submit_claim
from testing_app.services.maintenance import reinstate_package
from testing_app.services.maintenance import remove_package

MANAGE_PERMISSION = "packages_app.change_package"


@require_GET
def overview(request):
    return render(
        request,
        "testing_app/maintenance/overview.html",
        {
            "overview": get_maintenance_overview(),
            "can_manage": request.user.has_perm(MANAGE_PERMISSION),
            "reason_form": ReasonForm(),
            "grace_days": settings.MAINTENANCE_GRACE_DAYS,
            "deprecate_days": settings.MAINTENANCE_DEPRECATE_AFTER_DAYS,
        },
    )


@login_required(login_url="accounts:login")
@permission_required(MANAGE_PERMISSION, raise_exception=True)
@require_POST
def package_remove(request, name):
    package = get_object_or_404(Package, name=name)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a reason for the removal.")
        return redirect("testing:maintenance")
    try:
        remove_package(package=package, by=request.user, reason=form.cleaned_data["reason"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{name} is removed; its maintainers are told.")
    return redirect("testing:maintenance")


@login_required(login_url="accounts:login")
@permission_required(MANAGE_PERMISSION, raise_exception=True)
@require_POST
def package_reinstate(request, name):
    package = get_object_or_404(Package, name=name)
    try:
        reinstate_package(package=package, by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{name} is active again.")
    return redirect("testing:maintenance")


@require_http_methods(["GET", "POST"])
def claim_new(request, name):
    package = get_object_or_404(Package.objects.prefetch_related("maintainers"), name=name)
    form = ClaimForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                submit_claim(
                    package=package,
                    name=data["name"],
                    email=data["email"],
                    github_handle=data["github_handle"],
                    rationale=data["rationale"],
                    client_fingerprint=client_fingerprint(client_address(request)),
                )
            except ClaimRateLimited as exc:
                form.add_error(None, str(exc))
                status = 429
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    f"Thank you: your offer to maintain {name} waits for a reviewer. The "
                    f"decision is emailed to {data['email']}.",
                )
                return redirect("packages:package-detail", name=name)
    return render(
        request,
        "testing_app/maintenance/claim_form.html",
        {
            "package": package,
            "has_maintainers": bool(package.maintainers.all()),
            "form": form,
            "honeypot_field": form[HONEYPOT_FIELD],
        },
        status=status,
    )


@reviewer_required
@require_GET
def claim_queue(request):
    return render(
        request,
        "testing_app/maintenance/claim_queue.html",
        {"open_claims": list(list_open_claims()), "decided": list_decided_claims()},
    )


@reviewer_required
@require_http_methods(["GET", "POST"])
def claim_detail(request, pk):
    claim = get_object_or_404(MaintainerClaim.objects.select_related("package"), pk=pk)
    form = ClaimDecisionForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                decide_claim(
                    claim=claim,
                    reviewer=request.user,
                    approve=form.cleaned_data["decision"] == "approve",
                    note=form.cleaned_data["note"],
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Decided; {claim.email} gets an email.")
                return redirect("testing:claim-queue")
    return render(
        request,
        "testing_app/maintenance/claim_detail.html",
        {"claim": claim, "form": form},
        status=status,
    )
