"""The API edge against a local OpenAI-compatible server: cache, retries, faults, errors, key hygiene, batch mode."""

import asyncio
import base64
import json
import time

import pytest

from dataset_builder.api import ApiClient, BatchPending, ChatRequest, RequestFailed, ResponseSpec
from dataset_builder.batch import BatchRunner
from dataset_builder.fake_openai_server import default_content
from dataset_builder.prompts import load_prompt
from dataset_builder.store import JsonlStore

SECRET = "sk-test-VERYSECRET-0123456789"


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def make_client(tmp_path, server, **kwargs):
    kwargs = {"base_url": server.base_url, "backoff_base": 0.01, "timeout": 1.0, **kwargs}
    return ApiClient(JsonlStore(tmp_path / "cache", "s"), JsonlStore(tmp_path / "errors", "s"), **kwargs)


def caption_request(i=0, images=0):
    jpeg = base64.b64decode(
        "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5"
        "PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q=="
    )
    return ChatRequest(
        stage="segment_caption",
        video_id=f"v{i}",
        prompt=load_prompt("segment_caption"),
        text=f"describe segment {i}",
        spec=ResponseSpec("text"),
        image_ids=tuple(f"fp@{k}" for k in range(images)),
        images=lambda: [jpeg] * images,
    )


def qa_request(i=0):
    prompt = load_prompt("qa_global")
    text = prompt.render(
        duration=30, video_caption=f"video {i}", task_types="summarization, temporal", questions_per_type=1
    )
    return ChatRequest("qa", f"v{i}", prompt, text, ResponseSpec("qa", ("summarization", "temporal")))


def errors(tmp_path):
    return list(JsonlStore(tmp_path / "errors", "s").records())


def test_answers_are_cached_and_reused_across_clients(tmp_path, server):
    client = make_client(tmp_path, server)
    first = asyncio.run(client.complete(caption_request(images=2)))
    again = asyncio.run(client.complete(caption_request(images=2)))
    assert first == again and server.chat_requests == 1
    fresh = make_client(tmp_path, server)
    assert asyncio.run(fresh.complete(caption_request(images=2))) == first
    assert server.chat_requests == 1 and fresh.usage.stages["segment_caption"].cached == 1
    content = server.bodies[0]["messages"][1]["content"]
    assert [part["type"] for part in content] == ["image_url", "image_url", "text"]
    assert content[0]["image_url"]["url"].startswith("data:image/jpeg;base64,/9j/")


def test_transient_faults_are_retried_and_retry_after_is_honoured(tmp_path, server):
    server.retry_after = "0.3"
    server.timeout_sleep = 1.5
    server.faults = ["429", "500", "timeout", "malformed"]
    client = make_client(tmp_path, server)
    start = time.monotonic()
    answer = asyncio.run(client.complete(qa_request()))
    assert time.monotonic() - start >= 0.3 + 1.0  # Retry-After wait + one client timeout
    assert {item["task_type"] for item in answer} == {"summarization", "temporal"}
    assert server.chat_requests == 5 and errors(tmp_path) == []
    assert client.usage.stages["qa"].requests == 1


def test_schema_invalid_answers_are_retried_then_recorded(tmp_path, server):
    server.faults = ["invalid"]
    client = make_client(tmp_path, server, max_invalid_retries=2)
    assert asyncio.run(client.complete(qa_request(1)))  # one invalid answer, then a valid one
    server.faults = ["invalid"] * 3
    with pytest.raises(RequestFailed, match="not valid JSON"):
        asyncio.run(client.complete(qa_request(2)))
    (record,) = errors(tmp_path)
    assert record["kind"] == "invalid_answer" and record["attempts"] == 3 and record["video_id"] == "v2"
    assert len(client.cache) == 1 and server.chat_requests == 5


UNUSABLE_200 = ["malformed", "not_object", "empty_choices", "no_message", "null_content"]


