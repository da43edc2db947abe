"""Settings, all from the environment (see README, "Environment variables").

Two ways to run share this file: the embedded default (SQLite, a server-less
broker, local storage, all state under DATA_DIR) and the distributed set-up
(DATABASE_URL, CELERY_BROKER_URL, S3 storage). DEPLOYMENT=production turns
every "convenient default" into an error, so a forgotten variable stops the
start instead of silently running with a development secret.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from config.queues import all_queues

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name, default):
    """A boolean from the environment; anything but a known spelling is an error.

    django-environ reads "ture" as False, which hides typos in production.
    """
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false.")


def env_int(name, default, minimum=None):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


DEPLOYMENT = os.environ.get("DEPLOYMENT", "embedded").strip().lower()
if DEPLOYMENT not in {"embedded", "production"}:
    raise ImproperlyConfigured(f"DEPLOYMENT={DEPLOYMENT!r}: use embedded or production.")
PRODUCTION = DEPLOYMENT == "production"

# All state of the embedded default lives here, so two instances with two
# DATA_DIRs run side by side without touching each other.
DATA_DIR = Path(os.environ.get("DATA_DIR") or BASE_DIR / "var").resolve()


def _harden_data_dir(path):
    """DATA_DIR 0700 and its SQLite files 0600, also when an older version created them looser.

    The database, the broker's queue and the generated keys live here, and
    on a shared machine a world-readable db.sqlite3 hands out every
    session and secret. SQLite creates a database's -wal and -shm files
    with the database's own mode, so creating the file 0600 before Django
    or kombu opens it is enough; existing ones are tightened in place.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid == os.geteuid():
        path.chmod(0o700)
    for name in ("db.sqlite3", "broker.sqlite3"):
        try:
            os.close(os.open(path / name, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError:
            continue  # reported by whatever opens it next, with its own message
    for child in path.iterdir():
        try:
            if child.is_file() and not child.is_symlink() and child.stat().st_uid == os.geteuid():
                child.chmod(0o600)
        except OSError:
            pass


_harden_data_dir(DATA_DIR)


def _secret_key():
    key = os.environ.get("SECRET_KEY", "")
    if PRODUCTION:
        if len(key) < 50 or key.startswith("django-insecure") or len(set(key)) < 5:
            raise ImproperlyConfigured(
                "SECRET_KEY must be set to a random value of at least 50 characters in production "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(64))')."
            )
        return key
    if key:
        return key
    # Embedded default: a per-DATA_DIR key created once, readable only by us.
    path = DATA_DIR / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(64))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["*"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the host names the dashboard is served on.")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "axes",
    "accounts",
    "functions",
    "runtime",
    "secrets_vault",
    "storage",
    "logs",
    "monitor",
    "api",
    # django-ninja: serves /api/docs with its Swagger UI assets from static/, no CDN.
    "ninja",
    "alerts",
    "schedules",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.OrganizationTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it answers a locked-out sign-in with the throttled page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            # code_spans for messages and errors, without a {% load %} in every template.
            "builtins": ["config.ui"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.organizations",
                "runtime.context_processors.sandbox",
            ],
        },
    },
]

if PRODUCTION and "DATABASE_URL" not in os.environ:
    raise ImproperlyConfigured("DATABASE_URL must be set in production (postgres://user:pass@host:5432/name).")
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while a worker writes; IMMEDIATE makes a
    # writer take the lock up front instead of failing half-way with
    # "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
# Connections are kept this long (pages and runs alike; a worker checks them before each task, see
# runtime.tasks) and checked before reuse: a run used to open one of its own.
DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's, with a health check that is a poll of the socket rather than a SELECT 1 (config/postgresql/).
    DATABASES["default"]["ENGINE"] = "config.postgresql"
