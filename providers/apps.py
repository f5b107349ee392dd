from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = _("Providers")

    def ready(self) -> None:
        # Its signal receivers forget revoked tokens and changed keys, in
        # whichever process (or management command) the change is made.
        from providers import api_auth  # noqa: F401
