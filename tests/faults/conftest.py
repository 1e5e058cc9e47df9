"""Fixtures of the fault runs: the engine fixtures of tests/testing_app (real `distro_worker`
subprocesses, the conda-build stand-in, package files), an enrollment token, and workers whose
whole session is killed at the end (a fault may leave a worker's children without it)."""

import pytest

from testing_app.services.hosts import create_enrollment_token
from tests.faults.helpers import kill_session
from tests.testing_app.conftest import cpu_cell  # noqa: F401 - fixtures reused as they are
from tests.testing_app.conftest import engine_settings  # noqa: F401
from tests.testing_app.conftest import make_build  # noqa: F401
from tests.testing_app.conftest import staging  # noqa: F401
from tests.testing_app.conftest import start_worker  # noqa: F401
from tests.testing_app.conftest import worker_env  # noqa: F401


@pytest.fixture
def token(db) -> str:
    return create_enrollment_token(name="fault runs", pre_approved=True)[1]


@pytest.fixture
def worker(start_worker):  # noqa: F811 - the imported fixture, requested by name
    """start_worker, and at the end SIGKILL to every process left in each worker's session."""
    sessions = []

    def start(*args, **kwargs):
        handle = start_worker(*args, **kwargs)
        sessions.append(handle.proc.pid)  # started with start_new_session: pid == session id
        return handle

    yield start
    for session in sessions:
        kill_session(session)