# The worker's per-run statements (config.rows.statement_cursor) are prepared on PostgreSQL:
# parsed and planned once per connection instead of on every run. Off behind a connection
# pooler that cannot keep prepared statements (PgBouncer in transaction mode before 1.21).
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in throttling (django-axes; accounts/throttle.py): after LOGIN_FAILURE_LIMIT
# wrong passwords for one account, or from one source address, within
# LOGIN_LOCKOUT_MINUTES, sign-in is refused (429, the same generic message
# whether or not the account exists) until that many minutes have passed
# since the last failure. API tokens tried at random count against the
# source address too.
AUTHENTICATION_BACKENDS = [
    "accounts.backends.ThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# The sign-in form's field (Django's LoginView), which holds the e-mail address.
AXES_USERNAME_FORM_FIELD = "username"
AXES_LOCKOUT_CALLABLE = "accounts.throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "accounts.throttle.client_address"
AXES_VERBOSE = False  # accounts/throttle.py logs the one line an operator acts on
AXES_SENSITIVE_PARAMETERS = ["password", "csrfmiddlewaretoken"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# A strict Content-Security-Policy on every page: the pages load only their
# own scripts and styles (static/js, static/css; no inline script, style
# attribute or on* handler, which this policy would block) and are never framed.
from django.utils.csp import CSP  # noqa: E402

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Serve straight from the app directories: no collectstatic step to forget.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Storage: code packages and the organizations' files go through Django's
# storage API, so web and workers on different machines see the same bytes.
STORAGE_BACKEND = os.environ.get("STORAGE_BACKEND", "local").strip().lower()
if STORAGE_BACKEND == "local":
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": str(DATA_DIR / "storage"),
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    }
elif STORAGE_BACKEND == "s3":
    _bucket = os.environ.get("S3_BUCKET", "")
    if not _bucket:
        raise ImproperlyConfigured("STORAGE_BACKEND=s3 needs S3_BUCKET (and usually S3_ENDPOINT_URL and keys).")
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _bucket,
            "endpoint_url": os.environ.get("S3_ENDPOINT_URL") or None,
            "access_key": os.environ.get("S3_ACCESS_KEY_ID") or None,
            "secret_key": os.environ.get("S3_SECRET_ACCESS_KEY") or None,
            "region_name": os.environ.get("S3_REGION") or None,
            "location": os.environ.get("S3_PREFIX", ""),
            "default_acl": None,
            "file_overwrite": True,
            "querystring_auth": True,
        },
    }
else:
    raise ImproperlyConfigured(f"STORAGE_BACKEND={STORAGE_BACKEND!r}: use local or s3.")
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Functions storage (the Storage tab and the in-run S3 bucket): each
# organization's quota, and the largest single file (S3's PutObject limit).
FUNCTIONS_STORAGE_QUOTA_BYTES = env_int("FUNCTIONS_STORAGE_QUOTA_BYTES", 5 * 1024**3, minimum=0)
FUNCTIONS_STORAGE_MAX_OBJECT_BYTES = env_int("FUNCTIONS_STORAGE_MAX_OBJECT_BYTES", 5 * 1024**3, minimum=1)

# Celery. The embedded broker keeps kombu's SQLAlchemy transport's tables in its own SQLite file
# and wakes waiting workers (config/broker.py; kombu's filesystem transport races under load).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or f"embedded+sqlite:///{DATA_DIR / 'broker.sqlite3'}"
if PRODUCTION and "CELERY_BROKER_URL" not in os.environ:
    raise ImproperlyConfigured("CELERY_BROKER_URL must be set in production (redis://host:6379/0 or amqp://...).")
