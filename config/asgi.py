"""ASGI entry point: HTTP through Django (its body capped first), the line's unit posts on a pool of
threads (config.line_http), WebSockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from config.line_http import PooledHandler, is_line_post  # noqa: E402
from config.request_limits import RequestBodyLimit  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

line_app = PooledHandler(threads=settings.LOUPE_LINE_THREADS)


async def http(scope, receive, send) -> None:
    app = line_app if is_line_post(scope) else django_asgi_app
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": RequestBodyLimit(http),
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)

# What is loaded by now (Django, DRF, the URL conf, the models) lives as long as the process: kept
# out of the garbage collector's generations, its full collections under load take about half as
# long (0.53 → 0.31 s of each 1,100 units, measured).
gc.freeze()
