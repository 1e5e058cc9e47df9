"""Settings for every environment; production differs only in environment values (12-factor)."""

import json
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from distro_site.rq_queues import QueuesWithHostQueues

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
    # django.contrib.admin with the site's rate-limited sign-in (distro_site/admin_site.py).
    "distro_site.apps.DistroAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    # django-allauth: "Sign in with GitHub" (the OAuth dance, state, account records); only its
    # social part is used, password sign-in stays Django's own rate-limited form (issue 21).
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "packages_app",
    "testing_app",
    # After testing_app: its `rqworker` (reads the hosts' JSON queues) replaces django-rq's.
    "django_rq",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "distro_site.content_security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before anything reads a query parameter: NUL cannot reach PostgreSQL (a 400, never a 500).
    "distro_site.null_bytes.RefuseNullBytesMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "distro_site.access.PublicReadMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Required by django-allauth (its login flows keep state on the request).
    "allauth.account.middleware.AccountMiddleware",
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
    # The demo runs web and worker processes side by side on one file. A deferred transaction
    # that reads and then writes cannot wait for the lock (SQLite answers "database is locked"
    # at once, busy timeout or not), so every transaction takes the write lock when it begins
    # and waits up to `timeout` seconds for it; WAL lets readers go on while one writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # PostgreSQL's JIT compiles queries with a high estimated cost; for page-sized reads it costs
    # more than it saves (0.5 s of compiling for a 0.3 s matrix query, bench/matrix_scale.py).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
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
_RQ_QUEUE = {"URL": REDIS_URL, "DEFAULT_TIMEOUT": JOB_DEFAULT_TIMEOUT, "ASYNC": not RQ_SYNC}
# The service queues; django-rq's dashboard also lists the hosts' test.* queues (rq_queues.py).
# Host queues (install, test.*) hold JSON job data, never pickle: testing_app/adapters/
# rq_serializers.py. The trusted queues keep RQ's default.
_RQ_HOST_QUEUE = dict(_RQ_QUEUE, SERIALIZER="rq.serializers.JSONSerializer")
RQ_QUEUES = QueuesWithHostQueues(
    {
        "default": dict(_RQ_QUEUE),
        "install": dict(_RQ_HOST_QUEUE),
        "promote": dict(_RQ_QUEUE),
    },
    template=_RQ_HOST_QUEUE,
)
# Enqueue explicitly in transaction.on_commit (one visible deferral, as NetBox does).
RQ = {"COMMIT_MODE": "auto"}
# "default" is per process (derived data such as the dependents graph); "rate_limits" must be
# shared by every web process, so it lives in Redis (distro_site/rate_limits.py). The demo
# without any Redis (RQ_SYNC) runs one process: memory is enough there.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "rate_limits": (
        {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "rate-limits"}
        if RQ_SYNC
        else {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "rate-limit",
        }
    ),
    # Whole read pages for anonymous readers (distro_site/page_cache.py), shared by every web
    # process like the rate limits.
    "pages": (
        {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "pages"}
        if RQ_SYNC
        else {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "page",
        }
    ),
}
# Anonymous readers of the matrix, package pages and the API's lists may get a copy rendered at
# most this many seconds ago (signed-in users never do); 0 turns the page cache off.
PAGE_CACHE_SECONDS = env.int("PAGE_CACHE_SECONDS", default=10)

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
# The demo's sample packages as rattler-build made them from demo_data/samples/recipes, one folder
# per recipe hash and rattler-build version (packages_app/adapters/sample_build.py): a cache.
SAMPLE_BUILD_CACHE_DIR = Path(
    env.str("SAMPLE_BUILD_CACHE_DIR", default=str(VAR_DIR / "sample-builds"))
)