# (config/broker.py registers the "embedded" transport.)
CELERY_BROKER_TRANSPORT_OPTIONS = {} if CELERY_BROKER_URL.startswith(("embedded+", "sqla+")) else {"visibility_timeout": 3600}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Messages each worker process holds before it is free (a message is a turn, runtime.dispatch: it
# takes the fairest run whenever it is executed). 1: a worker busy with long runs holds no turns
# another worker could take. One worker on short runs gained 1-12% throughput at 4 (docs/benchmarks.md).
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 1, minimum=1)
# Runs a worker executes at once (its pool processes), unless `celery worker --concurrency` says
# otherwise. One more than this reference machine's 2 cores: a pool process spends much of a run
# waiting on the sandbox and the database, and a third fills those gaps. Measured on 2 cores with
# PostgreSQL + Redis (bench/run_cpu.py, bench/fairness.py; docs/benchmarks.md, "What changed on 2026-12-07"):
# 90-102 trivial runs/s at 3 against 78-89 at 2, and a quiet organization's run behind another's
# backlog at 1.2x its idle latency against 1.9x. Each process keeps its own warm environments.
CELERY_WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", 3, minimum=1)
# Celery's Django fix-up closes every database connection before and after every task unless this is
# set: a new PostgreSQL connection (a server process started, authentication) for each run. Set, the
# fix-up closes them only every million tasks; runtime.tasks drops unusable or obsolete connections
# before each task instead, as Django does for each request.
CELERY_DB_REUSE_MAX = 1_000_000
# A run may last 15 minutes; the hard limit leaves room to record the outcome.
CELERY_TASK_SOFT_TIME_LIMIT = 17 * 60
CELERY_TASK_TIME_LIMIT = 18 * 60
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True


# Secrets vault (after the other production checks, so each missing variable is reported in turn).
def _secrets_encryption_keys():
    """Fernet keys of the secrets vault, comma-separated: the first encrypts, all decrypt (secrets_vault/crypto.py).

    Unset, the embedded default creates DATA_DIR/secrets.key on first use;
    production refuses to start. A bad key stops the start with its position,
    never its text.
    """
    from secrets_vault.crypto import GENERATE_HINT, parse_keys

    raw = os.environ.get("SECRETS_ENCRYPTION_KEYS", "").strip()
    if not raw:
        if PRODUCTION:
            raise ImproperlyConfigured(
                f"SECRETS_ENCRYPTION_KEYS must be set in production (the keys that encrypt Function secrets); {GENERATE_HINT}"
            )
        return []
    return parse_keys(raw, source="SECRETS_ENCRYPTION_KEYS")


