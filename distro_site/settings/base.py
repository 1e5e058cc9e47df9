"""Settings for every environment; production differs only in environment values (12-factor)."""

import json
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A local .env is a convenience for developers; real deployments set the environment.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "django-insecure-development-only-key-never-used-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_rq",
    "packages_app",
    "testing_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "distro_site.urls"
WSGI_APPLICATION = "distro_site.wsgi.application"
ASGI_APPLICATION = "distro_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite is the default only for the one-command local demo; tests and deployments use PostgreSQL.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'conda-distro.sqlite3'}"),
}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs web and worker processes side by side on one file.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "STATICFILES_BACKEND",
            default="whitenoise.storage.CompressedManifestStaticFilesStorage",
        )
    },
}

# --- Redis and queues -------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# RQ_SYNC runs jobs inside the calling process: only for the demo when no redis-server exists.
RQ_SYNC = env.bool("RQ_SYNC", default=False)
JOB_DEFAULT_TIMEOUT = env.int("JOB_DEFAULT_TIMEOUT", default=3600)
# Static queues; the per-capability test queues (test.<platform>.<variant>) are derived from data.
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": JOB_DEFAULT_TIMEOUT, "ASYNC": not RQ_SYNC}
    for name in ("default", "install", "promote")
}
# Enqueue explicitly in transaction.on_commit (one visible deferral, as NetBox does).
RQ = {"COMMIT_MODE": "auto"}

# --- Email ------------------------------------------------------------------------------------
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
for _key in ("EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD"):
    if _email.get(_key):
        globals()[_key] = _email[_key]
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="conda-distro <noreply@localhost>")

# --- Storage for logs and downloaded artifacts -------------------------------------------------
LOG_DIR = Path(env.str("LOG_DIR", default=str(VAR_DIR / "logs")))
ARTIFACT_DIR = Path(env.str("ARTIFACT_DIR", default=str(VAR_DIR / "artifacts")))

# --- Channels ---------------------------------------------------------------------------------
DEMO_DATA_DIR = BASE_DIR / "packages_app" / "demo_data"


def _default_channels() -> list[dict]:
    """The demo channels shipped with the project (real repodata snapshots), as file:// URLs."""
    channels_dir = DEMO_DATA_DIR / "channels"
    return [
        {
            "name": "pytorch-snapshot",
            "url": (channels_dir / "pytorch-snapshot").as_uri(),
            "role": "upstream",
        },
        {
            "name": "conda-forge",
            "url": (channels_dir / "lockfile/conda-forge").as_uri(),
            "role": "upstream",
        },
        {
            "name": "pytorch",
            "url": (channels_dir / "lockfile/pytorch").as_uri(),
            "role": "upstream",
        },
        {"name": "nvidia", "url": (channels_dir / "lockfile/nvidia").as_uri(), "role": "upstream"},
    ]


# DISTRO_CHANNELS: a JSON list of {"name", "url", "label"?, "role", "subdirs"?}; applied to the
# Channel table by `manage.py seed_reference`.
_channels_json = env.str("DISTRO_CHANNELS", default="")
try:
    DISTRO_CHANNELS = json.loads(_channels_json) if _channels_json else _default_channels()
except json.JSONDecodeError as exc:
    raise ImproperlyConfigured(f"DISTRO_CHANNELS is not valid JSON: {exc}") from exc
REPODATA_MAX_BYTES = env.int("REPODATA_MAX_BYTES", default=512 * 1024 * 1024)
HTTP_TIMEOUT_S = env.float("HTTP_TIMEOUT_S", default=30.0)

# --- anaconda.org (promotion backend) ---------------------------------------------------------
ANACONDA_API_URL = env.str("ANACONDA_API_URL", default="https://api.anaconda.org")
ANACONDA_API_TOKEN = env.str("ANACONDA_API_TOKEN", default="")

# --- Hosts and runners ------------------------------------------------------------------------
CONDA_BUILD_BIN = env.str("CONDA_BUILD_BIN", default="conda-build")
HOST_OFFLINE_AFTER_S = env.int("HOST_OFFLINE_AFTER_S", default=120)

# --- Security ---------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "rq.worker": {"level": LOG_LEVEL},
    },
}

# --- Pages ------------------------------------------------------------------------------------
PAGE_SIZE = env.int("PAGE_SIZE", default=50)