def _default_channels() -> list[dict]:
    """The demo channels shipped with the project (real repodata snapshots), as file:// URLs.

    Listed in solver priority order (test environments read upstream channels in the order
    they were registered): `-c pytorch -c nvidia -c conda-forge`, as the lock files were made;
    the snapshot last, since it holds only linux-64 metadata and cannot be solved on its own.
    """
    channels_dir = DEMO_DATA_DIR / "channels"
    return [
        {
            "name": "pytorch",
            "url": (channels_dir / "lockfile/pytorch").as_uri(),
            "role": "upstream",
        },
        {"name": "nvidia", "url": (channels_dir / "lockfile/nvidia").as_uri(), "role": "upstream"},
        {
            "name": "conda-forge",
            "url": (channels_dir / "lockfile/conda-forge").as_uri(),
            "role": "upstream",
        },
        {
            "name": "pytorch-snapshot",
            "url": (channels_dir / "pytorch-snapshot").as_uri(),
            "role": "upstream",
        },
    ]


# DISTRO_CHANNELS: a JSON list of {"name", "url", "label"?, "role", "subdirs"?}; applied to the
# Channel table by `manage.py seed_reference`.
_channels_json = env.str("DISTRO_CHANNELS", default="")
try:
    DISTRO_CHANNELS = json.loads(_channels_json) if _channels_json else _default_channels()
except json.JSONDecodeError as exc:
    raise ImproperlyConfigured(f"DISTRO_CHANNELS is not valid JSON: {exc}") from exc
# The channel stack's priority mode and pip rule (selectors/channel_stack_types.py says why strict
# is the default: conda's own default is flexible, pixi's is strict).
CHANNEL_PRIORITY = env.str("CHANNEL_PRIORITY", default="strict")
if CHANNEL_PRIORITY not in ("strict", "flexible", "disabled"):
    raise ImproperlyConfigured("CHANNEL_PRIORITY must be strict, flexible or disabled")
# conda's add_pip_as_python_dependency (conda: true; pixi and rattler: false); every solve
# here passes it. False by default: the real lock files reproduced here lock no pip.
PIP_AS_PYTHON_DEPENDENCY = env.bool("PIP_AS_PYTHON_DEPENDENCY", default=False)
# Largest repodata.json a sync reads (decompressed). Sync maps the file and parses it in chunks
# of SYNC_CHUNK_RECORDS: a whole import peaks near the file's size plus ~0.5 KB per record plus
# ~150 MiB (bench/sync_scale.py: 1,099 MiB for a 479 MiB, 10^6-record subdir), so 768 MiB
# (~1.6 M records of that shape) keeps a worker near 1.7 GiB, under 2 GB.
REPODATA_MAX_BYTES = env.int("REPODATA_MAX_BYTES", default=768 * 1024 * 1024)
# Largest repodata.json `import_repodata` and the promotion checks parse whole: that peaks at
# ~9.6 bytes of memory per byte plus ~45 MiB (bench/repodata_memory.py), so 160 MiB keeps a
# worker near 1.6 GiB, under 2 GB. Raise it only with the worker's memory (about 10x the cap).
REPODATA_PARSE_MAX_BYTES = env.int("REPODATA_PARSE_MAX_BYTES", default=160 * 1024 * 1024)
# rattler's repodata cache (the decompressed files, their ETags) and sync's record indexes.
REPODATA_CACHE_DIR = Path(env.str("REPODATA_CACHE_DIR", default=str(VAR_DIR / "repodata-cache")))
# Records parsed and written at a time when a sync imports a whole subdir.
SYNC_CHUNK_RECORDS = env.int("SYNC_CHUNK_RECORDS", default=20_000)
HTTP_TIMEOUT_S = env.float("HTTP_TIMEOUT_S", default=30.0)

# --- anaconda.org (promotion backend) ---------------------------------------------------------
ANACONDA_API_URL = env.str("ANACONDA_API_URL", default="https://api.anaconda.org")
ANACONDA_API_TOKEN = env.str("ANACONDA_API_TOKEN", default="")

# --- Hosts and runners ------------------------------------------------------------------------
CONDA_BUILD_BIN = env.str("CONDA_BUILD_BIN", default="conda-build")
HOST_OFFLINE_AFTER_S = env.int("HOST_OFFLINE_AFTER_S", default=120)