SECRETS_ENCRYPTION_KEYS = _secrets_encryption_keys()
# Where the embedded default keeps its generated key(s) when SECRETS_ENCRYPTION_KEYS is unset.
SECRETS_KEY_FILE = DATA_DIR / "secrets.key"

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "functions@localhost")
# The dashboard's public address (https://functions.example.com), for links in e-mails; empty: paths only.
SITE_URL = os.environ.get("SITE_URL", "").rstrip("/")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # A refused request (403) is routine: one line with who, what and why, never a traceback.
    "filters": {"one_line_403": {"()": "config.logging.OneLineForbidden"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["one_line_403"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # axes logs every sign-in at INFO; accounts.throttle says what matters (a lockout) in one line.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# A deployment may share one broker between several installations: each uses its own queue.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "functions")
# Three queues, the runs, the schedule ticks and the platform's other tasks, so that neither a
# backlog of runs nor a long prune holds up a tick (config/queues.py says why). A worker started
# without -Q consumes all three.
# Each with a routing key of its own: the same key would bind each to every message sent by key.
CELERY_TASK_QUEUES = tuple(Queue(name, routing_key=name) for name in all_queues(CELERY_TASK_DEFAULT_QUEUE))
CELERY_TASK_ROUTES = ("config.queues.route",)

# --- Running Functions (see runtime/) ---
# bwrap: every attempt in its own namespaces (the default, and the only safe
# choice). process: rlimits only, for machines where bwrap cannot run (a
# default Docker container); the dashboard then shows a warning banner.
FUNCTIONS_SANDBOX = os.environ.get("FUNCTIONS_SANDBOX", "bwrap").strip().lower()
if FUNCTIONS_SANDBOX not in {"bwrap", "process"}:
    raise ImproperlyConfigured(f"FUNCTIONS_SANDBOX={FUNCTIONS_SANDBOX!r}: use bwrap or process.")
# Networks a Function may reach although they are private, link-local or this
# host's own (all blocked by default, runtime/netblock.py): comma-separated
# CIDRs, e.g. 10.20.0.0/16,192.168.5.10/32.
def _allowed_networks():
    import ipaddress

    networks = []
    for item in env.list("FUNCTIONS_ALLOWED_NETWORKS", default=[]):
        try:
            networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError:
            raise ImproperlyConfigured(
                f"FUNCTIONS_ALLOWED_NETWORKS: {item!r} is not a network; write it like 10.20.0.0/16 or 192.168.5.10/32."
            ) from None
    return networks


FUNCTIONS_ALLOWED_NETWORKS = _allowed_networks()
# Warm execution environments (runtime/warm.py, bwrap only): one long-lived
# sandbox per Function version per worker process, a fork per run.
FUNCTIONS_WARM_ENVIRONMENTS = env_bool("FUNCTIONS_WARM_ENVIRONMENTS", True)
FUNCTIONS_WARM_POOL_SIZE = env_int("FUNCTIONS_WARM_POOL_SIZE", 4, minimum=1)
FUNCTIONS_WARM_IDLE_SECONDS = env_int("FUNCTIONS_WARM_IDLE_SECONDS", 300, minimum=1)
# The next run's process of a bundle that uses boto3 makes throw-away AWS clients and calls
# before its run arrives (at idle priority where the worker has CAP_SYS_NICE, else at normal
# priority beside the runs): the run's own AWS steps then take about 0.6x the time. Off: no CPU
# goes to warm-ups, and such runs take longer.
FUNCTIONS_WARM_SPARE_WARM_UP = env_bool("FUNCTIONS_WARM_SPARE_WARM_UP", True)
# Functions run this recently get their environments pre-started when a worker starts or a new
# version is deployed (runtime.services.warm_environments_prestart); 0 turns it off.
FUNCTIONS_WARM_PRESTART_RECENT_SECONDS = env_int("FUNCTIONS_WARM_PRESTART_RECENT_SECONDS", 3600, minimum=0)
FUNCTIONS_WARM_PRESTART_EVERY_SECONDS = env_int("FUNCTIONS_WARM_PRESTART_EVERY_SECONDS", 10, minimum=1)
# The contract's ceiling is 15 minutes; a deployment may lower it.
FUNCTIONS_MAX_TIMEOUT_SECONDS = env_int("FUNCTIONS_MAX_TIMEOUT_SECONDS", 900, minimum=1)
if FUNCTIONS_MAX_TIMEOUT_SECONDS > 900:
    raise ImproperlyConfigured("FUNCTIONS_MAX_TIMEOUT_SECONDS can be at most 900 (15 minutes, the contract's limit).")
FUNCTIONS_MEMORY_MB = env_int("FUNCTIONS_MEMORY_MB", 1769, minimum=64)
# Each attempt's /tmp is a filesystem of its own of this many MB (a Function
# may set its own, up to FUNCTIONS_MAX_TMP_MB; Lambda's default and ceiling).
FUNCTIONS_TMP_MB = env_int("FUNCTIONS_TMP_MB", 512, minimum=1)
FUNCTIONS_MAX_TMP_MB = env_int("FUNCTIONS_MAX_TMP_MB", 10240, minimum=1)
if FUNCTIONS_TMP_MB > FUNCTIONS_MAX_TMP_MB:
    raise ImproperlyConfigured("FUNCTIONS_TMP_MB cannot be larger than FUNCTIONS_MAX_TMP_MB.")
# The CPU each attempt may use, in percent of one CPU (its cgroup's quota;
# Samsara gives about one vCPU per 1,769 MB). Organizations share a worker's
# CPU by equal weight whatever their number of runs.
FUNCTIONS_RUN_CPU_PERCENT = env_int("FUNCTIONS_RUN_CPU_PERCENT", 100, minimum=1)
# An attempt printing more than this is stopped, and its run is not retried.
FUNCTIONS_MAX_OUTPUT_MB = env_int("FUNCTIONS_MAX_OUTPUT_MB", 100, minimum=1)
FUNCTIONS_RUNTIME_ENV = Path(os.environ.get("FUNCTIONS_RUNTIME_ENV") or BASE_DIR / ".runtime-env")
# Worker-local: unpacked bundles (by hash) and each attempt's temp directory.
# Never shared with the web server; a worker fetches packages through storage.
FUNCTIONS_CACHE_DIR = Path(os.environ.get("FUNCTIONS_CACHE_DIR") or DATA_DIR / "cache")
# A running attempt's worker writes a heartbeat; one silent for this long is
# presumed lost, and its run is retried or failed with "worker lost".
# A worker with less free disk than this (under FUNCTIONS_CACHE_DIR or DATA_DIR)
# claims no runs and /healthz says why (runtime/capacity.py).
FUNCTIONS_MIN_FREE_DISK_MB = env_int("FUNCTIONS_MIN_FREE_DISK_MB", 2048, minimum=0)
FUNCTIONS_HEARTBEAT_TIMEOUT_SECONDS = env_int("FUNCTIONS_HEARTBEAT_TIMEOUT_SECONDS", 60, minimum=2)
FUNCTIONS_MAX_ATTEMPTS = 3
# The most runs of one organization executing at once across all workers; more wait, queued, in the
# order they were triggered (runtime/dispatch.py). 0: no limit (organizations still take turns).
FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION = env_int("FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION", 0, minimum=0)
# How many nice values lower a run's CPU priority is (its worker process and its sandbox) when it was
# taken while other runs of its organization were executing (runtime.priority): an organization with a
# backlog then takes less of the cores from another organization's single run. 0 turns it off; it
# needs CAP_SYS_NICE (root has it), without which no run's priority is lowered.
FUNCTIONS_BUSY_ORGANIZATION_NICE = env_int("FUNCTIONS_BUSY_ORGANIZATION_NICE", 10, minimum=0)
if FUNCTIONS_BUSY_ORGANIZATION_NICE > 19:
    raise ImproperlyConfigured(
        f"FUNCTIONS_BUSY_ORGANIZATION_NICE={FUNCTIONS_BUSY_ORGANIZATION_NICE} is past Linux's range of nice values: "
        "use 0 (off) to 19.")
# Seconds to wait before the 2nd and 3rd attempt.
FUNCTIONS_RETRY_BACKOFF_SECONDS = (1, 3)

CELERY_BEAT_SCHEDULE = {
    "reap-lost-runs": {"task": "runtime.tasks.reap_lost_runs", "schedule": 15.0},
    # Bytes of writes killed half-way (between storing and committing).
    "sweep-storage-blobs": {"task": "storage.tasks.sweep_orphaned_blobs", "schedule": 3600.0},
    # Zips uploaded for an import review nobody finished.
    "sweep-staged-uploads": {"task": "functions.tasks.sweep_staged_uploads", "schedule": 6 * 3600.0},
    # Alert incidents' deduplication keys whose 24 hours are over.
    "prune-incident-keys": {"task": "alerts.tasks.prune_incident_keys", "schedule": 3600.0},
}

# --- Logs (see logs/) ---
# Entries older than this many days are deleted by logs.tasks.prune_logs; their
# runs stay, marked "logs expired". A query may not start before that window.
LOGS_RETENTION_DAYS = env_int("LOGS_RETENTION_DAYS", 7, minimum=1)
# Each organization stores at most this many MB of run output per UTC day;
# past it, lines are counted and dropped, with one marker line per attempt.
LOGS_DAILY_VOLUME_MB = env_int("LOGS_DAILY_VOLUME_MB", 1024, minimum=1)
# Hourly, in small batches (logs.services.logs_prune), so it never holds the table for long.
CELERY_BEAT_SCHEDULE["prune-expired-logs"] = {"task": "logs.tasks.prune_logs", "schedule": 3600.0}
# A flood's staged blocks are indexed by a task sent as the run writes them; this sweep takes any
# a worker that died left behind (logs.services.log_blocks_index). Expires: one waiting is enough.
CELERY_BEAT_SCHEDULE["index-log-blocks"] = {
    "task": "logs.tasks.index_log_blocks", "schedule": 60.0, "options": {"expires": 55.0},
}

# --- Run health (see monitor/) ---
# Run rows (with their attempts) older than this many days are deleted by
# monitor.tasks.prune_runs, hourly and in small batches; the Monitor tab and
# the Runs pages say how far back they can look.
RUNS_RETENTION_DAYS = env_int("RUNS_RETENTION_DAYS", 90, minimum=1)
CELERY_BEAT_SCHEDULE["prune-expired-runs"] = {"task": "monitor.tasks.prune_runs", "schedule": 3600.0}
# A failure notice goes out at most once per Function per this many minutes, with the count since.
FAILURE_NOTICE_MINUTES = env_int("FAILURE_NOTICE_MINUTES", 15, minimum=1)
CELERY_BEAT_SCHEDULE["send-failure-notices"] = {"task": "runtime.tasks.send_due_failure_notices", "schedule": 60.0}

# --- Public REST API (see api/) ---
# Requests per second each API token may make (Samsara's own limit is 150).
API_RATE_LIMIT_PER_SECOND = env_int("API_RATE_LIMIT_PER_SECOND", 150, minimum=1)
# Runs each token may start per minute for one Function (Samsara allows 2).
API_RUN_STARTS_PER_MINUTE = env_int("API_RUN_STARTS_PER_MINUTE", 60, minimum=1)
# How long uploadPutUrl, downloadGetUrl and the storage URLs stay valid.
API_SIGNED_URL_SECONDS = env_int("API_SIGNED_URL_SECONDS", 3600, minimum=60)
# Rate counters live in the broker's Redis when it is Redis (else in the
# database); the prefix keeps installations sharing one Redis apart.
API_RATE_LIMIT_KEY_PREFIX = f"functions-api:{CELERY_TASK_DEFAULT_QUEUE}:"
# Stored Idempotency-Key answers and database rate counters past their use.
CELERY_BEAT_SCHEDULE["prune-api-records"] = {"task": "api.tasks.prune_api_records", "schedule": 3600.0}

# --- Schedules (see schedules/) ---
# beat drives one tick for every schedule (never an entry per schedule); the tick
# also arms a wake-up at the next occurrence due before the following tick.
SCHEDULE_TICK_SECONDS = env_int("SCHEDULE_TICK_SECONDS", 1, minimum=1)
# How many ticks wake up at an occurrence that falls between two beat ticks; they share
# its due schedules: by default one for each of a worker's processes (WORKER_CONCURRENCY). The
# Procfile's one-process schedules worker takes them one after another unless a run worker's
# process is free; the first does all the work (a tick loops until nothing is due), the rest
# find nothing.
SCHEDULE_WAKE_UP_TICKS = env_int("SCHEDULE_WAKE_UP_TICKS", CELERY_WORKER_CONCURRENCY, minimum=1)
# A missed occurrence (no scheduler was running) still runs late when it is the most
# recent one and less than this late; older ones are summed up in one dropped run.
SCHEDULE_CATCH_UP_SECONDS = env_int("SCHEDULE_CATCH_UP_SECONDS", 3600, minimum=0)
# Claims of fired occurrences are kept this long, then pruned hourly.
SCHEDULE_OCCURRENCE_RETENTION_DAYS = env_int("SCHEDULE_OCCURRENCE_RETENTION_DAYS", 7, minimum=1)
CELERY_BEAT_SCHEDULE["schedules-tick"] = {
    "task": "schedules.tasks.tick",
    "schedule": float(SCHEDULE_TICK_SECONDS),
    # A tick that waited behind busy workers is useless once the next one is sent.
    "options": {"expires": max(5.0, 5 * SCHEDULE_TICK_SECONDS)},
}
CELERY_BEAT_SCHEDULE["prune-schedule-occurrences"] = {
    "task": "schedules.tasks.prune_occurrences", "schedule": 3600.0,
}
