"""The settings pages, mounted at /settings/."""

from django.urls import path
from django.views.generic import RedirectView

from accounts import settings_views as account
from chatapp import all_chats, library, sharing
from providers import settings_views as provider

app_name = "settings"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="settings:providers"), name="index"),
    path("providers/", provider.providers, name="providers"),
    path("providers/<slug:provider>/", provider.provider_save, name="provider_save"),
    path("providers/<slug:provider>/clear/", provider.provider_clear, name="provider_clear"),
    path("providers/<slug:provider>/test/", provider.provider_test, name="provider_test"),
    path("tokens/", account.tokens, name="tokens"),
    path("tokens/new/", account.token_create, name="token_create"),
    path("tokens/<int:token_id>/revoke/", account.token_revoke, name="token_revoke"),
    path("preferences/", account.preferences, name="preferences"),
    path("shared/", sharing.shared_links, name="shared"),
    path("chats/", all_chats.chats, name="chats"),
    path("chats/archive/", all_chats.archive_all, name="chats_archive"),
    path("chats/unarchive/", all_chats.unarchive_all, name="chats_unarchive"),
    path("chats/delete/", all_chats.delete_all, name="chats_delete"),
    path("chats/restore/", all_chats.restore_all, name="chats_restore"),
    path("presets/", library.presets, name="presets"),
    path("presets/<int:preset_id>/", library.preset, name="preset"),
    path("presets/<int:preset_id>/delete/", library.preset_delete, name="preset_delete"),
    path("prompts/", library.prompts, name="prompts"),
    path("prompts/<int:prompt_id>/", library.prompt, name="prompt"),
    path("prompts/<int:prompt_id>/delete/", library.prompt_delete, name="prompt_delete"),
    path("models/", provider.models, name="models"),
    path("models/refresh/", provider.models_refresh, name="models_refresh"),
]
