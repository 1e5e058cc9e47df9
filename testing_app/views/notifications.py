"""A maintainer's notification preferences and the unsubscribe link, reached by the token in
every email (no sign-in: the link is the credential, as in any mailing list)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from django.views.decorators.http import require_POST

from packages_app.models import Package
from packages_app.views.proposals import add_service_errors
from testing_app.forms.maintenance import NoticeIssueForm
from testing_app.forms.maintenance import PreferencesForm
from testing_app.models import Notification
from testing_app.services.notifications import get_maintainer_by_token
from testing_app.services.notifications import reset_preferences_link
from testing_app.services.notifications import set_notice_issue
from testing_app.services.notifications import unsubscribe
from testing_app.services.notifications import update_preferences

RECENT_SHOWN = 20


def _maintainer_or_404(token):
    maintainer = get_maintainer_by_token(token)
    if maintainer is None:
        raise Http404("This link is not valid (any more): use the one in your latest email.")
    return maintainer


def _private(response):
    # A capability URL: keep it out of caches and search engines.
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@require_http_methods(["GET", "POST"])
def preferences(request, token):
    maintainer = _maintainer_or_404(token)
    initial = {
        "notify_mode": maintainer.notify_mode,
        "wanted_kinds": [k for k in Notification.Kind.values if k not in maintainer.muted_kinds],
    }
    form = PreferencesForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                update_preferences(
                    maintainer=maintainer,
                    notify_mode=form.cleaned_data["notify_mode"],
                    muted_kinds=form.muted_kinds(),
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, "Your notification preferences are saved.")
                return redirect("testing:notification-preferences", token=token)
    packages = list(
        Package.objects.filter(maintainers=maintainer)
        .select_related("notice_issue")
        .order_by("name")
    )
    issue_forms = [
        (p, NoticeIssueForm(initial={"issue_url": _issue_url(p)}, prefix=f"issue-{p.pk}"))
        for p in packages
    ]
    recent = list(
        Notification.objects.filter(maintainer=maintainer)
        .select_related("package")
        .order_by("-id")[:RECENT_SHOWN]
    )
    context = {
        "maintainer": maintainer,
        "form": form,
        "issue_forms": issue_forms,
        "recent": recent,
        "token": token,
    }
    return _private(
        render(request, "testing_app/notifications/preferences.html", context, status=status)
    )


def _issue_url(package: Package) -> str:
    issue = getattr(package, "notice_issue", None) if hasattr(package, "notice_issue") else None
    return issue.issue_url if issue else ""


@require_POST
def notice_issue(request, token, name):
    maintainer = _maintainer_or_404(token)
    package = Package.objects.filter(name=name, maintainers=maintainer).first()
    if package is None:
        raise Http404(f"You do not maintain {name}.")
    form = NoticeIssueForm(request.POST, prefix=f"issue-{package.pk}")
    if form.is_valid():
        try:
            set_notice_issue(
                maintainer=maintainer, package=package, issue_url=form.cleaned_data["issue_url"]
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Saved the notice issue of {package.name}.")
    else:
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
    return redirect("testing:notification-preferences", token=token)


# Mail clients send the one-click unsubscribe (RFC 8058) as a POST without any CSRF token.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe_view(request, token):
    maintainer = _maintainer_or_404(token)
    kind = request.GET.get("kind", "")
    if kind not in Notification.Kind.values:
        kind = ""
    if request.method == "POST":
        try:
            unsubscribe(maintainer=maintainer, kind=kind)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            what = f"“{Notification.Kind(kind).label}” notices" if kind else "all notices"
            messages.success(request, f"You will not receive {what} any more.")
        return redirect("testing:notification-preferences", token=token)
    context = {
        "maintainer": maintainer,
        "kind": kind,
        "kind_label": Notification.Kind(kind).label if kind else "",
    }
    return _private(render(request, "testing_app/notifications/unsubscribe.html", context))


@require_POST
def reset_link(request, token):
    maintainer = reset_preferences_link(maintainer=_maintainer_or_404(token))
    messages.success(request, "A new link is in place; links in earlier emails no longer work.")
    return redirect("testing:notification-preferences", token=maintainer.unsubscribe_token)
