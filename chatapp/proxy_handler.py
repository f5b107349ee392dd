"""The proxy API's own ASGI handler: Django without the pages' middleware and request signals.

The API authenticates by token and needs none of the session, CSRF, locale,
login, message or security-header middleware. Under ASGI every hook of such
a middleware runs through a thread and back, and Django opens a fresh
thread-sensitive context (a new thread) per request. Django's handler also
fires `request_started` before the view and `request_finished` after the
response, each a hop through the sync thread to reset and recycle database
connections; under a burst of requests those hops queue behind each other
and behind every other synchronous task of the process. Together that was
most of the proxy's cost per request in the benchmark.

So this handler sends no request signals, and its middleware chain is only
the security middleware's work (HTTPS redirect, HSTS, nosniff, referrer and
opener policies), done inline: its two hooks are plain functions of the
request and the response, and need no thread.
The API touches the database only on a cache miss (providers.api_auth) and
to write usage (providers.usage), and both recycle their own connections as
a request would (providers.database).
"""

import asyncio
from contextlib import closing

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.middleware.security import SecurityMiddleware
from django.urls import set_script_prefix


class RequestProcessed(Exception):
    """The response went out: ends the task group that listens for the client hanging up."""


class ProxyAPIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        if not is_async:
            raise ValueError("the proxy API is served under ASGI only")
        get_response = self._get_response_async

        async def secured(request):
            # Built per request, so settings changed at run time (tests) hold; it only reads a few.
            security = SecurityMiddleware(get_response)
            response = security.process_request(request) or await get_response(request)
            return security.process_response(request, response)

        self._middleware_chain = convert_exception_to_response(secured)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"the proxy API serves HTTP, not {scope['type']}")
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send) -> None:
        """Django's ASGIHandler.handle, less the request_started and request_finished signals."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        with closing(body_file):
            set_script_prefix(get_script_prefix(scope))
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                await self.send_response(error_response, send)
                return

            # As in Django: a client that hangs up cancels the view or the
            # stream (the relay then closes the upstream connection).
            try:
                try:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self.listen_for_disconnect(receive))
                        response = await self.run_get_response(request)
                        await self.send_response(response, send)
                        raise RequestProcessed
                except* (RequestProcessed, RequestAborted):
                    pass
            except BaseExceptionGroup as exception_group:
                if len(exception_group.exceptions) == 1:
                    raise exception_group.exceptions[0]  # noqa: B904 - re-raised as Django does
                raise
