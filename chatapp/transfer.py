"""Export and import of conversations (SPEC section 7).

Export: the branch on screen as Markdown, or the whole message tree (every
version and branch) as JSON in our own schema:

    {"format": "switchboard.conversation", "version": 1, "exported_at": ...,
     "conversation": {title, model, system_prompt, temperature, top_p, max_tokens,
                      reasoning_effort, provider_order, allow_fallbacks, pinned, created_at,
                      archived_at (null unless archived)},
     "messages": [{id, parent, role, content, reasoning, reasoning_details, status,
                   error_code, error, model, provider, finish_reason, prompt_tokens,
                   completion_tokens, reasoning_tokens, cached_tokens, cost (a string),
                   time_to_first_token, duration, reasoning_duration, edited, created_at,
                   attachments: [{name, type, data (base64)}, ...]}, ...],
     "current_leaf": <local id or null>}

All of a user's conversations at once (a backup, `GET /c/export.json`):

    {"format": "switchboard.conversations", "version": 1, "exported_at": ...,
     "conversations": [{"conversation": ..., "messages": [...], "current_leaf": ...}, ...],
     "presets": [{name, model, system_prompt, temperature, top_p, max_tokens, reasoning_effort,
                  provider_order, allow_fallbacks, for_new_chats}, ...],
     "prompts": [{command, text}, ...]}

(a backup without "presets" or "prompts", as made before they were, imports as one with none).

Import: either schema, or NextChat's exports (one session, or a whole backup).
An upload is untrusted: it is read into plain values and checked field by
field before anything is saved, and every problem becomes an ImportProblem
with a message for the import page. Imports always create new conversations
owned by the importing user; a backup's presets and prompts join the user's,
but for those of a name or command the user has already, which are kept.
"""

import base64
import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.core.validators import validate_unicode_slug
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chatapp import attachments, exchanges, uploads
from chatapp.models import Attachment, Conversation, Message, Preset, Prompt
from chatapp.views import _get_conversation_for_user, finished_answer_or_404
from providers.registry import get_provider

FORMAT = "switchboard.conversation"
BACKUP_FORMAT = "switchboard.conversations"
VERSION = 1
MAX_CONVERSATIONS = 1_000
MAX_MESSAGES = 20_000  # over all conversations of one file
MAX_LIBRARY = 1_000  # presets, and prompts, of one backup
MAX_DEPTH = 64  # of the JSON document; ours and NextChat's need fewer than 12
MAX_ID_CHARS = 64
MAX_INT = 2_147_483_647  # PositiveIntegerField, on every database
MAX_COST = Decimal("1e6")  # Message.cost: 14 digits, 8 of them decimals
MAX_SECONDS = 1e7
REASONING_EFFORTS = ("", "minimal", "low", "medium", "high", "xhigh")
SETTINGS_FIELDS = (
    "title", "model", "system_prompt", "temperature", "top_p", "max_tokens",
    "reasoning_effort", "provider_order", "allow_fallbacks", "pinned",
)  # fmt: skip
TEXT_FIELDS = {"content": None, "reasoning": None, "error": None, "model": 200, "provider": 30, "finish_reason": 30}
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")
SECONDS_FIELDS = ("time_to_first_token", "duration", "reasoning_duration")
NEXTCHAT_STORE = "chat-next-web-store"
ROLES = ("user", "assistant", "system")


