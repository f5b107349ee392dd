"""`{% model_options group selected %}`: the picker's options of one provider.

Every chat page carries the model picker, and OpenRouter alone offers some
350 models. As template markup each option cost two `blocktranslate`s and a
`translate`: with such a catalogue, a third of the bench's long
conversation page (78.5 ms against 51.5 ms here). These are the same
options, from the same translated strings, with numbers in the active
language's format, as the template showed them.
"""

from html import escape

from django import template
from django.utils.formats import localize
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

register = template.Library()


@register.simple_tag
def model_options(group, selected: str) -> SafeString:
    per_million = gettext("per million tokens")
    tokens_of_context, size_context = gettext("%(length)s tokens of context"), gettext("%(size)s context")
    formatted: dict[tuple[type, str], str] = {}  # many models share a length or a price

    def number(value) -> str:  # keyed by how it is written: Decimal("1E+1") == 10, and they may read differently
        key = (type(value), str(value))
        if key not in formatted:
            formatted[key] = localize(value)
        return formatted[key]

    options = []
    for option in group.options:
        title, text = option.name, option.label
        if option.context_length:
            title += " · " + tokens_of_context % {"length": number(option.context_length)}
            text += " · " + size_context % {"size": option.context_size}
        if option.prompt_price is not None:
            text += f" · ${number(option.prompt_price)} / ${number(option.completion_price)} {per_million}"
        chosen = " selected" if option.ref == selected else ""
        chosen += " data-text-only" if option.text_only else ""  # attachments.js: a picture attached is not for it
        options.append(f'<option value="{escape(option.ref)}"{chosen} title="{escape(title)}">{escape(text)}</option>')
    return mark_safe("\n".join(options))  # every text in them escaped here
