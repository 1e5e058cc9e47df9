"""Enrollment tokens, enrollment from a real probe, host state actions, the admin around them."""

import hashlib
import io
import json
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from testing_app.adapters.host_probe import GpuFacts
from testing_app.adapters.host_probe import HostFacts
from testing_app.models import EnrollmentToken
from testing_app.models import Host
from testing_app.models import Job
from testing_app.services.hosts import approve_host
from testing_app.services.hosts import create_enrollment_token
from testing_app.services.hosts import drain_host
from testing_app.services.hosts import enroll_host
from testing_app.services.hosts import quarantine_host
from testing_app.services.hosts import record_worker_heartbeat
from testing_app.services.hosts import register_worker
from testing_app.services.hosts import resume_host
from testing_app.services.hosts import revoke_enrollment_token
from tests import factories
from tests.testing_app.conftest import NVIDIA_FIXTURES

pytestmark = pytest.mark.django_db


def _real_h200_facts() -> HostFacts:
    """The probe's own output on a real H200 machine (tests/fixtures/nvidia_smi/h200)."""
    data = json.loads((NVIDIA_FIXTURES / "probe.json").read_text())
    data["gpus"] = [GpuFacts(**gpu) for gpu in data["gpus"]]
    data["conda_build_version"] = "24.9.0"
    return HostFacts(**data)


def test_token_is_stored_hashed_and_handed_out_once():
    token, plain = create_enrollment_token(name="rack 3")
    assert token.token_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert plain not in json.dumps(list(EnrollmentToken.objects.values()), default=str)
    assert len(plain) >= 40
    # Never starts with "-": `distro_worker --enroll-token <token>` would read it as an option.
    assert plain.startswith("cde_")


def test_enroll_new_host_from_real_probe_is_pending(reference_data):
    _, plain = create_enrollment_token(name="lab")
    host = enroll_host(name="h200-box", facts=_real_h200_facts(), token=plain)
    assert host.state == Host.State.PENDING
    assert (host.platform.subdir, host.os_name, host.glibc_version) == (
        "linux-64",
        "ubuntu",
        "2.39",
    )
    assert host.gpus[0]["name"] == "NVIDIA H200"
    assert host.gpus[0]["compute_capability"] == "9.0"
    assert (host.driver_version, host.max_cuda) == ("580.159.04", "13.0")
    assert host.runners == {"conda-build": "24.9.0"}
    assert host.queues[0] == "test.linux-64.cuda13.0"  # the driver's CUDA 13.0 and nothing newer
    assert not any(q.startswith("test.linux-64.cuda13.2") for q in host.queues)
    assert [q for q in host.queues if "@" not in q][-1] == "test.linux-64.cpu"
    assert EnrollmentToken.objects.get().last_used_at is not None


def test_enroll_with_pre_approved_token_starts_active(reference_data):
    _, plain = create_enrollment_token(name="trusted", pre_approved=True)
    host = enroll_host(name="box", facts=_real_h200_facts(), token=plain, cpu_queues=["install"])
    assert host.state == Host.State.ACTIVE
    assert host.approved_at is not None
    assert host.queues[-1] == "install"


def test_enroll_refuses_unknown_revoked_expired_or_missing_tokens(reference_data):
    facts = _real_h200_facts()
    with pytest.raises(ValidationError, match="Unknown enrollment token"):
        enroll_host(name="a", facts=facts, token="guessed")
    revoked, plain = create_enrollment_token(name="old")
    revoke_enrollment_token(token=revoked)
    with pytest.raises(ValidationError, match="was revoked"):
        enroll_host(name="a", facts=facts, token=plain)
    _, expired = create_enrollment_token(
        name="late", expires_at=timezone.now() - timedelta(minutes=1)
    )
    with pytest.raises(ValidationError, match="has expired"):
        enroll_host(name="a", facts=facts, token=expired)
    with pytest.raises(ValidationError, match="not enrolled yet"):
        enroll_host(name="a", facts=facts)
    assert not Host.objects.exists()


def test_known_host_restarts_without_token_and_keeps_its_state(reference_data):
    _, plain = create_enrollment_token(name="lab")
    host = enroll_host(name="box", facts=_real_h200_facts(), token=plain)
    drain_host(host=approve_host(host=host))
    again = enroll_host(name="box", facts=_real_h200_facts())
    assert again.pk == host.pk
    assert again.state == Host.State.DRAINING


def test_host_state_transitions_and_refusals():
    host = factories.HostFactory(state="pending")
    with pytest.raises(ValidationError, match="Cannot drain"):
        drain_host(host=host)
    host = resume_host(host=quarantine_host(host=host))
    assert host.state == "pending"  # never approved: resuming does not approve it
    user = factories.UserFactory()
    host = approve_host(host=host, by=user)
    assert (host.state, host.approved_by) == ("active", user)
    assert drain_host(host=host).state == "draining"
    assert quarantine_host(host=host).state == "quarantined"
    assert resume_host(host=host).state == "active"