class ImportProblem(Exception):
    """Why an uploaded file cannot be imported, translated and safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# Export -----------------------------------------------------------------------


def conversation_document(conversation: Conversation) -> dict:
    """The whole conversation, every version and branch, with its files, in our JSON schema."""
    rows = list(conversation.messages.order_by("id"))
    return {**_header(FORMAT), **_entry(conversation, rows, _files_by_id(rows))}


def copy_of(conversation: Conversation, path: list[Message], owner, chosen: dict) -> Conversation:
    """A new conversation of `owner` holding the branch `path` of `conversation` (root first) with its files,
    and the settings `chosen` (title, model, ...): exported and imported, so a copy is what an import makes."""
    entry = _entry(conversation, path, _files_by_id(path))
    entry["conversation"] = chosen
    entry["current_leaf"] = len(path)
    [copy] = save_imports(owner, [_read_entry(entry)], copies=True)
    return copy


@require_POST
def branch(request: HttpRequest, conversation_id) -> HttpResponse:
    """A new chat holding the branch on screen up to one answer, with the chat's settings: to go another way from
    there and keep this chat as it is (LibreChat's fork, ChatGPT's "Branch in new chat")."""
    conversation = _get_conversation_for_user(request, conversation_id)
    answer = finished_answer_or_404(conversation, request.POST.get("message_id"))
    chosen = conversation.chat_settings()
    chosen["title"] = _branch_title(str(conversation))
    return redirect(copy_of(conversation, conversation.path_to(answer.id), request.user, chosen))


def _branch_title(title: str) -> str:
    """"Branch · Trip", for a branch of "Trip" and for a branch of that: one mark says it is a branch."""
    titled = str(_("Branch · %(title)s"))
    before, _title, after = titled.partition("%(title)s")  # a language may put the mark after the title
    return title if title.startswith(before) and title.endswith(after) else (titled % {"title": title})[:200]


def _files_of(rows: list[Message]):
    """(id, bytes) of the files the messages `rows` were sent with: a query to iterate, sync or async (none is
    made for rows without files)."""
    return Attachment.objects.filter(id__in=[i for row in rows for i in row.file_ids]).values_list("id", "data")


def _files_by_id(rows: list[Message]) -> dict[str, bytes]:
    return {str(key): data for key, data in _files_of(rows)}


def _exported_files(row: Message, files: dict[str, bytes]) -> list[dict]:
    return [
        {"name": d["name"], "type": d["type"], "data": base64.b64encode(files[d["id"]]).decode("ascii")}
        for d in row.attachments
        if d["id"] in files  # always, unless its chat was deleted meanwhile
    ]


def _header(format_name: str) -> dict:
    return {"format": format_name, "version": VERSION, "exported_at": timezone.now().isoformat()}


def _entry(conversation: Conversation, rows: list[Message], files: dict[str, bytes]) -> dict:
    """A conversation and its messages (`rows`, oldest first), their ids local to the file; `files` are the bytes
    of their attachments, by id."""
    local = {row.id: number for number, row in enumerate(rows, start=1)}
    return {
        "conversation": {
            **{name: getattr(conversation, name) for name in SETTINGS_FIELDS},
            "created_at": conversation.created_at.isoformat(),
            "archived_at": conversation.archived_at and conversation.archived_at.isoformat(),
        },
        "messages": [
            {
                "id": local[row.id],
                "parent": local.get(row.parent_id),
                "role": row.role,
                "status": row.status,
                "error_code": row.error_code,
                "reasoning_details": row.reasoning_details,
                **{name: getattr(row, name) for name in (*TEXT_FIELDS, *TOKEN_FIELDS, *SECONDS_FIELDS)},
                "cost": None if row.cost is None else str(row.cost),
                "edited": row.edited,
                "created_at": row.created_at.isoformat(),
                "attachments": _exported_files(row, files),
            }
            for row in rows
        ],
        "current_leaf": local.get(conversation.current_leaf_id),
    }


def conversation_markdown(conversation: Conversation) -> str:
    """The branch on screen, readable as it is and rendered anywhere Markdown is."""
    lines = [f"# {conversation}", ""]
    if conversation.model:
        lines += [_("Model: %(model)s") % {"model": f"`{conversation.model}`"}, ""]
    if conversation.system_prompt:
        lines += [f"## {_('System prompt')}", "", conversation.system_prompt, ""]
    for message in conversation.branch():
        heading = Message.Role(message.role).label if message.role in Message.Role.values else message.role
        lines += [f"## {heading}", ""]
        if message.reasoning:
            lines += [f"> **{_('Reasoning')}**", ">", *_quoted(message.reasoning), ""]
        if message.attachments:
            lines += [f"*{_('Attached: %(names)s') % {'names': message.file_names}}*", ""]
        lines += [message.content, ""]
        if message.role == Message.Role.ASSISTANT and (footer := _footer(message)):
            lines += [f"*{footer}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def _quoted(text: str) -> list[str]:
    return [f"> {line}".rstrip() for line in text.splitlines()]


def _footer(message: Message) -> str:
    parts = [message.model] if message.model else []
    if tokens := message.token_counts():
        parts.append(tokens)
    if message.cost is not None:
        parts.append(f"${message.cost.normalize():f}")
    if message.status not in (Message.Status.DONE, Message.Status.STREAMING):
        parts.append(str(Message.Status(message.status).label))
    if message.edited:
        parts.append(_("Edited"))
    return " · ".join(parts)


def _filename(conversation: Conversation, extension: str) -> str:
    name = slugify(conversation.title, allow_unicode=True)[:60].strip("-_") or "conversation"
    return f"{name}.{extension}"


def _download(body: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


@require_GET
def export_markdown(request: HttpRequest, conversation_id) -> HttpResponse:
    conversation = _get_conversation_for_user(request, conversation_id)
    body = conversation_markdown(conversation)
    return _download(body, "text/markdown; charset=utf-8", _filename(conversation, "md"))


@require_GET
def export_json(request: HttpRequest, conversation_id) -> HttpResponse:
    conversation = _get_conversation_for_user(request, conversation_id)
    body = json.dumps(conversation_document(conversation), ensure_ascii=False, indent=2)
    return _download(body, "application/json; charset=utf-8", _filename(conversation, "json"))


@require_GET
async def export_all_json(request: HttpRequest) -> StreamingHttpResponse:
    """Every conversation of the user's (a backup, to import here or on another server), sent as it is read."""
    response = StreamingHttpResponse(_backup(await request.auser()), content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, "switchboard-conversations.json")
    return response


