"""The review queue for the reviewers group: list, one proposal, notes, decisions, re-runs.

Every view needs a signed-in user with packages_app.review_proposal (the 'reviewers' group):
anonymous visitors are sent to sign in, other users get 403.
"""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.shortcuts import redirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

from distro_site.paging import paginate
from packages_app.forms.proposals import DecisionForm
from packages_app.forms.proposals import NoteForm
from packages_app.models import OPEN_PROPOSAL_STATES
from packages_app.models import Proposal
from packages_app.selectors.proposals import QUEUE_FILTER_ALL
from packages_app.selectors.proposals import QUEUE_FILTER_OPEN
from packages_app.selectors.proposals import get_queue_counts
from packages_app.selectors.proposals import list_proposal_notes
from packages_app.selectors.proposals import list_review_queue
from packages_app.services.reviews import add_review_note
from packages_app.services.reviews import decide_proposal
from packages_app.services.reviews import rerun_proposal_prechecks
from packages_app.views.proposals import add_service_errors

REVIEW_PERMISSION = "packages_app.review_proposal"


def reviewer_required(view):
    @wraps(view)
    @login_required(login_url="accounts:login")
    def wrapped(request, *args, **kwargs):
        if not request.user.has_perm(REVIEW_PERMISSION):
            raise PermissionDenied("Only reviewers may open the review queue.")
        return view(request, *args, **kwargs)

    return wrapped


@reviewer_required
def review_queue(request):
    state_filter = request.GET.get("state", QUEUE_FILTER_OPEN)
    if state_filter not in (QUEUE_FILTER_OPEN, QUEUE_FILTER_ALL, *Proposal.State.values):
        state_filter = QUEUE_FILTER_OPEN
    page, page_query = paginate(request, list_review_queue(state_filter=state_filter))
    counts = get_queue_counts()
    return render(
        request,
        "packages_app/review_queue.html",
        {
            "page": page,
            "page_query": page_query,
            "state_filter": state_filter,
            "states": [(value, label, counts[value]) for value, label in Proposal.State.choices],
            "open_count": sum(counts[state] for state in OPEN_PROPOSAL_STATES),
        },
    )


def _detail(request, proposal: Proposal, *, note_form=None, decision_form=None, status=200):
    return render(
        request,
        "packages_app/review_detail.html",
        {
            "proposal": proposal,
            "notes": list_proposal_notes(proposal=proposal),
            "note_form": note_form or NoteForm(),
            "decision_form": decision_form or DecisionForm(),
        },
        status=status,
    )


def _get_proposal(pk: int) -> Proposal:
    return get_object_or_404(Proposal.objects.select_related("package", "reviewed_by"), pk=pk)


@reviewer_required
def review_detail(request, pk):
    return _detail(request, _get_proposal(pk))


@reviewer_required
@require_POST
def review_add_note(request, pk):
    proposal = _get_proposal(pk)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            add_review_note(proposal=proposal, author=request.user, body=form.cleaned_data["body"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "Note added.")
            return redirect("proposals:review-detail", pk=pk)
    return _detail(request, proposal, note_form=form, status=400)


@reviewer_required
@require_POST
def review_decide(request, pk):
    proposal = _get_proposal(pk)
    form = DecisionForm(request.POST)
    if form.is_valid():
        try:
            proposal = decide_proposal(
                proposal=proposal,
                reviewer=request.user,
                decision=form.cleaned_data["decision"],
                note=form.cleaned_data["note"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request, f"{proposal.package_name}: {proposal.get_state_display().lower()}."
            )
            return redirect("proposals:review-detail", pk=pk)
    return _detail(request, proposal, decision_form=form, status=400)


@reviewer_required
@require_POST
def review_rerun_prechecks(request, pk):
    proposal = _get_proposal(pk)
    try:
        rerun_proposal_prechecks(proposal=proposal, requested_by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "The pre-checks were queued again.")
    return redirect("proposals:review-detail", pk=pk)
