"""django-rq's `rqworker`, with the serializer chosen by the queues it serves.

django-rq's command defaults to RQ's pickle serializer, which cannot read the JSON jobs of the
hosts' queues (adapters/rq_serializers.py). Here the default follows the queues: host queues
(`rqworker install`) -> JSON only; trusted queues (`rqworker default promote`) -> the trusted
side's serializer. Both kinds in one worker are refused: a compromised host can rewrite a job
of a host queue, and a worker that reads pickle must never load it. It takes precedence
because testing_app comes before django_rq in INSTALLED_APPS.
"""

from django.core.management.base import CommandError
from django_rq.management.commands.rqworker import Command as DjangoRqWorkerCommand

from testing_app.adapters.rq_serializers import HOST_SERIALIZER
from testing_app.services.queues import MixedQueuesError
from testing_app.services.queues import worker_serializer

JSON_SERIALIZER_PATH = f"{HOST_SERIALIZER.__module__}.{HOST_SERIALIZER.__qualname__}"


class Command(DjangoRqWorkerCommand):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(serializer=None)

    def handle(self, *args, **options):
        names = list(args) or ["default"]
        try:
            serializer = worker_serializer(names)
        except MixedQueuesError as exc:
            raise CommandError(str(exc)) from exc
        if options["serializer"] is None:
            options["serializer"] = f"{serializer.__module__}.{serializer.__qualname__}"
        elif serializer is HOST_SERIALIZER and options["serializer"] != JSON_SERIALIZER_PATH:
            raise CommandError(
                f"The host queues {', '.join(names)} are read with {JSON_SERIALIZER_PATH} only."
            )
        return super().handle(*args, **options)