# --- Workers and the job lifecycle (testing_app.services.execution / reconcile) ----------------
# Each worker writes a heartbeat to PostgreSQL this often; one silent for WORKER_LOST_AFTER_S is
# lost, and the reconciler turns its running job into `error (worker lost)` and retries it.
WORKER_HEARTBEAT_S = env.int("WORKER_HEARTBEAT_S", default=10)
WORKER_LOST_AFTER_S = env.int("WORKER_LOST_AFTER_S", default=90)
# How a worker runs its jobs: "in-process" (in the worker itself) or "fork" (one RQ work-horse
# per job); testing_app/management/workers.py says why in-process is the default.
WORKER_EXECUTION = env.str("WORKER_EXECUTION", default="in-process")
# Queues every worker also serves besides its capability queues (e.g. "install"). A worker
# serves host queues (install, test.*) or trusted ones (default, promote), never both.
WORKER_CPU_QUEUES = env.list("WORKER_CPU_QUEUES", default=[])
# On a host whose DATABASE_URL names the role of `manage.py host_db_role`: a finished job's
# follow-ups that need more than that role (maintainers' notices, reinstating a package) are
# marked due and run by the web side's reconciler (docs/operators.md, "What a host holds").
HOST_LIMITED_ROLE = env.bool("HOST_LIMITED_ROLE", default=False)
# Queued jobs younger than this are left alone by the reconciler (their on-commit enqueue may
# still be running).
RECONCILE_GRACE_S = env.int("RECONCILE_GRACE_S", default=30)
# Delay before automatic retry N (seconds, one value per retry; the last one repeats).
RETRY_BACKOFF_S = [int(v) for v in env.list("RETRY_BACKOFF_S", default=["60", "300"])]
# Manual retries one person may ask for per hour.
MANUAL_RETRY_LIMIT_PER_HOUR = env.int("MANUAL_RETRY_LIMIT_PER_HOUR", default=20)
# The live view: the last LOG_TAIL_LINES lines are saved on the job every LOG_TAIL_INTERVAL_S.
LOG_TAIL_INTERVAL_S = env.float("LOG_TAIL_INTERVAL_S", default=5.0)
LOG_TAIL_LINES = env.int("LOG_TAIL_LINES", default=60)
# After a timeout, SIGTERM the process group, then SIGKILL it this many seconds later.
JOB_KILL_GRACE_S = env.float("JOB_KILL_GRACE_S", default=10.0)
# RQ's own job timeout = the job's timeout + this margin (download, setup), so our runner's
# timeout always fires first and records a clean `timeout` verdict.
JOB_TIMEOUT_MARGIN_S = env.int("JOB_TIMEOUT_MARGIN_S", default=900)
# Private `--croot` folders (one per job) and the package cache all jobs of a host share.
CONDA_BUILD_CROOT_DIR = Path(env.str("CONDA_BUILD_CROOT_DIR", default=str(VAR_DIR / "croot")))
CONDA_PKGS_DIR = Path(env.str("CONDA_PKGS_DIR", default=str(VAR_DIR / "conda-pkgs")))
# The test sandbox (testing_app/adapters/sandbox.py): "bwrap" runs every package's test phase
# through bubblewrap as TEST_SANDBOX_USER, and a host that cannot do so refuses test jobs;
# "none" runs tests unisolated, as the worker's own user: an explicit operator opt-out.
TEST_ISOLATION = env.str("TEST_ISOLATION", default="bwrap")
TEST_SANDBOX_USER = env.str("TEST_SANDBOX_USER", default="nobody")
TEST_SANDBOX_BWRAP = env.str("TEST_SANDBOX_BWRAP", default="bwrap")
# More folders a test may read (e.g. a conda installation outside /usr and /opt, datasets).
TEST_SANDBOX_READ_ONLY = [Path(p) for p in env.list("TEST_SANDBOX_READ_ONLY", default=[])]
# False: no network for a test once its environment is installed (the rattler runner; conda-build
# creates the environment and runs the tests in one process, so its tests keep the network).
TEST_NETWORK = env.bool("TEST_NETWORK", default=True)
# Which flavour of Variant.select_specs to pass as --extra-deps ("pytorch" or "conda-forge").
VARIANT_SPECS_FLAVOUR = env.str("VARIANT_SPECS_FLAVOUR", default="conda-forge")
DOWNLOAD_ATTEMPTS = env.int("DOWNLOAD_ATTEMPTS", default=3)
# Dotted path of the function that runs a test job; empty means conda-build (the benchmark
# swaps in a no-op runner to measure the lifecycle alone).
DISTRO_JOB_RUNNER = env.str("DISTRO_JOB_RUNNER", default="")