def test_heartbeat_reports_whether_the_host_may_take_jobs():
    host = factories.HostFactory(state="active", last_heartbeat_at=None)
    worker = register_worker(host=host, name="w1", queues=["test.linux-64.cpu"], pid=1)
    assert record_worker_heartbeat(worker_id=worker.pk).may_take_jobs
    drain_host(host=host)
    reply = record_worker_heartbeat(worker_id=worker.pk)
    assert (reply.may_take_jobs, reply.host_state) == (False, "draining")
    host.refresh_from_db()
    assert host.effective_state == "draining"
    Host.objects.filter(pk=host.pk).update(last_heartbeat_at=timezone.now() - timedelta(minutes=3))
    host.refresh_from_db()
    assert host.effective_state == "offline"  # silent for more than two minutes


def test_create_enrollment_token_command_prints_the_token_once():
    out, err = io.StringIO(), io.StringIO()
    call_command("create_enrollment_token", "gpu lab", "--pre-approved", stdout=out, stderr=err)
    plain = out.getvalue().strip()
    token = EnrollmentToken.objects.get()
    assert token.token_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert token.pre_approved
    assert "cannot be shown again" in err.getvalue()


def test_admin_creates_token_and_shows_it_once(admin_client):
    response = admin_client.post(
        reverse("admin:testing_app_enrollmenttoken_add"),
        {"name": "from admin", "pre_approved": "on"},
        follow=True,
    )
    assert response.status_code == 200
    token = EnrollmentToken.objects.get()
    shown = [str(m) for m in get_messages(response.wsgi_request)] or [
        m.message for m in response.context["messages"]
    ]
    plain = next(m for m in shown if "Enrollment token" in m).split(": ", 1)[1].split(" ")[0]
    assert token.token_hash == hashlib.sha256(plain.encode()).hexdigest()
    page = admin_client.get(reverse("admin:testing_app_enrollmenttoken_change", args=[token.pk]))
    assert plain not in page.content.decode()


def test_admin_revokes_tokens(admin_client):
    token, _ = create_enrollment_token(name="to revoke")
    admin_client.post(
        reverse("admin:testing_app_enrollmenttoken_changelist"),
        {"action": "revoke_selected", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.revoked_at is not None


@pytest.mark.parametrize(
    ("start", "action", "end"),
    [
        ("pending", "approve_selected", "active"),
        ("active", "drain_selected", "draining"),
        ("active", "quarantine_selected", "quarantined"),
        ("draining", "resume_selected", "active"),
        ("pending", "drain_selected", "pending"),  # refused, with a message
    ],
)
def test_admin_host_actions_call_the_services(admin_client, start, action, end):
    host = factories.HostFactory(state=start, approved_at=timezone.now())
    response = admin_client.post(
        reverse("admin:testing_app_host_changelist"),
        {"action": action, "_selected_action": [host.pk]},
        follow=True,
    )
    host.refresh_from_db()
    assert host.state == end
    if start == end:
        assert "Cannot drain" in response.content.decode()


def test_admin_job_actions_retry_and_cancel(admin_client, cpu_cell):
    from testing_app.services.dispatch import enqueue_jobs
    from testing_app.services.execution import JobOutcome
    from testing_app.services.execution import execute_job

    build = factories.BuildFactory()
    done, waiting = enqueue_jobs(
        run=factories.RunFactory(),
        jobs=[Job(kind="test", build=build, python=p, **cpu_cell) for p in ("3.11", "3.12")],
    )
    execute_job(job_id=done.pk, runner=lambda **_: JobOutcome(verdict="failed"))
    url = reverse("admin:testing_app_job_changelist")
    admin_client.post(url, {"action": "retry_selected", "_selected_action": [done.pk]})
    assert Job.objects.filter(retry_of=done, status="queued").exists()
    admin_client.post(url, {"action": "cancel_selected", "_selected_action": [waiting.pk]})
    waiting.refresh_from_db()
    assert waiting.status == "cancelled"


def test_gpu_pin_is_the_uuid_that_real_cuda_accepted():
    from testing_app.management.commands.distro_worker import gpu_pin_environment

    gpu = _real_h200_facts().gpus[0]
    pin = gpu_pin_environment(gpu)
    assert pin == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": gpu.uuid}
    # Captured on the H200 with exactly this pinning (tests/fixtures/gpu_pinning/README.md):
    # the UUID selects that one GPU, and a UUID that does not exist selects none.
    seen = json.loads((NVIDIA_FIXTURES.parent.parent / "gpu_pinning" / "pinning.json").read_text())
    assert seen["uuid"] == {"device_count": 1, "names": [gpu.name]}
    assert seen["bogus"]["device_count"] == 0
