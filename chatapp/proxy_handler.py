"""The proxy API's own ASGI handler: Django without the pages' middleware.

The API authenticates by token and needs none of the session, CSRF, locale,
login, message or security-header middleware. Under ASGI every hook of such
a middleware runs through a thread and back, and Django opens a fresh
thread-sensitive context (a new thread) per request: together most of the
proxy's cost per request in the benchmark. This handler has an empty
middleware chain and shares one thread for what must run synchronously.
"""

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response


class ProxyAPIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"the proxy API serves HTTP, not {scope['type']}")
        await self.handle(scope, receive, send)
