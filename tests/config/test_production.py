"""Production mode (config.production): refusals naming their variable, `check --deploy` clean,
links on LOUPE_PUBLIC_URL, media only through authorised views, HTTPS behind a TLS proxy."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from config.production import DEVELOPMENT_SECRET_KEY
from inspection.models import Unit
from tests.inspection.factories import person, posted_unit, signed_in

REPOSITORY = Path(__file__).resolve().parents[2]
PUBLIC_URL = "https://loupe.example.com"
PRODUCTION = {
    "LOUPE_PRODUCTION": "1",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
    "DJANGO_ALLOWED_HOSTS": "loupe.example.com",
    "LOUPE_PUBLIC_URL": PUBLIC_URL,
    "LOUPE_BEHIND_TLS_PROXY": "1",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
}
PRINT_SECURITY = """
import json
from django.conf import settings
names = ["DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "SECURE_PROXY_SSL_HEADER", "SESSION_COOKIE_SECURE",
         "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
         "X_FRAME_OPTIONS", "LOUPE_PUBLIC_URL", "SECRET_KEY"]
print(json.dumps({name: getattr(settings, name) for name in names}))
"""


def _run(arguments: list[str], environment: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    inherited = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=REPOSITORY,
        env={
            **inherited,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LOUPE_DATA_DIR": str(tmp_path),
            **environment,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def _security_settings(environment: dict[str, str], tmp_path: Path) -> dict:
    completed = _run(["-c", PRINT_SECURITY], environment, tmp_path)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_check_deploy_passes_in_production_mode(tmp_path):
    completed = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION, tmp_path)

    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_production_mode_sets_https_from_the_environment(tmp_path):
    loaded = _security_settings(PRODUCTION, tmp_path)

    assert loaded["DEBUG"] is False
    assert loaded["ALLOWED_HOSTS"] == ["loupe.example.com"]
    assert loaded["CSRF_TRUSTED_ORIGINS"] == [PUBLIC_URL]
    assert loaded["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert loaded["SESSION_COOKIE_SECURE"] is True and loaded["CSRF_COOKIE_SECURE"] is True
    assert loaded["SECURE_SSL_REDIRECT"] is True
    assert loaded["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert loaded["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert loaded["X_FRAME_OPTIONS"] == "DENY"


def test_production_mode_reads_the_secret_key_from_a_file_and_takes_explicit_origins(tmp_path):
    key_file = tmp_path / "secret"
    key_file.write_text(secrets.token_urlsafe(60) + "\n")
    environment = {
        **PRODUCTION,
        "DJANGO_SECRET_KEY": "",
        "DJANGO_SECRET_KEY_FILE": str(key_file),
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://loupe.example.com, https://loupe.example.com:8443",
        "DJANGO_SECURE_HSTS_SECONDS": "3600",
    }

    loaded = _security_settings(environment, tmp_path)

    assert loaded["SECRET_KEY"] == key_file.read_text().strip()
    assert loaded["CSRF_TRUSTED_ORIGINS"] == [PUBLIC_URL, "https://loupe.example.com:8443"]
    assert loaded["SECURE_HSTS_SECONDS"] == 3600


def test_without_production_mode_the_development_defaults_stay(tmp_path):
    loaded = _security_settings({}, tmp_path)

    assert loaded["ALLOWED_HOSTS"] == ["*"]
    assert loaded["SESSION_COOKIE_SECURE"] is False and loaded["SECURE_SSL_REDIRECT"] is False
    assert loaded["SECURE_HSTS_SECONDS"] == 0
    assert loaded["LOUPE_PUBLIC_URL"] == "http://localhost:8000"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY is not set"),
        ({"DJANGO_SECRET_KEY": DEVELOPMENT_SECRET_KEY}, "DJANGO_SECRET_KEY is the development default"),
        ({"DJANGO_SECRET_KEY": "short-key"}, "DJANGO_SECRET_KEY is too weak"),
        ({"DJANGO_SECRET_KEY": "", "DJANGO_SECRET_KEY_FILE": "/no/such/secret"}, "DJANGO_SECRET_KEY_FILE="),
        ({"DJANGO_ALLOWED_HOSTS": ""}, "DJANGO_ALLOWED_HOSTS is not set"),
        ({"DJANGO_ALLOWED_HOSTS": "loupe.example.com,*"}, "DJANGO_ALLOWED_HOSTS contains '*'"),
        ({"DJANGO_SESSION_COOKIE_SECURE": "0"}, "DJANGO_SESSION_COOKIE_SECURE is off"),
        ({"DJANGO_CSRF_COOKIE_SECURE": "false"}, "DJANGO_CSRF_COOKIE_SECURE is off"),
        ({"DJANGO_DEBUG": "1"}, "DJANGO_DEBUG is on"),
        ({"LOUPE_PUBLIC_URL": "http://loupe.example.com"}, "LOUPE_PUBLIC_URL='http://loupe.example.com'"),
        ({"LOUPE_PUBLIC_URL": ""}, "LOUPE_PUBLIC_URL=''"),
        ({"LOUPE_PUBLIC_URL": "https://elsewhere.example.com"}, "not in DJANGO_ALLOWED_HOSTS"),
        ({"DJANGO_SECURE_HSTS_SECONDS": "a year"}, "DJANGO_SECURE_HSTS_SECONDS='a year'"),
        ({"DJANGO_SECURE_SSL_REDIRECT": "maybe"}, "DJANGO_SECURE_SSL_REDIRECT='maybe'"),
    ],
)
def test_production_mode_refuses_to_start_insecurely_naming_the_variable(tmp_path, change, named):
    completed = _run(["manage.py", "check"], {**PRODUCTION, **change}, tmp_path)

    assert completed.returncode != 0
    assert "ImproperlyConfigured" in completed.stderr
    assert named in completed.stderr, completed.stderr


@pytest.mark.django_db
def test_the_password_reset_link_is_on_the_public_url_whatever_the_host_header(settings):
    settings.LOUPE_PUBLIC_URL = PUBLIC_URL
    User.objects.create_user("ines", email="ines@example.com", password="pw")

    response = Client().post(
        "/accounts/password_reset/", {"email": "ines@example.com"}, HTTP_HOST="attacker.example.net"
    )

    assert response.status_code == 302
    (message,) = mail.outbox
    links = re.findall(r"https?://\S+", message.body)
    assert links and all(link.startswith(f"{PUBLIC_URL}/accounts/reset/") for link in links), message.body
    assert "attacker.example.net" not in message.body + message.subject


@pytest.mark.django_db
def test_media_files_are_only_served_through_the_authorised_image_view(
    media_root, make_station, device_client
):
    unit_id = posted_unit(device_client(make_station()))["id"]
    stored_name = Unit.objects.get(pk=unit_id).image.name
    inspector = signed_in(person("ines", "inspector"))

    assert inspector.get(f"/media/{stored_name}").status_code == 404
    assert Client().get(f"/api/v1/units/{unit_id}/image").status_code in (401, 403)
    no_role = signed_in(User.objects.create_user("nobody"))
    assert no_role.get(f"/api/v1/units/{unit_id}/image").status_code == 403
    allowed = inspector.get(f"/api/v1/units/{unit_id}/image")
    assert allowed.status_code == 200 and allowed["Content-Type"].startswith("image/")


@pytest.fixture
def behind_the_proxy(settings):
    """The production settings of PRODUCTION that matter to a request, in this process."""
    settings.ALLOWED_HOSTS = ["loupe.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = [PUBLIC_URL]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    user = User.objects.create_user("ines", password="pw")
    browser = Client(enforce_csrf_checks=True, HTTP_HOST="loupe.example.com")
    browser.force_login(user)
    assert browser.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https").status_code == 200
    return browser


@pytest.mark.django_db
def test_behind_the_tls_proxy_an_https_post_passes_csrf_with_the_trusted_origin(behind_the_proxy):
    token = behind_the_proxy.cookies["csrftoken"].value

    through_the_proxy = behind_the_proxy.post(
        "/accounts/logout/", HTTP_X_FORWARDED_PROTO="https", HTTP_ORIGIN=PUBLIC_URL, HTTP_X_CSRFTOKEN=token
    )
    plain_http = behind_the_proxy.post("/accounts/logout/", HTTP_ORIGIN=PUBLIC_URL, HTTP_X_CSRFTOKEN=token)

    assert through_the_proxy.status_code == 302 and through_the_proxy["Location"] == "/accounts/login/"
    assert plain_http.status_code == 301 and plain_http["Location"] == f"{PUBLIC_URL}/accounts/logout/"


@pytest.mark.django_db
def test_behind_the_tls_proxy_a_post_from_another_origin_is_still_refused(behind_the_proxy):
    token = behind_the_proxy.cookies["csrftoken"].value

    response = behind_the_proxy.post(
        "/accounts/logout/",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_ORIGIN="https://attacker.example.net",
        HTTP_X_CSRFTOKEN=token,
    )

    assert response.status_code == 403


@pytest.mark.django_db
def test_the_health_endpoint_answers_plain_http_with_the_ssl_redirect_on(settings):
    settings.SECURE_SSL_REDIRECT = True

    assert Client().get("/api/v1/health").status_code in (200, 503)
    assert Client().get("/metrics").status_code != 301
    assert Client().get("/accounts/login/").status_code == 301


def test_an_unknown_torch_device_stops_the_start_naming_the_variable(tmp_path):
    completed = _run(["manage.py", "check"], {"LOUPE_TORCH_DEVICE": "gpu"}, tmp_path)

    assert completed.returncode != 0
    assert "LOUPE_TORCH_DEVICE='gpu': expected auto, cpu" in completed.stderr, completed.stderr