# --- Scheduling a wave (testing_app/services/wave_order.py, queue_work.py) --------------------
# A job's expected duration is its package's median on that cell over this many days; with no
# history at all, these defaults (seconds).
EXPECTED_DURATION_WINDOW_DAYS = env.int("EXPECTED_DURATION_WINDOW_DAYS", default=90)
EXPECTED_TEST_S = env.float("EXPECTED_TEST_S", default=600.0)
EXPECTED_INSTALL_CHECK_S = env.float("EXPECTED_INSTALL_CHECK_S", default=10.0)
# Job.priority of planned jobs per Run trigger: higher is taken first within a push, so a
# PyTorch release wave (release-blocking) goes before a routine full run.
# How a worker serving several queues picks the next one: "remaining-work" (most remaining
# work per serving worker, services/queue_work.py) or "fixed" (the listed order, scarcest
# capability first; kept to compare against).
WORKER_QUEUE_ORDER = env.str("WORKER_QUEUE_ORDER", default="remaining-work")
PLAN_PRIORITIES = {
    "torch_release": env.int("PLAN_PRIORITY_TORCH_RELEASE", default=20),
    "new_build": env.int("PLAN_PRIORITY_NEW_BUILD", default=10),
    "manual": env.int("PLAN_PRIORITY_MANUAL", default=10),
}

# --- Fleet simulation only (bench/wave_sim.py) -------------------------------------------------
# Never set in a deployment. SIMULATED_JOB_RUNNER: dotted path of a runner that replaces the
# runner of every job kind (testing_app/services/simulation.py: sleeps a duration drawn per cell).
# SIMULATED_HOST_FACTS: JSON object of HostFacts fields that distro_worker uses instead of
# probing the machine, so one machine can play hosts of other platforms and GPUs.
SIMULATED_JOB_RUNNER = env.str("SIMULATED_JOB_RUNNER", default="")
SIMULATED_HOST_FACTS = env.str("SIMULATED_HOST_FACTS", default="")
# The simulated runner sleeps its cell's duration times this; the seed fixes every draw.
SIMULATION_TIME_SCALE = env.float("SIMULATION_TIME_SCALE", default=0.001)
SIMULATION_SEED = env.str("SIMULATION_SEED", default="1")

# --- Security ---------------------------------------------------------------------------------
# Behind the reverse proxy: trust its X-Forwarded-Proto, and its X-Forwarded-For for rate limits.
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Failed sign-ins (site, admin, password change) per client address and per username within
# SIGN_IN_WINDOW_S; reaching either limit refuses sign-in there for SIGN_IN_WINDOW_S (429).
SIGN_IN_FAILURES_PER_ADDRESS = env.int("SIGN_IN_FAILURES_PER_ADDRESS", default=20)
SIGN_IN_FAILURES_PER_USERNAME = env.int("SIGN_IN_FAILURES_PER_USERNAME", default=5)
SIGN_IN_WINDOW_S = env.int("SIGN_IN_WINDOW_S", default=900)
# Requests to /api/test-this-build/ per package and hour, all its tokens together (each may
# read the staging channels and plan GPU work); more are answered 429.
TEST_THIS_BUILD_REQUESTS_PER_HOUR = env.int("TEST_THIS_BUILD_REQUESTS_PER_HOUR", default=60)
# Request bodies above this are refused with 400: the largest legitimate one is a form of a few
# KiB (recipes are fetched by URL, never uploaded).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)
# Sent on every response (distro_site.content_security); empty disables it. Scripts come only
# from this site's static files (no inline script, no eval); content_security.py says why styles
# may be inline and which pages of other projects get inline scripts too.
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default=(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    ),
)

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
# Packages per page of the matrix table: each has a row per platform and a column per release x
# variant, so 25 packages are ~100 rows of ~50 cells at design scale (bench/matrix_scale.py).
MATRIX_PAGE_SIZE = env.int("MATRIX_PAGE_SIZE", default=25)

