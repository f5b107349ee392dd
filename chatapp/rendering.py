"""Model output as safe HTML: Markdown, highlighted code, math kept as TeX (static/js/math.js typesets it).

Two independent locks: markdown-it runs with raw HTML off, so anything in the
model's text that looks like a tag is escaped and shown; nh3 then cleans the
result against an allow-list, so a slip in one of them alone lets no script,
event handler, image or `javascript:` URL reach the page.

The parser, the renderer rules and the cleaner are built once at import: a
conversation page renders up to a thousand messages.
"""

import re
from functools import lru_cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from mdit_py_plugins.dollarmath import dollarmath_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

URL_SCHEMES = ("http:", "https:", "mailto:")

# Longer code is shown unhighlighted: pygments is linear, but a 1 MB paste
# should not hold up a page of a thousand messages.
MAX_HIGHLIGHT_CHARS = 100_000
# How far `\(` and `\[` look for their closer; bounds the work on text full of
# unclosed openers.
MAX_MATH_CHARS = 4_000

_LANGUAGE_RE = re.compile(r"[\w.+#-]{1,40}")
_CITATION_RE = re.compile(r"[\d\s,-]*")
_ALIGN_RE = re.compile(r"text-align:(left|center|right)")
_FORMATTER = HtmlFormatter(nowrap=True)


@lru_cache(maxsize=256)
def _lexer(language: str) -> Lexer | None:
    try:
        return get_lexer_by_name(language)
    except ClassNotFound:
        return None


def _code_block(code: str, language: str) -> str:
    if not _LANGUAGE_RE.fullmatch(language):
        language = ""
    lexer = _lexer(language.lower()) if language and len(code) <= MAX_HIGHLIGHT_CHARS else None
    body = (highlight(code, lexer, _FORMATTER) if lexer else escapeHtml(code)).rstrip("\n")
    code_class = f' class="language-{escapeHtml(language)}"' if language else ""
    return (
        '<div class="code-block"><div class="code-header">'
        f'<span class="code-lang">{escapeHtml(language)}</span>'
        f'<button type="button" class="copy-code" data-copy-code></button>'
        f"</div><pre><code{code_class}>{body}</code></pre></div>\n"
    )


def _render_fence(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    info = token.info.split(maxsplit=1)
    return _code_block(token.content, info[0] if info else "")


def _render_code_block(self, tokens, idx, options, env) -> str:
    return _code_block(tokens[idx].content, "")


def _render_image(self, tokens, idx, options, env) -> str:
    # An image URL is fetched without a click and can carry the conversation
    # out in its query string: show it as a plain link instead.
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children, options, env) if token.children else ""
    if sum(t.nesting for t in tokens[:idx] if t.type in ("link_open", "link_close")) > 0:
        return escapeHtml(alt or src)  # `[![badge](img)](url)`: links do not nest
    return f'<a href="{escapeHtml(src)}">{escapeHtml(alt or src)}</a>'


def _render_cell_open(self, tokens, idx, options, env) -> str:
    # The CSP forbids style attributes: alignment becomes a class.
    token = tokens[idx]
    style = token.attrs.pop("style", None)
    if style and (match := _ALIGN_RE.fullmatch(str(style))):
        token.attrSet("class", f"align-{match[1]}")
    return self.renderToken(tokens, idx, options, env)


def _render_math_inline(self, tokens, idx, options, env) -> str:
    return f'<span class="math math-inline">{escapeHtml(tokens[idx].content.strip())}</span>'


def _render_math_inline_display(self, tokens, idx, options, env) -> str:
    # Display math written inside a paragraph: a div would break the <p>.
    return f'<span class="math math-display">{escapeHtml(tokens[idx].content.strip())}</span>'


def _render_math_block(self, tokens, idx, options, env) -> str:
    return f'<div class="math math-display">{escapeHtml(tokens[idx].content.strip())}</div>\n'


