"""Proposal URLs: the public form, status pages, and the reviewers' queue."""

from django.urls import path

from packages_app.views import proposals as proposal_views
from packages_app.views import reviews as review_views

app_name = "proposals"

urlpatterns = [
    path("propose/", proposal_views.propose, name="propose"),
    # The public summary first: a status token never consists of digits only.
    path("proposals/<int:pk>/", proposal_views.proposal_summary, name="proposal-summary"),
    path("proposals/<str:token>/", proposal_views.proposal_status, name="proposal-status"),
    path("proposals/<str:token>/note/", proposal_views.proposal_add_note, name="proposal-note"),
    path(
        "proposals/<str:token>/withdraw/",
        proposal_views.proposal_withdraw,
        name="proposal-withdraw",
    ),
    path("proposals/<str:token>/update/", proposal_views.proposal_update, name="proposal-update"),
    path("review/", review_views.review_queue, name="review-queue"),
    path("review/<int:pk>/", review_views.review_detail, name="review-detail"),
    path("review/<int:pk>/note/", review_views.review_add_note, name="review-note"),
    path("review/<int:pk>/decide/", review_views.review_decide, name="review-decide"),
    path("review/<int:pk>/rerun/", review_views.review_rerun_prechecks, name="review-rerun"),
]
