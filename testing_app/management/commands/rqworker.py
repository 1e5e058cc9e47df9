"""django-rq's `rqworker`, with the serializer chosen by the queues it serves.

django-rq's command defaults to RQ's pickle serializer, which cannot read the JSON jobs of the
hosts' queues (adapters/rq_serializers.py). Here the default follows the queues: host queues
only (`rqworker install`) -> JSON only; any trusted queue -> the trusted side's serializer
(JSON or pickle in). Serving `install` together with default/promote is allowed (the demo does)
but warned about: a compromised host can rewrite an install job's data, and that worker would
unpickle it. It takes precedence because testing_app comes before django_rq in INSTALLED_APPS.
"""

from django_rq.management.commands.rqworker import Command as DjangoRqWorkerCommand
from rq.serializers import JSONSerializer

from testing_app.services.queues import is_host_queue
from testing_app.services.queues import worker_serializer


class Command(DjangoRqWorkerCommand):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(serializer=None)

    def handle(self, *args, **options):
        names = list(args) or ["default"]
        if options["serializer"] is None:
            serializer = worker_serializer(names)
            options["serializer"] = f"{serializer.__module__}.{serializer.__qualname__}"
            mixed = serializer is not JSONSerializer and any(is_host_queue(n) for n in names)
            if mixed:
                self.stderr.write(
                    "warning: this worker serves host queues and trusted queues together and "
                    "reads pickle: run `rqworker install` (JSON only) apart from the trusted "
                    "queues in production (docs/operators.md)"
                )
        return super().handle(*args, **options)
