"""Kay settings: one module, read from the environment (and ``.env`` when present).

Every variable is documented in ``.env.example``. Required settings fail at start-up
with a message naming the variable.
"""

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlparse

import environ
from csp import constants as csp
from django.core.exceptions import ImproperlyConfigured

from core.durations import parse_duration
from core.keyring import KeyRingError, parse_key_ring

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("KAY_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
ENV_FILE = Path(os.environ.get("KAY_ENV_FILE", BASE_DIR / ".env"))
if ENV_FILE.is_file():
    # Real environment variables win over the file.
    environ.Env.read_env(str(ENV_FILE), overwrite=False)
# An empty variable (as copied from .env.example) means "use the default".
for _name in [name for name, value in os.environ.items() if value == ""]:
    del os.environ[_name]


def _required(name: str, hint: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(f"{name} is not set: {hint}")
    return value


def _duration(name: str, default: str) -> int:
    """A duration setting (``30m``, ``7d``) in whole seconds."""
    raw = env.str(name, default=default)
    try:
        return int(parse_duration(raw).total_seconds())
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


# --- Core -------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
DEPLOY_ENV = env.str("DEPLOY_ENV", default="")
# Production means a deployed, non-debug process: no development conveniences at all.
IS_PRODUCTION = bool(DEPLOY_ENV) and not DEBUG

SECRET_KEY = _required("SECRET_KEY", "set a long random value (`make run` writes one to .env)")
SERVER_SECRET_KEY = _required(
    "SERVER_SECRET_KEY", "backend services send it as a Bearer token to /api/keys/fetch"
)
# It opens every user's keys over the network: too short to guess, and whitespace (easily
# pasted in) does not count.
if IS_PRODUCTION and len("".join(SERVER_SECRET_KEY.split())) < 32:
    raise ImproperlyConfigured(
        "SERVER_SECRET_KEY is too short: production needs at least 32 characters, not "
        "counting whitespace (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
    )
try:
    ENCRYPTION_KEYS = parse_key_ring(env.str("ENCRYPTION_KEYS", default=""))
except KeyRingError as exc:
    raise ImproperlyConfigured(str(exc)) from None

PORT = env.int("PORT", default=4000)
APP_URL = env.str("APP_URL", default="" if not DEBUG else f"http://localhost:{PORT}").rstrip("/")
if not APP_URL:
    raise ImproperlyConfigured(
        "APP_URL is not set: the public base URL (https://…) used for links and OAuth redirects"
    )
_app = urlparse(APP_URL)
if not DEBUG and _app.scheme != "https":
    raise ImproperlyConfigured(f"APP_URL must use https outside DEBUG (got {APP_URL!r})")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[_app.hostname or "localhost"])
if DEBUG:
    ALLOWED_HOSTS += ["localhost", "127.0.0.1", "[::1]", "testserver"]
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[f"{_app.scheme}://{_app.netloc}"])

INSTALLED_APPS = [
    "accounts.apps.KayAdminConfig",  # the admin, as Kay's operator console
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "core",
    "accounts",
    "keys",
    "connections",
    "models_catalog",
    "usage",
    "assistant",
    "billing",
    "dashboard",
]

# Under ASGI, config.asgi loads Django's own classes here through core.inline_middleware.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.StaticFilesMiddleware",  # WhiteNoise, async-capable for ASGI
    "core.csp.CSPMiddleware",
    "core.middleware.refuse_nul_characters",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "core.context_processors.kay",
                "dashboard.context_processors.navigation",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'kay.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server, worker and beat share one file; IMMEDIATE avoids
    # "database is locked" on write upgrades.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's, with a COMMIT that can say it need not wait for the disk (core/db).
        DATABASES["default"]["ENGINE"] = "core.db.postgresql"
    # 0 by default: a connection is closed at each request's and task's end (back to the
    # pool with DATABASE_POOL_SIZE, which is how Kay keeps connections).
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # The statements core.prepared compiles once are also prepared by PostgreSQL once per
    # connection, and planned once: left to choose, PostgreSQL planned the run's claim
    # (a join of five tables) afresh every time, 0.7 ms against 0.1 ms to run it. They are
    # lookups by key, whose generic plan is the one it would pick; Django's own queries stay
    # client-side bound, never prepared. Off behind a pooler that cannot keep prepared
    # statements (PgBouncer in transaction mode before 1.21), as Django's default is.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        _options["prepare_threshold"] = 5
        _options["options"] = f"{_options.get('options', '')} -c plan_cache_mode=force_generic_plan"
    else:
        _options["prepare_threshold"] = None
    # A pool per process (psycopg_pool): a closed connection goes back to it instead of
    # away, so a request or task does not pay PostgreSQL's connection setup (~10 ms).
    if DATABASE_POOL_SIZE := env.int("DATABASE_POOL_SIZE", default=0):
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django's pool requires it
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DATABASE_POOL_SIZE,
            "timeout": 30,
        }
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db("DATABASE_REPLICA_URL")
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: Redis when configured, else the database, so limits hold across processes ---
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.SharedPoolRedisCache",  # one pool per process (ASGI)
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "kay",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "kay_cache",
        }
    }

