"""`{% message_meta message %}`: the figures under a final answer (model, tokens, cost, speed).

A conversation page draws them under every answer: 500 times on a page of
1,000 messages. As a template partial they took a third of such a page's
server time (three `blocktranslate`s and three `floatformat`s per answer,
each a walk through Django's template machinery). Here they are the same
markup, from the same translated strings, with numbers formatted as
`floatformat` formats them, in a fraction of that time.
"""

from decimal import ROUND_HALF_UP, Decimal
from html import escape

from django import template
from django.utils.formats import number_format
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

register = template.Library()


def _decimals(value: float | Decimal, places: int) -> str:
    """As `value|floatformat:places`: rounded half up, in the active language's number format."""
    rounded = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    return number_format(rounded, places, use_l10n=True)


def _cost(value: Decimal) -> str:
    """As `value|floatformat:"-5"`: five decimals, none for a whole number."""
    return number_format(int(value), 0, use_l10n=True) if value == int(value) else _decimals(value, 5)


@register.simple_tag
def message_meta(message) -> SafeString:
    spans = []  # every text in them escaped here, numbers included (a locale's separators are text too)
    if message.status == message.Status.STOPPED:
        spans.append(f'<span class="meta-stopped">{escape(gettext("Stopped"))}</span>')
    elif message.finish_reason == "length":
        cut = gettext("Cut off at the length limit")
        title = gettext("The model reached the most tokens it may write (max tokens): Continue asks for the rest.")
        spans.append(f'<span class="meta-stopped" title="{escape(title)}">{escape(cut)}</span>')
    if message.edited:
        title = gettext("You rewrote the model's answer; its own is the version before.")
        spans.append(f'<span class="meta-edited" title="{escape(title)}">{escape(gettext("Edited"))}</span>')
    if message.model:
        spans.append(f'<span class="meta-model" title="{escape(message.model)}">{escape(message.model_name)}</span>')
    if tokens := message.token_counts():
        spans.append(f'<span title="{escape(gettext("Prompt tokens → completion tokens"))}">{escape(tokens)}</span>')
    if message.cost is not None:
        spans.append(f"<span>${escape(_cost(message.cost))}</span>")
    if message.time_to_first_token is not None:
        ttft = gettext("TTFT %(seconds)s s") % {"seconds": _decimals(message.time_to_first_token, 2)}
        spans.append(f'<span title="{escape(gettext("Time to first token"))}">{escape(ttft)}</span>')
    if rate := message.tokens_per_second:
        spans.append(f"<span>{escape(gettext('%(rate)s tokens/s') % {'rate': _decimals(rate, 1)})}</span>")
    return mark_safe("\n".join(spans))
