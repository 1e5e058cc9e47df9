"""manage.py reconcile: make Redis agree with PostgreSQL (the periodic reconciler, once)."""

from django.core.management.base import BaseCommand

from testing_app.services.reconcile import reconcile


class Command(BaseCommand):
    help = (
        "Retry jobs of lost workers, re-enqueue queued jobs missing from Redis, and remove "
        "orphaned RQ entries. PostgreSQL is the truth."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--grace",
            type=int,
            default=None,
            help="Leave queued jobs younger than this many seconds alone (default: "
            "RECONCILE_GRACE_S); 0 after a known Redis loss.",
        )

    def handle(self, *args, **options):
        report = reconcile(grace_s=options["grace"])
        self.stdout.write(str(report))
