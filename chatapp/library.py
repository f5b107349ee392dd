"""A user's library for chatting, kept on the settings pages: presets and prompts.

Presets (`/settings/presets/`) are the model, system prompt and parameters
of the chat settings form, under a name. One is applied by the chat settings
view (POST `preset=<id>`): from the panel in a chat's header, from a new
chat's empty page, or from this page's "Start a chat", which applies it to a
chat not made yet. The chat takes a copy: changing the preset later changes
no chat.

Prompts (`/settings/prompts/`) are texts under a command. The chat page
carries the user's prompts (chat.html, as JSON); prompts.js offers those
whose command starts with what follows a `/` typed alone in the message box,
and puts the chosen one's text in its place, to edit before sending.
"""

import uuid

from django.contrib import messages
from django.db.models import Model
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from chatapp.forms import PresetForm, PromptForm
from chatapp.models import Preset, Prompt
from chatapp.picker import default_model_ref, picker_groups
from providers.credentials import reachable_providers
from providers.model_table import ModelTable


def _owned(request: HttpRequest, model: type[Model], pk: int):
    """The one ownership check: another user's preset or prompt is a 404."""
    return get_object_or_404(model, pk=pk, owner=request.user)


def _saved(request: HttpRequest, form: ModelForm, message: str) -> bool:
    """Whether a valid POSTed form was saved; `message` (naming it as `%(name)s`) says so on the next page."""
    if request.method != "POST" or not form.is_valid():
        return False
    messages.success(request, message % {"name": form.save()})
    return True


# Presets ---------------------------------------------------------------------------


def _preset_form(request: HttpRequest, preset: Preset | None = None) -> PresetForm:
    """The preset's form, or a new one's on the user's default model; bound on POST. It offers the user's models."""
    providers = reachable_providers(request.user)
    table = ModelTable.current()
    if preset is None:
        preset = Preset(owner=request.user, model=default_model_ref(request.user, providers, table))
    data = request.POST if request.method == "POST" else None
    return PresetForm(data, instance=preset, providers=providers, table=table)


def presets(request: HttpRequest) -> HttpResponse:
    """The user's presets, and the form of a new one (POST saves it)."""
    form = _preset_form(request)
    if _saved(request, form, gettext("Preset “%(name)s” saved.")):
        return redirect("settings:presets")
    groups = picker_groups(form.providers, form.table)
    labels = {option.ref: option.label for group in groups for option in group.options}
    # "Start a chat" applies the preset to a chat not made yet: one new id each. A model no longer offered shows as
    # its reference, as the picker names it, and says so.
    rows = [(preset, labels.get(preset.model), uuid.uuid4()) for preset in request.user.presets.all()]
    return render(request, "settings/presets.html", {"section": "presets", "form": form, "rows": rows})


def preset(request: HttpRequest, preset_id: int) -> HttpResponse:
    """One preset's form (POST saves it). The chats it started keep the settings they were given."""
    form = _preset_form(request, _owned(request, Preset, preset_id))
    if _saved(request, form, gettext("Preset “%(name)s” saved.")):
        return redirect("settings:presets")
    return render(request, "settings/preset.html", {"section": "presets", "form": form, "preset": form.instance})


@require_POST
def preset_delete(request: HttpRequest, preset_id: int) -> HttpResponse:
    """Delete a preset. The chats it started keep their settings."""
    _owned(request, Preset, preset_id).delete()
    return redirect("settings:presets")


# Prompts ---------------------------------------------------------------------------


def prompts(request: HttpRequest) -> HttpResponse:
    """The user's prompts, and the form of a new one (POST saves it)."""
    form = PromptForm(request.POST or None, instance=Prompt(owner=request.user))
    if _saved(request, form, gettext("Prompt %(name)s saved.")):
        return redirect("settings:prompts")
    context = {"section": "prompts", "form": form, "prompts": request.user.prompts.all()}
    return render(request, "settings/prompts.html", context)


def prompt(request: HttpRequest, prompt_id: int) -> HttpResponse:
    """One prompt's form (POST saves it)."""
    form = PromptForm(request.POST or None, instance=_owned(request, Prompt, prompt_id))
    if _saved(request, form, gettext("Prompt %(name)s saved.")):
        return redirect("settings:prompts")
    return render(request, "settings/prompt.html", {"section": "prompts", "form": form, "prompt": form.instance})


@require_POST
def prompt_delete(request: HttpRequest, prompt_id: int) -> HttpResponse:
    _owned(request, Prompt, prompt_id).delete()
    return redirect("settings:prompts")