@pytest.mark.parametrize("fault", UNUSABLE_200)
def test_an_unusable_200_is_a_malformed_answer_retried_then_recorded(tmp_path, server, fault):
    server.faults = [fault]
    client = make_client(tmp_path, server, max_invalid_retries=2)
    # One unusable reply, then a good one.
    assert asyncio.run(client.complete(caption_request(1))).startswith("Caption")
    server.faults = [fault] * 3
    with pytest.raises(RequestFailed, match="malformed"):
        asyncio.run(client.complete(caption_request(2)))
    (record,) = errors(tmp_path)
    assert record["kind"] == "malformed_response" and record["attempts"] == 3 and record["video_id"] == "v2"
    assert len(client.cache) == 1 and server.chat_requests == 5


@pytest.mark.parametrize("fault", UNUSABLE_200)
def test_an_unusable_batch_answer_is_requeued_not_raised(tmp_path, server, fault):
    client = make_client(tmp_path, server, batch=True)
    with pytest.raises(BatchPending):
        asyncio.run(client.complete(caption_request(1)))
    server.faults = [fault]
    runner = BatchRunner(client, tmp_path, "s", poll_interval=0.01)
    asyncio.run(runner.submit_and_collect())
    assert [r["kind"] for r in errors(tmp_path)] == ["invalid_batch_answer"] and len(client.cache) == 0
    with pytest.raises(BatchPending):  # queued again for the next batch
        asyncio.run(client.complete(caption_request(1)))
    asyncio.run(runner.submit_and_collect())
    assert asyncio.run(client.complete(caption_request(1))).startswith("Caption")


def test_max_tokens_is_sent_per_stage_and_oversized_answers_are_refused_never_cached(tmp_path, server):
    huge = "word " * 2_000_000  # a 10 MB caption from a server that ignores max_tokens

    def content(body):
        return huge if "describe segment 1" in json.dumps(body) else default_content(body)

    server.content_fn = content
    client = make_client(tmp_path, server, max_tokens={"segment_caption": 300})
    assert asyncio.run(client.complete(caption_request(0))).startswith("Caption")
    assert asyncio.run(client.complete(qa_request(0)))
    assert [body["max_tokens"] for body in server.bodies] == [300, 2048]  # the caption's setting, QA's default
    with pytest.raises(RequestFailed, match="longer than the 2400 characters"):  # 8 characters per token
        asyncio.run(client.complete(caption_request(1)))
    (record,) = errors(tmp_path)
    assert record["kind"] == "oversized_answer" and record["attempts"] == 3
    assert len(client.cache) == 2 and (tmp_path / "cache" / "s.jsonl").stat().st_size < 10_000
    # An oversized answer cached by an earlier version of the kit is not served either: it is asked again.
    client.cache_store.append({**client.cache[next(iter(client.cache))], "content": huge})
    server.content_fn = default_content
    fresh = make_client(tmp_path, server, max_tokens={"segment_caption": 300})
    assert asyncio.run(fresh.complete(caption_request(0))).startswith("Caption") and server.chat_requests == 6


def qa_reply(items):
    return json.dumps({"qa": items})


def test_json_in_code_fences_is_accepted_at_the_first_answer(tmp_path, server):
    server.content_fn = lambda body: "```json\n" + default_content(body) + "\n```"
    client = make_client(tmp_path, server)
    answer = asyncio.run(client.complete(qa_request()))
    assert [item["task_type"] for item in answer] == ["summarization", "temporal"]
    assert server.chat_requests == 1 and errors(tmp_path) == []


def test_invalid_qa_items_are_dropped_and_the_valid_ones_kept_without_a_retry(tmp_path, server):
    good = [{"task_type": "summarization", "question": "Sum?", "answer": "It."},
            {"task_type": "temporal", "question": "When?", "answer": "Then."}]  # fmt: skip
    bad = [{"task_type": "poetry", "question": "Rhyme?", "answer": "No."},
           {"task_type": "temporal", "question": "Order?", "answer": "  "}, "not an object"]  # fmt: skip
    server.content_fn = lambda body: qa_reply([good[0], bad[0], good[1], bad[1], bad[2]])
    client = make_client(tmp_path, server)
    assert asyncio.run(client.complete(qa_request())) == good
    assert server.chat_requests == 1
    (record,) = errors(tmp_path)
    assert record["kind"] == "qa_items_dropped" and record["video_id"] == "v0"
    assert "'poetry'" in record["reason"] and "qa[3].answer" in record["reason"] and "qa[4]" in record["reason"]
    server.content_fn = lambda body: qa_reply(bad)  # nothing usable: that is an invalid answer, retried
    with pytest.raises(RequestFailed, match="no valid item"):
        asyncio.run(client.complete(qa_request(1)))
    assert server.chat_requests == 4


