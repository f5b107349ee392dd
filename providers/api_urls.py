"""The proxy API (SPEC section 8), mounted at /api/.

Only these routes are forwarded; every other path under /api/ is an
OpenAI-shaped 404, never a pass-through.
"""

from django.urls import path, re_path

from providers import api

app_name = "api"

urlpatterns = [
    path("<slug:provider>/v1/chat/completions", api.chat_completions, name="chat_completions"),
    path("<slug:provider>/v1/messages", api.messages, name="messages"),
    path("<slug:provider>/v1/models", api.models, name="models"),
    path("<slug:provider>/v1/models/<path:model>", api.model_detail, name="model"),
    re_path(r"^(?P<path>.*)$", api.unknown_path, name="unknown"),
]
