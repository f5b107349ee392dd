"""Shared links (chatapp.sharing): what the owner makes, and what another user signed in sees through it."""

import re
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from chatapp.models import Attachment, Conversation, Message, Share
from tests.test_attachments import PNG, _attach, png, upload

pytestmark = pytest.mark.django_db

MODEL = "fake/model@openrouter"


def _answer(message: Message, content: str, **fields) -> Message:
    Message.objects.filter(pk=message.pk).update(content=content, status="done", **fields)
    message.refresh_from_db()
    return message


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def chat(alice) -> Conversation:
    """A first answer in two versions (the second on screen) to a question with a picture, and a follow-up."""
    owner = _signed_in(alice)
    chat = Conversation.objects.create(owner=alice, title="Our plan", model=MODEL, system_prompt="Be secret.")
    _attach(owner, chat.id, upload("map.png", PNG))
    described = [Attachment.objects.get(conversation=chat).described]
    question, first = chat.add_exchange("What is the plan?", None, MODEL, described)
    Attachment.objects.filter(conversation=chat).update(message=question)
    _answer(first, "Plan A.")
    second = _answer(chat.regenerate(first, MODEL), "Plan **B**.", reasoning="Weigh A against B.", model=MODEL)
    _, follow_up = chat.add_exchange("When?", second.id, MODEL)
    _answer(follow_up, "At dawn <script>alert(1)</script>.")
    chat.refresh_from_db()
    return chat


def _share(client, chat, action="share", **headers):
    return client.post(f"/c/{chat.id}/share/", {"action": action}, **headers)


def _link(client, chat) -> str:
    page = client.get(f"/c/{chat.id}/share/").content.decode()
    return re.search(r'value="http://testserver(/s/[\w-]+/)"', page).group(1)


def test_a_link_shows_others_the_branch_as_it_was_shared_and_nothing_that_would_change_it(chat, alice, bob):
    owner = _signed_in(alice)
    assert _share(owner, chat).status_code == 302
    link = _link(owner, chat)
    _, later = chat.add_exchange("And the plan after that?", chat.current_leaf_id, MODEL)  # written after sharing

    page = _signed_in(bob).get(link).content.decode()
    assert "Our plan" in page and "Shared by alice" in page and "flash" not in page
    assert "What is the plan?" in page and "Plan <strong>B</strong>." in page and "Weigh A against B." in page
    assert "At dawn &lt;script&gt;alert(1)&lt;/script&gt;." in page  # sanitised as on the chat page
    assert "Plan A." not in page and "And the plan after that?" not in page  # another version; after the link
    assert "Be secret." not in page  # the system prompt is the owner's
    assert "Regenerate" not in page and "Edit" not in page and "ws-connect" not in page and "composer" not in page

    panel = owner.get(f"/c/{chat.id}/share/", HTTP_HX_REQUEST="true").content.decode()
    assert "Messages written since the link was made are not shown to its readers." in panel
    panel = _share(owner, chat, HTTP_HX_REQUEST="true").content.decode()  # moved on to the latest message
    assert "not shown to its readers" not in panel and link in panel
    assert "And the plan after that?" in _signed_in(bob).get(link).content.decode()

    _share(owner, chat, "unshare")
    assert _signed_in(bob).get(link).status_code == 404
    _share(owner, chat)
    assert _link(owner, chat) != link  # a new link: the old one stays dead


def test_only_the_owner_shares_and_only_those_signed_in_read(chat, alice, bob):
    assert _share(_signed_in(bob), chat).status_code == 404
    assert _signed_in(bob).get(f"/c/{chat.id}/share/").status_code == 404
    owner = _signed_in(alice)
    _share(owner, chat)
    link = _link(owner, chat)
    response = Client().get(link)
    assert response.status_code == 302 and response["Location"] == f"/accounts/signin/?next={link}"
    assert _signed_in(bob).get(f"/c/{chat.id}/").status_code == 404  # the chat itself stays alice's
    Conversation.objects.filter(pk=chat.pk).update(deleted_at=timezone.now())
    assert _signed_in(bob).get(link).status_code == 404