# --- Read access and the JSON API --------------------------------------------------------------
# Read pages and the read-only API are public unless PUBLIC_READ is false (then sign-in is
# required); write actions always need sign-in and a permission.
PUBLIC_READ = env.bool("PUBLIC_READ", default=True)
LOGIN_URL = "accounts:login"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["testing_app.api.permissions.PublicReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "testing_app.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "conda-distro API",
    "DESCRIPTION": "Read-only: packages, builds, the compatibility matrix, runs, jobs, hosts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Several models have a "status"/"state" field with different choices: name each set.
    "ENUM_NAME_OVERRIDES": {
        "PackageStatusEnum": "packages_app.models.PackageStatus",
        "JobStatusEnum": "testing_app.models.runs.JobStatus",
        "BuildStateEnum": "packages_app.models.BuildState",
        "RunStateEnum": "testing_app.models.runs.RunState",
    },
}

# --- Proposals --------------------------------------------------------------------------------
# Absolute base URL of the site, for links in emails sent outside a request (decisions).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# Proposals accepted per client address and hour (counted from stored proposals).
PROPOSAL_RATE_LIMIT_PER_HOUR = env.int("PROPOSAL_RATE_LIMIT_PER_HOUR", default=5)
# Recipe fetches refuse private, loopback and link-local addresses unless this is set.
RECIPE_FETCH_ALLOW_PRIVATE = env.bool("RECIPE_FETCH_ALLOW_PRIVATE", default=False)
RECIPE_FETCH_TIMEOUT_S = env.float("RECIPE_FETCH_TIMEOUT_S", default=10.0)
RECIPE_MAX_BYTES = env.int("RECIPE_MAX_BYTES", default=1024 * 1024)
# An untrusted recipe is rendered in a child process under these limits (adapters/recipe_limits.py).
RECIPE_RENDER_MEMORY_MB = env.int("RECIPE_RENDER_MEMORY_MB", default=1024)
RECIPE_RENDER_CPU_S = env.int("RECIPE_RENDER_CPU_S", default=20)
RECIPE_RENDER_WALL_S = env.float("RECIPE_RENDER_WALL_S", default=60.0)
# RQ limit of one pre-check job: a recipe whose templating runs away is stopped and recorded.
PRECHECK_JOB_TIMEOUT_S = env.int("PRECHECK_JOB_TIMEOUT_S", default=120)

# --- Promotion: the gate, installability checks, copies into the target (issue 7) -------------
# The local-file target channel (backend "local"): `manage.py init_target_channel` registers it
# as the target channel; promotions copy into <dir>/<subdir>/ and re-index it.
TARGET_CHANNEL_DIR = Path(env.str("TARGET_CHANNEL_DIR", default=str(VAR_DIR / "channels/target")))
# "auto" picks the backend from the target channel's URL (file:// -> local, else anaconda).
PROMOTION_BACKEND = env.str("PROMOTION_BACKEND", default="auto")
# Licenses that forbid redistribution: a build whose license names one is blocked (matched
# case-insensitively, ignoring punctuation, so "LicenseRef-NVIDIA-End-User-License-Agreement"
# matches the entry below). Comma-separated.
NON_REDISTRIBUTABLE_LICENSES = env.list(
    "NON_REDISTRIBUTABLE_LICENSES", default=["NVIDIA End User License Agreement"]
)
# The sets users install together: the gate checks each candidate together with each set, and
# after a promotion every set is solved per supported PyTorch release and platform (pytorch,
# torchvision and torchaudio are pinned to the release's versions). JSON list of name lists.
try:
    INSTALL_SETS = json.loads(
        env.str("INSTALL_SETS", default='[["pytorch", "torchvision", "torchaudio"]]')
    )