# --- Accounts and allauth ---------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard:overview"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
# Accounts made by a CLI sign-in have no password: they sign in with an emailed code.
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Kay] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = _app.scheme or "https"
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_LOGIN_ON_GET = False
GOOGLE_CLIENT_ID = env.str("GOOGLE_CLIENT_ID", default="")
GOOGLE_CLIENT_SECRET = env.str("GOOGLE_CLIENT_SECRET", default="")
SOCIALACCOUNT_PROVIDERS: dict = {}
if GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET:
    SOCIALACCOUNT_PROVIDERS["google"] = {
        "APP": {"client_id": GOOGLE_CLIENT_ID, "secret": GOOGLE_CLIENT_SECRET, "key": ""},
        "SCOPE": ["profile", "email"],
        "AUTH_PARAMS": {"access_type": "online"},
        "EMAIL_AUTHENTICATION": True,
    }
FAKE_LOGIN_ADMIN_DOMAIN = env.str("FAKE_LOGIN_ADMIN_DOMAIN", default="admin.example.com")

# --- Email ------------------------------------------------------------------------------
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
elif IS_PRODUCTION:
    raise ImproperlyConfigured(
        "EMAIL_URL is not set: production sends confirmation and reset emails over SMTP "
        "(e.g. smtp+tls://user:password@smtp.example.com:587)"
    )
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
# Seconds an SMTP connection may block. Without it a mail server that stops answering
# hangs its caller for good: a sign-up request, or a budget alert inside the transaction
# whose unique row every other evaluator of that owner waits on.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Kay <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Internationalisation, static files ---------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every request otherwise
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security ---------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): only our own files run or style the pages; the one
# inline script (Swagger UI's set-up) carries the per-request nonce. core.csp adds the
# OAuth servers that the connect and Google sign-in forms redirect to, to form-action.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF, csp.NONCE],
        "style-src": [csp.SELF],
        "img-src": [csp.SELF, "data:"],
        "connect-src": [csp.SELF],
        "object-src": [csp.NONE],
        "base-uri": [csp.NONE],
        "frame-ancestors": [csp.NONE],
        "form-action": [csp.SELF],
    },
}
# Proxies in front of Kay that append to X-Forwarded-For (core.clientip); 0 ignores it.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more")
# Where those proxies connect from: the header is read only from a peer in these networks,
# so a client that reaches Kay's port directly cannot forge its address.
TRUSTED_PROXY_NETWORKS = env.list(
    "TRUSTED_PROXY_NETWORKS",
    default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
)
for _network in TRUSTED_PROXY_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXY_NETWORKS: {_network!r} is not a network (e.g. 10.0.0.0/8)"
        ) from None
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- REST API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSON parser, refusing deep nesting and lone surrogates with a 400.
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "core.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": [
        "core.throttling.AnonThrottle",
        "core.throttling.UserThrottle",
    ],
    # For DRF's own throttle classes used directly; ours read core.clientip.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_ANON_RATE", default="120/min"),
        "user": env.str("API_USER_RATE", default="1200/min"),
    },
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Kay API",
    "DESCRIPTION": "Key vault, usage, model catalog, connections and assistant API for the "
    '`kay` CLI and editor extensions. Errors are `{"error": {"code", "message"}}`.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No badge from validator.swagger.io: the docs page loads nothing from elsewhere. No deep
    # links: Swagger UI puts them inside the operation's expand button (nested controls).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -----------------------------------------------------------------------------
# Redis when configured; otherwise brokers that need no server, in files under var/, so
# the default really runs tasks in a separate worker process.
CELERY_BROKER_URL = REDIS_URL or f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
CELERY_RESULT_BACKEND = REDIS_URL or f"db+sqlite:///{VAR_DIR / 'celery-results.sqlite3'}"
# kombu's Redis transport, keeping one client per channel (core/celery_redis.py); only
# for a plain redis:// URL (rediss:// and sentinel keep kombu's own, with their checks).
if REDIS_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "core.celery_redis:Transport"

CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Assistant runs are latency-sensitive: their own queue, so slow fetches never delay them
# (workers consume it with -Q celery,assistant; see the Procfile).
CELERY_TASK_ROUTES = {"assistant.tasks.assistant_run_execute": {"queue": "assistant"}}
# Declared in code; django-celery-beat copies them into the database at start-up so
# operators can see, pause and edit them in the admin.
from celery.schedules import crontab  # noqa: E402

CELERY_BEAT_SCHEDULE = {
    "purge-expired-web-sessions": {
        "task": "core.tasks.purge_expired_web_sessions",
        "schedule": 24 * 3600,
    },
    "keys-revalidate-nightly": {
        "task": "keys.tasks.revalidate_keys",
        "schedule": crontab(hour=3, minute=17),
    },
    "models-catalog-sync": {
        "task": "models_catalog.tasks.sync_models",
        "schedule": crontab(minute=23, hour="*/6"),
    },
    "connections-refresh-expiring": {
        "task": "connections.tasks.refresh_expiring_connections",
        "schedule": 10 * 60,
    },
    "connections-purge-expired-auth": {
        "task": "connections.tasks.purge_expired_auth_records",
        "schedule": 3600,
    },
    "assistant-purge-confirmations": {
        "task": "assistant.tasks.purge_confirmations",
        "schedule": 3600,
    },
    "assistant-purge-run-events": {
        "task": "assistant.tasks.purge_run_events",
        "schedule": 3600,
    },
    # Runs whose worker died (still running past CELERY_TASK_TIME_LIMIT) fail and end.
    "assistant-reap-runs": {
        "task": "assistant.tasks.reap_runs",
        "schedule": 60,
    },
    "usage-fetch-all": {
        "task": "usage.tasks.fetch_usage_all",
        "schedule": 15 * 60,
    },
    "usage-evaluate-budgets": {
        "task": "usage.tasks.evaluate_budgets",
        "schedule": 15 * 60,
    },
}
HEALTH_WORKER_TIMEOUT = env.float("HEALTH_WORKER_TIMEOUT", default=3.0)
# Blocks other apps add to GET /health: name -> a callable taking ``user`` (core imports
# no feature app, so they are named here).
HEALTH_CHECKS = {"mcp_jira": "assistant.services.mcp.assistant_mcp_health"}

