"""The conversation page: what a signed-in owner sees, and what it costs to render."""

import re
import uuid
from html import unescape as html_unescape

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from chatapp.models import KEPT_ABOVE, PAGE_MESSAGES, Conversation, Message

MARKDOWN = "## Result\n\nSome **bold** text and a list:\n\n- one\n- two\n\n```python\nprint('hi')\n```\n"


def _conversation_with(owner, pairs: int) -> Conversation:
    chat = Conversation.objects.create(owner=owner, title="Long one", model="gpt-4o@openai")
    parent_id = None
    for i in range(pairs):
        # Ids, not objects: a thousand messages each holding its parent is a
        # chain Django's ModelState.__del__ overflows the stack freeing.
        question = Message.objects.create(conversation=chat, parent_id=parent_id, role="user", content=f"Question {i}")
        parent_id = Message.objects.create(
            conversation=chat, parent_id=question.id, role="assistant", content=MARKDOWN + f"\nAnswer {i}",
            status=Message.Status.DONE, model="gpt-4o@openai",
        ).id
    chat.current_leaf_id = parent_id
    chat.save()
    return chat


@pytest.mark.django_db
def test_page_shows_the_branch_with_roles_and_statuses(alice_client, alice):
    chat = _conversation_with(alice, 2)
    html = alice_client.get(chat.get_absolute_url()).content.decode()
    assert html.count('data-role="user"') == 2
    assert html.count('data-role="assistant"') == 2
    assert 'data-status="done"' in html
    assert "Answer 1" in html and "<strong>bold</strong>" in html
    assert f'ws-connect="/ws/chat/{chat.id}/"' in html


@pytest.mark.django_db
def test_composer_has_the_accessible_names(alice_client):
    html = alice_client.get("/c/new/").content.decode()
    assert 'aria-label="Message"' in html
    assert '<label for="model-select">Model</label>' in html
    assert ">Send</button>" in html and ">Stop</button>" in html
    assert ">New chat</a>" in html


@pytest.mark.django_db
def test_a_thousand_messages_render_with_a_fixed_number_of_queries(alice_client, alice):
    small = _conversation_with(alice, 5)
    with CaptureQueriesContext(connection) as few:
        assert alice_client.get(small.get_absolute_url()).status_code == 200
    big = _conversation_with(alice, 500)
    with CaptureQueriesContext(connection) as many:
        response = alice_client.get(big.get_absolute_url() + "?all=1")
    assert response.status_code == 200
    assert response.content.decode().count('data-role="assistant"') == 500
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
    assert len(many) <= 13  # the saved prompts (prompts.js) are the 13th


_ARTICLE_ID = re.compile(r'<article id="m-(\d+)"')
_EARLIER = re.compile(r'<div class="earlier-messages" hx-get="([^"]+)"[^>]*><a href="([^"]+)">([^<]+)</a>')
_LATER = re.compile(r'<div class="later-messages" hx-get="([^"]+)"[^>]*><a href="([^"]+)">([^<]+)</a>')
_RESULT_LINK = re.compile(r'<li id="conversation-[^"]+"[^>]*>\s*<a href="([^"]+)">')  # a search result's


@pytest.mark.django_db
def test_a_long_page_carries_its_latest_messages_and_the_earlier_ones_load_in_order(alice_client, alice):
    chat = _conversation_with(alice, 125)
    branch = [m.id for m in chat.branch()]
    html = alice_client.get(chat.get_absolute_url()).content.decode()
    shown = [int(i) for i in _ARTICLE_ID.findall(html)]
    assert shown == branch[-PAGE_MESSAGES:]
    link = _EARLIER.search(html)
    assert link[3] == "Show the 150 earlier messages" and link[2] == f"{chat.get_absolute_url()}?all=1"

    windows = []
    while link:
        with CaptureQueriesContext(connection) as queries:
            fragment = alice_client.get(html_unescape(link[1]), HTTP_HX_REQUEST="true").content.decode()
        windows.append(len(queries))
        shown = [int(i) for i in _ARTICLE_ID.findall(fragment)] + shown
        link = _EARLIER.search(fragment)
    assert shown == branch  # every message once, in order
    assert len(windows) == 2 and windows[0] == windows[1]  # a fixed number of queries per window


