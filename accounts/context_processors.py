from accounts.models import Preferences


def preferences(request) -> dict:
    """The theme for <html data-theme>, for signed-in users; auto otherwise."""
    user = getattr(request, "user", None)
    theme = Preferences.Theme.AUTO
    if user is not None and user.is_authenticated:
        try:
            theme = user.preferences.theme
        except Preferences.DoesNotExist:
            pass
    return {"theme": theme}