async def _backup(user) -> AsyncIterator[str]:
    """The backup document, a conversation at a time: one query each (two with files), none held in memory after
    it is sent."""
    header = json.dumps(_header(BACKUP_FORMAT), ensure_ascii=False)
    yield header[:-1] + ', "conversations": ['
    separator = "\n"
    async for conversation in Conversation.objects.of(user).written_in().order_by("created_at"):
        rows = [row async for row in conversation.messages.order_by("id")]
        files = {str(key): data async for key, data in _files_of(rows)}
        yield separator + json.dumps(_entry(conversation, rows, files), ensure_ascii=False)
        separator = ",\n"
    library = {
        "presets": [
            {"name": preset.name, **preset.chat_settings(), "for_new_chats": preset.for_new_chats}
            async for preset in Preset.objects.filter(owner=user)
        ],
        "prompts": [
            {"command": prompt.command, "text": prompt.text} async for prompt in Prompt.objects.filter(owner=user)
        ],
    }
    yield "\n], " + json.dumps(library, ensure_ascii=False)[1:] + "\n"


# Reading an upload ------------------------------------------------------------


@dataclass
class ImportedMessage:
    key: str  # the file's id for it
    parent: str | None
    role: str
    fields: dict[str, Any] = field(default_factory=dict)
    files: list[uploads.Checked] = field(default_factory=list)


@dataclass
class ImportedConversation:
    settings: dict[str, Any]
    messages: list[ImportedMessage]  # parents before children, no system messages
    current_leaf: str | None


@dataclass
class Imported:
    """What an uploaded file holds: conversations, and a backup's presets and prompts (their models' fields)."""

    conversations: list[ImportedConversation]
    presets: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, str]] = field(default_factory=list)


def read_export(data: bytes) -> Imported:
    """What an uploaded file holds, checked; raises ImportProblem.

    A backup can be a hundred megabytes, mostly its files in base64: each
    copy of it is let go as soon as the next is made, so that at most two are
    held at once (the bytes and their text, then the text and the document,
    then the document and the files it decodes to).
    """
    if len(data) > settings.IMPORT_MAX_BYTES:
        raise _too_large()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportProblem(_("The file is not UTF-8 text. Choose a JSON export.")) from None
    del data
    document = _parse_json(text)
    del text
    if isinstance(document, dict) and document.get("format") == BACKUP_FORMAT:
        return _read_backup(document)
    if isinstance(document, dict) and "format" in document:
        return Imported([_read_switchboard(document)])
    sessions = _nextchat_sessions(document)
    if sessions is None:
        raise ImportProblem(_("This file is neither a Switchboard nor a NextChat export."))
    imported = [_read_nextchat(session, number) for number, session in enumerate(sessions, start=1)]
    imported = [conversation for conversation in imported if conversation.messages]
    if not imported:
        raise ImportProblem(_("The file holds no conversation with messages."))
    return Imported(imported)


def _too_large() -> ImportProblem:
    return ImportProblem(_("The file is larger than %(size)s.") % {"size": filesizeformat(settings.IMPORT_MAX_BYTES)})