def test_with_public_links_anyone_reads_a_link_and_only_those_signed_in_continue_it(chat, alice, bob, settings):
    settings.SHARED_LINKS_PUBLIC = True
    owner = _signed_in(alice)
    assert "anyone who has it, signed in or not" in owner.get(f"/c/{chat.id}/share/").content.decode()
    _share(owner, chat)
    link = _link(owner, chat)
    page = Client().get(link)
    html = page.content.decode()
    assert page.status_code == 200 and "Plan <strong>B</strong>." in html and "Be secret." not in html
    assert '<meta name="robots" content="noindex">' in html
    assert f'href="/accounts/signin/?next={link}">Sign in to continue it' in html
    assert "Sign out" not in html and "/settings/" not in html
    assert "alice" not in html and "Shared on " in html  # no username for readers from outside
    picture = re.search(r'src="(/s/[\w-]+/files/[0-9a-f-]+/)"', html).group(1)
    assert Client().get(picture).status_code == 200

    continued = Client().post(link)  # a chat of one's own needs an account
    assert continued.status_code == 302 and continued["Location"] == f"/accounts/signin/?next={link}"
    assert Conversation.objects.count() == 1
    assert Client().get(f"/c/{chat.id}/").status_code == 302  # the chat itself is not public
    assert Client().get("/s/not-a-link/").status_code == 404
    _share(owner, chat, "unshare")
    assert Client().get(link).status_code == 404 and Client().get(picture).status_code == 404

    settings.SHARED_LINKS_PUBLIC = False  # a link made public is not public once the server says otherwise
    _share(owner, chat)
    link = _link(owner, chat)
    assert Client().get(link).status_code == 302
    assert Client().get(f"{link}files/{uuid.uuid4()}/")["Location"].startswith("/accounts/signin/")


def test_the_files_of_the_messages_shown_are_served_under_the_link_and_no_others(chat, alice, bob):
    owner = _signed_in(alice)
    other_picture = png(3, 3)
    _attach(owner, chat.id, upload("hidden.png", other_picture))
    hidden = Attachment.objects.get(name="hidden.png")
    leaf = chat.current_leaf_id
    chat.add_exchange("Another branch", None, MODEL, [hidden.described])  # a new root: now on screen
    Conversation.objects.filter(pk=chat.pk).update(current_leaf=leaf)  # back to the first branch
    _share(owner, chat)
    link = _link(owner, chat)
    reader = _signed_in(bob)

    page = reader.get(link).content.decode()
    [shown] = re.findall(r'<img src="(/s/[\w-]+/files/[\w-]+/)"', page)
    response = reader.get(shown)
    assert response.status_code == 200 and response.content == PNG
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert reader.get(f"{link}files/{hidden.id}/").status_code == 404  # its chat's, on a branch not shared
    elsewhere = Conversation.objects.create(owner=alice, title="Other", model=MODEL)
    _attach(owner, elsewhere.id, upload("other.png", PNG))
    assert reader.get(f"{link}files/{Attachment.objects.get(name='other.png').id}/").status_code == 404
    assert reader.get(f"/c/{chat.id}/attachments/{hidden.id}/").status_code == 404


