"""Every refusal on /api/ is JSON naming the problem, whatever raised it.

- `api_exception_handler` (DRF's `EXCEPTION_HANDLER`): Django's own refusals of a request it
  would not parse (`RequestDataTooBig`: the form's text fields over `DATA_UPLOAD_MAX_MEMORY_SIZE`;
  too many fields) become a JSON 413 or 400 naming the limit, instead of Django's HTML 400; a
  database that is down or restarting is a JSON 503 with Retry-After (the line sends again).
- `inspection.parsers.JSONParser`, every view's: a JSON body nested too deep is a 400, not a 500.
- `ApiErrorsAsJson` (middleware): any other error answer under /api/ (a URL with no endpoint,
  a server error) is JSON too, never Django's HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

API_PREFIX = "/api/"
logger = logging.getLogger(__name__)


# A line retries after this many seconds when the database is away (a restart, a fail-over).
DATABASE_RETRY_AFTER_SECONDS = 5


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is down or restarting: nothing of the request was committed, so the client
        # may send it again (the line does, with its Idempotency-Key). A 503, never an HTML 500.
        logger.warning("Database unavailable for %s: %s", context["request"].path, exc)
        return Response(
            {"detail": "the database is unavailable; retry shortly", "code": "database_unavailable"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {
                "detail": f"the request's fields other than files are over {limit:,} bytes "
                f"(DATA_UPLOAD_MAX_MEMORY_SIZE); metadata is at most {settings.LOUPE_MAX_METADATA_BYTES:,} "
                "bytes (LOUPE_MAX_METADATA_BYTES)",
                "code": "fields_too_large",
                "limit": limit,
            },
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, TooManyFieldsSent):
        return Response(
            {
                "detail": f"the request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} fields",
                "code": "too_many_fields",
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, SuspiciousOperation):
        return Response({"detail": str(exc), "code": "bad_request"}, status=status.HTTP_400_BAD_REQUEST)
    return exception_handler(exc, context)


class ApiErrorsAsJson:
    """An error answer under /api/ that Django made (its 404 or 500 page) is replaced by JSON
    naming its status; DRF's own answers (JSON, or its browsable page for a browser) are kept."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith(API_PREFIX)
            and response.status_code >= 400
            and not isinstance(response, Response)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            detail = (
                f"no API endpoint at {request.path}"
                if response.status_code == 404
                else response.reason_phrase.lower()
            )
            return JsonResponse({"detail": detail}, status=response.status_code)
        return response