def _parse_json(text: str) -> Any:
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ImportProblem(_("The file is nested too deeply to be an export.")) from None
    except ValueError:  # JSONDecodeError, and integers too long to read
        raise ImportProblem(_("The file is not valid JSON.")) from None
    if _depth(document) > MAX_DEPTH:
        raise ImportProblem(_("The file is nested too deeply to be an export."))
    return document


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _depth(document: Any) -> int:
    """How deeply lists and objects nest, without recursion."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        stack.extend((item, depth + 1) for item in value)
    return deepest


# Checked values -----------------------------------------------------------------


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _clean_text(text: str) -> str:
    """Text any database stores: no NUL, no lone surrogate (JSON can carry both)."""
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class _Fields:
    """Reads the fields of one JSON object, naming the place of any problem."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ImportProblem(_("%(where)s must be a JSON object.") % {"where": where})
        self.data = data
        self.where = where

    def problem(self, name: str, message: str) -> ImportProblem:
        return ImportProblem(_("%(where)s, “%(field)s”: %(problem)s") % {
            "where": self.where, "field": name, "problem": message,
        })  # fmt: skip

    def text(self, name: str, limit: int | None = None, default: str = "") -> str:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.problem(name, _("expected text."))
        value = _clean_text(value)
        if limit is not None and len(value) > limit:
            raise self.problem(name, _("longer than %(limit)s characters.") % {"limit": limit})
        return value

    def choice(self, name: str, choices: tuple[str, ...] | list[str], default: str = "") -> str:
        value = self.data.get(name)
        if value is None and default in choices:
            return default
        if value not in choices:
            listed = ", ".join(choice or '""' for choice in choices)
            raise self.problem(name, _("must be one of %(choices)s.") % {"choices": listed})
        return value

    def whole(self, name: str, low: int = 0, high: int = MAX_INT) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not _is_whole(value):
            raise self.problem(name, _("expected a whole number."))
        if not low <= value <= high:
            raise self.problem(name, _("out of range."))
        return value

    def number(self, name: str, low: float, high: float) -> float | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not _is_number(value):
            raise self.problem(name, _("expected a number."))
        # A whole number too large for a float is out of range, not an OverflowError.
        if not (low <= value <= high and math.isfinite(value)):
            raise self.problem(name, _("out of range."))
        return float(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.problem(name, _("expected true or false."))
        return value

    def texts(self, name: str, items: int, limit: int) -> list[str]:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > items or not all(isinstance(v, str) for v in value):
            raise self.problem(name, _("expected a short list of names."))
        if any(len(v) > limit for v in value):
            raise self.problem(name, _("longer than %(limit)s characters.") % {"limit": limit})
        return [_clean_text(v) for v in value]

    def cost(self, name: str) -> Decimal | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, str) and len(value) <= 40:
            try:
                amount = Decimal(value.strip())
            except InvalidOperation:
                raise self.problem(name, _("expected an amount in USD.")) from None
        elif _is_whole(value) and abs(value) < MAX_COST:
            amount = Decimal(value)
        elif isinstance(value, float):
            amount = Decimal(repr(value))
        else:
            raise self.problem(name, _("expected an amount in USD."))
        if not amount.is_finite() or not 0 <= amount < MAX_COST:
            raise self.problem(name, _("out of range."))
        return amount.quantize(Decimal("1e-8"))

    def moment(self, name: str) -> datetime | None:
        value = self.data.get(name)
        if value is None:
            return None
        try:
            moment = parse_datetime(value) if isinstance(value, str) and len(value) <= 40 else None
        except ValueError:  # well formed but impossible, e.g. month 13
            moment = None
        if moment is None:
            raise self.problem(name, _("expected a date and time (ISO 8601)."))
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, timezone.get_default_timezone())
        if not 1970 <= moment.year <= 9998:
            raise self.problem(name, _("out of range."))
        return moment

    def json_list(self, name: str) -> list:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.problem(name, _("expected a list."))
        try:
            return _clean_json(value)
        except ValueError:
            raise self.problem(name, _("out of range.")) from None


