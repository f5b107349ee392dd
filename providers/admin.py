from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from providers.models import ProviderCredential


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(admin.ModelAdmin):
    """Admins see which keys exist (by hint), never a key or its ciphertext."""

    list_display = ["user", "provider", "base_url", "key_hint", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["user__username", "base_url"]
    list_select_related = ["user"]
    fields = ["user", "provider", "base_url", "key_hint", "created_at", "updated_at"]
    readonly_fields = ["key_hint", "created_at", "updated_at"]
    raw_id_fields = ["user"]
    actions = ["clear_keys"]

    @admin.action(description=_("Clear the stored API key"))
    def clear_keys(self, request, queryset) -> None:
        count = 0
        for credential in queryset:
            credential.clear_key()
            credential.save(update_fields=["encrypted_key", "key_hint", "updated_at"])
            count += 1
        message = ngettext("Cleared %(count)d stored key.", "Cleared %(count)d stored keys.", count)
        self.message_user(request, message % {"count": count})
