"""Issue a personal API token from the command line, for scripts and set-up.

Only the token goes to stdout, so `TOKEN=$(manage.py create_api_token alice)`
captures it; it cannot be shown again.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiToken


class Command(BaseCommand):
    help = "Create a personal API token for a user and print it (shown once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="A label to recognise the token by.")

    def handle(self, *args, username: str, name: str, **options) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive; their tokens would be refused.")
        name = name.strip()
        if not name:
            raise CommandError("The token name must not be empty.")
        _token, raw = ApiToken.issue(user, name[: ApiToken._meta.get_field("name").max_length])
        self.stdout.write(raw)
