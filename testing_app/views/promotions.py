"""Promotion pages: the queue, a build's excuses, the confirmation step, a promotion's progress,
the target channel; and the release managers' actions (promote, resume, cancel, check)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.shortcuts import redirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET
from django.views.decorators.http import require_POST

from packages_app.models import Build
from packages_app.selectors.proposals import maintains_every_build
from testing_app.forms.promotions import PromotionConfirmForm
from testing_app.models import Promotion
from testing_app.selectors.gate import get_build_gate
from testing_app.selectors.gate_inputs import candidate_builds
from testing_app.selectors.pinned_retests import retests_with_upstream
from testing_app.selectors.promotion_sets import get_build_partner_solves
from testing_app.selectors.promotions import get_promotion
from testing_app.selectors.promotions import get_promotion_queue
from testing_app.selectors.promotions import get_target_overview
from testing_app.selectors.promotions import plan_promotion
from testing_app.selectors.promotions import suggest_set_for
from testing_app.selectors.waivers import get_build_checks
from testing_app.selectors.waivers import list_build_waivers
from testing_app.services.installability import request_installability_checks
from testing_app.services.promotions import PROMOTE_PERMISSION
from testing_app.services.promotions import cancel_promotion
from testing_app.services.promotions import create_promotion
from testing_app.services.promotions import new_idempotency_key
from testing_app.services.promotions import resume_promotion
from testing_app.services.set_solves import sweep_installability

# Pending/running promotions refresh their page this often (seconds).
LIVE_REFRESH_S = 3


def _may_promote(user) -> bool:
    return user.is_authenticated and user.has_perm(PROMOTE_PERMISSION)


def _build_ids(values) -> list[int]:
    try:
        return sorted({int(v) for v in values})
    except ValueError:
        raise Http404("Build ids must be integers.") from None


@require_GET
def promotion_queue(request):
    # Each group shows its oldest PAGE_SIZE candidates; ?group=<status> shows all of one group.
    group = request.GET.get("group", "")
    queue = get_promotion_queue(limit_per_group=None if group else settings.PAGE_SIZE)
    if group:
        queue.groups[:] = [g for g in queue.groups if g.status == group]
    return render(
        request,
        "testing_app/promotion_queue.html",
        {"queue": queue, "may_promote": _may_promote(request.user), "group": group},
    )


@require_GET
def build_excuses(request, pk):
    try:
        report = get_build_gate(int(pk))
    except Build.DoesNotExist:
        raise Http404(f"No build {pk}.") from None
    build = report.build
    related, partner_solves = [], []
    if build.state == Build.State.STAGED and build.channel.role == "staging":
        related = suggest_set_for(build)
        partner_solves = get_build_partner_solves(build)
    return render(
        request,
        "testing_app/build_excuses.html",
        {
            "report": report,
            "build": build,
            "waivers": list_build_waivers(build),
            "checks": get_build_checks(build),
            "pinned_retests": retests_with_upstream(build_ids=[build.pk]),
            "suggested_set": candidate_builds(related) if related else [],
            "suggested_ids": related,
            "partner_solves": partner_solves,
            "may_promote": _may_promote(request.user),
            "may_waive": request.user.has_perm("testing_app.add_waiver"),
            "may_revoke": request.user.has_perm("testing_app.change_waiver"),
            "now": timezone.now(),
        },
    )


@login_required
@require_GET
def promotion_confirm(request):
    """What would be copied from where to where, and whether the set passes the gate."""
    if not _may_promote(request.user):
        raise PermissionDenied("Only release managers may promote.")
    ids = _build_ids(request.GET.getlist("build"))
    try:
        plan = plan_promotion(build_ids=ids, check_url=request.path)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("testing:promotion-queue")
    form = PromotionConfirmForm(
        build_ids=ids, initial={"build": ids, "idempotency_key": new_idempotency_key()}
    )
    return render(
        request,
        "testing_app/promotion_confirm.html",
        {"plan": plan, "form": form, "ids": ids},
    )


@login_required
@require_POST
def promotion_create(request):
    if not _may_promote(request.user):
        raise PermissionDenied("Only release managers may promote.")
    ids = _build_ids(request.POST.getlist("build"))
    form = PromotionConfirmForm(request.POST, build_ids=ids)
    confirm_url = reverse("testing:promotion-confirm") + "?" + "&".join(f"build={i}" for i in ids)
    if not form.is_valid():
        messages.error(request, "The confirmation form was incomplete; please confirm again.")
        return redirect(confirm_url)
    try:
        promotion, created = create_promotion(
            build_ids=form.cleaned_data["build"],
            requested_by=request.user,
            idempotency_key=form.cleaned_data["idempotency_key"],
            name=form.cleaned_data["name"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(confirm_url)
    if created:
        messages.success(request, f"Promotion #{promotion.pk} is queued.")
    else:
        messages.info(request, f"Already submitted: this is promotion #{promotion.pk}.")
    return redirect(promotion.get_absolute_url())


@require_GET
def promotion_detail(request, pk):
    try:
        view = get_promotion(int(pk))
    except Promotion.DoesNotExist:
        raise Http404(f"No promotion {pk}.") from None
    promotion = view.promotion
    now = timezone.now()
    live = promotion.state in (Promotion.State.PENDING, Promotion.State.RUNNING)
    stale = promotion.state == Promotion.State.RUNNING and (
        promotion.lease_expires_at is None or promotion.lease_expires_at < now
    )
    lost = (
        promotion.state == Promotion.State.PENDING
        and (now - promotion.created_at).total_seconds() > 60
    )
    resumable = promotion.state in (Promotion.State.PARTIAL, Promotion.State.FAILED)
    return render(
        request,
        "testing_app/promotion_detail.html",
        {
            "view": view,
            "promotion": promotion,
            "live": live and not stale,
            "refresh_s": LIVE_REFRESH_S,
            "may_promote": _may_promote(request.user),
            "may_resume": resumable or stale or lost,
            "may_cancel": resumable or stale or promotion.state == Promotion.State.PENDING,
            "stale": stale,
        },
    )


def _promotion_action(request, pk, action, done: str):
    promotion = get_object_or_404(Promotion, pk=pk)
    try:
        action(promotion=promotion, requested_by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, done.format(pk=promotion.pk))
    return redirect(promotion.get_absolute_url())


@login_required
@require_POST
def promotion_resume(request, pk):
    return _promotion_action(request, pk, resume_promotion, "Promotion #{pk} resumes.")


@login_required
@require_POST
def promotion_cancel(request, pk):
    return _promotion_action(request, pk, cancel_promotion, "Promotion #{pk} is cancelled.")


@login_required
@require_POST
def installability_request(request):
    """Queue solver checks: of the posted builds (one, or a set together), or with `missing`,
    of every candidate never checked. Release managers and the package's maintainers."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = reverse("testing:promotion-queue")
    if request.POST.get("missing"):
        if not _may_promote(request.user):
            raise PermissionDenied("Only release managers may check every candidate.")
        count = sweep_installability()
        messages.success(request, f"Installability checks queued for {count} candidates.")
        return redirect(target or "testing:promotion-queue")
    builds = candidate_builds(_build_ids(request.POST.getlist("build")))
    if not builds:
        raise Http404("No such build.")
    if not (_may_promote(request.user) or maintains_every_build(request.user, builds)):
        raise PermissionDenied("Only release managers and the maintainers may ask for checks.")
    try:
        created = request_installability_checks(builds=builds, requested_by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{len(created)} installability checks queued.")
    return redirect(target)


@require_GET
def target_channel(request):
    return render(
        request,
        "testing_app/promotion_target.html",
        {"overview": get_target_overview(limit=settings.PAGE_SIZE * 4)},
    )
