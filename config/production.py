"""The security settings, and production mode's refusal to start without them.

`LOUPE_PRODUCTION=1` turns production mode on: every setting below must then be safe, and one that
is not raises `ImproperlyConfigured` at start naming its environment variable. Without it (`make
run`, the tests) the development defaults stay. `config.settings` takes the whole dict that
`security_settings` returns; the variables are listed in the README's "Production settings".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.http.request import validate_host

DEVELOPMENT_SECRET_KEY = "loupe-embedded-development-key-change-me"
DEVELOPMENT_PUBLIC_URL = "http://localhost:8000"
MINIMUM_SECRET_KEY_LENGTH = 50
ONE_YEAR_SECONDS = 365 * 24 * 3600
# Reached over plain HTTP on the internal network even with the redirect to HTTPS on: nginx's and
# the orchestrator's probes (/api/v1/health) and Prometheus scraping each web process (/metrics).
# Patterns match the path without its leading slash (Django's SECURE_REDIRECT_EXEMPT).
PLAIN_HTTP_PATHS = [r"^api/v1/health$", r"^metrics$"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: expected 1 or 0 (true/false, yes/no, on/off)")


def _comma_list(environ: Mapping[str, str], name: str) -> list[str]:
    return [item.strip() for item in environ.get(name, "").split(",") if item.strip()]


def _secret_key(environ: Mapping[str, str], *, production: bool) -> str:
    path = environ.get("DJANGO_SECRET_KEY_FILE", "").strip()
    if path:
        try:
            key = Path(path).read_text().strip()
        except OSError as error:
            raise ImproperlyConfigured(f"DJANGO_SECRET_KEY_FILE={path}: cannot be read ({error})") from error
        variable = "DJANGO_SECRET_KEY_FILE"
    else:
        key = environ.get("DJANGO_SECRET_KEY", "").strip()
        variable = "DJANGO_SECRET_KEY"
    if not production:
        return key or DEVELOPMENT_SECRET_KEY
    if not key:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set (nor DJANGO_SECRET_KEY_FILE): production needs its own secret key"
        )
    if key == DEVELOPMENT_SECRET_KEY:
        raise ImproperlyConfigured(f"{variable} is the development default: production needs its own")
    # Django's own deploy check (security.W009) asks the same of a key.
    if len(key) < MINIMUM_SECRET_KEY_LENGTH or len(set(key)) < 5:
        raise ImproperlyConfigured(
            f"{variable} is too weak: at least {MINIMUM_SECRET_KEY_LENGTH} random characters are needed"
        )
    return key


def _allowed_hosts(environ: Mapping[str, str], *, production: bool) -> list[str]:
    hosts = _comma_list(environ, "DJANGO_ALLOWED_HOSTS")
    if not production:
        return hosts or ["*"]
    if not hosts:
        raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS is not set: production names the hosts it answers")
    if "*" in hosts:
        raise ImproperlyConfigured(
            "DJANGO_ALLOWED_HOSTS contains '*': production names its host names (a request's Host "
            "header would otherwise be trusted)"
        )
    return hosts


def _public_url(environ: Mapping[str, str], *, production: bool, allowed_hosts: list[str]) -> str:
    url = environ.get("LOUPE_PUBLIC_URL", "").strip().rstrip("/")
    if not production:
        return url or DEVELOPMENT_PUBLIC_URL
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ImproperlyConfigured(
            f"LOUPE_PUBLIC_URL={url!r}: production needs the https:// address people reach Loupe at"
        )
    if not validate_host(parts.hostname, allowed_hosts):
        raise ImproperlyConfigured(f"LOUPE_PUBLIC_URL's host {parts.hostname} is not in DJANGO_ALLOWED_HOSTS")
    return url


def _secure_cookie(environ: Mapping[str, str], name: str, production: bool) -> bool:
    secure = _flag(environ, name, production)
    if production and not secure:
        raise ImproperlyConfigured(f"{name} is off: production sends its cookies over HTTPS only")
    return secure


def security_settings(environ: Mapping[str, str]) -> dict[str, object]:
    """Django's security settings from `environ`; `ImproperlyConfigured` naming the variable of
    any that production mode cannot start with."""
    production = _flag(environ, "LOUPE_PRODUCTION", False)
    debug = _flag(environ, "DJANGO_DEBUG", False)
    if production and debug:
        raise ImproperlyConfigured("DJANGO_DEBUG is on: production never runs with DEBUG")
    allowed_hosts = _allowed_hosts(environ, production=production)
    public_url = _public_url(environ, production=production, allowed_hosts=allowed_hosts)
    public = urlsplit(public_url)
    trusted_origins = _comma_list(environ, "DJANGO_CSRF_TRUSTED_ORIGINS")
    if production and not trusted_origins:
        trusted_origins = [f"{public.scheme}://{public.netloc}"]
    hsts_seconds = environ.get("DJANGO_SECURE_HSTS_SECONDS", "").strip()
    try:
        hsts = int(hsts_seconds) if hsts_seconds else (ONE_YEAR_SECONDS if production else 0)
    except ValueError:
        raise ImproperlyConfigured(
            f"DJANGO_SECURE_HSTS_SECONDS={hsts_seconds!r}: expected a number of seconds"
        ) from None
    return {
        "LOUPE_PRODUCTION": production,
        "DEBUG": debug,
        "SECRET_KEY": _secret_key(environ, production=production),
        "ALLOWED_HOSTS": allowed_hosts,
        "LOUPE_PUBLIC_URL": public_url,
        "CSRF_TRUSTED_ORIGINS": trusted_origins,
        "SECURE_PROXY_SSL_HEADER": (
            ("HTTP_X_FORWARDED_PROTO", "https") if _flag(environ, "LOUPE_BEHIND_TLS_PROXY", False) else None
        ),
        "SESSION_COOKIE_SECURE": _secure_cookie(environ, "DJANGO_SESSION_COOKIE_SECURE", production),
        "CSRF_COOKIE_SECURE": _secure_cookie(environ, "DJANGO_CSRF_COOKIE_SECURE", production),
        "SESSION_COOKIE_HTTPONLY": True,
        "SECURE_SSL_REDIRECT": _flag(environ, "DJANGO_SECURE_SSL_REDIRECT", production),
        "SECURE_REDIRECT_EXEMPT": PLAIN_HTTP_PATHS,
        "SECURE_HSTS_SECONDS": hsts,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": _flag(environ, "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", production),
        "SECURE_HSTS_PRELOAD": _flag(environ, "DJANGO_SECURE_HSTS_PRELOAD", False),
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "X_FRAME_OPTIONS": "DENY",
    }