@pytest.mark.django_db
def test_a_window_asked_for_after_the_branch_changed_redraws_the_page(alice_client, alice, bob):
    chat = _conversation_with(alice, 60)
    earlier = f"/c/{chat.id}/earlier/?before=999999"
    response = alice_client.get(earlier, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response.headers["HX-Refresh"] == "true"
    assert alice_client.get(earlier).url == chat.get_absolute_url()
    alice_client.force_login(bob)
    assert alice_client.get(f"/c/{chat.id}/earlier/?before={chat.current_leaf_id}").status_code == 404


@pytest.mark.django_db
def test_flipping_an_early_version_keeps_it_on_the_page(alice_client, alice):
    chat = _conversation_with(alice, 80)
    answer = chat.branch()[41]
    other = chat.regenerate(answer, "gpt-4o@openai")  # on screen now: a branch that ends there
    Message.objects.filter(pk=other.id).update(status=Message.Status.DONE, content="Version B")
    response = alice_client.post(f"/c/{chat.id}/versions/{answer.id}/", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    shown = [int(i) for i in _ARTICLE_ID.findall(html)]
    # A page's worth from a screenful before the version flipped to, where the reader is: 100 of 160.
    chat.refresh_from_db()
    assert shown == [m.id for m in chat.branch()][41 - KEPT_ABOVE : 41 - KEPT_ABOVE + PAGE_MESSAGES]
    assert "Show the 21 earlier messages</a>" in html and "Show the 39 later messages</a>" in html

    # Flipped near the end, the page reaches it: fewer than a screenful are left after a page's worth.
    answer = chat.branch()[71]
    other = chat.regenerate(answer, "gpt-4o@openai")
    Message.objects.filter(pk=other.id).update(status=Message.Status.DONE, content="Version B")
    html = alice_client.post(f"/c/{chat.id}/versions/{answer.id}/", HTTP_HX_REQUEST="true").content.decode()
    chat.refresh_from_db()
    assert [int(i) for i in _ARTICLE_ID.findall(html)] == [m.id for m in chat.branch()][71 - KEPT_ABOVE :]
    assert "later-messages" not in html


@pytest.mark.django_db
def test_without_javascript_an_early_version_flipped_is_on_the_page_it_lands_on(alice_client, alice):
    chat = _conversation_with(alice, 80)
    answer = chat.branch()[41]
    other = chat.regenerate(answer, "gpt-4o@openai")
    Message.objects.filter(pk=other.id).update(status=Message.Status.DONE, content="Version B")
    response = alice_client.post(f"/c/{chat.id}/versions/{answer.id}/")
    assert response.url == f"{chat.get_absolute_url()}?keep={answer.id}#m-{answer.id}"
    shown = [int(i) for i in _ARTICLE_ID.findall(alice_client.get(response.url).content.decode())]
    chat.refresh_from_db()
    start = 41 - KEPT_ABOVE
    assert answer.id in shown and shown == [m.id for m in chat.branch()][start : start + PAGE_MESSAGES]
    # A message no longer on the branch, or junk, leaves the page's usual end.
    for junk in (str(chat.branch()[0].id + 10_000), "x", ""):
        page = alice_client.get(f"{chat.get_absolute_url()}?keep={junk}").content.decode()
        assert [int(i) for i in _ARTICLE_ID.findall(page)] == [m.id for m in chat.branch()][-PAGE_MESSAGES:]


@pytest.mark.django_db
def test_a_search_result_opens_its_conversation_at_the_newest_message_that_matched(alice_client, alice):
    chat = _conversation_with(alice, 150)
    branch = [m.id for m in chat.branch()]
    Message.objects.filter(pk__in=[branch[10], branch[31]]).update(content="The zeppelin question")
    link = html_unescape(_RESULT_LINK.search(alice_client.get("/c/list/", {"q": "Zeppelin"}).content.decode())[1])
    assert link == f"{chat.get_absolute_url()}?keep={branch[31]}&q=Zeppelin#m-{branch[31]}"

    # The page: from a screenful above the match, 100 messages, between links to those before and after.
    html = alice_client.get(link).content.decode()
    start = 31 - KEPT_ABOVE
    shown = [int(i) for i in _ARTICLE_ID.findall(html)]
    assert shown == branch[start : start + PAGE_MESSAGES]
    assert "Show the 11 earlier messages</a>" in html
    assert f'ws-connect="/ws/chat/{chat.id}/?end=0"' in html  # its socket sends no answer being written below
    assert 'value="Zeppelin"' in html and f'href="{link}"' in html_unescape(html)  # the list still shows the results
    later = _LATER.search(html)
    assert later[3] == "Show the 189 later messages" and later[1] == later[2]
    windows = []
    while later:  # as the reader scrolls down
        with CaptureQueriesContext(connection) as queries:
            fragment = alice_client.get(html_unescape(later[1]), HTTP_HX_REQUEST="true").content.decode()
        windows.append(len(queries))
        shown += [int(i) for i in _ARTICLE_ID.findall(fragment)]
        assert "earlier-messages" not in fragment
        later = _LATER.search(fragment)
    assert shown == branch[start:]  # every message once, in order, to the end
    assert len(windows) == 2 and windows[0] == windows[1]

    if connection.vendor == "postgresql":  # full-text search: the words in another order
        link = _RESULT_LINK.search(alice_client.get("/c/list/", {"q": "question zeppelin"}).content.decode())[1]
        assert html_unescape(link) == f"{chat.get_absolute_url()}?keep={branch[31]}&q=question%20zeppelin#m-{branch[31]}"

    # A match in the title alone opens the conversation as usual.
    title_link = _RESULT_LINK.search(alice_client.get("/c/list/", {"q": "long one"}).content.decode())[1]
    assert title_link == chat.get_absolute_url()


@pytest.mark.django_db
def test_without_javascript_the_later_link_opens_the_page_at_them(alice_client, alice, bob):
    chat = _conversation_with(alice, 150)
    branch = [m.id for m in chat.branch()]
    later = f"/c/{chat.id}/later/?after={branch[110]}"
    assert alice_client.get(later).url == f"{chat.get_absolute_url()}?keep={branch[111]}#m-{branch[111]}"
    # A message no longer on the branch: the page is drawn again; another user's conversation is not found.
    stale = f"/c/{chat.id}/later/?after=999999"
    assert alice_client.get(stale, HTTP_HX_REQUEST="true").headers["HX-Refresh"] == "true"
    assert alice_client.get(stale).url == chat.get_absolute_url()
    alice_client.force_login(bob)
    assert alice_client.get(later).status_code == 404


@pytest.mark.django_db
def test_an_earlier_window_carries_the_mark_of_where_the_models_memory_began(alice_client, alice):
    chat = _conversation_with(alice, 100)
    branch = chat.branch()
    Message.objects.filter(pk=branch[-1].id).update(context_start_id=branch[40].id)
    html = alice_client.get(chat.get_absolute_url()).content.decode()
    assert "context-cut" not in html.split('id="context-cuts"')[0].split('id="messages"')[1]
    fragment = alice_client.get(html_unescape(_EARLIER.search(html)[1]), HTTP_HX_REQUEST="true").content.decode()
    assert re.search(r'<p class="context-cut"[^>]*>[^<]*</p>\s*<article id="m-%d"' % branch[40].id, fragment)


def _figures_line(html: str) -> str:
    """The line under the (first) answer: model, tokens, cost, speed."""
    return html[html.index('<span class="meta">') : html.index('<span class="message-actions">')]


@pytest.mark.parametrize(
    ("language", "figures"),
    [
        ("en", ["gpt-4o", "12 → 30 tokens", "$0.00042", "TTFT 0.40 s", "10.7 tokens/s"]),
        ("da", ["gpt-4o", "12 → 30 tokens", "$0,00042", "TTFT 0,40 s", "10,7 tokens/s"]),
    ],
)
@pytest.mark.django_db
def test_a_finished_answer_shows_its_figures_in_the_readers_number_format(alice_client, alice, language, figures):
    chat = _conversation_with(alice, 1)
    Message.objects.filter(role="assistant").update(
        prompt_tokens=12, completion_tokens=30, cost="0.00042", time_to_first_token=0.4, duration=3.2,
    )  # fmt: skip
    alice_client.post("/i18n/setlang/", {"language": language, "next": "/"})

    meta = _figures_line(alice_client.get(chat.get_absolute_url()).content.decode())
    assert [text for text in figures if text in meta] == figures
    assert 'title="gpt-4o@openai"' in meta


@pytest.mark.django_db
def test_a_stopped_answer_says_so_and_a_whole_dollar_has_no_decimals(alice_client, alice):
    chat = _conversation_with(alice, 1)
    Message.objects.filter(role="assistant").update(status=Message.Status.STOPPED, cost="2.00000000")

    meta = _figures_line(alice_client.get(chat.get_absolute_url()).content.decode())
    assert '<span class="meta-stopped">Stopped</span>' in meta and "<span>$2</span>" in meta
    assert "tokens" not in meta and "TTFT" not in meta  # no figures the upstream never gave


@pytest.mark.django_db
def test_only_an_answer_with_reasoning_carries_a_reasoning_block(alice_client, alice):
    chat = _conversation_with(alice, 2)
    thought, plain = Message.objects.filter(role="assistant").order_by("id")
    Message.objects.filter(pk=thought.pk).update(reasoning="First, <think> about it.", reasoning_duration=2.0)

    html = alice_client.get(chat.get_absolute_url()).content.decode()

    assert f'id="m-{thought.id}-reasoning-block"' in html
    assert "First, &lt;think&gt; about it." in html and "Thought for 2 s" in html
    assert f'id="m-{plain.id}-reasoning-block"' not in html


@pytest.mark.django_db
def test_model_output_is_escaped_on_the_page(alice_client, alice):
    chat = _conversation_with(alice, 1)
    Message.objects.filter(role="assistant").update(content="<img src=x onerror=alert(1)>", content_html="")
    html = alice_client.get(chat.get_absolute_url()).content.decode()
    assert "<img src=x onerror" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.django_db
def test_a_message_left_streaming_by_a_dead_process_is_interrupted(alice_client, alice):
    chat = _conversation_with(alice, 1)
    Message.objects.filter(role="assistant").update(status=Message.Status.STREAMING, content="partial ans")
    html = alice_client.get(chat.get_absolute_url()).content.decode()
    assert 'data-status="interrupted"' in html
    assert "partial ans" in html
    assert "The server stopped before this answer was complete." in html
    assert Message.objects.get(role="assistant").status == Message.Status.INTERRUPTED


@pytest.mark.django_db
def test_a_missing_or_foreign_conversation_gets_the_apps_not_found_page(alice_client, bob):
    foreign = Conversation.objects.create(owner=bob, model="fake/model@openrouter")
    for url in (f"/c/{uuid.uuid4()}/", foreign.get_absolute_url()):
        response = alice_client.get(url)
        assert response.status_code == 404
        html = response.content.decode()
        assert "<h1>Not found</h1>" in html and 'href="/c/new/"' in html and "sidebar" not in html


def test_the_server_error_page_needs_no_context():
    with translation.override("da"):
        html = render_to_string("500.html")
    assert '<html lang="da">' in html and "Der gik noget galt på serveren" in html


@pytest.mark.parametrize(("length", "shown"), [(131072, "131K"), (1_048_576, "1.05M"), (200_000, "200K"), (8192, "8.19K")])
def test_the_picker_shows_each_models_context_length_and_price(length, shown):
    """SPEC section 7: context length and price where known, in the option's text (a tooltip is not seen on a phone)."""
    from decimal import Decimal

    from django.template.loader import render_to_string

    from chatapp.picker import PickerOption, ProviderGroup
    from providers.registry import PROVIDERS

    options = [PickerOption("a@openrouter", "a", "Model A", length, Decimal("0.15"), Decimal("0.6")),
               PickerOption("b@openrouter", "b", "Model B", None, None, None)]  # fmt: skip
    html = render_to_string("chatapp/_model_select.html",
                            {"model_groups": [ProviderGroup(PROVIDERS["openrouter"], options)]})  # fmt: skip
    assert f">Model A · {shown} context · $0.15 / $0.6 per million tokens</option>" in html
    assert ">Model B</option>" in html


def test_the_picker_speaks_the_readers_language_and_escapes_model_names():
    from decimal import Decimal

    from chatapp.picker import PickerOption, ProviderGroup
    from providers.registry import PROVIDERS

    options = [PickerOption("a@openrouter", "a/<x>", "<b>A&B</b>", 131072, Decimal("0.15"), Decimal("0.6")),
               PickerOption("b@openrouter", "b", "Model B", None, None, None)]  # fmt: skip
    context = {"model_groups": [ProviderGroup(PROVIDERS["openrouter"], options)], "selected_model": "b@openrouter"}
    with translation.override("da"):
        html = render_to_string("chatapp/_model_select.html", context)
    assert (
        '<option value="a@openrouter" title="a/&lt;x&gt; · kontekst på 131072 tokens">'
        "&lt;b&gt;A&amp;B&lt;/b&gt; · 131K kontekst · $0,15 / $0,6 pr. million tokens</option>"
    ) in html
    assert '<option value="b@openrouter" selected title="b">Model B</option>' in html


@pytest.mark.parametrize(
    "seconds, shown",
    [(None, "Reasoning"), (0.2, "Thought for less than a second"), (0.5, "Thought for 1 s"), (12.4, "Thought for 12 s")],
)
def test_the_reasoning_block_says_how_long_the_model_thought(seconds, shown):
    html = render_to_string("chatapp/_reasoning_summary.html", {"message_id": 1, "reasoning_seconds": seconds})
    assert re.fullmatch(r"<summary[^>]*>(.*)</summary>", html.strip())[1] == shown
