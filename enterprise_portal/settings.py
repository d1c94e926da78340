"""Settings, read from the environment (see .env.example for every variable)."""

import hashlib
from pathlib import Path

from csp.constants import NONE, SELF
from django.utils.translation import gettext_lazy as _

from enterprise_portal.env import (
    env_bool,
    env_choice,
    env_code_map,
    env_database,
    env_int,
    env_list,
    env_networks,
    env_secret_key,
    env_str,
    redis_url_with_db,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# With DEBUG off, a missing, short or known key stops the process (enterprise_portal.env).
SECRET_KEY = env_secret_key("SECRET_KEY", debug=DEBUG)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://localhost:8000").rstrip("/")

# --- Tenancy: one PostgreSQL schema per account; everything shared lives in public.
SHARED_APPS = [
    "django_tenants",
    "accounts",
    "devices",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "crispy_forms",
    "crispy_bootstrap5",
    "ninja",  # its Swagger UI files, served by the app
    "csp",  # its system checks
    "api",
]
TENANT_APPS = [
    "campaigns",
    "contacts",
]
# The project app (the demo's management command); no models, so no schema.
INSTALLED_APPS = (
    SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS] + ["enterprise_portal"]
)

TENANT_MODEL = "accounts.Account"
TENANT_DOMAIN_MODEL = "accounts.Domain"
# Accounts live under /a/<slug>/ on the same host: one session, no /etc/hosts edits.
TENANT_SUBFOLDER_PREFIX = "a"
PUBLIC_SCHEMA_URLCONF = "enterprise_portal.urls_public"
ROOT_URLCONF = "enterprise_portal.urls_tenant"
# New accounts are cloned from a migrated template schema instead of replaying migrations.
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = True
# django-tenants issues SET search_path before every cursor's first statement unless told to
# remember what it set; it forgets on a schema switch, a rollback (to a savepoint too: a SET
# is transactional) and a closed connection. An API decision ran 5 of its 10 statements
# for that.
TENANT_LIMIT_SET_CALLS = True
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)

MIDDLEWARE = [
    # First: resets the thread's time zone for every request, even one that ends in a 404
    # before the view; its process_view then applies the enterprise's zone and language.
    "enterprise_portal.middleware.EnterpriseContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # django-csp, with inline styles allowed in the admin only (its templates have some).
    "enterprise_portal.content_security.PortalCSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before tenant routing, so an unknown account's 404 page is in the visitor's language.
    "django.middleware.locale.LocaleMiddleware",
    "enterprise_portal.middleware.RefuseNulMiddleware",
    "enterprise_portal.middleware.AccountRoutingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before the CSRF check, which reads a POST's body: refuses too large a body unread.
    "enterprise_portal.middleware.RequestBodyLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.portal",
            ],
        },
    },
]

WSGI_APPLICATION = "enterprise_portal.wsgi.application"

DATABASES = {"default": env_database().as_django("enterprise_portal.db")}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker on the URL's database, cache on the next one.
REDIS_URL = env_str("REDIS_URL")
CACHE_URL = env_str("CACHE_URL", redis_url_with_db(REDIS_URL, 1))
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": "portal",
    }
}

# --- People
AUTH_USER_MODEL = "accounts.User"
# Literal paths: these are resolved inside account pages too, whose URLconf lacks the shared names.
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# How long a saved search (accounts.searches: the Contact Trace's, the lists') can be
# opened, bookmarked and shared within its enterprise.
SAVED_SEARCH_DAYS = env_int("SAVED_SEARCH_DAYS", 30, minimum=1)
# Password-reset requests per address and per client address, per window.
PASSWORD_RESET_EMAIL_LIMIT = env_int("PASSWORD_RESET_EMAIL_LIMIT", 3, minimum=1)
PASSWORD_RESET_IP_LIMIT = env_int("PASSWORD_RESET_IP_LIMIT", 20, minimum=1)
PASSWORD_RESET_WINDOW_SECONDS = env_int("PASSWORD_RESET_WINDOW_SECONDS", 3600, minimum=1)
# Reverse proxies in front of the portal that append to X-Forwarded-For (nginx, a load
# balancer): the client is the address the outermost of them saw. 0: REMOTE_ADDR is the
# client (no proxy; any X-Forwarded-For is the client's own claim and ignored).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
SESSION_COOKIE_HTTPONLY = True
# --- HTTPS. Cookies are Secure unless DEBUG (SECURE_COOKIES=0 for plain-http trials);
# HSTS, the redirect to https and trusting the proxy's X-Forwarded-Proto are opt-in here
# and on in docker-compose.yml, which expects a TLS-terminating proxy in front.
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Machine callers that may speak plain http inside the deployment's network: load-balancer
# health checks and Kannel's reports and replies (signed or keyed, and IP-filtered). A
# redirect would not protect them (the request has already crossed the wire) and Kannel
# does not follow it.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^carrier/", r"^a/[^/]+/carrier/"]
if env_bool("PROXY_SSL_HEADER", False):
    # Only behind a proxy that sets this header on every request (and strips the client's).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# Scripts and styles only from our own static files: no inline code or style attributes
