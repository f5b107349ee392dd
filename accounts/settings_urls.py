"""The settings pages, mounted at /settings/."""

urlpatterns: list = []
