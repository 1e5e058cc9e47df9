"""Waiving a failing cell or policy of a build, and revoking a waiver (release managers)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.shortcuts import redirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from packages_app.models import Build
from testing_app.forms.promotions import WaiverForm
from testing_app.models import Waiver
from testing_app.services.waivers import WAIVE_PERMISSION
from testing_app.services.waivers import grant_waiver
from testing_app.services.waivers import revoke_waiver


@login_required
def waiver_create(request, pk):
    """GET: the form, prefilled from the excuses page (a cell's ids, or a policy); POST: waive."""
    if not request.user.has_perm(WAIVE_PERMISSION):
        raise PermissionDenied("Only release managers may waive.")
    build = get_object_or_404(Build.objects.select_related("package"), pk=pk)
    excuses = reverse("testing:build-excuses", kwargs={"pk": build.pk})
    if request.method == "POST":
        form = WaiverForm(request.POST)
        if form.is_valid():
            try:
                grant_waiver(build=build, created_by=request.user, **form.cleaned_data)
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, "Waived. The gate below shows it, with your reason.")
                return redirect(excuses)
    else:
        form = WaiverForm(initial=_initial(request.GET))
    status = 400 if request.method == "POST" else 200
    context = {"build": build, "form": form, "excuses_url": excuses, "cell": _cell_label(form)}
    return render(request, "testing_app/waiver_form.html", context, status=status)


def _initial(query) -> dict:
    initial = {"policy": query.get("policy", "")}
    params = (("torch_release", "torch"), ("variant", "variant"), ("platform", "platform"))
    for field, param in params:
        if query.get(param, "").isdigit():
            initial[field] = int(query[param])
    return initial


def _cell_label(form: WaiverForm) -> str:
    """ "PyTorch 2.5.1 × cuda12.4 × linux-64" for the cell the form waives, "" for a policy."""
    values = {}
    for field in ("torch_release", "variant", "platform"):
        raw = form.data.get(field) if form.is_bound else form.initial.get(field)
        if not raw:
            return ""
        try:
            values[field] = form.fields[field].queryset.get(pk=raw)
        except (ValueError, ObjectDoesNotExist):
            return ""
    release, variant, platform = values["torch_release"], values["variant"], values["platform"]
    return f"PyTorch {release.version} × {variant.name} × {platform.subdir}"


def _add_errors(form: WaiverForm, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@login_required
@require_POST
def waiver_revoke(request, pk):
    waiver = get_object_or_404(Waiver, pk=pk)
    try:
        revoke_waiver(waiver=waiver, revoked_by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Waiver #{waiver.pk} revoked: the failure counts again.")
    return redirect("testing:build-excuses", pk=waiver.build_id)
