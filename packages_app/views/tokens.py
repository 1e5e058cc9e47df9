"""A package's CI tokens page: its maintainers create and revoke "test this build" tokens, and
register the GitHub workflows trusted to call it without one (trusted publishers, issue 21)."""

from django import forms
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.shortcuts import redirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

from packages_app.models import Package
from packages_app.models import PackageToken
from packages_app.models import TrustedPublisher
from packages_app.services.tokens import create_package_token
from packages_app.services.tokens import maintainer_of
from packages_app.services.tokens import may_manage_tokens
from packages_app.services.tokens import revoke_package_token
from packages_app.services.trusted_publishers import register_trusted_publisher
from packages_app.services.trusted_publishers import remove_trusted_publisher


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What uses it, e.g. github-ci. Shown in runs it starts.",
    )


class TrustedPublisherForm(forms.Form):
    repository = forms.CharField(max_length=140, help_text="owner/name, e.g. kornia/kornia")
    workflow = forms.CharField(
        max_length=255, help_text="File name under .github/workflows/, e.g. release.yml"
    )
    environment = forms.CharField(
        max_length=255,
        required=False,
        help_text="Optional: only jobs of this GitHub deployment environment (recommended).",
    )


def _package_for(request, name: str) -> Package:
    package = get_object_or_404(Package, name=name)
    if not may_manage_tokens(user=request.user, package=package):
        raise PermissionDenied(f"Only maintainers of {package.name} manage its tokens.")
    return package


def _render_tokens_page(request, package, *, form, publisher_form, new_token=None):
    tokens = PackageToken.objects.filter(package=package).select_related("created_by")
    publishers = TrustedPublisher.objects.filter(package=package).select_related("created_by")
    return render(
        request,
        "packages_app/package_tokens.html",
        {
            "package": package,
            "form": form,
            "publisher_form": publisher_form,
            "new_token": new_token,
            "tokens": tokens.order_by("revoked_at", "-created_at"),
            "publishers": publishers.order_by("repository", "workflow", "environment"),
            "trusted_publishing_enabled": settings.TRUSTED_PUBLISHING_ENABLED,
            "audience": settings.TRUSTED_PUBLISHING_AUDIENCE,
            "api_path": "/api/test-this-build/",
        },
        status=400 if form.errors or publisher_form.errors else 200,
    )


def package_tokens(request, name):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    package = _package_for(request, name)
    form = TokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        try:
            _, new_token = create_package_token(
                package=package,
                name=form.cleaned_data["name"],
                created_by=maintainer_of(user=request.user, package=package),
            )
            form = TokenForm()
        except ValidationError as exc:
            form.add_error(None, exc)
    return _render_tokens_page(
        request, package, form=form, publisher_form=TrustedPublisherForm(), new_token=new_token
    )


def package_publishers(request, name):
    """POST: register a trusted publisher (the form lives on the CI tokens page)."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    package = _package_for(request, name)
    if request.method != "POST":
        return redirect("packages:package-tokens", name=package.name)
    publisher_form = TrustedPublisherForm(request.POST)
    if publisher_form.is_valid():
        try:
            register_trusted_publisher(
                package=package,
                created_by=maintainer_of(user=request.user, package=package),
                **publisher_form.cleaned_data,
            )
            return redirect("packages:package-tokens", name=package.name)
        except ValidationError as exc:
            publisher_form.add_error(None, exc)
    return _render_tokens_page(request, package, form=TokenForm(), publisher_form=publisher_form)


@require_POST
def package_token_revoke(request, name, pk):
    if not request.user.is_authenticated:
        raise PermissionDenied("Sign in to revoke a token.")
    package = _package_for(request, name)
    token = get_object_or_404(PackageToken, pk=pk, package=package)
    revoke_package_token(token=token)
    return redirect("packages:package-tokens", name=package.name)


@require_POST
def package_publisher_remove(request, name, pk):
    if not request.user.is_authenticated:
        raise PermissionDenied("Sign in to remove a trusted publisher.")
    package = _package_for(request, name)
    publisher = get_object_or_404(TrustedPublisher, pk=pk, package=package)
    remove_trusted_publisher(publisher=publisher)
    return redirect("packages:package-tokens", name=package.name)
