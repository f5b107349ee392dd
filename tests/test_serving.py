"""A process served by Daphne, started as production and `make run` start it (chatapp.serving)."""

import json

import httpx
import pytest

from tests.live_server import AppServer, base_env, manage, prepared_database


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    env = base_env(DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('served') / 'db.sqlite3'}")
    prepared_database(env)
    token = manage(env, "create_api_token", "alice", "--name", "test").strip()
    server = AppServer(env).start()
    yield server, token
    server.stop()


def test_a_body_twisted_would_refuse_as_a_form_reaches_the_app(served):
    # Twisted's own form parsing is off: a body it would have judged a bad
    # multipart form (answered with its bare 400 page, the app never asked)
    # reaches the app, which answers in the API's own format.
    server, token = served
    response = httpx.post(
        f"{server.url}/api/openrouter/v1/chat/completions",
        content=b"not a multipart body",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_forms_and_uploads_are_parsed_by_django(served):
    server, _token = served
    session = {"id": "s", "topic": "Recipes", "messages": [{"role": "user", "content": "Soup?"}], "mask": {}}
    with httpx.Client(base_url=server.url, cookies=server.signed_in_cookies(), timeout=10) as client:  # a form
        page = client.get("/c/import/")
        csrf = page.text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        response = client.post(
            "/c/import/", data={"csrfmiddlewaretoken": csrf}, files={"file": ("chat.json", json.dumps(session))}
        )
        assert response.status_code == 302
        assert "Soup?" in client.get(response.headers["location"]).text
