"""Branch in new chat: a copy of the branch on screen up to one answer, with the chat's settings and files."""

import pytest
from django.test import Client

from chatapp import transfer
from chatapp.models import Attachment, Conversation
from tests.test_attachments import PNG, _attach, upload
from tests.test_sharing import MODEL, _answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(alice, alice_client) -> Conversation:
    """A question with a picture, answered twice (the second on screen), a follow-up, and its answer."""
    chat = Conversation.objects.create(
        owner=alice, title="Trip", model=MODEL, system_prompt="Be brief.", temperature=0.4, provider_order=["groq"]
    )
    _attach(alice_client, chat.id, upload("map.png", PNG))
    described = [Attachment.objects.get(conversation=chat).described]
    question, first = chat.add_exchange("Where to?", None, MODEL, described)
    Attachment.objects.filter(conversation=chat).update(message=question)
    _answer(first, "Rome.")
    second = _answer(chat.regenerate(first, MODEL), "**Lisbon**.", reasoning="Weigh the two.")
    _, follow_up = chat.add_exchange("When?", second.id, MODEL)
    _answer(follow_up, "In May.")
    chat.refresh_from_db()
    return chat


def _branch(client, chat, message_id):
    return client.post(f"/c/{chat.id}/branch/", {"message_id": message_id})


def test_a_branch_is_a_new_chat_up_to_the_answer_with_the_chats_settings_and_files(chat, alice, alice_client):
    second = chat.branch()[1]
    page = alice_client.get(chat.get_absolute_url()).content.decode()
    assert page.count(f'formaction="/c/{chat.id}/branch/"') == 2  # under each answer on screen
    response = _branch(alice_client, chat, second.id)

    copy = Conversation.objects.exclude(pk=chat.pk).get(owner=alice)
    assert response.status_code == 302 and response["Location"] == copy.get_absolute_url()
    assert copy.title == "Branch · Trip"
    assert (copy.model, copy.system_prompt, copy.temperature, copy.provider_order) == (
        MODEL, "Be brief.", 0.4, ["groq"]
    )  # fmt: skip
    assert [(m.role, m.content) for m in copy.branch()] == [("user", "Where to?"), ("assistant", "**Lisbon**.")]
    assert copy.branch()[1].reasoning == "Weigh the two." and copy.messages.count() == 2  # not "Rome."
    [picture] = copy.branch()[0].attachments
    assert alice_client.get(f"/c/{copy.id}/attachments/{picture['id']}/").content == PNG
    assert "<strong>Lisbon</strong>" in alice_client.get(copy.get_absolute_url()).content.decode()

    _branch(alice_client, copy, copy.branch()[1].id)  # a branch of the branch
    assert Conversation.objects.latest("created_at").title == "Branch · Trip"

    chat.refresh_from_db()  # the chat branched from is as it was
    assert [m.content for m in chat.branch()] == ["Where to?", "**Lisbon**.", "When?", "In May."]
    assert chat.messages.count() == 5


def test_only_ones_own_finished_answers_branch(chat, bob):
    other = Client()
    other.force_login(bob)
    answer = chat.branch()[-1]
    assert _branch(other, chat, answer.id).status_code == 404
    owner = Client()
    owner.force_login(chat.owner)
    question = chat.branch()[0]
    streaming = chat.regenerate(answer, MODEL)
    for refused in (question.id, streaming.id, "", "nope", 10**20):
        assert _branch(owner, chat, refused).status_code == 404
    assert Conversation.objects.count() == 1


@pytest.mark.parametrize("template", ["Branch · %(title)s", "%(title)s (gren)", "「%(title)s」的分支"])
def test_a_branch_of_a_branch_is_marked_once_wherever_a_language_puts_the_mark(monkeypatch, template):
    monkeypatch.setattr(transfer, "_", lambda text: template)  # a catalogue's wording of "Branch · %(title)s"
    first = transfer._branch_title("Trip")
    assert first == template % {"title": "Trip"} and transfer._branch_title(first) == first
