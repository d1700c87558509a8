"""Loupe settings, read from the environment.

With no `DATABASE_URL`, `REDIS_URL` or `MLFLOW_TRACKING_URI` set, everything lives under
`LOUPE_DATA_DIR` (default `./var`): an SQLite database, media files, a local MLflow store
and the socket of an embedded Redis server (see `config.embedded`). Setting the URLs switches
to PostgreSQL, an external Redis and an MLflow server without code changes.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config import production
from config.processes import web_layout
from models_registry.ml.device import DEVICE_PATTERN

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


LOUPE_DATA_DIR = Path(os.environ.get("LOUPE_DATA_DIR", BASE_DIR / "var")).resolve()
LOUPE_DATA_DIR.mkdir(parents=True, exist_ok=True)

# --- Security: secret key, hosts, HTTPS, cookies (config.production) --------------------------
# DEBUG, SECRET_KEY, ALLOWED_HOSTS, LOUPE_PUBLIC_URL (where people reach Loupe: the links in
# password-reset and alarm emails), CSRF_TRUSTED_ORIGINS, SECURE_* and the cookie flags. With
# LOUPE_PRODUCTION=1 an unsafe or missing one stops the start with ImproperlyConfigured naming it.
globals().update(production.security_settings(os.environ))
# The `preload` HSTS directive asks browsers to hard-code HTTPS for a whole registered domain, and
# only that domain's owner can submit it (hstspreload.org): Loupe runs on a host name of the
# factory's domain and must not claim it for every other host there. DJANGO_SECURE_HSTS_PRELOAD=1
# sends it where the owner wants it.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "models_registry",
    "inspection",
    "labeling",
    "workers",
    "config",  # the project itself: run_stack
]

MIDDLEWARE = [
    # First, so that its request count and latency cover everything below it (config.metrics); it
    # also hands the line's POST /api/v1/units/ times to the dashboard
    # (inspection.supervision.dashboard.latency).
    "config.metrics.RequestMetricsMiddleware",
    # Any error answer under /api/ is JSON (config.api_errors).
    "config.api_errors.ApiErrorsAsJson",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.content_security.ContentSecurityPolicyMiddleware",
]
# The pages load nothing from elsewhere and run no inline script or style (config.content_security).
# 'self' in connect-src covers the same origin's ws:// and wss:// (CSP level 3, Chromium, Firefox).
LOUPE_CONTENT_SECURITY_POLICY = os.environ.get(
    "LOUPE_CONTENT_SECURITY_POLICY",
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
)

ROOT_URLCONF = "config.urls"
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
WSGI_APPLICATION = None
ASGI_APPLICATION = "config.asgi.application"

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
EMBEDDED_DATABASE = not DATABASE_URL
if EMBEDDED_DATABASE:
    # config.embedded_sqlite: WAL, synchronous=FULL, and writers queued on a lock file rather than
    # SQLite's sleep-and-retry busy loop (p99 ~2 s at 16 clients); the busy timeout stays as the
    # fallback. The line's pool of threads keeps its connections (config.line_http); Django's own
    # handler runs each request on a new thread, whose connection closes with the request. See
    # docs/operations.md, "The embedded database under load".
    DATABASES = {
        "default": {
            "ENGINE": "config.embedded_sqlite",
            "NAME": LOUPE_DATA_DIR / "loupe.sqlite3",
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }
else:
    # Under ASGI each request runs in its own thread, so persistent per-thread connections would
    # leak; a psycopg pool keeps connections open across requests instead (conn_max_age must be 0).
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": int(os.environ.get("LOUPE_DATABASE_POOL_SIZE", "20")),
            "timeout": 10,
        }
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ.get(
        "LOUPE_TEST_DATABASE_NAME", "test_loupe"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker, Channels layer, cache --------------------------------------------
EMBEDDED_REDIS_SOCKET = LOUPE_DATA_DIR / "redis" / "redis.sock"
REDIS_URL = os.environ.get("REDIS_URL", "")
EMBEDDED_REDIS = not REDIS_URL
if EMBEDDED_REDIS:
    REDIS_URL = f"unix://{EMBEDDED_REDIS_SOCKET}"

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL.replace("unix://", "redis+socket://", 1))
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The beat schedule and the task routes: workers/schedule.py. Trainings go to their own queue.
CELERY_TASK_DEFAULT_QUEUE = "celery"
LOUPE_TRAINING_QUEUE = "training"
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # No socket timeout, as before redis-py 8: its 5 s default cuts the layer's 5 s blocking reads
        # (idle consumers die), and its wait_for on sends can lose a consumer's cancellation (Python 3.11).
        # A consumer's channel holds up to `capacity` events before the layer drops new ones: a
        # burst (a line's retries after an outage, bench/faults.py) outran the default 100. Events
        # still expire after 60 s, so a dead consumer's channel holds at most a minute of them.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None}], "capacity": 1000},
    }
}

# Django's cache, in Redis so that every web process shares it: the failure counters of
# sign-in and device-key throttling (inspection.throttling).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "loupe",
    }
}

# --- Files ----------------------------------------------------------------------------------
# Media files are never served by URL: each image goes through a view that checks who asks
# (inspection.api.UnitImage, labeling.api.ItemImage and AnnotationMask).
MEDIA_ROOT = Path(os.environ.get("LOUPE_MEDIA_ROOT", LOUPE_DATA_DIR / "media"))
MEDIA_URL = "/media/"
# Unit images synced to disk before their row commits; nothing partial left on a full disk.
STORAGES = {
    "default": {"BACKEND": "config.storage.DurableFileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = LOUPE_DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns at start-up about a missing folder
# WhiteNoise serves static files from the ASGI app itself (no separate web server needed);
# `run_stack` collects them, and the finders cover a checkout that has not.
WHITENOISE_USE_FINDERS = True

# --- MLflow ---------------------------------------------------------------------------------
MLFLOW_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI", "")
EMBEDDED_MLFLOW = not MLFLOW_TRACKING_URI
if EMBEDDED_MLFLOW:
    MLFLOW_TRACKING_URI = f"sqlite:///{LOUPE_DATA_DIR / 'mlflow' / 'mlflow.db'}"
MLFLOW_ARTIFACT_ROOT = os.environ.get("MLFLOW_ARTIFACT_ROOT", str(LOUPE_DATA_DIR / "mlflow" / "artifacts"))
MLFLOW_EXPERIMENT_NAME = os.environ.get("MLFLOW_EXPERIMENT_NAME", "loupe")

# --- Models ---------------------------------------------------------------------------------
# Where a model's bundle (ONNX graph, weights, config, calibration) is cached once fetched
# from MLflow, so that every process loads it from local disk.
LOUPE_MODEL_CACHE = LOUPE_DATA_DIR / "model-cache"
# How the web role uses this machine's cores (config.processes.web_layout): web processes
# (LOUPE_WEB_PROCESSES), threads per process for the line's posts (LOUPE_LINE_THREADS), and the
# ONNX Runtime / torch threads a forward may use (LOUPE_INFERENCE_THREADS); automatic when unset.
try:
    WEB_LAYOUT = web_layout()
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None
LOUPE_INFERENCE_THREADS = WEB_LAYOUT.inference_threads
LOUPE_LINE_THREADS = WEB_LAYOUT.line_threads
# The torch device trainings run on (models_registry.ml.device): auto (CUDA when there, else the
# CPU), cpu, cuda or cuda:N; a GPU named but missing fails the training at its start.
LOUPE_TORCH_DEVICE = os.environ.get("LOUPE_TORCH_DEVICE", "auto").strip()
if not DEVICE_PATTERN.match(LOUPE_TORCH_DEVICE):
    raise ImproperlyConfigured(
        f"LOUPE_TORCH_DEVICE={LOUPE_TORCH_DEVICE!r}: expected auto, cpu, cuda or cuda:N"
    )
# The model served when no station names one: NAME, NAME:VERSION or models:/NAME/VERSION.
LOUPE_ACTIVE_MODEL = os.environ.get("LOUPE_ACTIVE_MODEL", "")

# --- Continuous training (workers.retraining) ------------------------------------------------
# What a retraining trains: the same recipe as `manage.py train`'s defaults.
# Consecutive frames failing the frame check (blank, uniform, badly exposed) that raise a camera
# or lighting fault alarm at a station.
LOUPE_CAMERA_FAULT_RUN = int(os.environ.get("LOUPE_CAMERA_FAULT_RUN", "5"))
LOUPE_RETRAIN_EPOCHS = int(os.environ.get("LOUPE_RETRAIN_EPOCHS", "12"))
# "auto" chooses the geometry from the snapshot's frames and defects, as `manage.py train` does.
LOUPE_RETRAIN_GEOMETRY = os.environ.get("LOUPE_RETRAIN_GEOMETRY", "auto")
LOUPE_RETRAIN_INPUT_SIZE = int(os.environ.get("LOUPE_RETRAIN_INPUT_SIZE", "0")) or None
LOUPE_RETRAIN_BATCH_SIZE = int(os.environ.get("LOUPE_RETRAIN_BATCH_SIZE", "16"))
LOUPE_RETRAIN_BACKBONE = os.environ.get("LOUPE_RETRAIN_BACKBONE", "efficientnet_lite0")
LOUPE_RETRAIN_PRETRAINED = _env_bool("LOUPE_RETRAIN_PRETRAINED", True)
LOUPE_RETRAIN_SEED = int(os.environ.get("LOUPE_RETRAIN_SEED", "0"))
# A running job's worker beats every HEARTBEAT seconds; after STALE seconds without a beat the
# worker is taken for dead and the job queued again, at most MAX_ATTEMPTS attempts in all.
# A queued job no worker took for RESEND seconds is sent to the broker again.
LOUPE_TRAINING_HEARTBEAT_SECONDS = float(os.environ.get("LOUPE_TRAINING_HEARTBEAT_SECONDS", "10"))
LOUPE_TRAINING_STALE_SECONDS = float(os.environ.get("LOUPE_TRAINING_STALE_SECONDS", "120"))
LOUPE_TRAINING_MAX_ATTEMPTS = int(os.environ.get("LOUPE_TRAINING_MAX_ATTEMPTS", "3"))
LOUPE_TRAINING_RESEND_SECONDS = float(os.environ.get("LOUPE_TRAINING_RESEND_SECONDS", "3600"))
# Live progress between epochs: at most one update of the job (and event) per this many seconds.
LOUPE_TRAINING_PROGRESS_SECONDS = float(os.environ.get("LOUPE_TRAINING_PROGRESS_SECONDS", "1"))

# --- Line API -------------------------------------------------------------------------------
# Largest accepted unit image, in bytes and in pixels (a decompression bomb is refused from its header).
# The pixel limit is the ceiling of each station's own `max_image_pixels` (its camera's frames).
LOUPE_MAX_IMAGE_BYTES = int(os.environ.get("LOUPE_MAX_IMAGE_BYTES", str(25 * 1024 * 1024)))
LOUPE_MAX_IMAGE_PIXELS = int(os.environ.get("LOUPE_MAX_IMAGE_PIXELS", str(40_000_000)))
# The most memory one image may take once decoded (after a JPEG's reduced-scale decode), from its
# size, mode and bit depth in the header: 16 MP at 4 bytes a pixel. Larger is refused undecoded.
LOUPE_MAX_DECODE_BYTES = int(os.environ.get("LOUPE_MAX_DECODE_BYTES", str(64 * 1024 * 1024)))
# Uploads up to the image limit stay in memory: no temporary file on the request path.
FILE_UPLOAD_MAX_MEMORY_SIZE = LOUPE_MAX_IMAGE_BYTES
# Any request's whole body: refused with a JSON 413 before it is read (config.request_limits). The
# default leaves an image at its limit 1 MiB for the form's other fields.
LOUPE_MAX_REQUEST_BYTES = int(
    os.environ.get("LOUPE_MAX_REQUEST_BYTES", str(LOUPE_MAX_IMAGE_BYTES + 1024 * 1024))
)
# A unit's metadata (a JSON object): its size as sent and how deep it may nest; past either, or
# holding NaN or Infinity, it is a 400 naming `metadata`.
LOUPE_MAX_METADATA_BYTES = int(os.environ.get("LOUPE_MAX_METADATA_BYTES", str(64 * 1024)))
LOUPE_MAX_METADATA_DEPTH = int(os.environ.get("LOUPE_MAX_METADATA_DEPTH", "32"))
LOUPE_LONG_POLL_MAX_SECONDS = 30
# An inspector's claim on a unit; unfinished after this, the unit returns to the queue.
LOUPE_CLAIM_SECONDS = int(os.environ.get("LOUPE_CLAIM_SECONDS", "120"))
LOUPE_SHIFT_HOURS = 8
# Labeling: how long a labeler or reviewer holds a task, and below which margin |2p - 1| a unit
# the model decided alone still goes to the labeling queue.
LOUPE_LABEL_CLAIM_SECONDS = int(os.environ.get("LOUPE_LABEL_CLAIM_SECONDS", "600"))
LOUPE_LABEL_UNCERTAIN_MARGIN = float(os.environ.get("LOUPE_LABEL_UNCERTAIN_MARGIN", "0.5"))
# Throttling of failed credentials (inspection.throttling): within any window of this many seconds,
# at most this many wrong passwords per client address and per user name, and wrong device keys
# per client address; past that the client is refused (429) until old failures age out.
LOUPE_FAILURE_WINDOW_SECONDS = int(os.environ.get("LOUPE_FAILURE_WINDOW_SECONDS", "900"))
LOUPE_SIGN_IN_USER_FAILURES = int(os.environ.get("LOUPE_SIGN_IN_USER_FAILURES", "5"))
LOUPE_SIGN_IN_CLIENT_FAILURES = int(os.environ.get("LOUPE_SIGN_IN_CLIENT_FAILURES", "20"))
LOUPE_DEVICE_KEY_FAILURES = int(os.environ.get("LOUPE_DEVICE_KEY_FAILURES", "20"))
# Behind a reverse proxy the web process sees the client's address when it believes the proxy's
# X-Forwarded-For (`manage.py serve web --trusted-proxies`, as deploy/ runs it). Otherwise every
# request comes from the proxy: then name the META header carrying the client's address here
# (e.g. HTTP_X_REAL_IP for nginx's `proxy_set_header X-Real-IP`).
LOUPE_CLIENT_IP_HEADER = os.environ.get("LOUPE_CLIENT_IP_HEADER", "")
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"  # config.views.home sends each role where it works
LOGOUT_REDIRECT_URL = "/accounts/login/"
# Alarm emails (inspection.supervision.notifications) through an SMTP server.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = os.environ.get("EMAIL_USE_TLS", "") == "1"
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "loupe@localhost")
LOUPE_WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("LOUPE_WEBHOOK_TIMEOUT_SECONDS", "5"))
LOUPE_WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("LOUPE_WEBHOOK_MAX_ATTEMPTS", "8"))
# Webhooks go to public addresses only (inspection.webhooks.targets); these let an operator allow
# internal receivers: host names (comma-separated, exact) and networks (CIDRs, e.g. 10.20.0.0/16).
LOUPE_WEBHOOK_ALLOWED_HOSTS = frozenset(
    name.strip().lower().rstrip(".")
    for name in os.environ.get("LOUPE_WEBHOOK_ALLOWED_HOSTS", "").split(",")
    if name.strip()
)
LOUPE_WEBHOOK_ALLOWED_NETWORKS = tuple(
    ipaddress.ip_network(network.strip(), strict=False)
    for network in os.environ.get("LOUPE_WEBHOOK_ALLOWED_NETWORKS", "").split(",")
    if network.strip()
)

# --- Monitoring (config.metrics) ------------------------------------------------------------
# Prometheus scrapes /metrics. With a token set, a scrape must send `Authorization: Bearer <token>`
# (else 401); unset, the endpoint is open, for an internal network. Several web processes on one
# host share their HTTP counts through prometheus_client's multiprocess mode: set
# PROMETHEUS_MULTIPROC_DIR (read by prometheus_client itself) to an empty folder before they start.
LOUPE_METRICS_TOKEN = os.environ.get("LOUPE_METRICS_TOKEN", "")

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "inspection.authentication.DeviceKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "inspection.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "config.api_errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loupe API",
    "DESCRIPTION": "Human-in-the-loop visual inspection: the production line's way in.",
    "VERSION": "1.0.0",
    # The docs page's JavaScript is served from static/, never a CDN: factory networks are closed.
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # ... and its fonts are the system's (templates/drf_spectacular/redoc.html drops Google Fonts).
    "REDOC_UI_SETTINGS": {
        "theme": {
            "typography": {
                "fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
                "headings": {"fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"},
                "code": {"fontFamily": "ui-monospace, 'DejaVu Sans Mono', monospace"},
            }
        }
    },
    "ENUM_NAME_OVERRIDES": {"VerdictEnum": "inspection.models.Verdict.values"},
    # OpenAPI 3.1, for its `webhooks`: what Loupe POSTs to a station's URL.
    "OAS_VERSION": "3.1.0",
    "WEBHOOKS": ["inspection.webhooks.schema.unit_decided"],
    # ... and the WebSocket feeds, by a convention OpenAPI lacks (config/api_schema.py); before the
    # enum hook, so the events' enumerations are named like the others.
    "POSTPROCESSING_HOOKS": [
        "config.api_schema.live_events_document",
        "drf_spectacular.hooks.postprocess_schema_enums",
    ],
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TZ", "UTC")
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOUPE_LOG_LEVEL", "INFO")},
    "loggers": {"mlflow": {"level": "WARNING"}, "alembic": {"level": "WARNING"}},
}