def _bracket_math_inline(state: StateInline, silent: bool) -> bool:
    """`\\(a\\)` inline and `\\[a\\]` display math inside a paragraph."""
    src, pos = state.src, state.pos
    if src[pos] != "\\" or pos + 1 >= state.posMax or src[pos + 1] not in "([":
        return False
    display = src[pos + 1] == "["
    end = src.find("\\]" if display else "\\)", pos + 2, min(state.posMax, pos + MAX_MATH_CHARS))
    if end == -1:
        return False
    content = src[pos + 2 : end]
    # `\[1\]` is an escaped citation far more often than an equation.
    if not content.strip() or (display and _CITATION_RE.fullmatch(content)):
        return False
    if not silent:
        token = state.push("math_inline_double" if display else "math_inline", "math", 0)
        token.content = content
        token.markup = "\\[" if display else "\\("
    state.pos = end + 2
    return True


def _bracket_math_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """`\\[` ... `\\]` on lines of their own, as language models like to write it."""
    if state.sCount[start_line] - state.blkIndent >= 4:
        return False
    begin = state.bMarks[start_line] + state.tShift[start_line]
    first = state.src[begin : state.eMarks[start_line]].rstrip()
    if not first.startswith("\\["):
        return False
    if len(first) > 4 and first.endswith("\\]"):
        last_line, parts = start_line, [first[2:-2]]
    else:
        if "\\]" in first:
            return False
        parts = [first[2:]]
        last_line = start_line + 1
        while True:
            if last_line >= end_line or state.isEmpty(last_line):
                return False
            line = state.src[state.bMarks[last_line] + state.tShift[last_line] : state.eMarks[last_line]].rstrip()
            if line.endswith("\\]"):
                parts.append(line[:-2])
                break
            parts.append(line)
            last_line += 1
    content = "\n".join(parts)
    if not content.strip():
        return False
    if silent:
        return True
    state.line = last_line + 1
    token = state.push("math_block", "math", 0)
    token.block = True
    token.content = content
    token.markup = "\\["
    token.map = [start_line, state.line]
    return True


def _is_allowed_url(url: str) -> bool:
    return url.lower().startswith(URL_SCHEMES)


def _build_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "tasklists": True, "tasklists_editable": False})
    md.enable(["table", "strikethrough"])
    # Dollars also mean money: "$5 and $10" must stay text, hence no space
    # inside the delimiters and no digit right outside them.
    md.use(
        dollarmath_plugin,
        allow_labels=False,
        allow_space=False,
        allow_digits=False,
        allow_blank_lines=False,
        double_inline=True,
    )
    md.inline.ruler.before("escape", "math_bracket_inline", _bracket_math_inline)
    md.block.ruler.before(
        "fence",
        "math_bracket_block",
        _bracket_math_block,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )
    # Links markdown-it refuses stay visible as text: `[x](javascript:...)`.
    md.validateLink = _is_allowed_url
    for name, rule in {
        "fence": _render_fence,
        "code_block": _render_code_block,
        "image": _render_image,
        "th_open": _render_cell_open,
        "td_open": _render_cell_open,
        "math_inline": _render_math_inline,
        "math_inline_double": _render_math_inline_display,
        "math_block": _render_math_block,
    }.items():
        md.add_render_rule(name, rule)
    return md


_PARSER = _build_parser()

_CLEANER = nh3.Cleaner(
    tags={
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
        "ul", "ol", "li", "input", "em", "strong", "del", "s", "a",
        "code", "pre", "table", "thead", "tbody", "tr", "th", "td",
        "span", "div", "button",
    },  # fmt: skip
    attributes={
        "a": {"href", "title"},
        "ol": {"start", "class"},
        "ul": {"class"},
        "li": {"class"},
        "code": {"class"},
        "span": {"class"},
        "div": {"class"},
        "th": {"class"},
        "td": {"class"},
        "button": {"class", "data-copy-code"},
        "input": {"class", "checked"},
    },
    # Whatever came in, a button only copies and a checkbox only shows.
    set_tag_attribute_values={
        "button": {"type": "button"},
        "input": {"type": "checkbox", "disabled": ""},
    },
    url_schemes={"http", "https", "mailto"},
    url_relative="deny",
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def render_markdown(text: str) -> SafeString:
    """Model output (untrusted Markdown) as sanitised HTML in a `.markdown` div."""
    html = _CLEANER.clean(_PARSER.render(text))
    return mark_safe(f'<div class="markdown">{html}</div>')  # noqa: S308 - cleaned by nh3 above
