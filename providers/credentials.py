"""Which URL and key a request goes to (SPEC section 6)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str = ""
    # A user's own URL: connections go through the SSRF guard, and a server
    # key is never sent there.
    user_supplied: bool = False

    def __repr__(self) -> str:  # never let a key reach a log line
        return f"Endpoint(base_url={self.base_url!r}, user_supplied={self.user_supplied})"
