"""One notice per root cause, across kinds and runs: a staged sample-lib 2.0 breaks four
dependents over three runs of re-tests. Its maintainers (one immediate, one daily) get one
notice and one update with what was found later; each victim's maintainers get one notice
naming the cause; a maintainer on both sides gets one thread; the third run adds nothing."""

import pytest

from packages_app.models import Maintainer
from testing_app.models import Notification
from testing_app.models import Verdict
from testing_app.services.notifications import send_daily_digests
from tests import factories
from tests.testing_app.notice_helpers import drain_default_queue
from tests.testing_app.notice_helpers import finish

pytestmark = pytest.mark.django_db

Kind = Notification.Kind
IMMEDIATE = Maintainer.NotifyMode.IMMEDIATE
DAILY = Maintainer.NotifyMode.DAILY


@pytest.fixture
def cause():
    release = factories.TorchReleaseFactory(version="2.5.1")
    cell = {
        "torch_release": release,
        "variant": factories.VariantFactory(name="cpu"),
        "platform": factories.PlatformFactory(subdir="linux-64"),
    }
    people = {
        name: factories.MaintainerFactory(name=name, notify_mode=mode)
        for name, mode in (
            ("Uma", IMMEDIATE),  # sample-lib and dep-d
            ("Dan", DAILY),  # sample-lib
            ("Ann", IMMEDIATE),  # dep-a
            ("Bob", DAILY),  # dep-b
            ("Cid", IMMEDIATE),  # dep-c
        )
    }
    lib = factories.PackageFactory(name="sample-lib")
    lib.maintainers.add(people["Uma"], people["Dan"])
    culprit = factories.BuildFactory(
        name="sample-lib", version="2.0", package=lib, filename="sample-lib-2.0-0.conda"
    )
    dependents = {}
    for name, maintainer in (
        ("dep-a", "Ann"),
        ("dep-b", "Bob"),
        ("dep-c", "Cid"),
        ("dep-d", "Uma"),
    ):
        package = factories.PackageFactory(name=name)
        package.maintainers.add(people[maintainer])
        dependents[name] = factories.BuildFactory(
            name=name, version="1.0", package=package, depends=["sample-lib >=1"]
        )
        finish(dependents[name], cell, Verdict.PASSED)  # passes on its own
    return {"cell": cell, "people": people, "culprit": culprit, "dependents": dependents}


def _run(cause, names, capture):
    """One run of re-tests with sample-lib 2.0 pinned; then what goes out goes out."""
    with capture(execute=True):
        for name in names:
            finish(
                cause["dependents"][name],
                cause["cell"],
                Verdict.FAILED,
                pinned_build=cause["culprit"],
                excerpt="ImportError: cannot import name 'old_api' from 'sample_lib'",
            )
    drain_default_queue()
    send_daily_digests()


def _rows(person):
    return list(
        Notification.objects.filter(maintainer=person).order_by("pk").values_list("kind", "body")
    )


def test_four_dependents_over_three_runs_one_thread_per_person(
    cause, django_capture_on_commit_callbacks
):
    people = cause["people"]
    _run(cause, ["dep-a", "dep-b"], django_capture_on_commit_callbacks)
    after_first = Notification.objects.count()
    _run(cause, ["dep-a", "dep-b", "dep-c", "dep-d"], django_capture_on_commit_callbacks)
    after_second = Notification.objects.count()
    _run(cause, ["dep-a", "dep-b", "dep-c", "dep-d"], django_capture_on_commit_callbacks)

    assert Notification.objects.count() == after_second  # the third run adds nothing
    assert after_first == 4  # Uma and Dan (culprit), Ann and Bob (victims)
    assert not Notification.objects.filter(kind=Kind.OWN_FAILURE).exists()
    key = f"build:{cause['culprit'].pk}:breaks-dependents"
    for victim in ("Ann", "Bob", "Cid"):
        ((kind, body),) = _rows(people[victim])
        assert kind == Kind.UPSTREAM_BREAKAGE
        assert "sample-lib 2.0" in body  # the cause, by name
    # The culprit's maintainers: one notice with what the first run found, one update with
    # the rest (email for Uma, the next digest for Dan), never the same dependent twice.
    for culprit_maintainer in ("Uma", "Dan"):
        rows = Notification.objects.filter(maintainer=people[culprit_maintainer]).order_by("pk")
        assert [r.root_cause_key for r in rows] == [key, f"{key}:update"]
        first, update = rows
        assert first.kind == Kind.DOWNSTREAM_BREAKAGE
        assert "- dep-a 1.0: " in first.body
        assert "- dep-b 1.0: " in first.body
        assert "- dep-c 1.0: " in update.body
        assert "- dep-d 1.0: " in update.body
        assert "dep-a" not in update.body
        assert first.state in ("sent", "digested")
        assert update.state in ("sent", "digested")
    # Uma maintains dep-d too: its breakage joined her thread instead of a notice of its own.
    assert not Notification.objects.filter(
        maintainer=people["Uma"], kind=Kind.UPSTREAM_BREAKAGE
    ).exists()