except json.JSONDecodeError as exc:
    raise ImproperlyConfigured(f"INSTALL_SETS is not valid JSON: {exc}") from exc
# The solver reads the one channel stack (CHANNEL_PRIORITY above; selectors/channel_stack_types.py).
# INSTALL_CHECK_CHANNELS, a second channel list for the gate, is gone: it is refused if set.
if env.list("INSTALL_CHECK_CHANNELS", default=[]):
    raise ImproperlyConfigured(
        "INSTALL_CHECK_CHANNELS is no longer read: every solve uses the one channel stack "
        "(DISTRO_CHANNELS order and CHANNEL_PRIORITY)"
    )
# Virtual packages of the machine an installability check pretends to be, per subdir.
try:
    INSTALL_CHECK_VIRTUAL_PACKAGES = json.loads(
        env.str(
            "INSTALL_CHECK_VIRTUAL_PACKAGES",
            default=json.dumps(
                {
                    "linux-64": ["__unix=0", "__linux=5.15", "__glibc=2.28", "__cuda=12.4"],
                    "linux-aarch64": ["__unix=0", "__linux=5.15", "__glibc=2.28"],
                    "osx-64": ["__unix=0", "__osx=11.0"],
                    "osx-arm64": ["__unix=0", "__osx=13.0"],
                    "win-64": ["__win=0", "__cuda=12.4"],
                }
            ),
        )
    )
except json.JSONDecodeError as exc:
    raise ImproperlyConfigured(f"INSTALL_CHECK_VIRTUAL_PACKAGES is not valid JSON: {exc}") from exc
SOLVER_TIMEOUT_S = env.int("SOLVER_TIMEOUT_S", default=120)
# Test a cell only when its package file is on this machine (a file:// channel or the download
# cache); otherwise a passed install check ends the cell "installable, not tested". For the
# offline demo, whose real catalog has metadata but no package files; off in production.
TESTS_NEED_PACKAGE_FILE = env.bool("TESTS_NEED_PACKAGE_FILE", default=False)
# Pauses between attempts of one copy after a 5xx or network error (one value per retry).
PROMOTION_RETRY_BACKOFF_S = [
    float(v) for v in env.list("PROMOTION_RETRY_BACKOFF_S", default=["5", "30", "120"])
]
# The longest pause a server's Retry-After (429, 503) may impose before the next attempt; kept
# below PROMOTION_LEASE_S so that a waiting promotion is not taken for a lost one.
PROMOTION_RETRY_AFTER_MAX_S = env.float("PROMOTION_RETRY_AFTER_MAX_S", default=300.0)
# After an anaconda.org copy, the target label's repodata is read every
# PROMOTION_INDEX_POLL_S until it lists the copied files (anaconda.org indexes asynchronously),
# at most PROMOTION_INDEX_WAIT_S; only then are the target re-synced (which withdraws builds
# missing from it) and the install sets checked.
PROMOTION_INDEX_POLL_S = env.float("PROMOTION_INDEX_POLL_S", default=10.0)
PROMOTION_INDEX_WAIT_S = env.float("PROMOTION_INDEX_WAIT_S", default=600.0)
# A running promotion renews this lease after every item; one whose lease ran out was lost (its
# worker died) and may be resumed.
PROMOTION_LEASE_S = env.int("PROMOTION_LEASE_S", default=900)

