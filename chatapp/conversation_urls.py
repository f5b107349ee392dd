"""Export, import, shared links and usage pages, mounted at the site root by chatapp/urls.py."""

from django.urls import path

from chatapp import sharing, transfer, usage_views

urlpatterns = [
    path("c/import/", transfer.import_conversations, name="conversation_import"),
    path("c/export.json", transfer.export_all_json, name="conversations_export_json"),
    path("c/<uuid:conversation_id>/export.md", transfer.export_markdown, name="conversation_export"),
    path("c/<uuid:conversation_id>/export.json", transfer.export_json, name="conversation_export_json"),
    path("s/<slug:token>/", sharing.shared, name="shared"),
    path("s/<slug:token>/files/<uuid:attachment_id>/", sharing.shared_file, name="shared_file"),
    path("s/<slug:token>/message-text/", sharing.shared_text, name="shared_text"),
    path("usage/", usage_views.usage, name="usage"),
    path("usage/usage.csv", usage_views.usage_csv, name="usage_csv"),
    path("usage/all/", usage_views.usage_admin, name="usage_admin"),
]
