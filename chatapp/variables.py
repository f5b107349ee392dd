"""Variables in a system prompt, filled in as each request goes upstream, and in a saved prompt, as it is put in
the message box.

"Today is {{CURRENT_DATE}}" tells a model the date it cannot know, at every
message, not the day the prompt was written. The names are Open WebUI's, so
its users' prompts work here as they are; any other `{{NAME}}` is sent as
written. Dates and times are in the reader's time zone, which the browser
tells in the `tz` cookie (static/js/app.js); without it, the server's.

A saved prompt (chatapp.library) is filled in by the page (static/js/prompts.js),
where the reader sees and may edit the result before sending it: the time
from the browser's clock, `{{CLIPBOARD}}` from the clipboard if the browser
lets the page read it, and the rest from `page_values`. A question typed
with `{{...}}` in it is sent as typed (it may be about a template).
"""

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils import timezone
from django.utils.translation import get_language_info

ZONE_COOKIE = "tz"
_VARIABLE = re.compile(r"\{\{([A-Z_]+)\}\}")


@dataclass(frozen=True)
class Reader:
    """Who a request is written for: their name, language and time zone."""

    name: str
    language: str  # a language code, as the page speaks it ("zh-hans")
    zone: tzinfo

    @classmethod
    def of(cls, user, language: str, cookies: dict[str, str]) -> "Reader":
        return cls(name=user.get_full_name() or user.get_username(), language=language, zone=zone_from(cookies))


def zone_from(cookies: dict[str, str]) -> tzinfo:
    """The reader's time zone from their browser's cookie, if it names one; else the server's."""
    name = cookies.get(ZONE_COOKIE, "")
    if name and len(name) <= 64:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(settings.TIME_ZONE)


def filled_in(text: str, reader: Reader | None, now: datetime | None = None) -> str:
    """`text` with the variables it names replaced; as it is without a reader (a request not from a page)."""
    if reader is None or "{{" not in text:
        return text
    moment = (now or timezone.now()).astimezone(reader.zone)
    values = {
        "CURRENT_DATE": moment.strftime("%Y-%m-%d"),
        "CURRENT_TIME": moment.strftime("%H:%M:%S"),
        "CURRENT_DATETIME": moment.strftime("%Y-%m-%d %H:%M:%S"),
        "CURRENT_WEEKDAY": moment.strftime("%A"),  # the C locale's: English, whatever the page's language
        "CURRENT_TIMEZONE": str(reader.zone),
        **page_values(reader),
    }
    return _VARIABLE.sub(lambda found: values.get(found[1], found[0]), text)


def page_values(reader: Reader) -> dict[str, str]:
    """The variables a page cannot know by itself, for it to fill in a saved prompt (static/js/prompts.js)."""
    return {"USER_NAME": reader.name, "USER_LANGUAGE": _language_name(reader.language)}


def _language_name(code: str) -> str:
    """"Danish" for "da": a name any model reads, whichever language the page speaks."""
    try:
        return get_language_info(code)["name"]
    except KeyError:
        return code
