"""django-rq's `rqworker`, reading the hosts' JSON queues too.

django-rq's command defaults to RQ's pickle serializer, which cannot read the JSON jobs of the
`install` queue (adapters/rq_serializers.py). This one defaults to the trusted side's
serializer: JSON or pickle in, pickle out. It takes precedence because testing_app is listed
before django_rq in INSTALLED_APPS.
"""

from django_rq.management.commands.rqworker import Command as DjangoRqWorkerCommand

from testing_app.adapters.rq_serializers import TRUSTED_SERIALIZER_PATH


class Command(DjangoRqWorkerCommand):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(serializer=TRUSTED_SERIALIZER_PATH)
