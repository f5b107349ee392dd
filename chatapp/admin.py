from django.contrib import admin

from chatapp.models import Conversation, Message


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "model", "updated_at")
    list_filter = ("pinned",)
    search_fields = ("title", "owner__username")
    raw_id_fields = ("owner", "current_leaf")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("conversation", "role", "status", "model", "created_at")
    list_filter = ("role", "status")
    raw_id_fields = ("conversation", "parent")
