"""manage.py create_enrollment_token: a token for `distro_worker --enroll-token`, shown once."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand
from django.core.management.base import CommandError
from django.utils import timezone

from testing_app.services.hosts import create_enrollment_token


class Command(BaseCommand):
    help = "Create a host enrollment token and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="What the token is for, e.g. 'gpu-lab rack 3'.")
        parser.add_argument(
            "--pre-approved",
            action="store_true",
            help="Hosts enrolled with it start active instead of waiting for approval.",
        )
        parser.add_argument("--expires-in-days", type=int, help="Stop accepting it after N days.")

    def handle(self, *args, **options):
        days = options["expires_in_days"]
        if days is not None and days <= 0:
            raise CommandError("--expires-in-days must be positive.")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        try:
            token, plain = create_enrollment_token(
                name=options["name"], pre_approved=options["pre_approved"], expires_at=expires_at
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stderr.write(
            f"Enrollment token {token.name!r} (id {token.pk}) created"
            f"{', pre-approved' if token.pre_approved else ''}"
            f"{f', expires {expires_at:%Y-%m-%d}' if expires_at else ''}. "
            "Copy it now: it is not stored and cannot be shown again."
        )
        self.stdout.write(plain)