def _clean_json(value: Any) -> Any:
    """A copy of parsed JSON with every text cleaned (its depth is already bounded)."""
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, list):
        return [_clean_json(item) for item in value]
    if isinstance(value, dict):
        return {_clean_text(key): _clean_json(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


# Our schema -----------------------------------------------------------------------


def _read_switchboard(document: dict) -> ImportedConversation:
    _check_version(document, FORMAT)
    return _read_entry(document)


def _read_backup(document: dict) -> Imported:
    """Every conversation, preset and prompt of a backup (export_all_json), within the limits of one file."""
    _check_version(document, BACKUP_FORMAT)
    entries = document.get("conversations")
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise ImportProblem(_("The backup has no list of conversations."))
    if len(entries) > MAX_CONVERSATIONS:
        raise ImportProblem(_("The file holds more than %(limit)s conversations.") % {"limit": MAX_CONVERSATIONS})
    lists = [entry.get("messages") for entry in entries]
    if sum(len(rows) for rows in lists if isinstance(rows, list)) > MAX_MESSAGES:
        raise ImportProblem(_("The file holds more than %(limit)s messages.") % {"limit": MAX_MESSAGES})
    imported = Imported(
        [conversation for conversation in map(_read_entry, entries) if conversation.messages],
        _read_library(document, "presets", _("Preset %(number)s"), _read_preset),
        _read_library(document, "prompts", _("Prompt %(number)s"), _read_prompt),
    )
    if not (imported.conversations or imported.presets or imported.prompts):
        raise ImportProblem(_("The file holds no conversation with messages."))
    return imported


def _read_library(document: dict, key: str, where: str, read: Callable[["_Fields"], dict]) -> list[dict]:
    """The presets or prompts (`key`) of a backup, each read by `read`; none in a backup made before them."""
    entries = document.get(key)
    if entries is None:
        return []
    if not isinstance(entries, list) or len(entries) > MAX_LIBRARY:
        raise ImportProblem(_("“%(key)s” must be a list of at most %(limit)s.") % {"key": key, "limit": MAX_LIBRARY})
    return [read(_Fields(entry, where % {"number": number})) for number, entry in enumerate(entries, start=1)]


def _read_preset(fields: "_Fields") -> dict[str, Any]:
    chosen = _read_settings(fields)
    del chosen["title"], chosen["pinned"], chosen["archived_at"]  # a chat's, not a preset's
    return {"name": _required(fields, "name", 100), **chosen, "for_new_chats": fields.flag("for_new_chats", False)}


def _read_prompt(fields: "_Fields") -> dict[str, str]:
    command = _required(fields, "command", 50)
    try:
        validate_unicode_slug(command)
    except ValidationError:
        raise fields.problem("command", _("expected letters, digits, - and _.")) from None
    return {"command": command, "text": _required(fields, "text")}


def _required(fields: "_Fields", name: str, limit: int | None = None) -> str:
    value = fields.text(name, limit)
    if not value.strip():
        raise fields.problem(name, _("expected text."))
    return value


def _check_version(document: dict, format_name: str) -> None:
    version = document.get("version")
    if document.get("format") != format_name or not _is_whole(version):
        raise ImportProblem(_("This file is neither a Switchboard nor a NextChat export."))
    if version > VERSION:
        raise ImportProblem(
            _("This export was made by a newer version of Switchboard (format version %(version)s).")
            % {"version": version if version < 10**6 else "?"}
        )
    if version < 1:
        raise ImportProblem(_("This file is neither a Switchboard nor a NextChat export."))


def _read_entry(document: dict) -> ImportedConversation:
    """One conversation of our schema: its settings, messages and current leaf."""
    chosen = _read_settings(_Fields(document.get("conversation", {}), _("The conversation")))
    rows = document.get("messages")
    if not isinstance(rows, list):
        raise ImportProblem(_("The export has no list of messages."))
    if len(rows) > MAX_MESSAGES:
        raise ImportProblem(_("The file holds more than %(limit)s messages.") % {"limit": MAX_MESSAGES})
    messages = [_read_message(row, number) for number, row in enumerate(rows, start=1)]
    leaf = document.get("current_leaf")
    if leaf is not None and not _is_id(leaf):
        raise ImportProblem(_("“current_leaf” must be the id of a message."))
    return _assemble(chosen, messages, None if leaf is None else str(leaf))


def _read_settings(fields: _Fields) -> dict[str, Any]:
    return {
        "title": fields.text("title", 200),
        "model": fields.text("model", 200),
        "system_prompt": fields.text("system_prompt"),
        "temperature": fields.number("temperature", 0, 2),
        "top_p": fields.number("top_p", 0, 1),
        "max_tokens": fields.whole("max_tokens", 1),
        "reasoning_effort": fields.choice("reasoning_effort", REASONING_EFFORTS),
        "provider_order": fields.texts("provider_order", 50, 100),
        "allow_fallbacks": fields.flag("allow_fallbacks", True),
        "pinned": fields.flag("pinned", False),
        "archived_at": fields.moment("archived_at"),
    }


def _is_id(value: Any) -> bool:
    return _is_whole(value) or (isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS)


def _read_message(row: Any, number: int) -> ImportedMessage:
    fields = _Fields(row, _("Message %(number)s") % {"number": number})
    key, parent = fields.data.get("id"), fields.data.get("parent")
    if not _is_id(key):
        raise fields.problem("id", _("expected a number or a short text."))
    if parent is not None and not _is_id(parent):
        raise fields.problem("parent", _("expected the id of another message, or null."))
    role = fields.choice("role", ROLES)
    values: dict[str, Any] = {name: fields.text(name, limit) for name, limit in TEXT_FIELDS.items()}
    values["status"] = fields.choice("status", Message.Status.values, Message.Status.DONE)
    values["error_code"] = fields.text("error_code", 30)
    if values["status"] == Message.Status.STREAMING:
        # Nothing is writing it any more.
        values["status"] = Message.Status.INTERRUPTED
        values["error_code"] = values["error_code"] or "interrupted"
    values["reasoning_details"] = fields.json_list("reasoning_details")
    values |= {name: fields.whole(name) for name in TOKEN_FIELDS}
    values |= {name: fields.number(name, 0, MAX_SECONDS) for name in SECONDS_FIELDS}
    values["cost"] = fields.cost("cost")
    values["edited"] = role == Message.Role.ASSISTANT and fields.flag("edited", False)
    values["created_at"] = fields.moment("created_at")
    files = _read_files(fields) if role == Message.Role.USER else []
    return ImportedMessage(str(key), None if parent is None else str(parent), role, values, files)


def _read_files(fields: _Fields) -> list[uploads.Checked]:
    """A question's files, each checked as an upload is (uploads.checked)."""
    items = fields.data.get("attachments") or []
    if not isinstance(items, list) or len(items) > attachments.MAX_PER_MESSAGE:
        raise _too_many_files(fields, "attachments")
    files = []
    for item in items:
        item = item if isinstance(item, dict) else {}
        # Taken out of the document: its base64 is let go once decoded.
        encoded = item.pop("data", None)
        files.append(_checked_file(fields, "attachments", str(item.get("name") or ""), encoded))
    return files


def _too_many_files(fields: _Fields, key: str) -> ImportProblem:
    most = {"count": attachments.MAX_PER_MESSAGE}
    return fields.problem(key, _("expected a list of at most %(count)d files.") % most)


def _checked_file(fields: _Fields, key: str, name: str, encoded: Any) -> uploads.Checked:
    """A file of an import, from its base64, checked as an upload is; else the problem, named by `key`."""
    try:
        data = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else None
    except ValueError:
        data = None
    if data is None:
        raise fields.problem(key, _("each file needs its name and its data in base64."))
    try:
        return uploads.checked(name, data)
    except exchanges.Refused as refused:
        raise fields.problem(key, str(refused.reason)) from None


def _assemble(chosen: dict, messages: list[ImportedMessage], leaf: str | None) -> ImportedConversation:
    """Parents before children; system messages folded into the system prompt."""
    by_key: dict[str, ImportedMessage] = {}
    for message in messages:
        if message.key in by_key:
            raise ImportProblem(_("Two messages have the id %(id)s.") % {"id": message.key})
        by_key[message.key] = message
    for message in messages:
        if message.parent is not None and message.parent not in by_key:
            raise ImportProblem(
                _("A message names %(parent)s as its parent, but no message has that id.") % {"parent": message.parent}
            )
    if leaf is not None and leaf not in by_key:
        raise ImportProblem(_("“current_leaf” names %(id)s, but no message has that id.") % {"id": leaf})
    ordered = _parents_first(messages, by_key)
    # A system message leaves the tree: its children hang from its parent.
    replaced: dict[str, str | None] = {}
    system = [chosen["system_prompt"]] if chosen["system_prompt"] else []
    kept = []
    for message in ordered:
        message.parent = replaced.get(message.parent, message.parent)
        if message.role == "system":
            replaced[message.key] = message.parent
            if message.fields["content"]:
                system.append(message.fields["content"])
        else:
            kept.append(message)
    chosen["system_prompt"] = "\n\n".join(system)
    if leaf is None and messages:
        leaf = messages[-1].key  # the newest, as far as the file tells
    if leaf is not None:
        leaf = replaced.get(leaf, leaf)
    return ImportedConversation(chosen, kept, leaf)


def _parents_first(messages: list[ImportedMessage], by_key: dict[str, ImportedMessage]) -> list[ImportedMessage]:
    """File order, except that a parent always comes before its children; no cycles."""
    placed: set[str] = set()
    ordered: list[ImportedMessage] = []
    for message in messages:
        chain: list[ImportedMessage] = []
        seen: set[str] = set()
        node: ImportedMessage | None = message
        while node is not None and node.key not in placed:
            if node.key in seen:
                raise ImportProblem(_("The messages' parents form a loop."))
            seen.add(node.key)
            chain.append(node)
            node = by_key[node.parent] if node.parent is not None else None
        for node in reversed(chain):
            placed.add(node.key)
            ordered.append(node)
    return ordered


# NextChat -------------------------------------------------------------------------


def _nextchat_sessions(document: Any) -> list | None:
    """The sessions of a NextChat backup or single-session export; None if it is neither."""
    if not isinstance(document, dict):
        return None
    if NEXTCHAT_STORE in document:
        store = document[NEXTCHAT_STORE]
        if isinstance(store, str):  # as kept in the browser's localStorage
            store = _parse_json(store)
        if isinstance(store, dict) and isinstance(store.get("state"), dict):
            store = store["state"]
        sessions = store.get("sessions") if isinstance(store, dict) else None
        if not isinstance(sessions, list):
            raise ImportProblem(_("The NextChat backup has no list of sessions."))
        if len(sessions) > MAX_CONVERSATIONS:
            raise ImportProblem(_("The file holds more than %(limit)s conversations.") % {"limit": MAX_CONVERSATIONS})
        lists = [s["messages"] for s in sessions if isinstance(s, dict) and isinstance(s.get("messages"), list)]
        if sum(map(len, lists)) > MAX_MESSAGES:
            raise ImportProblem(_("The file holds more than %(limit)s messages.") % {"limit": MAX_MESSAGES})
        return sessions
    if isinstance(document.get("messages"), list) and ("topic" in document or "mask" in document):
        return [document]
    return None


def _lenient(read: Callable[[], Any]) -> Any:
    """A NextChat setting we can do without: dropped when it does not fit ours."""
    try:
        return read()
    except ImportProblem:
        return None


def _read_nextchat(session: Any, number: int) -> ImportedConversation:
    fields = _Fields(session, _("Conversation %(number)s") % {"number": number})
    mask = _Fields(fields.data.get("mask") or {}, _("Conversation %(number)s") % {"number": number})
    config = _Fields(mask.data.get("modelConfig") or {}, _("Conversation %(number)s") % {"number": number})
    chosen = _read_settings(_Fields({}, ""))
    chosen["title"] = fields.text("topic")[:200]
    chosen["model"] = _nextchat_model(config)
    for name, read in (
        ("temperature", lambda: config.number("temperature", 0, 2)),
        ("top_p", lambda: config.number("top_p", 0, 1)),
        ("max_tokens", lambda: config.whole("max_tokens", 1)),
    ):
        chosen[name] = _lenient(read)
    rows = mask.data.get("context") or []
    if not isinstance(rows, list):
        raise mask.problem("context", _("expected a list."))
    messages = fields.data.get("messages")
    if not isinstance(messages, list):
        raise fields.problem("messages", _("expected a list."))
    rows = rows + messages
    if len(rows) > MAX_MESSAGES:
        raise ImportProblem(_("The file holds more than %(limit)s messages.") % {"limit": MAX_MESSAGES})
    chain: list[ImportedMessage] = []
    for index, row in enumerate(rows, start=1):
        where = _("Conversation %(conversation)s, message %(message)s") % {"conversation": number, "message": index}
        chain.append(_read_nextchat_message(_Fields(row, where), index, chain[-1].key if chain else None))
    return _assemble(chosen, chain, None)


def _nextchat_model(config: _Fields) -> str:
    name = _lenient(lambda: config.text("model", 200)) or ""
    provider = get_provider(_lenient(lambda: config.text("providerName", 100)) or "")
    ref = f"{name}@{provider.slug}" if name and provider else name
    return ref if len(ref) <= 200 else name


def _read_nextchat_message(fields: _Fields, index: int, parent: str | None) -> ImportedMessage:
    role = fields.choice("role", ROLES)
    content = fields.data.get("content")
    files = []
    if isinstance(content, list):  # multimodal: text parts, and a question's pictures
        if role == Message.Role.USER:
            files = _nextchat_pictures(content, fields)
        content = "\n\n".join(_text_part(part, fields) for part in content if _text_part(part, fields))
    elif content is not None and not isinstance(content, str):
        raise fields.problem("content", _("expected text or a list of parts."))
    status = Message.Status.DONE
    if fields.flag("isError", False):
        status = Message.Status.ERROR
    elif fields.flag("streaming", False):
        status = Message.Status.INTERRUPTED
    values = {
        "content": _clean_text(content or ""),
        "status": status,
        "error_code": {Message.Status.ERROR: "upstream", Message.Status.INTERRUPTED: "interrupted"}.get(status, ""),
        "model": (_lenient(lambda: fields.text("model", 200)) or "") if role == "assistant" else "",
    }
    return ImportedMessage(str(index), parent, role, values, files)


_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


def _nextchat_pictures(content: list, fields: _Fields) -> list[uploads.Checked]:
    """The pictures of a NextChat question kept in it as data URLs, each checked as an upload is.

    NextChat names none; those it kept in its own cache (an address on its server) cannot be had, and are left out.
    """
    urls = [
        url
        for part in content
        if isinstance(part, dict) and part.get("type") == "image_url" and isinstance(part.get("image_url"), dict)
        if isinstance(url := part["image_url"].get("url"), str) and url.startswith("data:") and ";base64," in url
    ]
    if len(urls) > attachments.MAX_PER_MESSAGE:
        raise _too_many_files(fields, "content")
    pictures = []
    for number, url in enumerate(urls, start=1):
        picture = _checked_file(fields, "content", f"image-{number}", url.partition(";base64,")[2])
        if picture.media_type not in _EXTENSIONS:
            raise fields.problem("content", str(uploads.not_a_picture(picture.name).reason))
        pictures.append(replace(picture, name=f"{picture.name}.{_EXTENSIONS[picture.media_type]}"))
    return pictures


def _text_part(part: Any, fields: _Fields) -> str:
    if not isinstance(part, dict):
        raise fields.problem("content", _("expected text or a list of parts."))
    if part.get("type") != "text":
        return ""
    text = part.get("text")
    if not isinstance(text, str):
        raise fields.problem("content", _("expected text or a list of parts."))
    return _clean_text(text)


# Saving --------------------------------------------------------------------------


def save_library(owner, imported: Imported) -> tuple[int, int]:
    """The presets and prompts read, added to `owner`'s but for those of a name or command the owner has (or
    that came earlier in the file); how many of each were added."""
    added = []
    for model, key, rows in ((Preset, "name", imported.presets), (Prompt, "command", imported.prompts)):
        taken = set(model.objects.filter(owner=owner).values_list(key, flat=True))
        new = {}
        for row in rows:
            if row[key] not in taken:
                new.setdefault(row[key], row)
        if model is Preset:  # new chats start from one at most: the owner's, else the file's first
            has_one = Preset.objects.for_new_chats(owner).exists()
            for row in new.values():
                row["for_new_chats"] = row["for_new_chats"] and not has_one
                has_one = has_one or row["for_new_chats"]
        model.objects.bulk_create(model(owner=owner, **row) for row in new.values())
        added.append(len(new))
    return tuple(added)


@transaction.atomic
def save_imports(owner, imported: list[ImportedConversation], copies: bool = False) -> list[Conversation]:
    """New conversations of `owner`, with the trees, versions and current leaves as read.

    An import keeps each conversation's place in the list: it was last written in when its newest message was
    (now, for messages without dates, as NextChat's are). `copies` made now (a branch, a shared chat continued)
    go to the top of the list, where whoever made them looks.
    """
    saved = []
    for item in imported:
        conversation = Conversation.objects.create(owner=owner, **item.settings)
        rows = [
            Message(conversation=conversation, role=m.role, **{k: v for k, v in m.fields.items() if k != "created_at"})
            for m in item.messages
        ]
        if connection.features.can_return_rows_from_bulk_insert:
            Message.objects.bulk_create(rows, batch_size=500)
        else:
            for row in rows:
                row.save()
        by_key = {m.key: row for m, row in zip(item.messages, rows, strict=True)}
        for message, row in zip(item.messages, rows, strict=True):
            # The id, not the row: rows holding their parents would chain a
            # long conversation into one deep chain of objects, and Django's
            # ModelState.__del__ overflows the stack freeing it.
            row.parent_id = by_key[message.parent].pk if message.parent is not None else None
            # created_at is auto_now_add: only an update can restore it.
            row.created_at = message.fields.get("created_at") or row.created_at
        _update_rows(rows, ["parent", "created_at"])
        _save_files(conversation, item.messages, rows)
        conversation.current_leaf = by_key.get(item.current_leaf)
        now = timezone.now()
        conversation.written_at = None if not rows else now if copies else min(now, max(r.created_at for r in rows))
        conversation.save(update_fields=["current_leaf", "written_at", "updated_at"])
        # The answers on screen are rendered once now, as a finished generation does.
        from chatapp.rendering import render_markdown

        answers = [m for m in conversation.branch(rows) if m.role == Message.Role.ASSISTANT and m.is_final]
        for answer in answers:
            answer.content_html = render_markdown(answer.content)
        _update_rows(answers, ["content_html"])
        saved.append(conversation)
    return saved


def _save_files(conversation: Conversation, messages: list[ImportedMessage], rows: list[Message]) -> None:
    """The imported questions' files, theirs as sent ones are."""
    sent = [(row, files) for message, row in zip(messages, rows, strict=True) if (files := message.files)]
    for row, files in sent:
        saved = Attachment.objects.bulk_create(Attachment.kept(conversation, file, message=row) for file in files)
        row.attachments = [attachment.described for attachment in saved]
    _update_rows([row for row, _files in sent], ["attachments"])


def _update_rows(rows: list[Message], names: list[str]) -> None:
    """Write `names` of saved rows, one prepared UPDATE for all of them.

    bulk_update() builds a CASE expression per row and field, which takes
    seconds for the thousands of messages a backup can hold.
    """
    if not rows:
        return
    quote = connection.ops.quote_name
    fields = [Message._meta.get_field(name) for name in names]
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(Message._meta.db_table)} SET {assignments} WHERE {quote(Message._meta.pk.column)} = %s"
    params = [[f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields] + [row.pk] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


# The import page -----------------------------------------------------------------


class ImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("Export file"),
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = _(
            "A JSON export from Switchboard or NextChat (one chat, or all of them); at most %(size)s."
        ) % {"size": filesizeformat(settings.IMPORT_MAX_BYTES)}


@require_http_methods(["GET", "POST"])
def import_conversations(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
    if form.is_bound and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            if upload.size > settings.IMPORT_MAX_BYTES:  # not even read
                raise _too_large()
            imported = read_export(upload.read())
            with transaction.atomic():
                conversations = save_imports(request.user, imported.conversations)
                presets, prompts = save_library(request.user, imported)
        except ImportProblem as problem:
            form.add_error("file", problem.message)
        else:
            return _imported(request, conversations, presets, prompts)
    return render(request, "chatapp/import.html", {"form": form}, status=400 if form.errors else 200)


def _imported(request: HttpRequest, conversations: list[Conversation], presets: int, prompts: int) -> HttpResponse:
    """What an import added, said; then its first conversation, or where the rest of what it added is."""
    added = [
        (ngettext("Imported %(count)s conversation.", "Imported %(count)s conversations.", len(conversations)),
         len(conversations)),
        (ngettext("Added %(count)s preset.", "Added %(count)s presets.", presets), presets),
        (ngettext("Added %(count)s prompt.", "Added %(count)s prompts.", prompts), prompts),
    ]  # fmt: skip
    for message, count in [item for item in added if item[1]] or added[:1]:  # "Imported 0 conversations." if none
        flash.success(request, message % {"count": count})
    if conversations:
        return redirect(conversations[0])
    return redirect("settings:presets" if presets else "settings:prompts")
