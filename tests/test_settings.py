"""Settings come from the environment; production-like values pass `check --deploy`."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "a-long-random-production-secret-" + "x" * 40,
    "ALLOWED_HOSTS": "distro.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://distro.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/conda_distro",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    "EMAIL_URL": "smtp+tls://mailer:secret@mail.example.org:587",
    "DJANGO_SETTINGS_MODULE": "distro_site.settings.base",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # Only what a process needs to start: nothing inherited from the test settings.
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_with_production_like_environment():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_missing_secret_key_without_debug_is_refused():
    env = {**PRODUCTION_ENV, "SECRET_KEY": ""}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_email_url_configures_smtp():
    code = (
        "from django.conf import settings as s;"
        "print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_USE_TLS)"
    )
    result = _manage("shell", "-c", code, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == [
        "django.core.mail.backends.smtp.EmailBackend",
        "mail.example.org",
        "587",
        "True",
    ]


def test_github_features_are_off_by_default_and_read_from_the_environment():
    code = (
        "from django.conf import settings as s;"
        "print(s.GITHUB_SIGN_IN_ENABLED, s.TRUSTED_PUBLISHING_ENABLED, "
        "s.TRUSTED_PUBLISHING_AUDIENCE)"
    )
    default = _manage("shell", "-c", code, env={**PRODUCTION_ENV, "SITE_URL": "https://d.example"})
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip().splitlines()[-1].split() == [
        "False",
        "False",
        "https://d.example",
    ]
    turned_on = {
        **PRODUCTION_ENV,
        "GITHUB_SIGN_IN_ENABLED": "true",
        "GITHUB_OAUTH_CLIENT_ID": "Iv1.abc",
        "GITHUB_OAUTH_CLIENT_SECRET": "secret",
        "TRUSTED_PUBLISHING_ENABLED": "true",
        "TRUSTED_PUBLISHING_AUDIENCE": "conda-distro",
    }
    on = _manage("shell", "-c", code, env=turned_on)
    assert on.returncode == 0, on.stderr
    assert on.stdout.strip().splitlines()[-1].split() == ["True", "True", "conda-distro"]


def test_github_sign_in_without_an_oauth_app_is_refused():
    env = {**PRODUCTION_ENV, "GITHUB_SIGN_IN_ENABLED": "true"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "GITHUB_OAUTH_CLIENT_ID" in result.stderr