# --- Notifications and the maintenance policy (testing_app.services.notifications/maintenance) -
# Optional GitHub notices: a comment per root cause on a package's notice issue (set by its
# maintainers); needs a token that may comment there. Empty: email only.
GITHUB_TOKEN = env.str("GITHUB_TOKEN", default="")
GITHUB_API_URL = env.str("GITHUB_API_URL", default="https://api.github.com")
# When the daily digest goes out (cron syntax, the scheduler machine's local time).
NOTIFICATION_DIGEST_CRON = env.str("NOTIFICATION_DIGEST_CRON", default="0 7 * * *")
# Days after the newest supported PyTorch release before a package without a passing build for
# it becomes at_risk, and days at_risk before it is deprecated (no further promotions).
MAINTENANCE_GRACE_DAYS = env.int("MAINTENANCE_GRACE_DAYS", default=30)
MAINTENANCE_DEPRECATE_AFTER_DAYS = env.int("MAINTENANCE_DEPRECATE_AFTER_DAYS", default=30)
# Maintainer claims accepted per client address and hour.
CLAIM_RATE_LIMIT_PER_HOUR = env.int("CLAIM_RATE_LIMIT_PER_HOUR", default=5)

# --- Channel sync, planning, install checks, runners (issue 5) --------------------------------
# How often the scheduler syncs every channel's repodata (testing_app/management/cron.py).
SYNC_INTERVAL_S = env.int("SYNC_INTERVAL_S", default=600)
# Subdirs read from a channel that lists none (a missing subdir is skipped quietly).
SYNC_SUBDIRS = env.list(
    "SYNC_SUBDIRS", default=["noarch", "linux-64", "linux-aarch64", "osx-64", "osx-arm64", "win-64"]
)
# Python of a noarch build's cells: the newest the release ships, the oldest, or all of them.
PLAN_NOARCH_PYTHON = env.str("PLAN_NOARCH_PYTHON", default="newest")
# Reverse dependencies re-tested when a new build arrives: this deep (1: direct dependents);
# for an ABI-coupled package PLAN_ABI_REVDEP_DEPTH deep (0: the whole transitive closure).
PLAN_REVDEP_DEPTH = env.int("PLAN_REVDEP_DEPTH", default=1)
PLAN_ABI_REVDEP_DEPTH = env.int("PLAN_ABI_REVDEP_DEPTH", default=0)
# Where each variant kind exists (no CUDA on macOS, ROCm on linux-64 only); kinds not listed
# exist everywhere. JSON object: kind -> subdirs.
try:
    PLAN_VARIANT_SUBDIRS = json.loads(
        env.str(
            "PLAN_VARIANT_SUBDIRS",
            default='{"cuda": ["linux-64", "linux-aarch64", "win-64"], "rocm": ["linux-64"]}',
        )
    )
except json.JSONDecodeError as exc:
    raise ImproperlyConfigured(f"PLAN_VARIANT_SUBDIRS is not valid JSON: {exc}") from exc
# The runner every planned test job needs: "" (either: conda-build where a host has it, else
# rattler), "conda-build" or "rattler".
PLAN_TEST_RUNNER = env.str("PLAN_TEST_RUNNER", default="")
# The machine install checks pretend to be when a subdir is not in
# INSTALL_CHECK_VIRTUAL_PACKAGES (never detected from the machine that runs the check).
PLAN_LINUX_VERSION = env.str("PLAN_LINUX_VERSION", default="5.15")
PLAN_GLIBC_VERSION = env.str("PLAN_GLIBC_VERSION", default="2.28")
PLAN_OSX_VERSION = env.str("PLAN_OSX_VERSION", default="11.0")
INSTALL_CHECK_MAX_ATTEMPTS = env.int("INSTALL_CHECK_MAX_ATTEMPTS", default=3)
TEST_JOB_TIMEOUT_S = env.int("TEST_JOB_TIMEOUT_S", default=3600)
TEST_JOB_MAX_ATTEMPTS = env.int("TEST_JOB_MAX_ATTEMPTS", default=3)

