"""Prompts (`/settings/prompts/`): a user's saved texts, put in the message box by typing `/command` there.

The chat page carries the user's prompts (chat.html, as JSON); prompts.js
offers those whose command starts with what follows a `/` typed alone in
the box, and puts the chosen one's text in its place, to edit before sending.
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from chatapp.forms import PromptForm
from chatapp.models import Prompt


def _get_prompt_for_user(request: HttpRequest, prompt_id: int) -> Prompt:
    """The one ownership check: another user's prompt is a 404."""
    return get_object_or_404(Prompt, pk=prompt_id, owner=request.user)


def _saved(request: HttpRequest, form: PromptForm) -> bool:
    """Save a valid POSTed form, saying so on the next page."""
    if request.method != "POST" or not form.is_valid():
        return False
    prompt = form.save()
    messages.success(request, gettext("Prompt %(prompt)s saved.") % {"prompt": prompt})
    return True


def prompts(request: HttpRequest) -> HttpResponse:
    """The user's prompts, and the form of a new one (POST saves it)."""
    form = PromptForm(request.POST or None, instance=Prompt(owner=request.user))
    if _saved(request, form):
        return redirect("settings:prompts")
    context = {"section": "prompts", "form": form, "prompts": request.user.prompts.all()}
    return render(request, "settings/prompts.html", context)


def prompt(request: HttpRequest, prompt_id: int) -> HttpResponse:
    """One prompt's form (POST saves it)."""
    form = PromptForm(request.POST or None, instance=_get_prompt_for_user(request, prompt_id))
    if _saved(request, form):
        return redirect("settings:prompts")
    return render(request, "settings/prompt.html", {"section": "prompts", "form": form, "prompt": form.instance})


@require_POST
def prompt_delete(request: HttpRequest, prompt_id: int) -> HttpResponse:
    _get_prompt_for_user(request, prompt_id).delete()
    return redirect("settings:prompts")
