"""Fetch the model lists of the configured providers now (e.g. from cron or after a deploy)."""

from django.core.management.base import BaseCommand, CommandError

from providers import catalogue
from providers.registry import configured_providers, get_provider


class Command(BaseCommand):
    help = "Refresh the cached model catalogue of every configured provider, or of the ones named."

    def add_arguments(self, parser) -> None:
        parser.add_argument("providers", nargs="*", help="Provider slugs or names; default: all configured.")

    def handle(self, *args, providers: list[str], **options) -> None:
        if providers:
            chosen = []
            for name in providers:
                provider = get_provider(name)
                if provider is None:
                    raise CommandError(f"Unknown provider {name!r}.")
                chosen.append(provider)
        else:
            chosen = configured_providers()
        if not chosen:
            self.stdout.write("No provider is configured on this server.")
            return
        failed = 0
        for provider in chosen:
            result = catalogue.refresh(provider)
            if result.error:
                failed += 1
                kept = f" (kept {len(result.models)} from before)" if result.models else ""
                self.stderr.write(f"{provider.slug}: {result.error}{kept}")
            else:
                self.stdout.write(f"{provider.slug}: {len(result.models)} models")
        if failed:
            raise CommandError(f"{failed} of {len(chosen)} catalogues could not be refreshed.")
