"""The proxy API's own errors, shaped like the API the client speaks.

OpenAI routes answer `{"error": {"message", "type", "code"}}`; the Anthropic
Messages routes answer `{"type": "error", "error": {"type", "message"}}`, so
each official SDK raises its usual exception class for them. Upstream errors
are not built here: they pass through as the upstream sent them.
"""

from typing import Literal

from django.http import JsonResponse

Dialect = Literal["openai", "anthropic"]

# status -> (OpenAI error type, Anthropic error type)
_TYPES = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("authentication_error", "authentication_error"),
    403: ("permission_error", "permission_error"),
    404: ("not_found_error", "not_found_error"),
    405: ("invalid_request_error", "invalid_request_error"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_error"),
    502: ("api_error", "api_error"),
    504: ("timeout_error", "timeout_error"),
}


class ApiError(Exception):
    """An answer of ours, not the upstream's. `message` may be a lazy translation; it never holds a key."""

    def __init__(self, status: int, code: str, message, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(message))
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self, dialect: Dialect) -> JsonResponse:
        openai_type, anthropic_type = _TYPES.get(self.status, ("api_error", "api_error"))
        message = str(self.message)
        if dialect == "anthropic":
            body = {"type": "error", "error": {"type": anthropic_type, "message": message}}
        else:
            body = {"error": {"message": message, "type": openai_type, "code": self.code, "param": None}}
        return JsonResponse(body, status=self.status, headers=self.headers)


def error_message(payload: object) -> str:
    """The human message of an error body in either shape (or OpenRouter's), else ""."""
    if not isinstance(payload, dict):
        return ""
    error = payload.get("error", payload)
    if isinstance(error, dict):
        message = error.get("message")
        return message if isinstance(message, str) else ""
    return error if isinstance(error, str) else ""
