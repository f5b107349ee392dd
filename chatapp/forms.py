from django import forms
from django.utils.translation import gettext_lazy as _

from chatapp.models import Conversation
from chatapp.picker import picker_groups
from providers.model_table import ModelTable

REASONING_EFFORTS = [
    ("", _("Model default")),
    ("minimal", _("Minimal")),
    ("low", _("Low")),
    ("medium", _("Medium")),
    ("high", _("High")),
    ("xhigh", _("Extra high")),
]


class RenameForm(forms.ModelForm):
    class Meta:
        model = Conversation
        fields = ("title",)


class ConversationSettingsForm(forms.ModelForm):
    model = forms.ChoiceField(label=_("Model"))
    temperature = forms.FloatField(label=_("Temperature"), required=False, min_value=0, max_value=2)
    top_p = forms.FloatField(label=_("Top p"), required=False, min_value=0, max_value=1)
    max_tokens = forms.IntegerField(label=_("Max tokens"), required=False, min_value=1, max_value=1_000_000)
    reasoning_effort = forms.ChoiceField(label=_("Reasoning effort"), choices=REASONING_EFFORTS, required=False)
    provider_order = forms.CharField(
        label=_("OpenRouter provider order"),
        required=False,
        max_length=500,
        help_text=_("Comma-separated provider names, tried in this order, e.g. anthropic, openai."),
    )

    class Meta:
        model = Conversation
        fields = ("model", "system_prompt", "temperature", "top_p", "max_tokens", "reasoning_effort", "allow_fallbacks")
        labels = {"system_prompt": _("System prompt"), "allow_fallbacks": _("Allow other providers as fallbacks")}
        widgets = {"system_prompt": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args, providers: list[str], table: ModelTable, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = table
        self.fields["model"].choices = [
            (group.provider.name, [(option.ref, option.label) for option in group.options])
            for group in picker_groups(providers, table)
        ]
        self.fields["provider_order"].initial = ", ".join(self.instance.provider_order or [])
        entry = self._entry(self.instance.model)
        if entry is not None and entry.source == "catalogue" and not entry.supports_reasoning:
            # Offered only where the model can reason (or when we cannot tell).
            del self.fields["reasoning_effort"]

    def _entry(self, ref: str):
        name, _sep, provider = ref.rpartition("@")
        return self.table.find(provider, name) if name else None

    def clean_provider_order(self) -> list[str]:
        names = [name.strip() for name in self.cleaned_data["provider_order"].split(",")]
        return [name for name in names if name][:20]

    def save(self, commit: bool = True) -> Conversation:
        self.instance.provider_order = self.cleaned_data["provider_order"]
        return super().save(commit)
