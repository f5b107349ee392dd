from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from accounts.forms import SignUpForm
from accounts.models import Preferences, User


def signup_is_open() -> bool:
    return settings.ALLOW_SIGNUP or not User.objects.exists()


@login_not_required
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    if not signup_is_open():
        return render(request, "accounts/signup_closed.html", status=403)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            first = not User.objects.exists()
            user = form.save(commit=False)
            # The first account runs the server, as in Open WebUI.
            user.is_staff = user.is_superuser = first
            user.save()
            Preferences.objects.create(user=user)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/signup.html", {"form": form, "first_account": not User.objects.exists()})


class SignInView(auth_views.LoginView):
    template_name = "accounts/signin.html"
    redirect_authenticated_user = True

    def get(self, request, *args, **kwargs):
        # A fresh server has no account yet: the first visit is the sign-up.
        if not User.objects.exists():
            return redirect("accounts:signup")
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(signup_open=signup_is_open(), **kwargs)


class SignOutView(auth_views.LogoutView):
    pass


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("chat:home")

    def form_valid(self, form):
        messages.success(self.request, _("Your password was changed."))
        return super().form_valid(form)


@login_not_required
@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's set_language, remembering the choice for a signed-in user."""
    response = django_set_language(request)
    language = request.POST.get("language", "")
    if request.user.is_authenticated and language in dict(settings.LANGUAGES):
        Preferences.objects.update_or_create(user=request.user, defaults={"language": language})
    return response

