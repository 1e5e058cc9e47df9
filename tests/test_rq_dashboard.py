"""django-rq's dashboard lists every queue the hosts serve, not only the configured ones."""

import django_rq
import pytest
from django.conf import settings
from django_rq.settings import get_queues_list
from rq import Queue

from testing_app.services.dispatch import rq_queue
from tests import factories

pytestmark = pytest.mark.django_db


def test_dashboard_lists_host_queues_and_queues_rq_has_seen(client):
    factories.HostFactory(name="gpu-a", state="active", queues=["test.linux-64.cuda12.4"])
    factories.HostFactory(name="new", state="pending", queues=["test.win-64.cpu"])
    connection = django_rq.get_connection("default")
    Queue("test.osx-arm64.cpu", connection=connection).enqueue("builtins.print", "x")
    names = [config["name"] for config in get_queues_list()]
    assert {"default", "install", "promote"} <= set(names)
    assert "test.linux-64.cuda12.4" in names  # declared by an enrolled host, still empty
    assert "test.osx-arm64.cpu" in names  # registered in Redis by RQ
    assert "test.win-64.cpu" not in names  # a host waiting for approval serves nothing yet
    # The configured queues keep their own settings; a served queue shares their connection.
    assert settings.RQ_QUEUES["default"]["URL"] == settings.REDIS_URL
    assert settings.RQ_QUEUES["test.linux-64.cuda12.4"]["URL"] == settings.REDIS_URL
    with pytest.raises(KeyError):
        settings.RQ_QUEUES["test.win-64.cpu"]
    client.force_login(factories.UserFactory(is_staff=True, is_superuser=True))
    page = client.get("/django-rq/").content.decode()
    assert "test.linux-64.cuda12.4" in page
    assert "test.osx-arm64.cpu" in page
    index = names.index("test.osx-arm64.cpu")
    queue_page = client.get(f"/django-rq/queues/{index}/")
    assert queue_page.status_code == 200
    assert rq_queue("test.osx-arm64.cpu").count == 1
