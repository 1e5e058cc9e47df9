"""Forms of the release, notification and maintenance pages: input shape only (services judge)."""

from django import forms
from django.core.validators import RegexValidator
from rattler import Version
from rattler.exceptions import InvalidVersionError

from packages_app.forms.proposals import GITHUB_HANDLE_REGEX
from packages_app.forms.proposals import HONEYPOT_FIELD
from packages_app.models import Maintainer
from packages_app.models import TorchRelease
from testing_app.models import Notification
from testing_app.models import Platform
from testing_app.models import Variant
from testing_app.services.releases import ReleaseInput

PYTHON_VERSION_REGEX = r"^3\.[0-9]+$"
ISSUE_URL_REGEX = r"^https://github\.com/[^/]+/[^/]+/issues/[0-9]+$"


class RegisterReleaseForm(forms.Form):
    """A PyTorch release or release candidate, as a release manager registers it."""

    version = forms.CharField(max_length=32, help_text="e.g. 2.6.0, or 2.6.0rc1 for a candidate")
    kind = forms.ChoiceField(choices=TorchRelease.Kind.choices, initial=TorchRelease.Kind.FINAL)
    released_on = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Release date"
    )
    supported = forms.BooleanField(
        required=False, initial=True, help_text="Tested and promoted against (the matrix columns)."
    )
    variants = forms.ModelMultipleChoiceField(
        queryset=Variant.objects.order_by("sort_order", "name"),
        widget=forms.CheckboxSelectMultiple,
        help_text="The variants it ships.",
    )
    platforms = forms.ModelMultipleChoiceField(
        queryset=Platform.objects.order_by("sort_order", "subdir"),
        widget=forms.CheckboxSelectMultiple,
    )
    python_versions = forms.CharField(
        max_length=200, required=False, help_text="Comma-separated, e.g. 3.10, 3.11, 3.12"
    )

    def clean_version(self) -> str:
        version = self.cleaned_data["version"].strip()
        try:
            Version(version)
        except InvalidVersionError as exc:
            raise forms.ValidationError(f"Not a conda version: {exc}") from exc
        return version

    def clean_python_versions(self) -> list[str]:
        values = [v.strip() for v in self.cleaned_data["python_versions"].split(",") if v.strip()]
        validator = RegexValidator(PYTHON_VERSION_REGEX, "Write Python versions as 3.N.")
        for value in values:
            validator(value)
        return values

    def to_input(self) -> ReleaseInput:
        data = self.cleaned_data
        return ReleaseInput(
            version=data["version"].strip(),
            kind=data["kind"],
            released_on=data["released_on"],
            supported=data["supported"],
            variants=list(data["variants"]),
            platforms=list(data["platforms"]),
            python_versions=data["python_versions"],
        )


class PreferencesForm(forms.Form):
    """How a maintainer is told, and which kinds of notice they skip."""

    notify_mode = forms.ChoiceField(
        choices=Maintainer.NotifyMode.choices, widget=forms.RadioSelect, label="Send notices"
    )
    wanted_kinds = forms.MultipleChoiceField(
        choices=Notification.Kind.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Tell me about",
    )

    def muted_kinds(self) -> list[str]:
        wanted = set(self.cleaned_data["wanted_kinds"])
        return [k for k in Notification.Kind.values if k not in wanted]


class NoticeIssueForm(forms.Form):
    """A GitHub issue of one of the maintainer's packages where notices are also commented."""

    issue_url = forms.CharField(
        max_length=200,
        required=False,
        validators=[
            RegexValidator(ISSUE_URL_REGEX, "Use https://github.com/<owner>/<repo>/issues/<n>.")
        ],
        label="GitHub issue for notices",
    )


class ClaimForm(forms.Form):
    """Offer to maintain a package that has no maintainer."""

    name = forms.CharField(max_length=200)
    email = forms.EmailField(help_text="The decision and, once approved, notices go here.")
    github_handle = forms.CharField(max_length=40, required=False, label="GitHub handle")
    rationale = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        max_length=5000,
        help_text="Why you, and how you will keep it passing with new PyTorch releases.",
    )
    # Bots fill every field; people never see this one (rendered off-screen like the proposal's).
    website = forms.CharField(required=False, label="Leave this empty")

    def clean_github_handle(self) -> str:
        handle = self.cleaned_data["github_handle"].strip().removeprefix("@")
        if handle:
            RegexValidator(GITHUB_HANDLE_REGEX, "Not a GitHub user name.")(handle)
        return handle

    def clean(self):
        cleaned = super().clean()
        if cleaned.get(HONEYPOT_FIELD):
            raise forms.ValidationError("This submission looks automated.")
        return cleaned


class ClaimDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=5000)


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
