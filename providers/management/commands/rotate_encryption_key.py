"""Re-encrypt every stored provider key with the current FIELD_ENCRYPTION_KEY.

Rotation: set the new FIELD_ENCRYPTION_KEY, move the old one to
FIELD_ENCRYPTION_OLD_KEYS, run this command, then drop the old key.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from providers import crypto
from providers.models import ProviderCredential


class Command(BaseCommand):
    help = "Re-encrypt stored provider keys with the current FIELD_ENCRYPTION_KEY."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would change; write nothing.")

    def handle(self, *args, dry_run: bool = False, **options) -> None:
        rotated = current = 0
        unreadable: list[str] = []
        with transaction.atomic():
            credentials = ProviderCredential.objects.exclude(encrypted_key="")
            for credential in credentials.select_for_update().order_by("pk"):
                try:
                    if not crypto.needs_rotation(credential.encrypted_key):
                        current += 1
                        continue
                    plaintext = crypto.decrypt(credential.encrypted_key)
                except crypto.KeyDecryptionError:
                    # Name the row, never the token: the owner must enter the key again.
                    unreadable.append(f"{credential.user} / {credential.provider} (id {credential.pk})")
                    continue
                if not dry_run:
                    # Only the ciphertext changes; the hint and timestamps stay.
                    ProviderCredential.objects.filter(pk=credential.pk).update(
                        encrypted_key=crypto.encrypt(plaintext)
                    )
                rotated += 1
        verb = "Would re-encrypt" if dry_run else "Re-encrypted"
        self.stdout.write(f"{verb} {rotated} key(s); {current} already current; {len(unreadable)} unreadable.")
        if unreadable:
            raise CommandError(
                "These stored keys could not be decrypted with FIELD_ENCRYPTION_KEY or "
                "FIELD_ENCRYPTION_OLD_KEYS; their owners must enter them again:\n  " + "\n  ".join(unreadable)
            )
