"""Forms of the promotion pages: input shape only; the services decide what is allowed."""

from django import forms

from packages_app.models import TorchRelease
from testing_app.gate.types import POLICY_TITLES
from testing_app.gate.types import WAIVABLE_POLICIES
from testing_app.models import Platform
from testing_app.models import Variant


class WaiverForm(forms.Form):
    """Waive one cell (the three axis fields) or one policy of a build."""

    policy = forms.ChoiceField(
        choices=[("", "—")] + [(key, POLICY_TITLES[key]) for key in WAIVABLE_POLICIES],
        required=False,
    )
    torch_release = forms.ModelChoiceField(
        TorchRelease.objects.all(), required=False, widget=forms.HiddenInput
    )
    variant = forms.ModelChoiceField(
        Variant.objects.all(), required=False, widget=forms.HiddenInput
    )
    platform = forms.ModelChoiceField(
        Platform.objects.all(), required=False, widget=forms.HiddenInput
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=4000,
        help_text="Why this failure is acceptable; shown on the gate and kept for the audit.",
    )
    expires_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional. After this time (UTC) the failure blocks again.",
    )

    def clean(self):
        data = super().clean()
        cell = [data.get(k) for k in ("torch_release", "variant", "platform")]
        if data.get("policy") and any(cell):
            raise forms.ValidationError("Waive either one cell or one policy, not both.")
        if not data.get("policy") and not all(cell):
            raise forms.ValidationError("Choose the policy to waive (or open this from a cell).")
        return data


class PromotionConfirmForm(forms.Form):
    """The confirmation step: which builds, and the key that makes a double submit harmless."""

    build = forms.TypedMultipleChoiceField(coerce=int, choices=[])
    idempotency_key = forms.CharField(max_length=64, widget=forms.HiddenInput)
    name = forms.CharField(max_length=200, required=False, help_text="Optional name of the set.")

    def __init__(self, *args, build_ids=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["build"].choices = [(pk, pk) for pk in build_ids]