# (templates use classes and data-* attributes read by static/js). Fetches, fonts and
# recordings fall under default-src; data: images are Bootstrap's and Swagger UI's icons.
# The admin also allows inline styles (enterprise_portal.content_security).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Email (password reset now; email campaigns later).
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Compliance Portal <no-reply@localhost>")

# --- Internationalisation: English and Portuguese (Brazil); times in the enterprise's zone.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("pt-br", _("Portuguese (Brazil)"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
# One way of writing dates and times in both languages (enterprise_portal/formats).
FORMAT_MODULE_PATH = ["enterprise_portal.formats"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")

# --- Static files are served by the app (WhiteNoise); no CDN.
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Production (docker) collects and fingerprints files; dev and tests serve them from the finders.
_STATIC_MANIFEST = env_bool("STATIC_MANIFEST", False)
STATIC_ROOT = BASE_DIR / "staticfiles" if _STATIC_MANIFEST else None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if _STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not _STATIC_MANIFEST
# Uploaded and generated files (recordings) are private: there is deliberately no MEDIA_URL route.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Celery on Redis, tenant-aware (tenant-schemas-celery).
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "portal")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_PREFETCH", 4, minimum=1)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "clear-expired-sessions": {
        "task": "accounts.tasks.clear_expired_sessions",
        "schedule": 3600.0,
    },
    "purge-expired-searches": {
        "task": "accounts.tasks.purge_expired_searches",
        "schedule": 3600.0,
    },
    "dispatch": {
        "task": "campaigns.tasks.dispatch_tick",
        "schedule": float(env_int("DISPATCH_INTERVAL_SECONDS", 2, minimum=1)),
    },
    "sweep-lost-calls": {
        "task": "campaigns.tasks.sweep_lost_calls",
        "schedule": 10.0,
    },
    "send-due-webhooks": {
        "task": "accounts.tasks.send_due_webhooks",
        "schedule": 30.0,
    },
    "registry-stale-events": {
        "task": "devices.tasks.announce_stale_registries",
        "schedule": 3600.0,
    },
    "requeue-stale-claims": {
        "task": "campaigns.tasks.requeue_stale_claims",
        "schedule": 60.0,
    },
    "resume-queued-imports": {
        "task": "contacts.tasks.resume_queued_imports",
        "schedule": 300.0,
    },
    "resume-queued-registry-imports": {
        "task": "devices.tasks.resume_queued_registry_imports",
        "schedule": 300.0,
    },
    "device-block-expiry": {
        "task": "devices.tasks.release_expired_blocks",
        "schedule": 300.0,
    },
    "blacklist-expiry": {
        "task": "campaigns.tasks.release_expired_blacklist_entries",
        "schedule": 300.0,
    },
    "ledger-partitions": {
        "task": "devices.tasks.maintain_ledger_partitions",
        "schedule": 6 * 3600.0,
    },
}

