from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.models import ApiToken, Preferences, User


class PreferencesInline(admin.StackedInline):
    model = Preferences
    can_delete = False


@admin.register(User)
class SwitchboardUserAdmin(UserAdmin):
    inlines = [PreferencesInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Admins see and revoke tokens; the hash is never shown."""

    list_display = ["name", "display_prefix", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    fields = ["user", "name", "display_prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["user", "display_prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_tokens"]

    @admin.display(description=_("prefix"))
    def display_prefix(self, token: ApiToken) -> str:
        return token.display_prefix

    def has_add_permission(self, request) -> bool:
        # A token is shown once to the person it belongs to, so it is issued on
        # the settings page or by `manage.py create_api_token`, not here.
        return False

    @admin.action(description=_("Revoke the selected tokens"))
    def revoke_tokens(self, request, queryset) -> None:
        tokens = list(queryset.filter(revoked_at__isnull=True))
        for token in tokens:
            token.revoke()  # one by one: each is forgotten by every process that remembers it
        count = len(tokens)
        message = ngettext("Revoked %(count)d token.", "Revoked %(count)d tokens.", count)
        self.message_user(request, message % {"count": count})
