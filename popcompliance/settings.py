"""Settings for PopCompliance, read from the environment (see .env.example).

Development defaults are safe to run on a laptop: SQLite under var/, DEBUG off unless asked.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from cryptography.fernet import Fernet

from popcompliance.accounts.sso_settings import sign_in_settings
from popcompliance.env import ConfigurationError, env_bool, env_int, env_list, env_str
from popcompliance.local_secrets import INSECURE_DEFAULT_SECRET_KEY, saved, var_dir
from popcompliance.locations import validate_all as validate_locations

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime state of the embedded defaults: SQLite, the filesystem broker, beat's schedule.
VAR_DIR = var_dir()

DEBUG = env_bool("DEBUG", False)
# Signs sessions and CSRF tokens. Without DEBUG the dashboard is in production, where a known
# key lets anyone forge a session: it refuses to start without a key of its own. `make run`
# generates one under var/ on its first start, which manage.py run by hand reads too (the
# environment's value wins).
SAVED_SECRETS = saved(VAR_DIR)
POPC_DEVELOPMENT_SECRET_KEY = INSECURE_DEFAULT_SECRET_KEY
SECRET_KEY = (
    env_str("SECRET_KEY").strip() or SAVED_SECRETS.get("SECRET_KEY") or POPC_DEVELOPMENT_SECRET_KEY
)
# The development key, and the placeholder of .env.example, are public.
if not DEBUG and SECRET_KEY in (POPC_DEVELOPMENT_SECRET_KEY, "change-me"):
    raise ConfigurationError(
        "SECRET_KEY is not set (or is the public development key or .env.example's "
        "placeholder): set SECRET_KEY, or SECRET_KEY_FILE, to a long random string, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`; or set DEBUG=true "
        "on a development machine"
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "popcompliance.inventory",
    "popcompliance.compliance",
    "popcompliance.alerts",
    "popcompliance.accounts",
    "popcompliance.dashboard",
    "popcompliance.audit",
    "popcompliance.maintenance",
    "popcompliance.waivers",
    "popcompliance.reports",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI and Redoc as static files, for the API's documentation pages.
    "drf_spectacular_sidecar",
    "popcompliance.api",
    # Login throttling (see AXES_* below).
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "popcompliance.security.ContentSecurityPolicyMiddleware",
    # Static files from the web process itself (gunicorn in compose), right after security.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who changes what: each request is the scope of its audit entries (popcompliance.audit).
    "popcompliance.audit.context.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# HTTPS. POPC_HTTPS=true says users reach the dashboard over https only (directly or through a
# proxy): secure cookies, a redirect of plain http, HSTS. Off by default so the embedded
# `make run` on http://127.0.0.1 works; each setting below can also be set on its own.
POPC_HTTPS = env_bool("POPC_HTTPS", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", POPC_HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", POPC_HTTPS)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", POPC_HTTPS)
# The compose health check and load balancers probe /healthz over plain http.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if POPC_HTTPS else 0)
# includeSubdomains covers names under the dashboard's own; preload only marks the header as
# eligible (nothing is preloaded until someone submits the domain to the browsers' list).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", POPC_HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", POPC_HTTPS)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients).
if env_bool("POPC_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Safe on plain http too, so always on.
SECURE_CONTENT_TYPE_NOSNIFF = env_bool("SECURE_CONTENT_TYPE_NOSNIFF", True)
X_FRAME_OPTIONS = env_str("X_FRAME_OPTIONS") or "DENY"
SECURE_REFERRER_POLICY = env_str("SECURE_REFERRER_POLICY") or "same-origin"

ROOT_URLCONF = "popcompliance.urls"
WSGI_APPLICATION = "popcompliance.wsgi.application"

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
                "popcompliance.accounts.context_processors.role",
            ],
        },
    },
]

# Every page needs a signed-in user (popcompliance.accounts).
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "accounts:login"

# Every password a person sets (the Users page, the password change, the Django admin,
# `ensure_admin`) must pass these; accounts created in code bypass them.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login throttling (django-axes, popcompliance.accounts.throttle) on every password sign-in:
# the login page, the Django admin's, anything calling authenticate(). Failures are counted
# over the last POPC_LOGIN_LOCKOUT_MINUTES per (username, client address): that pair is locked
# out at POPC_LOGIN_FAILURE_LIMIT, so nobody can lock a user out from elsewhere; and per client
# address: it is locked out for every username at POPC_LOGIN_ADDRESS_FAILURE_LIMIT (password
# spraying). A successful sign-in forgets its pair's failures. API tokens are not passwords
# and are not throttled.
#
# Who may sign in, and how (popcompliance.accounts.sso_settings, docs/sso.md): local accounts
# unless POPC_LOCAL_ACCOUNTS=false, LDAP/Active Directory once POPC_LDAP_SERVER_URI is set,
# OpenID Connect once POPC_OIDC_ISSUER is. Sets AUTHENTICATION_BACKENDS (axes' first, so that
# a locked-out client is refused before a password is checked or a code exchanged), the
# AUTH_LDAP_* and OIDC_* settings of django-auth-ldap and mozilla-django-oidc, and POPC_*.
globals().update(sign_in_settings())
AXES_FAILURE_LIMIT = env_int("POPC_LOGIN_FAILURE_LIMIT", 5)
POPC_LOGIN_ADDRESS_FAILURE_LIMIT = env_int(
    "POPC_LOGIN_ADDRESS_FAILURE_LIMIT", 4 * AXES_FAILURE_LIMIT
)
_lockout_minutes = env_int("POPC_LOGIN_LOCKOUT_MINUTES", 15)
AXES_COOLOFF_TIME = timedelta(minutes=_lockout_minutes)
if AXES_FAILURE_LIMIT < 1 or _lockout_minutes < 1:
    raise ConfigurationError(
        "POPC_LOGIN_FAILURE_LIMIT and POPC_LOGIN_LOCKOUT_MINUTES must be at least 1"
    )
if POPC_LOGIN_ADDRESS_FAILURE_LIMIT < AXES_FAILURE_LIMIT:
    raise ConfigurationError(
        "POPC_LOGIN_ADDRESS_FAILURE_LIMIT must be at least POPC_LOGIN_FAILURE_LIMIT"
    )
# The pair, then the address: LoginThrottle gives each its own limit, in this order.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "popcompliance.accounts.throttle.LoginThrottle"
AXES_RESET_ON_SUCCESS = True
# A try while locked out counts too and starts the wait again: a script that keeps guessing
# stays locked out.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_LOCKOUT_CALLABLE = "popcompliance.accounts.throttle.lockout_response"
# The client address is REMOTE_ADDR. Behind N reverse proxies (nginx, traefik) that each
# append to X-Forwarded-For, set POPC_TRUSTED_PROXY_COUNT=N, and let no client reach the web
# process except through them; 0 never reads X-Forwarded-For.
AXES_CLIENT_IP_CALLABLE = "popcompliance.accounts.throttle.client_ip"
POPC_TRUSTED_PROXY_COUNT = env_int("POPC_TRUSTED_PROXY_COUNT", 0)
if POPC_TRUSTED_PROXY_COUNT < 0:
    raise ConfigurationError("POPC_TRUSTED_PROXY_COUNT must be 0 or more")
# Axes would add a row per successful sign-in to a table that nothing prunes.
AXES_DISABLE_ACCESS_LOG = True

DATABASE_URL = env_str("DATABASE_URL")
if not DATABASE_URL:
    # The embedded default: SQLite under var/, created on first use.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'popcompliance.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers and the web server write at once; wait for the lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
else:
    # A database host that drops packets fails a connection in seconds, not after the TCP
    # timeout of minutes: beat writes its heartbeat while sending tasks, and must not stall.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 10
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# collectstatic fills STATIC_ROOT (the Docker image does it at build); whitenoise serves it
# compressed. Without a collectstatic (make run, tests) it looks the files up in
# STATICFILES_DIRS at each request instead.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = not STATIC_ROOT.is_dir()

# The JSON API (popcompliance.api): token (`manage.py create_api_token USERNAME`) or session;
# JSON only (the browsable API would need inline scripts); the contract's page shape.
REST_FRAMEWORK = {
    # Token first, so a request without credentials gets 401 with WWW-Authenticate, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "popcompliance.api.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# Days a new API token lasts unless its owner picks otherwise; 0: tokens never expire.
POPC_API_TOKEN_DAYS = env_int("POPC_API_TOKEN_DAYS", 90)
if POPC_API_TOKEN_DAYS < 0:
    raise ConfigurationError("POPC_API_TOKEN_DAYS must be 0 (never expire) or more")
SPECTACULAR_SETTINGS = {
    "TITLE": "PopCompliance API",
    "DESCRIPTION": (
        "POP3 TLS compliance of a server fleet: the inventory, each server's checks, alerts "
        "and the fleet summary.\n\n"
        "**Sign in** with a token (`manage.py create_api_token USERNAME`) in the header "
        "`Authorization: Token <key>`, or the dashboard's session, as these pages do "
        "([back to the dashboard](/)).\n\n"
        "**Roles**: every account reads; scanning and acknowledging need an operator; "
        "creating, editing, pausing and resuming servers need an admin.\n\n"
        '**Errors** are JSON: `{"detail": "..."}`, or `{"field": ["message", ...]}` '
        "for invalid input (400). Lists are paginated: `?page=N`, 50 a page."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its pages (/api/v1/docs/, /api/v1/redoc/) are for signed-in accounts only,
    # like everything else; the pages send anonymous visitors to the login page.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # The documentation pages load Swagger UI and Redoc from our own static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True},
    "TAGS": [
        {"name": "servers", "description": "The inventory, each server's checks, and scans."},
        {"name": "alerts", "description": "Open, acknowledged and resolved alerts."},
        {"name": "summary", "description": "The fleet at a glance."},
        {"name": "audit", "description": "Who changed what and when (admin tokens only)."},
    ],
    # Several models have a `status`: name each choice set once.
    "ENUM_NAME_OVERRIDES": {
        "ServerStatusEnum": "popcompliance.inventory.models.ServerStatus",
        "CheckStatusEnum": "popcompliance.compliance.models.CheckStatus",
        "AlertLevelEnum": "popcompliance.alerts.models.AlertLevel",
        "AlertStateEnum": "popcompliance.alerts.models.AlertState",
    },
}

# /metrics (popcompliance.ops): readers send `Authorization: Bearer <token>`. Empty: only
# clients on loopback may read it.
POPC_METRICS_TOKEN = env_str("POPC_METRICS_TOKEN")

# Email (alerts).
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "popcompliance@localhost")

# Alerts (popcompliance.alerts). Links in emails start with SITE_URL.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# Who gets every alert besides each server's owners.
POPC_ALERT_RECIPIENTS = env_list("POPC_ALERT_RECIPIENTS", [])
# Hours between reminders of an open, unacknowledged alert (0: no reminders).
POPC_REMINDER_HOURS = env_int("POPC_REMINDER_HOURS", 24)
# This many scans of one server that changed a status within 24 h make it "flapping" (its
# owners get one notice per 24 h).
POPC_FLAP_CHANGES = env_int("POPC_FLAP_CHANGES", 4)
# Days before a certificate expires at which to warn, once each (checked by `manage.py check`).
POPC_EXPIRY_THRESHOLDS = env_list("POPC_EXPIRY_THRESHOLDS", ["30", "14", "7", "1"])
# The daily digest (popcompliance.alerts.digest): the hour of the day it goes out, 0-23 UTC
# (unset: no digest), and who gets one (unset: everyone who gets alerts).
POPC_DIGEST_HOUR = env_int("POPC_DIGEST_HOUR", 0) if env_str("POPC_DIGEST_HOUR").strip() else None
POPC_DIGEST_RECIPIENTS = env_list("POPC_DIGEST_RECIPIENTS", [])
# Seconds an alert channel's service (a webhook) gets to accept a connection, then to answer
# (popcompliance.alerts.channels); a channel's URL may set its own with cto= and rto=.
POPC_CHANNEL_TIMEOUT = env_int("POPC_CHANNEL_TIMEOUT", 10)

# Scanner.
POPC_DNS_RESOLVER = env_str("POPC_DNS_RESOLVER") or None
POPC_CA_FILE = env_str("POPC_CA_FILE") or None
# The scanner guard never connects to unspecified, link-local or cloud metadata addresses
# (0.0.0.0/8, ::, 169.254.0.0/16, fe80::/10, fd00:ec2::254, and their IPv6 embeddings), nor to
# loopback unless a network here covers it. With this comma-separated list of CIDRs, it also
# scans only addresses inside them (IP hosts are refused on the form and in the API; names at
# scan time).
POPC_SCAN_ALLOW_NETWORKS = env_list("POPC_SCAN_ALLOW_NETWORKS", [])
for _network in POPC_SCAN_ALLOW_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError as _exc:
        raise ConfigurationError(f"POPC_SCAN_ALLOW_NETWORKS: {_exc}") from None
# Fernet keys for the servers' monitoring passwords, comma-separated: the first encrypts, all
# decrypt, so a key is rotated by putting a new one first and running `manage.py
# rotate_credentials_key`. Empty: a key derived from SECRET_KEY (the deploy check warns); once
# set, that key decrypts nothing, and `migrate` moves the passwords it encrypted to this one.
POPC_CREDENTIALS_KEY = env_list(
    "POPC_CREDENTIALS_KEY",
    [k for k in SAVED_SECRETS.get("POPC_CREDENTIALS_KEY", "").split(",") if k],
)
for _number, _key in enumerate(POPC_CREDENTIALS_KEY, start=1):
    try:
        Fernet(_key)
    except ValueError:
        # The key is a secret: name its position, never its value.
        raise ConfigurationError(
            f"POPC_CREDENTIALS_KEY: key {_number} is not a Fernet key (44 characters of "
            "url-safe base64); `manage.py generate_credentials_key` prints a new one"
        ) from None
PORT = env_int("PORT", 8000)

# Celery. With REDIS_URL unset, an embedded broker (kombu's filesystem transport under var/)
# lets `make run` work with no extra service; production sets REDIS_URL.
REDIS_URL = env_str("REDIS_URL") or None
BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    if urlsplit(REDIS_URL).scheme in ("redis", "rediss"):
        # kombu's Redis transport, made to survive a task that finishes after Redis was lost
        # (popcompliance/broker.py); a Sentinel URL keeps kombu's own.
        CELERY_BROKER_TRANSPORT = "popcompliance.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # How long a task taken by a worker that died stays invisible before another worker
        # gets it (acks_late); it must outlast the longest scan.
        "visibility_timeout": env_int("POPC_VISIBILITY_TIMEOUT", 600),
    }
else:
    # The transport ignores the host; naming one spares every connection kombu's warning
    # that none was supplied.
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        # Broadcast bindings (remote control); kombu's default is a folder in the current one.
        "control_folder": str(BROKER_DIR / "control"),
        # A worker slot freed by a finished scan takes its next message at the next poll; at
        # kombu's default of 1 s a worker managed only `concurrency` scans per second.
        "polling_interval": 0.1,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A scan is idempotent, so a task may run twice; it must never be lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("POPC_TASK_SOFT_TIME_LIMIT", 240)
CELERY_TASK_TIME_LIMIT = env_int("POPC_TASK_TIME_LIMIT", 300)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"

# Scanning and history.
POPC_SCAN_TIMEOUT = env_int("POPC_SCAN_TIMEOUT", 10)
# How long after a suspected regression the confirming re-probe runs.
POPC_CONFIRMATION_DELAY = env_int("POPC_CONFIRMATION_DELAY", 60)
# Raw scan facts are kept this many days (the latest run of each server is always kept).
POPC_SCAN_RUN_RETENTION_DAYS = env_int("POPC_SCAN_RUN_RETENTION_DAYS", 30)
# Changes (the compliance history) are kept this many days.
POPC_CHANGE_RETENTION_DAYS = env_int("POPC_CHANGE_RETENTION_DAYS", 730)
# How many due servers one dispatcher run claims at most.
POPC_DISPATCH_BATCH = env_int("POPC_DISPATCH_BATCH", 5000)
# How far a dispatcher's claim moves a server's next_scan_at (seconds). The database is the
# guarantee that no scan is lost: a claim whose scan is not recorded within the lease (a
# worker killed, a message the broker dropped) is simply due again. It must outlast a scan's
# hard time limit, or a slow scan would be dispatched a second time.
POPC_SCAN_LEASE = env_int("POPC_SCAN_LEASE", max(600, 2 * CELERY_TASK_TIME_LIMIT))
if POPC_SCAN_LEASE <= CELERY_TASK_TIME_LIMIT:
    raise ConfigurationError(
        f"POPC_SCAN_LEASE ({POPC_SCAN_LEASE} s) must be longer than POPC_TASK_TIME_LIMIT "
        f"({CELERY_TASK_TIME_LIMIT} s), the longest a scan may run."
    )
# Probe locations: each is a Celery queue served by workers started with `-Q <name>` in that
# network (docs/locations.md). `default` always exists: the queue plain workers consume.
POPC_LOCATIONS = env_list("POPC_LOCATIONS", [])
try:
    validate_locations(POPC_LOCATIONS)
except ValueError as _exc:
    raise ConfigurationError(f"POPC_LOCATIONS: {_exc}") from None
# How many "Scan now" requests (dashboard and API together) one person may make a minute.
POPC_SCAN_REQUESTS_PER_MINUTE = env_int("POPC_SCAN_REQUESTS_PER_MINUTE", 10)
# A CSV upload of more rows than this is imported by a worker, on a page showing its progress.
POPC_IMPORT_INLINE_ROWS = env_int("POPC_IMPORT_INLINE_ROWS", 500)