# --- Outside services (every address is a setting so tests can point at fakes) ----------
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="https://api.openai.com/v1")
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-4o-mini")
OPENAI_MAX_TOKENS = env.int("OPENAI_MAX_TOKENS", default=2000)
OPENAI_TEMPERATURE = env.float("OPENAI_TEMPERATURE", default=0.7)
OPENAI_TIMEOUT = env.float("OPENAI_TIMEOUT", default=60.0)
# The SDK's own retries (with backoff) on 429/5xx/connection errors before Kay gives up.
OPENAI_MAX_RETRIES = env.int("OPENAI_MAX_RETRIES", default=2)
# Assistant: model rounds per /ask before it stops with "tool-round limit reached"; the
# conversation history (interactive sessions) kept within this many estimated tokens.
ASSISTANT_MAX_TOOL_ROUNDS = env.int("ASSISTANT_MAX_TOOL_ROUNDS", default=8)
ASSISTANT_HISTORY_TOKENS = env.int("ASSISTANT_HISTORY_TOKENS", default=24000)
# /ask and /ask/confirm wait this many seconds for the worker's run, then answer 202 with
# the run id to poll at GET /ask/runs/<id> (the wait is async: it holds no web thread).
ASK_SYNC_TIMEOUT = env.float("ASK_SYNC_TIMEOUT", default=120.0)
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="https://api.anthropic.com")
GEMINI_BASE_URL = env.str("GEMINI_BASE_URL", default="https://generativelanguage.googleapis.com")
OPENROUTER_BASE_URL = env.str("OPENROUTER_BASE_URL", default="https://openrouter.ai/api/v1")
OPENROUTER_API_KEY = env.str("OPENROUTER_API_KEY", default="")
MISTRAL_BASE_URL = env.str("MISTRAL_BASE_URL", default="https://api.mistral.ai/v1")
GROQ_BASE_URL = env.str("GROQ_BASE_URL", default="https://api.groq.com/openai/v1")
EXA_BASE_URL = env.str("EXA_BASE_URL", default="https://api.exa.ai")
COPILOTKIT_BASE_URL = env.str("COPILOTKIT_BASE_URL", default="https://api.cloud.copilotkit.ai")
ATLASSIAN_CLIENT_ID = env.str("ATLASSIAN_CLIENT_ID", default="")
ATLASSIAN_CLIENT_SECRET = env.str("ATLASSIAN_CLIENT_SECRET", default="")
ATLASSIAN_CALLBACK_URL = env.str(
    "ATLASSIAN_CALLBACK_URL", default=f"{APP_URL}/connections/oauth/callback"
)
ATLASSIAN_AUTH_URL = env.str("ATLASSIAN_AUTH_URL", default="https://auth.atlassian.com")
ATLASSIAN_API_URL = env.str("ATLASSIAN_API_URL", default="https://api.atlassian.com")
BITBUCKET_CLIENT_ID = env.str("BITBUCKET_CLIENT_ID", default="")
BITBUCKET_CLIENT_SECRET = env.str("BITBUCKET_CLIENT_SECRET", default="")
BITBUCKET_CALLBACK_URL = env.str(
    "BITBUCKET_CALLBACK_URL", default=f"{APP_URL}/connections/oauth/callback"
)
BITBUCKET_AUTH_URL = env.str("BITBUCKET_AUTH_URL", default="https://bitbucket.org/site/oauth2")
BITBUCKET_API_URL = env.str("BITBUCKET_API_URL", default="https://api.bitbucket.org/2.0")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
# --- Billing (issue 12): credit packs in whole dollars, amounts in dollars ---------------
BILLING_CREDIT_PACKS = env.list("BILLING_CREDIT_PACKS", cast=int, default=[10, 25, 100])
BILLING_STARTER_GRANT_USD = env.str("BILLING_STARTER_GRANT_USD", default="1.00")  # 0: none
BILLING_MARGIN_PERCENT = env.str("BILLING_MARGIN_PERCENT", default="0")
BILLING_LOW_BALANCE_USD = env.str("BILLING_LOW_BALANCE_USD", default="0.50")
# Held from the balance before each LLM call on the server's key, then settled to its cost.
BILLING_RESERVE_USD = env.str("BILLING_RESERVE_USD", default="0.50")
MCP_JIRA_ENABLED = env.bool("MCP_JIRA_ENABLED", default=True)
# stdio: by default the mcp-atlassian that `make mcp-atlassian` installs in its own venv
# (it needs mcp<2); `--env-file /dev/null` stops it loading a .env found above its folder.
MCP_JIRA_COMMAND = env.str("MCP_JIRA_COMMAND", default="") or str(
    BASE_DIR / "var" / "mcp-atlassian" / "bin" / "mcp-atlassian"
)
MCP_JIRA_ARGS = env.list("MCP_JIRA_ARGS", default=["--env-file", "/dev/null"])
# JIRA_URL given to a stdio server: any Atlassian Cloud address routes by the user's cloud id.
MCP_JIRA_SITE_URL = env.str("MCP_JIRA_SITE_URL", default="https://api.atlassian.com")
MCP_JIRA_URL = env.str("MCP_JIRA_URL", default="")
# Deletions, and the tools that download attachments (up to 50 MB each, base64, into the
# worker's memory; images reach the model only as "[image content]"). Case-insensitive.
MCP_JIRA_DISABLED_TOOLS = env.list(
    "MCP_JIRA_DISABLED_TOOLS",
    default=[
        "jira_delete_issue",
        "confluence_delete_page",
        "jira_download_attachments",
        "jira_get_issue_images",
        "confluence_download_attachment",
        "confluence_download_content_attachments",
        "confluence_get_page_images",
    ],
)
MCP_TIMEOUT = env.float("MCP_TIMEOUT", default=30.0)
MCP_POOL_SIZE = env.int("MCP_POOL_SIZE", default=20)
MCP_IDLE_TIMEOUT = env.float("MCP_IDLE_TIMEOUT", default=300.0)

