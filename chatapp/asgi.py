"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapp.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from chatapp import serving  # noqa: E402
from chatapp.proxy_handler import ProxyAPIHandler  # noqa: E402
from chatapp.routing import websocket_urlpatterns  # noqa: E402

proxy_api_app = ProxyAPIHandler()


async def http_application(scope, receive, send) -> None:
    """/api/ (the proxy, token-authenticated) skips the pages' middleware."""
    app = proxy_api_app if scope["path"].startswith("/api/") else django_asgi_app
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

if serving.served_by_daphne():
    serving.start()

# What the imports above built (Django, Twisted, the app: most of the heap)
# lives as long as the process. Frozen, the garbage collector stops walking
# it: a full collection in the server took ~70 ms before and ~8 ms after
# (under the bench's proxy load), and one falls in the middle of a burst now and then.
gc.freeze()
