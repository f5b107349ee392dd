"""Model output rendered as safe Markdown (SPEC sections 7 and 11)."""

import re
from html.parser import HTMLParser

import pytest
from django.utils import translation
from django.utils.safestring import SafeString
from hypothesis import given, settings
from hypothesis import strategies as st

from chatapp import rendering
from chatapp.rendering import render_markdown

ALLOWED_TAGS = {
    "div", "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "li", "input",
    "em", "strong", "del", "s", "a", "code", "pre", "table", "thead", "tbody", "tr", "th", "td", "span", "button",
}  # fmt: skip


class Page(HTMLParser):
    """The elements of rendered HTML, as (tag, attrs) pairs, plus its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text_parts: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def find(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.elements if name == tag]

    def with_class(self, css_class: str) -> list[tuple[str, dict[str, str | None]]]:
        return [(n, a) for n, a in self.elements if css_class in (a.get("class") or "").split()]


def render(text: str) -> Page:
    return Page(render_markdown(text))


def test_output_is_safe_string_wrapped_in_markdown_div():
    html = render_markdown("hello")
    assert isinstance(html, SafeString)
    assert html.startswith('<div class="markdown">') and html.endswith("</div>")
    assert "<p>hello</p>" in html


def test_headings_lists_and_emphasis():
    page = render("# Title\n\n## Part\n\n- one\n- two\n\n3. three\n4. four\n\n**bold** *it* ~~gone~~")
    assert [n for n, _ in page.elements if n in {"h1", "h2"}] == ["h1", "h2"]
    assert len(page.find("li")) == 4
    assert page.find("ol") == [{"start": "3"}]
    assert {"strong", "em", "s"} <= {n for n, _ in page.elements}
    assert "Title" in page.text and "gone" in page.text


def test_task_list_checkboxes_are_disabled():
    page = render("- [x] done\n- [ ] todo")
    boxes = page.find("input")
    assert len(boxes) == 2
    assert all(b["type"] == "checkbox" and "disabled" in b for b in boxes)
    assert "checked" in boxes[0] and "checked" not in boxes[1]


def test_table_with_alignment_as_classes_not_styles():
    html = render_markdown("| Name | Price |\n|:-----|------:|\n| tea | 3 |\n| cake | 12 |")
    page = Page(html)
    assert len(page.find("tr")) == 3
    assert [a.get("class") for a in page.find("th")] == ["align-left", "align-right"]
    assert [a.get("class") for a in page.find("td")] == ["align-left", "align-right"] * 2
    assert "style=" not in html  # the CSP blocks inline styles
    assert "cake" in page.text


def test_fenced_code_is_highlighted_with_language_and_copy_button():
    page = render("```python\ndef add(a, b):\n    return a < b\n```")
    (block,) = page.with_class("code-block")
    assert block[0] == "div"
    assert page.find("code") == [{"class": "language-python"}]
    assert page.with_class("k")  # pygments' keyword class on `def`
    assert [a for n, a in page.elements if n == "span" and a.get("class") == "code-lang"]
    (button,) = page.find("button")
    assert button["type"] == "button" and "data-copy-code" in button
    assert "def add(a, b):\n    return a < b" in page.text
    assert "python" in page.text


def test_code_block_html_escaped_inside():
    html = render_markdown("```html\n<script>alert(1)</script>\n```")
    assert "<script" not in html
    assert "<script>alert(1)</script>" in Page(html).text


def test_unknown_or_missing_language_is_plain_escaped_text():
    for source in ("```nosuchlang\nx < 1\n```", "```\nx < 1\n```", "    x < 1"):
        html = render_markdown(source)
        assert "x &lt; 1" in html
        assert '<span class="' not in html.split("<pre>")[1]  # no token spans
        assert Page(html).find("button")


def test_hostile_language_name_does_not_reach_attributes():
    html = render_markdown('```"><script>alert(1)</script>\nx\n```')
    assert "<script" not in html
    assert "language-" not in html


def test_inline_code_is_escaped():
    page = render("Use `<b>bold</b>` tags")
    assert page.find("code") == [{}]
    assert "<b>bold</b>" in page.text
    assert not page.find("b")


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "<div onclick=alert(1)>click</div>",
        "<iframe src=http://evil/></iframe>",
    ],
)
def test_raw_html_is_shown_as_text(source):
    html = render_markdown(source)
    page = Page(html)
    assert source in page.text
    assert {n for n, _ in page.elements} <= {"div", "p"}
    assert "<script" not in html and "<img" not in html and "<iframe" not in html


@pytest.mark.parametrize(
    "source",
    ["[x](javascript:alert(1))", "[x](JavaScript:alert(1))", "[x](&#106;avascript:alert(1))", "[x](data:text/html,hi)"],
)
def test_dangerous_link_schemes_never_become_links(source):
    page = render(source)
    assert not page.find("a")
    assert "[x](" in page.text


def test_links_keep_http_and_mailto_with_safe_rel_and_no_target():
    page = render('[docs](https://example.com/a?b=1 "Docs") <mail@example.com> <http://example.org>')
    links = page.find("a")
    assert [a["href"] for a in links] == ["https://example.com/a?b=1", "mailto:mail@example.com", "http://example.org"]
    assert links[0]["title"] == "Docs"
    for link in links:
        assert link["rel"] == "noopener noreferrer nofollow"
        assert "target" not in link


def test_relative_links_stay_text():
    page = render("[admin](/admin/)")
    assert not page.find("a")
    assert "[admin](/admin/)" in page.text


def test_markdown_image_becomes_a_link_not_an_img():
    html = render_markdown("![a cat](http://evil/x.png?secret=1)")
    page = Page(html)
    assert "<img" not in html
    assert page.find("a")[0]["href"] == "http://evil/x.png?secret=1"
    assert "a cat" in page.text


def test_linked_badge_image_is_a_single_link():
    page = render("[![build](http://ci.example/badge.svg)](http://ci.example/)")
    assert page.find("a") == [{"href": "http://ci.example/", "rel": "noopener noreferrer nofollow"}]
    assert "build" in page.text


def test_math_is_kept_as_escaped_tex():
    html = render_markdown("Inline $a < b$ here.\n\n$$\n\\frac{1}{2} < x\n$$")
    page = Page(html)
    inline = page.with_class("math-inline")
    display = page.with_class("math-display")
    assert inline[0][0] == "span" and display[0][0] == "div"
    assert "math" in inline[0][1]["class"].split()
    assert "a &lt; b" in html and "\\frac{1}{2} &lt; x" in html


def test_bracket_math_delimiters():
    page = render("So \\(x^2\\) and\n\n\\[\n\\sum_i a_i\n\\]\n\nbut \\[1\\] is a citation.")
    assert len(page.with_class("math-inline")) == 1
    assert len(page.with_class("math-display")) == 1
    assert "\\sum_i a_i" in page.text  # underscores not taken as emphasis
    assert "[1]" in page.text


def test_dollar_amounts_are_not_math():
    page = render("It costs $5 and $10 per month, $5/$10 in the EU.")
    assert not page.with_class("math")
    assert "$5 and $10 per month, $5/$10" in page.text


def copy_label(html: str) -> str:
    return re.search(r"<button[^>]*>([^<]*)</button>", html)[1]


def test_rendered_html_is_the_same_in_every_language():
    # Finished messages are rendered once and cached for every reader: the
    # copy button's label comes from the reader's JavaScript catalogue.
    with translation.override("da"):
        danish = render_markdown("```\nx\n```")
    assert danish == render_markdown("```\nx\n```")
    assert copy_label(danish) == ""


def test_large_code_block_is_shown_without_highlighting():
    code = "x = 1\n" * (rendering.MAX_HIGHLIGHT_CHARS // 6 + 1)
    html = render_markdown(f"```python\n{code}```")
    assert '<span class="' not in html.split("<pre>")[1]
    assert html.count("x = 1") == code.count("x = 1")


MARKUP = st.sampled_from(
    [
        "<script>", "</script>", "<img src=x onerror=alert(1)>", "<a href=", "javascript:", "JaVaScRiPt:",
        "&#106;avascript:", "onclick=", " onload=", "\"", "'", "<", ">", "&", "[", "](", ")", "![", "`", "```",
        "```python\n", "\n", "\n\n", "    ", "$", "$$", "\\(", "\\)", "\\[", "\\]", "*", "_", "~~", "|", "|---|\n",
        "- [x] ", "> ", "# ", "http://", "mailto:", "<http://x/>", "data:text/html,", "<!--", "-->", "\\",
        "[x](javascript:alert(1))", "![a](javascript:alert(1))", "<javascript:alert(1)>", "[r]: javascript:x\n\n[r]",
        "[x](", "vbscript:", "file:///etc/passwd", "/relative", "//evil.example/",
    ]
)  # fmt: skip
HOSTILE_TEXT = st.lists(st.one_of(MARKUP, st.text(max_size=8)), max_size=40).map("".join)
ON_ATTRIBUTE = re.compile(r"<[^>]*\son\w+\s*=", re.IGNORECASE)


@settings(max_examples=300, deadline=None)
@given(HOSTILE_TEXT)
def test_arbitrary_text_never_yields_script_handlers_or_bad_urls(text):
    html = render_markdown(text)
    assert "<script" not in html.lower()
    assert not ON_ATTRIBUTE.search(html)
    page = Page(html)
    for tag, attrs in page.elements:
        assert tag in ALLOWED_TAGS
        assert not any(name.startswith("on") for name in attrs)
        for name in ("href", "src"):
            if name in attrs:
                assert attrs[name].lower().startswith(("http:", "https:", "mailto:"))
                assert "javascript:" not in attrs[name].lower()
