"""The world of the PostgreSQL fault run, written into the private cluster by a separate
process (`manage.py shell -c "..."`): the test process itself stays on the pytest database."""

from testing_app.models import Job
from testing_app.models import Variant
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.hosts import create_enrollment_token
from tests import factories


def seed(count: int) -> None:
    """`count` queued test jobs of one CPU run (pushed to Redis), and prints an enrollment
    token for the workers."""
    cell = {
        "platform": factories.PlatformFactory(subdir="linux-64"),
        "variant": factories.VariantFactory(name="cpu", kind=Variant.Kind.CPU),
        "torch_release": factories.TorchReleaseFactory(version="2.5.1"),
    }
    build = factories.BuildFactory()
    enqueue_jobs(
        run=factories.RunFactory(),
        jobs=[Job(kind="test", build=build, python=f"3.{i}", **cell) for i in range(count)],
    )
    print(create_enrollment_token(name="fault runs", pre_approved=True)[1])
