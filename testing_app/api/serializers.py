"""API representations. Maintainers appear by name and GitHub handle, never by e-mail."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from packages_app.models import Build
from packages_app.models import Maintainer
from packages_app.models import Package
from testing_app.models import Host
from testing_app.models import Job
from testing_app.models import Run


class MaintainerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Maintainer
        fields = ["name", "github_handle"]


class PackageSerializer(serializers.ModelSerializer):
    maintainers = MaintainerSerializer(many=True, read_only=True)
    # A package registered from a channel has no license of its own: its latest builds say it.
    license = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()
    badge_url = serializers.SerializerMethodField()

    class Meta:
        model = Package
        fields = [
            "name",
            "summary",
            "status",
            "latest_version",
            "license",
            "abi_coupled",
            "home_url",
            "repo_url",
            "recipe_url",
            "maintainers",
            "page_url",
            "badge_url",
        ]

    def get_license(self, package) -> str:
        return package.license or getattr(package, "build_license", None) or ""

    def get_page_url(self, package) -> str:
        return package.get_absolute_url()

    def get_badge_url(self, package) -> str:
        return reverse("testing:badge-package", kwargs={"name": package.name})


class BuildSerializer(serializers.ModelSerializer):
    channel = serializers.CharField(source="channel.__str__", read_only=True)

    class Meta:
        model = Build
        fields = [
            "id",
            "name",
            "version",
            "build_string",
            "build_number",
            "subdir",
            "filename",
            "channel",
            "depends",
            "constrains",
            "license",
            "sha256",
            "size",
            "timestamp",
            "state",
        ]


class RunSerializer(serializers.ModelSerializer):
    triggered_by = serializers.SerializerMethodField()
    torch_release = serializers.CharField(source="torch_release.version", default=None)
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "trigger",
            "trigger_detail",
            "triggered_by",
            "trigger_build",
            "torch_release",
            "state",
            "created_at",
            "started_at",
            "finished_at",
            "page_url",
        ]

    def get_triggered_by(self, run) -> str | None:
        return run.triggered_by.get_username() if run.triggered_by else None

    def get_page_url(self, run) -> str:
        return reverse("testing:run-detail", kwargs={"pk": run.pk})


class RunDetailSerializer(RunSerializer):
    progress = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "progress"]

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "total": {"type": "integer"},
                "done": {"type": "integer"},
                "running": {"type": "integer"},
                "queued": {"type": "integer"},
                "cancelled": {"type": "integer"},
                "by_verdict": {"type": "object", "additionalProperties": {"type": "integer"}},
                "remaining_s": {"type": "number", "nullable": True},
            },
        }
    )
    def get_progress(self, run) -> dict:
        progress = self.context["progress"]
        return {
            "total": progress.total,
            "done": progress.done,
            "running": progress.running,
            "queued": progress.queued,
            "cancelled": progress.cancelled,
            "by_verdict": progress.by_verdict,
            "remaining_s": progress.remaining_s,
        }


class JobSerializer(serializers.ModelSerializer):
    package = serializers.CharField(source="build.name")
    version = serializers.CharField(source="build.version")
    filename = serializers.CharField(source="build.filename")
    torch_release = serializers.CharField(source="torch_release.version")
    variant = serializers.CharField(source="variant.name")
    platform = serializers.CharField(source="platform.subdir")
    host = serializers.CharField(source="host.name", default=None)
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "run",
            "kind",
            "build",
            "package",
            "version",
            "filename",
            "torch_release",
            "variant",
            "platform",
            "python",
            "status",
            "verdict",
            "attempt",
            "max_attempts",
            "queue_name",
            "host",
            "created_at",
            "started_at",
            "finished_at",
            "duration_s",
            "page_url",
        ]

    def get_page_url(self, job) -> str:
        return job.get_absolute_url()


class JobDetailSerializer(JobSerializer):
    log_url = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [
            *JobSerializer.Meta.fields,
            "pinned_build",
            "extra_specs",
            "retry_of",
            "timeout_s",
            "worker_name",
            "gpu_index",
            "runner",
            "runner_version",
            "command",
            "exit_code",
            "solved_packages",
            "failure_excerpt",
            "error_message",
            "enqueued_at",
            "log_url",
        ]

    def get_log_url(self, job) -> str | None:
        return reverse("testing:job-log", kwargs={"pk": job.pk}) if job.log_path else None


class HostSerializer(serializers.ModelSerializer):
    platform = serializers.CharField(source="platform.subdir")
    state = serializers.CharField(source="effective_state")
    reported_state = serializers.CharField(source="state")

    class Meta:
        model = Host
        fields = [
            "name",
            "platform",
            "state",
            "reported_state",
            "os_name",
            "os_version",
            "gpus",
            "driver_version",
            "max_cuda",
            "rocm_version",
            "runners",
            "queues",
            "last_heartbeat_at",
        ]


class ReproductionPackageSerializer(serializers.Serializer):
    url = serializers.CharField()
    filename = serializers.CharField()
    sha256 = serializers.CharField()


class ReproductionSerializer(serializers.Serializer):
    """How to rerun one cell locally (testing_app.services.reproduce)."""

    job = serializers.IntegerField()
    cell = serializers.CharField()
    verdict = serializers.CharField()
    tool = serializers.CharField()
    channels = serializers.ListField(child=serializers.CharField())
    channel_priority = serializers.CharField()
    stack_environment = serializers.DictField(child=serializers.CharField())
    pins = serializers.ListField(child=serializers.CharField())
    environment = serializers.DictField(child=serializers.CharField())
    package = ReproductionPackageSerializer()
    test_command = serializers.ListField(child=serializers.CharField())
    notes = serializers.ListField(child=serializers.CharField())
    script = serializers.CharField()
