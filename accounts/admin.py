from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import Preferences, User


class PreferencesInline(admin.StackedInline):
    model = Preferences
    can_delete = False


@admin.register(User)
class SwitchboardUserAdmin(UserAdmin):
    inlines = [PreferencesInline]
