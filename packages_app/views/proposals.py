"""Public proposal pages: the form, the proposer's private status page and its actions, and a
public summary of a proposal (what a duplicate proposal links to)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.shortcuts import redirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.decorators.http import require_POST

from distro_site.clients import client_address
from packages_app.forms.proposals import HONEYPOT_FIELD
from packages_app.forms.proposals import NoteForm
from packages_app.forms.proposals import ProposalForm
from packages_app.forms.proposals import WithdrawForm
from packages_app.forms.proposals import maintainer_formset
from packages_app.models import Proposal
from packages_app.selectors.proposals import get_proposal_by_token
from packages_app.selectors.proposals import list_proposal_notes
from packages_app.services.proposals import ProposalConflict
from packages_app.services.proposals import ProposalRateLimited
from packages_app.services.proposals import add_proposer_note
from packages_app.services.proposals import client_fingerprint
from packages_app.services.proposals import resubmit_proposal
from packages_app.services.proposals import submit_proposal
from packages_app.services.proposals import withdraw_proposal


def add_service_errors(form, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form: on its field when the form has one."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def _private(response):
    # The status page is a capability URL: keep it out of caches and search engines.
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@require_http_methods(["GET", "POST"])
def propose(request):
    form = ProposalForm(request.POST or None)
    maintainers = maintainer_formset(request.POST or None)
    conflict = None
    status = 200
    if request.method == "POST":
        status = 400
        valid = form.is_valid()
        valid = maintainers.is_valid() and valid
        if valid:
            try:
                proposal, token = submit_proposal(
                    data=form.to_input(maintainers.entries()),
                    client_fingerprint=client_fingerprint(client_address(request)),
                    site_url=request.build_absolute_uri("/"),
                )
            except ProposalRateLimited as exc:
                form.add_error(None, str(exc) + " Please try again later.")
                status = 429
            except ProposalConflict as exc:
                conflict = exc.conflict
                form.add_error("package_name", exc.conflict.message)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    f"Thank you: the proposal of {proposal.package_name} was received. This page "
                    "is your private status link; bookmark it. It was also emailed to "
                    f"{proposal.contact_email}.",
                )
                return redirect("proposals:proposal-status", token=token)
    return render(
        request,
        "packages_app/proposal_form.html",
        {
            "form": form,
            "maintainers": maintainers,
            "conflict": conflict,
            "honeypot_field": form[HONEYPOT_FIELD],
        },
        status=status,
    )


def _proposal_or_404(token: str) -> Proposal:
    proposal = get_proposal_by_token(token)
    if proposal is None:
        raise Http404("No proposal has this status link.")
    return proposal


def _status_context(proposal: Proposal, token: str) -> dict:
    return {
        "proposal": proposal,
        "token": token,
        "notes": list_proposal_notes(proposal=proposal),
        "note_form": NoteForm(),
        "withdraw_form": WithdrawForm(),
    }


@require_http_methods(["GET"])
def proposal_status(request, token):
    proposal = _proposal_or_404(token)
    return _private(
        render(request, "packages_app/proposal_status.html", _status_context(proposal, token))
    )


@require_POST
def proposal_add_note(request, token):
    proposal = _proposal_or_404(token)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            add_proposer_note(proposal=proposal, body=form.cleaned_data["body"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "Your note was added for the reviewers.")
            return redirect("proposals:proposal-status", token=token)
    context = {**_status_context(proposal, token), "note_form": form}
    return _private(render(request, "packages_app/proposal_status.html", context, status=400))


@require_POST
def proposal_withdraw(request, token):
    proposal = _proposal_or_404(token)
    form = WithdrawForm(request.POST)
    if form.is_valid():
        try:
            withdraw_proposal(proposal=proposal, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "The proposal was withdrawn.")
            return redirect("proposals:proposal-status", token=token)
    context = {**_status_context(proposal, token), "withdraw_form": form}
    return _private(render(request, "packages_app/proposal_status.html", context, status=400))


@require_http_methods(["GET", "POST"])
def proposal_update(request, token):
    """After a change request, the proposer edits the proposal and sends it back to review."""
    proposal = _proposal_or_404(token)
    if proposal.state != Proposal.State.CHANGES_REQUESTED:
        messages.error(request, "Only a proposal with requested changes can be updated.")
        return redirect("proposals:proposal-status", token=token)
    if request.method == "POST":
        data = request.POST.copy()
        data["package_name"] = proposal.package_name  # shown read-only; it cannot change
        form = ProposalForm(data)
        maintainers = maintainer_formset(data)
        note_form = NoteForm(request.POST)
        valid = form.is_valid()
        valid = maintainers.is_valid() and valid
        if valid:
            note = request.POST.get("body", "")[:5000]
            try:
                resubmit_proposal(
                    proposal=proposal, data=form.to_input(maintainers.entries()), note=note
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, "Thank you: the proposal is back in review.")
                return redirect("proposals:proposal-status", token=token)
        status = 400
    else:
        form = ProposalForm(initial=ProposalForm.initial_from(proposal))
        maintainers = maintainer_formset(initial=proposal.maintainers_data)
        note_form = NoteForm()
        status = 200
    context = {
        "form": form,
        "maintainers": maintainers,
        "proposal": proposal,
        "token": token,
        "note_form": note_form,
        "honeypot_field": form[HONEYPOT_FIELD],
        "updating": True,
    }
    return _private(render(request, "packages_app/proposal_form.html", context, status=status))


def proposal_summary(request, pk):
    """What anyone may see of a proposal: no contact data, no thread."""
    proposal = get_object_or_404(Proposal.objects.select_related("package"), pk=pk)
    return render(request, "packages_app/proposal_summary.html", {"proposal": proposal})