def test_qa_asks_for_structured_outputs_with_a_strict_schema_of_the_requested_task_types(tmp_path, server):
    client = make_client(tmp_path, server)
    asyncio.run(client.complete(qa_request()))
    asyncio.run(client.complete(caption_request()))
    qa_body, caption_body = server.bodies
    response_format = qa_body["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    item = schema["properties"]["qa"]["items"]
    assert item["properties"]["task_type"]["enum"] == ["summarization", "temporal"]
    assert set(item["required"]) == {"task_type", "question", "answer"} and item["additionalProperties"] is False
    assert schema["required"] == ["qa"] and schema["additionalProperties"] is False
    assert "response_format" not in caption_body


def test_a_server_without_json_schema_is_detected_once_and_json_mode_used(tmp_path, server):
    server.json_schema = False
    client = make_client(tmp_path, server)
    for i in range(3):
        assert asyncio.run(client.complete(qa_request(i)))
    formats = [body["response_format"]["type"] for body in server.bodies]
    assert formats == ["json_schema", "json_object", "json_object", "json_object"]
    assert errors(tmp_path) == [] and client.usage.stages["qa"].failed == 0


def test_batch_mode_falls_back_to_json_mode_too(tmp_path, server):
    server.json_schema = False
    client = make_client(tmp_path, server, batch=True)
    runner = BatchRunner(client, tmp_path, "s", poll_interval=0.01)
    for _ in range(2):
        with pytest.raises(BatchPending):
            asyncio.run(client.complete(qa_request()))
        asyncio.run(runner.submit_and_collect())
    assert asyncio.run(client.complete(qa_request())) and len(server.batches) == 2
    assert [r["kind"] for r in errors(tmp_path)] == ["batch_error"] and client.structured is False
    second = json.loads(server.files[server.batches["batch-1"]["input_file_id"]])
    assert second["body"]["response_format"] == {"type": "json_object"}


def test_persistent_5xx_gives_up_after_max_retries(tmp_path, server):
    server.fault_for = lambda body: "500"
    client = make_client(tmp_path, server, max_retries=2)
    with pytest.raises(RequestFailed, match="HTTP 500"):
        asyncio.run(client.complete(caption_request()))
    assert server.chat_requests == 3 and errors(tmp_path)[0]["kind"] == "http_500"


def test_api_key_never_reaches_errors_or_cache(tmp_path, server, capsys):
    server.faults = ["echo_auth"]
    client = make_client(tmp_path, server)
    with pytest.raises(RequestFailed) as raised:
        asyncio.run(client.complete(caption_request()))
    assert server.chat_requests == 1, "a 400 is not retried"
    assert f"Bearer {SECRET}" in server.auth_headers, "the key is sent, from the environment"
    asyncio.run(client.complete(caption_request(5)))
    stored = "".join(p.read_text() for p in tmp_path.rglob("*.jsonl"))
    assert "bad request from Bearer ***" in stored
    assert SECRET not in stored and SECRET not in str(raised.value) and SECRET not in capsys.readouterr().err


def test_missing_key_is_a_clear_error(tmp_path, server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        make_client(tmp_path, server)


def test_concurrency_is_bounded_and_requests_overlap(tmp_path, server):
    server.latency = 0.2
    client = make_client(tmp_path, server, concurrency=4)

    async def run():
        return await asyncio.gather(*(client.complete(caption_request(i)) for i in range(12)))

    start = time.monotonic()
    assert len(asyncio.run(run())) == 12
    assert server.max_in_flight == 4
    assert time.monotonic() - start < 12 * 0.2 / 2


def test_dry_run_estimates_without_calling(tmp_path, server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    client = make_client(tmp_path, server, dry_run=True)
    asyncio.run(client.complete(caption_request(images=3)))
    usage = client.usage.stages["segment_caption"]
    assert server.chat_requests == 0 and usage.requests == 1 and usage.prompt_tokens > 3 * 85
    assert "estimated" in client.usage.summary()


def test_batch_mode_submits_polls_collects_and_retries_invalid(tmp_path, server):
    client = make_client(tmp_path, server, batch=True)
    requests = [caption_request(i) for i in range(3)] + [qa_request(9)]
    for request in requests:
        with pytest.raises(BatchPending):
            asyncio.run(client.complete(request))
    server.faults = [None, None, None, "invalid"]  # the QA answer comes back invalid in the first batch
    runner = BatchRunner(client, tmp_path, "s", poll_interval=0.01)
    assert asyncio.run(runner.submit_and_collect()) == "batch-0"
    assert server.chat_requests == 0 and server.batch_lines == 4 and len(client.cache) == 3
    with pytest.raises(BatchPending):
        asyncio.run(client.complete(qa_request(9)))
    asyncio.run(runner.submit_and_collect())
    assert len(client.cache) == 4 and asyncio.run(client.complete(qa_request(9)))
    assert [r["kind"] for r in errors(tmp_path)] == ["invalid_batch_answer"]
    assert client.usage.discount == 0.5


def test_batch_resume_collects_a_submitted_batch_without_resubmitting(tmp_path, server):
    client = make_client(tmp_path, server, batch=True)
    with pytest.raises(BatchPending):
        asyncio.run(client.complete(caption_request(1)))
    runner = BatchRunner(client, tmp_path, "s", poll_interval=0.01)

    class Crash(Exception):
        pass

    async def crash(record):  # the process dies right after the batch id was recorded
        raise Crash

    runner._wait_and_collect = crash
    with pytest.raises(Crash):
        asyncio.run(runner.submit_and_collect())
    restarted = make_client(tmp_path, server, batch=True)
    resumed = BatchRunner(restarted, tmp_path, "s", poll_interval=0.01)
    assert len(resumed.open_batches()) == 1
    assert asyncio.run(resumed.collect_open()) == 1
    assert len(server.batches) == 1 and asyncio.run(restarted.complete(caption_request(1)))
    assert resumed.open_batches() == []


def test_a_burst_of_64_requests_is_answered_at_the_server_latency(tmp_path, server):
    # 64 connections opened at once: a listen backlog that drops SYNs, or a client that spends milliseconds of CPU per
    # request, turns 0.2 s into more than a second (a dropped SYN is retransmitted after 1 s).
    server.latency = 0.2
    client = make_client(tmp_path, server, concurrency=64, timeout=10.0)

    async def run():
        start = time.monotonic()
        await asyncio.gather(*(client.complete(caption_request(i)) for i in range(64)))
        await client.aclose()
        return time.monotonic() - start

    assert asyncio.run(run()) < 0.9
    assert server.chat_requests == 64 and server.max_in_flight == 64


def test_clients_sharing_a_limiter_never_exceed_its_concurrency_together(tmp_path, server):
    from dataset_builder.rate_limit import RateLimit

    server.latency = 0.05
    limit = RateLimit(concurrency=3)
    clients = [make_client(tmp_path / f"c{k}", server, concurrency=8, limiter=limit) for k in range(2)]

    async def run():
        results = await asyncio.gather(*(clients[i % 2].complete(caption_request(i)) for i in range(24)))
        for client in clients:
            await client.aclose()
        return results

    assert len(asyncio.run(run())) == 24
    assert server.max_in_flight == 3 and limit.max_in_flight == 3  # alone, each client would send 8 at once


def test_retry_after_pauses_every_client_of_the_limiter(tmp_path, server):
    from dataset_builder.rate_limit import RateLimit

    server.latency = 0.05
    server.retry_after = "0.6"
    server.faults = ["429"]  # the first request is rate limited, with Retry-After: 0.6
    limit = RateLimit(concurrency=1)
    clients = [make_client(tmp_path / f"c{k}", server, limiter=limit) for k in range(2)]

    async def run():
        results = await asyncio.gather(*(clients[i % 2].complete(caption_request(i)) for i in range(6)))
        for client in clients:
            await client.aclose()
        return results

    assert len(asyncio.run(run())) == 6
    assert limit.pauses == 1 and server.chat_requests == 7
    # The next request of EITHER client (without the pause, the other client's would go at once) waits Retry-After.
    first, second = server.arrivals[:2]
    assert second - first >= 0.05 + 0.6 - 0.01
