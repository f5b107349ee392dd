from django.contrib import admin

from chatapp.models import Conversation, Message, Preset, Prompt, Share


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "model", "updated_at")
    list_filter = ("pinned", ("archived_at", admin.EmptyFieldListFilter))
    search_fields = ("title", "owner__username")
    raw_id_fields = ("owner", "current_leaf")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("conversation", "role", "status", "model", "created_at")
    list_filter = ("role", "status")
    raw_id_fields = ("conversation", "parent")


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    """The links users have made: an admin can take one down (delete it)."""

    list_display = ("conversation", "conversation__owner", "shared_at")
    search_fields = ("conversation__title", "conversation__owner__username")
    raw_id_fields = ("conversation", "leaf")

    def has_add_permission(self, request) -> bool:
        return False  # a link is made by the chat's owner, from the chat


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "model", "for_new_chats", "updated_at")
    search_fields = ("name", "owner__username")
    raw_id_fields = ("owner",)


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("command", "owner", "updated_at")
    search_fields = ("command", "owner__username")
    raw_id_fields = ("owner",)
