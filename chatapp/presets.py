"""Presets (`/settings/presets/`): a user's named chat settings, to start chats from or apply to one.

A preset is the model, system prompt and parameters of the chat settings
form, under a name. It is applied by the chat settings view (POST
`preset=<id>`): from the panel in a chat's header, from a new chat's empty
page, or from this page's "Start a chat", which applies it to a chat not made
yet. The chat takes a copy: changing the preset later changes no chat.
"""

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from chatapp.forms import PresetForm
from chatapp.models import Preset
from chatapp.picker import default_model_ref, picker_groups
from providers.credentials import reachable_providers
from providers.model_table import ModelTable


def _get_preset_for_user(request: HttpRequest, preset_id: int) -> Preset:
    """The one ownership check: another user's preset is a 404."""
    return get_object_or_404(Preset, pk=preset_id, owner=request.user)


def _form(request: HttpRequest, preset: Preset | None = None) -> PresetForm:
    """The preset's form, or a new one's on the user's default model; bound on POST. It offers the user's models."""
    providers = reachable_providers(request.user)
    table = ModelTable.current()
    if preset is None:
        preset = Preset(owner=request.user, model=default_model_ref(request.user, providers, table))
    data = request.POST if request.method == "POST" else None
    return PresetForm(data, instance=preset, providers=providers, table=table)


def presets(request: HttpRequest) -> HttpResponse:
    """The user's presets, and the form of a new one (POST saves it)."""
    form = _form(request)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, gettext("Preset “%(name)s” saved.") % {"name": form.instance.name})
        return redirect("settings:presets")
    groups = picker_groups(form.providers, form.table)
    labels = {option.ref: option.label for group in groups for option in group.options}
    # "Start a chat" applies the preset to a chat not made yet: one new id each. A model no longer offered shows as
    # its reference, as the picker names it.
    rows = [(preset, labels.get(preset.model, preset.model), uuid.uuid4()) for preset in request.user.presets.all()]
    return render(request, "settings/presets.html", {"section": "presets", "form": form, "rows": rows})


def preset(request: HttpRequest, preset_id: int) -> HttpResponse:
    """One preset's form (POST saves it). The chats it started keep the settings they were given."""
    form = _form(request, _get_preset_for_user(request, preset_id))
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, gettext("Preset “%(name)s” saved.") % {"name": form.instance.name})
        return redirect("settings:presets")
    return render(request, "settings/preset.html", {"section": "presets", "form": form, "preset": form.instance})


@require_POST
def preset_delete(request: HttpRequest, preset_id: int) -> HttpResponse:
    """Delete a preset. The chats it started keep their settings."""
    _get_preset_for_user(request, preset_id).delete()
    return redirect("settings:presets")
