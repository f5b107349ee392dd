import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


class Conversation(models.Model):
    """A chat owned by one user, with its per-chat settings.

    Messages form a tree (each points at its parent) so regenerations and
    edits become versions and branches; `current_leaf` is the branch on screen.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations", verbose_name=_("owner")
    )
    title = models.CharField(_("title"), max_length=200, blank=True)
    model = models.CharField(_("model"), max_length=200, blank=True, help_text=_("name@provider"))
    system_prompt = models.TextField(_("system prompt"), blank=True)
    temperature = models.FloatField(_("temperature"), null=True, blank=True)
    top_p = models.FloatField(_("top p"), null=True, blank=True)
    max_tokens = models.PositiveIntegerField(_("max tokens"), null=True, blank=True)
    reasoning_effort = models.CharField(_("reasoning effort"), max_length=10, blank=True)
    provider_order = models.JSONField(_("provider order"), default=list, blank=True)
    allow_fallbacks = models.BooleanField(_("allow fallbacks"), default=True)
    pinned = models.BooleanField(_("pinned"), default=False)
    current_leaf = models.ForeignKey(
        "Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("current message")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-pinned", "-updated_at"], name="conversation_listing")]

    def __str__(self) -> str:
        return self.title or str(_("New chat"))

    def get_absolute_url(self) -> str:
        return reverse("chat:conversation", args=[self.id])


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", _("User")
        ASSISTANT = "assistant", _("Assistant")

    class Status(models.TextChoices):
        STREAMING = "streaming", _("Streaming")
        DONE = "done", _("Done")
        STOPPED = "stopped", _("Stopped")
        ERROR = "error", _("Error")
        INTERRUPTED = "interrupted", _("Interrupted")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", verbose_name=_("conversation")
    )
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children", verbose_name=_("parent")
    )
    role = models.CharField(_("role"), max_length=10, choices=Role.choices)
    content = models.TextField(_("content"), blank=True)
    reasoning = models.TextField(_("reasoning"), blank=True)
    # What the provider needs back in later turns: OpenRouter reasoning_details
    # or Anthropic thinking blocks with their signatures.
    reasoning_details = models.JSONField(_("reasoning details"), default=list, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.DONE)
    error = models.TextField(_("error"), blank=True)
    model = models.CharField(_("model"), max_length=200, blank=True)
    provider = models.CharField(_("provider"), max_length=30, blank=True)
    finish_reason = models.CharField(_("finish reason"), max_length=30, blank=True)
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"), null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(_("completion tokens"), null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(_("reasoning tokens"), null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(_("cached tokens"), null=True, blank=True)
    cost = models.DecimalField(_("cost (USD)"), max_digits=14, decimal_places=8, null=True, blank=True)
    time_to_first_token = models.FloatField(_("time to first token (s)"), null=True, blank=True)
    duration = models.FloatField(_("duration (s)"), null=True, blank=True)
    reasoning_duration = models.FloatField(_("reasoning time (s)"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="message_in_conversation"),
            models.Index(fields=["status"], name="message_status"),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"

    @property
    def tokens_per_second(self) -> float | None:
        generating = (self.duration or 0) - (self.time_to_first_token or 0)
        if not self.completion_tokens or generating <= 0:
            return None
        return self.completion_tokens / generating