# --- GitHub sign-in and trusted publishing (issue 21) ------------------------------------------
# Both talk to GitHub (github.com for OAuth, token.actions.githubusercontent.com for the JWKS),
# so both are off unless turned on: an air-gapped site keeps password sign-in and package tokens.
GITHUB_SIGN_IN_ENABLED = env.bool("GITHUB_SIGN_IN_ENABLED", default=False)
GITHUB_OAUTH_CLIENT_ID = env.str("GITHUB_OAUTH_CLIENT_ID", default="")
GITHUB_OAUTH_CLIENT_SECRET = env.str("GITHUB_OAUTH_CLIENT_SECRET", default="")
if GITHUB_SIGN_IN_ENABLED and not (GITHUB_OAUTH_CLIENT_ID and GITHUB_OAUTH_CLIENT_SECRET):
    raise ImproperlyConfigured(
        "GITHUB_SIGN_IN_ENABLED needs GITHUB_OAUTH_CLIENT_ID and GITHUB_OAUTH_CLIENT_SECRET "
        "(a GitHub OAuth app whose callback URL is "
        "<SITE_URL>/accounts/oauth/github/login/callback/)."
    )
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
SOCIALACCOUNT_ADAPTER = "packages_app.views.github_sign_in.MaintainerSocialAccountAdapter"
SOCIALACCOUNT_PROVIDERS = {
    "github": {
        # Read the profile and the e-mail list (to link by a verified address); nothing else.
        # The OAuth app comes from GITHUB_OAUTH_* at request time (the adapter's list_apps),
        # never from allauth's database table, so turning the feature off turns it off.
        "SCOPE": ["read:user", "user:email"],
    }
}
# Local (password) accounts are Django's own forms above; allauth serves only the GitHub flow.
SOCIALACCOUNT_ONLY = True
ACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_QUERY_EMAIL = True
SOCIALACCOUNT_AUTO_SIGNUP = True
# Staff accounts made by administrators may share an address with a maintainer's GitHub e-mail;
# nobody signs in by e-mail here, so addresses need not be unique (no detour to a sign-up form).
ACCOUNT_UNIQUE_EMAIL = False
# Access tokens are used once, to read the profile; keeping them would only be a liability.
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_LOGIN_ON_GET = False
LOGIN_REDIRECT_URL = "accounts:home"
ACCOUNT_LOGOUT_REDIRECT_URL = "home"
# allauth's own rate limits would count in the "default" cache, per process; sign-in is already
# limited by GitHub itself, and password sign-in by distro_site.rate_limits.
ACCOUNT_RATE_LIMITS = False

# Trusted publishing: a GitHub Actions OIDC token stands in for a package token on
# POST /api/test-this-build/ (testing_app.services.trusted_publishing).
TRUSTED_PUBLISHING_ENABLED = env.bool("TRUSTED_PUBLISHING_ENABLED", default=False)
# The `aud` a workflow asks GitHub for (core.getIDToken(audience)); the site's URL by default.
TRUSTED_PUBLISHING_AUDIENCE = env.str("TRUSTED_PUBLISHING_AUDIENCE", default=SITE_URL)
# GitHub's signing keys are kept this long before they are read again; an unknown key id reads
# them at once (at most once per TRUSTED_PUBLISHING_JWKS_MIN_REFRESH_S, so forged key ids cannot
# make this site hammer GitHub).
TRUSTED_PUBLISHING_JWKS_CACHE_S = env.int("TRUSTED_PUBLISHING_JWKS_CACHE_S", default=3600)
TRUSTED_PUBLISHING_JWKS_MIN_REFRESH_S = env.int("TRUSTED_PUBLISHING_JWKS_MIN_REFRESH_S", default=30)
# Clock skew tolerated on exp / nbf / iat, seconds.
TRUSTED_PUBLISHING_LEEWAY_S = env.int("TRUSTED_PUBLISHING_LEEWAY_S", default=30)
