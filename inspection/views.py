"""HTTP views of the inspection app that are not part of the line API proper."""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """`GET /api/v1/health`, unauthenticated: 200 when the database, Redis and the active model
    all answer, else 503. Each check reports `ok` and a `detail` naming what failed.
    """
    checks = readiness_checks()
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )


def readiness_checks() -> dict[str, dict[str, Any]]:
    """Database, Redis and active model: each `{"ok": bool, "detail": str}`."""
    return {"database": _check_database(), "redis": _check_redis(), "model": _check_model()}


def _check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        return {"ok": False, "detail": f"database unreachable: {error}"}
    return {"ok": True, "detail": connection.vendor}


def _check_redis() -> dict[str, Any]:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        return {"ok": False, "detail": f"Redis unreachable: {error}"}
    finally:
        client.close()
    return {"ok": True, "detail": "PONG"}


def _check_model() -> dict[str, Any]:
    # Imported here: the registry pulls in the model code, which the health route must not
    # require just to be routed.
    from models_registry.selectors import model_version_active
    from models_registry.services import predictor_get

    try:
        model_version = model_version_active()
    except DatabaseError as error:
        return {"ok": False, "detail": f"active model version unreadable: {error}"}
    if model_version is None:
        return {"ok": False, "detail": "no active model version"}
    try:
        predictor_get(model_version=model_version)
    except Exception as error:  # any failure to load means "not ready"; reported, and logged
        logger.exception("Health check: the active model %s could not be loaded", model_version)
        return {"ok": False, "detail": f"model {model_version} not loadable: {error}"}
    return {"ok": True, "detail": str(model_version)}
