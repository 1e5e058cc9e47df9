"""Testing URLs: matrix, runs, jobs, hosts, trends, release waves, badges."""

from django.urls import path

from testing_app.views import badges
from testing_app.views import hosts
from testing_app.views import jobs
from testing_app.views import maintenance
from testing_app.views import matrix
from testing_app.views import notifications
from testing_app.views import promotions
from testing_app.views import releases
from testing_app.views import runs
from testing_app.views import trends
from testing_app.views import waivers

app_name = "testing"

urlpatterns = [
    path("matrix/", matrix.matrix, name="matrix"),
    path("matrix/export.csv", matrix.matrix_csv, name="matrix-csv"),
    path(
        "matrix/cell/<str:package>/<str:release>/<str:variant>/<str:platform>/",
        matrix.matrix_cell,
        name="matrix-cell",
    ),
    path("runs/", runs.run_list, name="run-list"),
    path("runs/<int:pk>/", runs.run_detail, name="run-detail"),
    path("runs/<int:pk>/progress.json", runs.run_progress, name="run-progress"),
    path("jobs/<int:pk>/", jobs.job_detail, name="job-detail"),
    path("jobs/<int:pk>/retry/", jobs.job_retry, name="job-retry"),
    path("jobs/<int:pk>/log/", jobs.job_log, name="job-log"),
    path("jobs/<int:pk>/reproduce.sh", jobs.job_reproduce_script, name="job-reproduce"),
    path("jobs/<int:pk>/log.json", jobs.job_log_tail, name="job-log-tail"),
    path("hosts/", hosts.host_list, name="host-list"),
    path("trends/", trends.trends, name="trends"),
    # Release impact and the wave per package (issue 8); the page includes the wave chart.
    path("releases/", releases.release_list, name="torchrelease-list"),
    path("releases/new/", releases.release_register, name="torchrelease-register"),
    path("releases/<str:version>/", releases.release_detail, name="torchrelease-wave"),
    path("notifications/<str:token>/", notifications.preferences, name="notification-preferences"),
    path(
        "notifications/<str:token>/unsubscribe/",
        notifications.unsubscribe_view,
        name="notification-unsubscribe",
    ),
    path("notifications/<str:token>/reset/", notifications.reset_link, name="notification-reset"),
    path(
        "notifications/<str:token>/issue/<str:name>/",
        notifications.notice_issue,
        name="notification-issue",
    ),
    path("maintenance/", maintenance.overview, name="maintenance"),
    path("maintenance/<str:name>/remove/", maintenance.package_remove, name="package-remove"),
    path(
        "maintenance/<str:name>/reinstate/", maintenance.package_reinstate, name="package-reinstate"
    ),
    path("packages/<str:name>/claim/", maintenance.claim_new, name="claim-new"),
    path("review/claims/", maintenance.claim_queue, name="claim-queue"),
    path("review/claims/<int:pk>/", maintenance.claim_detail, name="claim-detail"),
    # Promotion (issue 7): the queue, excuses, confirmation, progress, waivers, the target.
    path("promotions/", promotions.promotion_queue, name="promotion-queue"),
    path("promotions/confirm/", promotions.promotion_confirm, name="promotion-confirm"),
    path("promotions/create/", promotions.promotion_create, name="promotion-create"),
    path("promotions/check/", promotions.installability_request, name="installability-request"),
    path("promotions/target/", promotions.target_channel, name="promotion-target"),
    path("promotions/<int:pk>/", promotions.promotion_detail, name="promotion-detail"),
    path("promotions/<int:pk>/resume/", promotions.promotion_resume, name="promotion-resume"),
    path("promotions/<int:pk>/cancel/", promotions.promotion_cancel, name="promotion-cancel"),
    path("builds/<int:pk>/excuses/", promotions.build_excuses, name="build-excuses"),
    path("builds/<int:pk>/waive/", waivers.waiver_create, name="build-waive"),
    path("waivers/<int:pk>/revoke/", waivers.waiver_revoke, name="waiver-revoke"),
    path("badges/<str:name>.svg", badges.package_badge, name="badge-package"),
    path(
        "badges/<str:name>/<str:torch_version>.svg",
        badges.package_badge,
        name="badge-package-release",
    ),
]
