from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from accounts.views import set_language
from chatapp import archive, attachments, health, sharing, transfer, views

chat_patterns = [
    path("", views.home, name="home"),
    path("c/new/", views.new_chat, name="new"),
    path("c/list/", views.conversation_list, name="list"),
    path("c/archived/", archive.archived, name="archived"),
    path("c/<uuid:conversation_id>/", views.conversation, name="conversation"),
    path("c/<uuid:conversation_id>/send/", views.send, name="send"),
    path("c/<uuid:conversation_id>/regenerate/", views.regenerate, name="regenerate"),
    path("c/<uuid:conversation_id>/continue/", views.continue_answer, name="continue"),
    path("c/<uuid:conversation_id>/branch/", transfer.branch, name="branch"),
    path("c/<uuid:conversation_id>/edit/", views.edit, name="edit"),
    path("c/<uuid:conversation_id>/edit-answer/", views.edit_answer, name="edit_answer"),
    path("c/<uuid:conversation_id>/message-text/", views.message_text, name="message_text"),
    path("c/<uuid:conversation_id>/stop/", views.stop, name="stop"),
    path("c/<uuid:conversation_id>/rename/", views.rename, name="rename"),
    path("c/<uuid:conversation_id>/delete/", views.delete, name="delete"),
    path("c/<uuid:conversation_id>/restore/", views.restore, name="restore"),
    path("c/<uuid:conversation_id>/pin/", views.pin, name="pin"),
    path("c/<uuid:conversation_id>/archive/", archive.archive, name="archive"),
    path("c/<uuid:conversation_id>/unarchive/", archive.unarchive, name="unarchive"),
    path("c/<uuid:conversation_id>/settings/", views.conversation_settings, name="settings"),
    path("c/<uuid:conversation_id>/share/", sharing.share, name="share"),
    path("c/<uuid:conversation_id>/versions/<int:message_id>/", views.show_version, name="version"),
    path("c/<uuid:conversation_id>/earlier/", views.earlier_messages, name="earlier"),
    path("c/<uuid:conversation_id>/later/", views.later_messages, name="later"),
    path("c/<uuid:conversation_id>/attachments/", attachments.upload, name="attach"),
    path("c/<uuid:conversation_id>/attachments/<uuid:attachment_id>/", attachments.attachment, name="attachment"),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("settings/", include("accounts.settings_urls")),
    path("api/", include("providers.api_urls")),
    path("i18n/setlang/", set_language, name="set_language"),
    path("jsi18n/", login_not_required(JavaScriptCatalog.as_view()), name="javascript-catalog"),
    path("", include("chatapp.conversation_urls")),
    path("", include((chat_patterns, "chat"))),
]
