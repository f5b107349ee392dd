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
    options = []
    for option in group.options:
        title, text = option.name, option.label
        if option.context_length:
            title += " · " + gettext("%(length)s tokens of context") % {"length": localize(option.context_length)}
            text += " · " + gettext("%(size)s context") % {"size": option.context_size}
        if option.prompt_price is not None:
            prices = f"${localize(option.prompt_price)} / ${localize(option.completion_price)}"
            text += f" · {prices} {per_million}"
        chosen = " selected" if option.ref == selected else ""
        options.append(f'<option value="{escape(option.ref)}"{chosen} title="{escape(title)}">{escape(text)}</option>')
    return mark_safe("\n".join(options))  # every text in them escaped here
