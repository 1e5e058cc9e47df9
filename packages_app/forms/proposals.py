"""Forms of the proposal flow: the public proposal form, its maintainer rows, notes, decisions.

Forms check the shape of input only; rules that need the database (name already taken, rate
limit, state changes) are the services', and views turn their errors into form errors.
"""

from django import forms
from django.core.validators import RegexValidator
from django.core.validators import URLValidator
from django.forms import formset_factory

from packages_app.models import CONDA_NAME_REGEX
from packages_app.models import Proposal
from packages_app.models import ProposalNote
from packages_app.services.proposals import MaintainerEntry
from packages_app.services.proposals import ProposalInput

GITHUB_HANDLE_REGEX = r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$"
MAX_MAINTAINERS = 10
# The honeypot's name looks like a field a bot wants to fill; people never see it.
HONEYPOT_FIELD = "website"


class HttpsURLField(forms.URLField):
    """A URL that must be http(s), with https assumed when the scheme is left out."""

    default_validators = [URLValidator(schemes=["http", "https"])]

    def __init__(self, **kwargs):
        kwargs.setdefault("assume_scheme", "https")
        kwargs.setdefault("max_length", 200)
        super().__init__(**kwargs)


CONFIRM = {"required": "Please confirm this prerequisite; a proposal needs all four."}


class ProposalForm(forms.Form):
    """Everything the seed's GitHub issue template asked for, as fields."""

    package_name = forms.CharField(
        max_length=128,
        help_text="The conda package name: lowercase letters, digits, '.', '_' and '-'.",
        validators=[
            RegexValidator(
                CONDA_NAME_REGEX,
                "Use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit.",
            )
        ],
    )
    summary = forms.CharField(max_length=300, help_text="One line: what the package does.")
    home_url = HttpsURLField(label="Homepage URL")
    repo_url = HttpsURLField(label="Source repository URL")
    recipe_url = HttpsURLField(
        label="Recipe URL",
        max_length=500,
        help_text="A raw meta.yaml or recipe.yaml, or a conda-forge feedstock repository.",
    )
    license = forms.CharField(max_length=200, help_text="SPDX expression, e.g. Apache-2.0.")
    rationale = forms.CharField(
        label="Why it belongs in the PyTorch ecosystem",
        min_length=20,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="How it uses PyTorch, and for what (deep learning, ML, scientific computing).",
    )
    contact_email = forms.EmailField(
        label="Your email",
        help_text="The private status link and every review decision are sent here.",
    )
    confirms_pytorch_key_dependency = forms.BooleanField(
        error_messages=CONFIRM,
        label="PyTorch is a key dependency, and the package is about deep learning, machine "
        "learning or scientific computing.",
    )
    confirms_dependencies_available = forms.BooleanField(
        error_messages=CONFIRM,
        label="All runtime dependencies are available in the distribution's channels, or can be "
        "added.",
    )
    confirms_recipe_exists = forms.BooleanField(
        error_messages=CONFIRM, label="A working conda recipe exists."
    )
    commits_to_maintain = forms.BooleanField(
        error_messages=CONFIRM,
        label="The maintainers commit to keeping the package working with new PyTorch releases.",
    )
    website = forms.CharField(required=False, label="Leave this empty")

    def clean_package_name(self) -> str:
        return self.cleaned_data["package_name"].strip()

    def clean_contact_email(self) -> str:
        return self.cleaned_data["contact_email"].strip().lower()

    def clean(self):
        cleaned = super().clean()
        if self.cleaned_data.get(HONEYPOT_FIELD):
            raise forms.ValidationError(
                "This submission looks automated and was not accepted.", code="honeypot"
            )
        return cleaned

    def to_input(self, maintainers: list[MaintainerEntry]) -> ProposalInput:
        data = self.cleaned_data
        return ProposalInput(
            package_name=data["package_name"],
            summary=data["summary"].strip(),
            home_url=data["home_url"],
            repo_url=data["repo_url"],
            recipe_url=data["recipe_url"],
            license=data["license"].strip(),
            rationale=data["rationale"].strip(),
            contact_email=data["contact_email"],
            maintainers=tuple(maintainers),
            confirms_pytorch_key_dependency=data["confirms_pytorch_key_dependency"],
            confirms_dependencies_available=data["confirms_dependencies_available"],
            confirms_recipe_exists=data["confirms_recipe_exists"],
            commits_to_maintain=data["commits_to_maintain"],
        )

    @classmethod
    def initial_from(cls, proposal: Proposal) -> dict:
        """Initial data to edit a stored proposal (after a change request)."""
        names = [f for f in cls.base_fields if f != HONEYPOT_FIELD]
        return {name: getattr(proposal, name) for name in names}


class MaintainerForm(forms.Form):
    name = forms.CharField(max_length=200)
    email = forms.EmailField()
    github_handle = forms.CharField(
        max_length=39,
        required=False,
        label="GitHub handle",
        validators=[RegexValidator(GITHUB_HANDLE_REGEX, "Not a valid GitHub user name.")],
    )

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()

    def clean_github_handle(self) -> str:
        return self.cleaned_data["github_handle"].strip().removeprefix("@")


class BaseMaintainerFormSet(forms.BaseFormSet):
    """At least one maintainer; one person is not listed twice (same email or GitHub handle)."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        emails, handles = set(), set()
        for form in self.forms:
            if not form.has_changed() or self._should_delete_form(form):
                continue
            email = form.cleaned_data.get("email", "")
            handle = form.cleaned_data.get("github_handle", "").lower()
            if email in emails or (handle and handle in handles):
                raise forms.ValidationError(
                    "The same maintainer is listed twice (same email or GitHub handle)."
                )
            emails.add(email)
            if handle:
                handles.add(handle)

    def entries(self) -> list[MaintainerEntry]:
        return [
            MaintainerEntry(
                name=form.cleaned_data["name"].strip(),
                email=form.cleaned_data["email"],
                github_handle=form.cleaned_data.get("github_handle", ""),
            )
            for form in self.forms
            if form.has_changed() and form.cleaned_data
        ]


MaintainerFormSet = formset_factory(
    MaintainerForm,
    formset=BaseMaintainerFormSet,
    extra=2,
    min_num=1,
    validate_min=True,
    max_num=MAX_MAINTAINERS,
    validate_max=True,
)


def maintainer_formset(data=None, *, initial: list[dict] | None = None):
    """The maintainer rows of the proposal form, prefixed 'maintainers'."""
    return MaintainerFormSet(data=data, initial=initial, prefix="maintainers")


class NoteForm(forms.Form):
    body = forms.CharField(
        label="Your note", max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        label="Your decision",
        choices=[
            (ProposalNote.Decision.APPROVE, "Approve: register the package and its maintainers"),
            (ProposalNote.Decision.REQUEST_CHANGES, "Request changes from the proposer"),
            (ProposalNote.Decision.REJECT, "Reject"),
        ],
        widget=forms.RadioSelect,
    )
    note = forms.CharField(
        label="Note to the proposer",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Sent by email and shown on the proposal's status page.",
    )


class WithdrawForm(forms.Form):
    reason = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