def test_copy_gets_an_answers_markdown_from_its_chat_or_a_link_that_shows_it(chat, alice, bob, settings):
    owner, reader = _signed_in(alice), _signed_in(bob)
    first, second = chat.messages.filter(role="assistant", parent__parent=None).order_by("id")
    follow_up = chat.current_leaf
    own = f"/c/{chat.id}/message-text/?message_id="
    response = owner.get(f"{own}{second.id}")
    assert response.status_code == 200 and response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == "Plan **B**."  # as written: the page has it drawn only
    assert owner.get(f"{own}{follow_up.id}").content.decode() == "At dawn <script>alert(1)</script>."  # not as HTML
    for asked in (str(first.id), "", "x", "99999999"):
        assert owner.get(f"{own}{asked}").status_code == (200 if asked == str(first.id) else 404)
    assert reader.get(f"{own}{second.id}").status_code == 404  # another user's chat
    assert Client().get(f"{own}{second.id}").status_code == 302  # to sign in
    page = owner.get(f"/c/{chat.id}/").content.decode()
    assert f'data-copy-source="{own}{second.id}"' in page

    _share(owner, chat)
    link = _link(owner, chat)
    shared = f"{link}message-text/?message_id="
    assert f'data-copy-source="{shared}{second.id}"' in reader.get(link).content.decode()
    assert reader.get(f"{shared}{second.id}").content.decode() == "Plan **B**."
    _, later = chat.add_exchange("And after that?", follow_up.id, MODEL)  # written after sharing
    for hidden in (first, later, chat.messages.get(content="And after that?")):  # another version; after the link
        assert reader.get(f"{shared}{hidden.id}").status_code == 404
    assert Client().get(f"{shared}{second.id}").status_code == 302
    settings.SHARED_LINKS_PUBLIC = True
    assert Client().get(f"{shared}{second.id}").content.decode() == "Plan **B**."


def test_a_reader_continues_the_shared_branch_as_a_chat_of_their_own(chat, alice, bob):
    owner = _signed_in(alice)
    _share(owner, chat)
    reader = _signed_in(bob)
    response = reader.post(_link(owner, chat))
    copy = Conversation.objects.get(owner=bob)
    assert response.status_code == 302 and response["Location"] == copy.get_absolute_url()
    assert (copy.title, copy.model, copy.system_prompt) == ("Our plan", MODEL, "")
    assert [(m.role, m.content) for m in copy.branch()] == [
        ("user", "What is the plan?"), ("assistant", "Plan **B**."),
        ("user", "When?"), ("assistant", "At dawn <script>alert(1)</script>."),
    ]  # fmt: skip
    assert copy.messages.count() == 4  # the branch shared, not its other versions
    [picture] = copy.branch()[0].attachments
    assert reader.get(f"/c/{copy.id}/attachments/{picture['id']}/").content == PNG
    assert "Plan <strong>B</strong>." in reader.get(copy.get_absolute_url()).content.decode()
    assert Conversation.objects.get(pk=chat.pk).messages.count() == 5  # alice's chat is as it was


def test_the_chat_header_offers_sharing_once_there_is_a_message(alice):
    owner = _signed_in(alice)
    chat = Conversation.objects.create(owner=alice, title="Empty", model=MODEL)
    assert f'/c/{chat.id}/share/' not in owner.get(f"/c/{chat.id}/").content.decode()
    chat.add_exchange("Hi", None, MODEL)
    chat.refresh_from_db()
    assert f'href="/c/{chat.id}/share/"' in owner.get(f"/c/{chat.id}/").content.decode()


def test_an_admin_sees_every_link_and_can_take_one_down(chat, alice):
    owner = _signed_in(alice)
    _share(owner, chat)
    link = _link(owner, chat)
    token = link.split("/")[2]
    assert "Our plan" in owner.get("/admin/chatapp/share/").content.decode()
    response = owner.post(f"/admin/chatapp/share/{token}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert owner.get(link).status_code == 404


def test_the_settings_list_every_link_of_ones_own_and_take_one_down(chat, alice, bob):
    owner = _signed_in(alice)
    assert "You have not shared a chat." in owner.get("/settings/shared/").content.decode()
    _share(owner, chat)
    link = _link(owner, chat)
    bobs = Conversation.objects.create(owner=bob, title="Bob's secret", model=MODEL)
    bobs.add_exchange("Hi", None, MODEL)
    bobs.refresh_from_db()
    _share(_signed_in(bob), bobs)

    page = owner.get("/settings/shared/").content.decode()
    assert "Our plan" in page and f"http://testserver{link}" in page and "Bob&#x27;s secret" not in page
    token = link.split("/")[2]
    assert owner.post("/settings/shared/", {"token": Share.objects.get(conversation=bobs).token}).status_code == 302
    assert Share.objects.filter(conversation=bobs).exists()  # not hers to take down
    assert owner.post("/settings/shared/", {"token": token})["Location"] == "/settings/shared/"
    assert _signed_in(bob).get(link).status_code == 404