# --- Tokens -----------------------------------------------------------------------------
CLI_SESSION_EXPIRES_IN = _duration("CLI_SESSION_EXPIRES_IN", "30m")
CLI_REFRESH_TOKEN_EXPIRES_IN = _duration("CLI_REFRESH_TOKEN_EXPIRES_IN", "7d")
API_TOKEN_EXPIRES_IN = _duration("API_TOKEN_EXPIRES_IN", "30d")
API_TOKEN_VERSION = env.int("API_TOKEN_VERSION", default=3)
# Most usable (unrevoked, unexpired) personal API tokens one account can hold.
MAX_API_TOKENS_PER_USER = env.int("MAX_API_TOKENS_PER_USER", default=50)

# --- Key vault (keys app) ---------------------------------------------------------------
# Per-user limits, "N/s|min|hour|day": backend fetches of decrypted keys, and key checks
# against providers (each check is a real call to the provider).
KEYS_FETCH_RATE = env.str("KEYS_FETCH_RATE", default="600/min")
# Per client address: wrong server secrets on /api/keys/fetch before it answers 429.
KEYS_FETCH_FAILURE_RATE = env.str("KEYS_FETCH_FAILURE_RATE", default="10/min")
KEYS_VALIDATION_RATE = env.str("KEYS_VALIDATION_RATE", default="30/hour")
KEYS_VALIDATION_TIMEOUT = env.float("KEYS_VALIDATION_TIMEOUT", default=8.0)
# OpenAI-compatible base URLs may point at private/loopback addresses (a model server on
# this machine) only with DEBUG, so a key check cannot reach or probe internal services.
KEYS_ALLOW_PRIVATE_BASE_URLS = env.bool("KEYS_ALLOW_PRIVATE_BASE_URLS", default=DEBUG)
if KEYS_ALLOW_PRIVATE_BASE_URLS and not DEBUG:
    raise ImproperlyConfigured(
        "KEYS_ALLOW_PRIVATE_BASE_URLS=true needs DEBUG=true: outside development, key "
        "checks must not reach private addresses"
    )
# Most projects and keys one account can create (a bound on what one sign-up can store).
MAX_PROJECTS_PER_USER = env.int("MAX_PROJECTS_PER_USER", default=100)
MAX_KEYS_PER_USER = env.int("MAX_KEYS_PER_USER", default=500)

# --- Usage (usage app) ------------------------------------------------------------------
# Per user and key: "Fetch now" on the Usage page ("N/s|min|hour|day"); the schedule
# fetches every key every 15 minutes anyway.
USAGE_FETCH_NOW_RATE = env.str("USAGE_FETCH_NOW_RATE", default="6/hour")
# Scheduled fetches running at once per provider, across all workers (slots in the cache).
# Each admin key is another organisation with its own rate limits, so the cap guards our
# workers and egress, not one account: 16 connections to a provider is modest, and lets a
# round of 500 keys at ~100 ms a request finish >10x sooner than one by one (8 cannot).
USAGE_FETCH_CONCURRENCY = env.int("USAGE_FETCH_CONCURRENCY", default=16)

# --- Connections, CLI sessions and JWTs (issue 4) ------------------------------------------
# A CLI refresh-token family ends this long after sign-in, however often it is refreshed.
CLI_SESSION_ABSOLUTE_LIFETIME = _duration("CLI_SESSION_ABSOLUTE_LIFETIME", "30d")
# Device login (RFC 8628): how long a user code is valid and the minimum polling interval.
DEVICE_CODE_EXPIRES_IN = _duration("DEVICE_CODE_EXPIRES_IN", "15m")
DEVICE_CODE_INTERVAL = env.int("DEVICE_CODE_INTERVAL", default=5)
# What simplejwt's Token reads for our own token classes (accounts/tokens.py sets each
# token's lifetime from the settings above; its views and authentication are not used).
SIMPLE_JWT = {
    "ALGORITHM": "HS256",
    "SIGNING_KEY": SECRET_KEY,
    "ISSUER": "kay",
}

# --- Logging: readable in development, JSON lines in production, always redacted ---------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if not DEBUG else "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "core.logging.RedactSecretsFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's default "django" handlers print django.request and django.security
        # lines ("Not Found: /auth/status/<state>") unfiltered while DEBUG is on: none,
        # so they reach the root's redacting handler.
        "django": {"handlers": [], "level": "INFO"},
        "django.db.backends": {"level": "INFO"},
        # runserver's access log: Django's default handler prints query strings
        # (session_id, code, state) unfiltered, so it goes through ours instead.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "celery": {"level": LOG_LEVEL},
        # The stripe SDK logs every request and Stripe's error text at INFO; billing logs
        # what Kay needs (status and code), so only the SDK's own warnings get through.
        "stripe": {"level": "WARNING"},
    },
}
