"""The pages' Content-Security-Policy: they load everything from this server and run no inline
script or style, so the browser refuses anything injected (a stored comment's markup, a crafted
link) and anything from elsewhere. A view that needs another policy sets its own header (the
API reference, `config.views.ApiReference`); this middleware leaves such a header as it is."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._async_call(request)
        return self._with_policy(self.get_response(request))

    async def _async_call(self, request: HttpRequest) -> HttpResponse:
        return self._with_policy(await self.get_response(request))

    @staticmethod
    def _with_policy(response: HttpResponse) -> HttpResponse:
        if settings.LOUPE_CONTENT_SECURITY_POLICY and HEADER not in response:
            response[HEADER] = settings.LOUPE_CONTENT_SECURITY_POLICY
        return response