# --- Dialer: gateways per channel, the simulator's node pool and behaviour.
# A short name or a class path, per channel.
GATEWAY_NAMES = {
    "simulator": "campaigns.gateways.SimulatorGateway",
    "email": "campaigns.gateways.EmailGateway",
    "kannel": "campaigns.kannel.KannelGateway",
    "sip": "campaigns.sip.SipGateway",
}
DIALER_GATEWAYS = {
    channel: GATEWAY_NAMES.get(name, name)
    for channel, name in (
        ("voice", env_str("VOICE_GATEWAY", "simulator")),
        ("sms", env_str("SMS_GATEWAY", "simulator")),
        ("email", env_str("EMAIL_GATEWAY", "email")),
    )
}
# --- SMS through Kannel (SMS_GATEWAY=kannel): smsbox's sendsms, and what Kannel calls back.
KANNEL_SENDSMS_URL = env_str("KANNEL_SENDSMS_URL", "http://127.0.0.1:13013/cgi-bin/sendsms")
KANNEL_USERNAME = env_str("KANNEL_USERNAME", "portal")
KANNEL_PASSWORD = env_str("KANNEL_PASSWORD", "")
KANNEL_TIMEOUT_SECONDS = env_int("KANNEL_TIMEOUT_SECONDS", 10, minimum=1)
# Kannel's reports and replies prove themselves with this secret (and come from these
# networks). Default: derived from SECRET_KEY, so it is never a known value.
KANNEL_CALLBACK_SECRET = env_str(
    "KANNEL_CALLBACK_SECRET",
    hashlib.sha256(f"kannel-callbacks:{SECRET_KEY}".encode()).hexdigest()[:40],
)
KANNEL_ALLOWED_NETWORKS = env_networks("KANNEL_ALLOWED_IPS", ["127.0.0.1/32", "::1/128"])
# --- Integration API (/api/v1/): requests per key per minute (0: no limit).
API_RATE_LIMIT = env_int("API_RATE_LIMIT", 600, minimum=0)
# Webhooks to loopback or private addresses (a receiver on the same network; tests).
WEBHOOK_ALLOW_PRIVATE_URLS = env_bool("WEBHOOK_ALLOW_PRIVATE_URLS", False)
# --- Voice over SIP (VOICE_GATEWAY=sip): the trunk, and the call engines that dial it.
SIP_TRUNK_URI = env_str("SIP_TRUNK_URI", "sip:127.0.0.1:5060")
SIP_USERNAME = env_str("SIP_USERNAME", "")
SIP_PASSWORD = env_str("SIP_PASSWORD", "")
SIP_RING_SECONDS = env_int("SIP_RING_SECONDS", 30, minimum=5)
SIP_MAX_CALL_SECONDS = env_int("SIP_MAX_CALL_SECONDS", 3600, minimum=60)
# Extra or changed SIP final code → result mappings, e.g. "503=BUSY,488=FAILED".
SIP_RESULT_CODES = env_code_map("SIP_RESULT_CODES", "")
CALL_ENGINES = env_int("CALL_ENGINES", 0, minimum=0)  # started by `make run` when > 0
CALL_ENGINE_CHANNELS = env_int("CALL_ENGINE_CHANNELS", 4, minimum=1)
CALL_ENGINE_SIP_PORT = env_int("CALL_ENGINE_SIP_PORT", 5070, minimum=1024)
CALL_ENGINE_RTP_PORT = env_int("CALL_ENGINE_RTP_PORT", 40000, minimum=1024)
# A call no engine took within this long was never dialled: FAILED, retried by the rules.
CALL_QUEUE_SECONDS = env_int("CALL_QUEUE_SECONDS", 60, minimum=5)
DIALER_NODES = env_list("DIALER_NODES", ["dialer-node-01", "dialer-node-02", "dialer-node-03"])
# Share of sent SMS that the simulator answers with an inbound reply (0..100).
SIMULATOR_REPLY_PERCENT = env_int("SIMULATOR_REPLY_PERCENT", 5, minimum=0)
# Real seconds the simulator waits per call, to model a busy line (0 in tests and benchmarks).
SIMULATOR_CALL_DELAY_MS = env_int("SIMULATOR_CALL_DELAY_MS", 0, minimum=0)
DISPATCH_INTERVAL_SECONDS = env_int("DISPATCH_INTERVAL_SECONDS", 2, minimum=1)
DISPATCH_BATCH_SIZE = env_int("DISPATCH_BATCH_SIZE", 500, minimum=1)
ATTEMPT_TASK_CHUNK = env_int("ATTEMPT_TASK_CHUNK", 50, minimum=1)
# A claimed state whose attempt task has not finished after this long is sent again.
DIALING_STALE_SECONDS = env_int("DIALING_STALE_SECONDS", 300, minimum=10)
MAX_UPLOAD_MB = env_int("MAX_UPLOAD_MB", 100, minimum=1)
# No request body beyond this, whatever the page (the largest upload is a national
# registry file, 500 MB, operators only); each page's own limit is usually far lower.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_MB", 512, minimum=1) * 1024 * 1024
if env_str("STORAGE_BACKEND", "local") == "s3":
    # S3-compatible storage for recordings and uploads (needs django-storages[s3]).
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("S3_BUCKET"),
            "endpoint_url": env_str("S3_ENDPOINT_URL", "") or None,
            "querystring_auth": True,
            "default_acl": "private",
        },
    }

LOG_LEVEL = env_choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
