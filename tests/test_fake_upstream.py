"""The fake upstream other tests lean on: it must answer like the real services do."""

import json

import httpx

from tests.fake_upstream import Status, Stream, model_entry, openai_text_stream


def test_models_are_served_on_every_provider_path(upstream):
    upstream.models = [model_entry("acme/tiny", "Acme Tiny", reasoning=True)]

    for path in ("/v1/models", "/api/v1/models", "/v1beta/openai/models"):
        response = httpx.get(f"{upstream.url}{path}")
        assert response.status_code == 200
        assert [m["id"] for m in response.json()["data"]] == ["acme/tiny"]

    entry = response.json()["data"][0]
    assert entry["pricing"] == {"prompt": "0.000001", "completion": "0.000002"}
    assert "reasoning" in entry["supported_parameters"]


def test_models_can_fail(upstream):
    upstream.models_status = 500

    assert httpx.get(f"{upstream.url}/v1/models").status_code == 500


def test_requests_are_recorded_with_lower_case_headers_and_parsed_json(upstream):
    httpx.post(f"{upstream.url}/api/v1/chat/completions?trace=1", json={"model": "m"}, headers={"X-Title": "T"})

    request = upstream.requests[0]
    assert (request.method, request.path, request.query) == ("POST", "/api/v1/chat/completions", {"trace": "1"})
    assert request.headers["x-title"] == "T"
    assert request.json == {"model": "m"}
    assert json.loads(request.body) == {"model": "m"}


def test_default_answers_follow_the_protocol_and_the_stream_flag(upstream):
    openai_json = httpx.post(f"{upstream.url}/v1/chat/completions", json={"model": "m"}).json()
    anthropic_json = httpx.post(f"{upstream.url}/v1/messages", json={"model": "m"}).json()
    streamed = httpx.post(f"{upstream.url}/v1beta/openai/chat/completions", json={"model": "m", "stream": True})
    anthropic_streamed = httpx.post(f"{upstream.url}/v1/messages", json={"model": "m", "stream": True})

    assert openai_json["choices"][0]["message"]["content"] == upstream.default_text
    assert anthropic_json["content"] == [{"type": "text", "text": upstream.default_text}]
    assert streamed.headers["content-type"] == "text/event-stream"
    assert streamed.text.endswith("data: [DONE]\n\n")
    assert "event: message_stop" in anthropic_streamed.text


def test_queued_behaviours_answer_in_order(upstream):
    upstream.enqueue(Status(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "2"}))
    upstream.enqueue(Stream(openai_text_stream("Hi", usage=False), delay=0.001))

    first = httpx.post(f"{upstream.url}/v1/chat/completions", json={})
    second = httpx.post(f"{upstream.url}/v1/chat/completions", json={})

    assert (first.status_code, first.headers["retry-after"]) == (429, "2")
    assert '"content": "Hi"' in second.text


def test_generation_records(upstream):
    upstream.generations["gen-1"] = 0.5
    upstream.default_generation_cost = None

    known = httpx.get(f"{upstream.url}/api/v1/generation", params={"id": "gen-1"})
    unknown = httpx.get(f"{upstream.url}/api/v1/generation", params={"id": "gen-2"})

    assert known.json() == {"data": {"id": "gen-1", "total_cost": 0.5}}
    assert unknown.status_code == 404
