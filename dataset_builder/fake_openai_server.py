"""A local OpenAI-compatible HTTP server for offline tests and benchmarks (chat completions, Files, Batches).

It speaks enough of the REST API for the real ``openai`` client: ``POST /v1/chat/completions``, ``POST /v1/files``,
``GET /v1/files/{id}/content``, ``POST /v1/batches``, ``GET /v1/batches/{id}``. Answers are deterministic; QA prompts
get schema-valid JSON for the task types the prompt asks for. Faults are injected per chat request, in order, from
``server.faults`` (a list) or ``server.fault_for(body) -> fault | None``:
``"429"`` (with ``Retry-After``), ``"500"``, ``"timeout"`` (sleeps ``timeout_sleep`` s before answering),
``"invalid"`` (schema-invalid content: broken JSON or an empty caption), ``"echo_auth"`` (a 400 whose message echoes
the Authorization header), and unusable 200 replies: ``"malformed"`` (a body that is not JSON), ``"not_object"`` (a
JSON list), ``"empty_choices"`` (``"choices": []``), ``"no_message"`` (a choice without ``message``),
``"null_content"`` (``"content": null``). ``server.json_schema = False`` makes it refuse Structured Outputs
(``response_format`` of type ``json_schema``) with OpenAI's HTTP 400, live and in batches.

Example:
    >>> with FakeOpenAIServer(latency=0.0) as server:
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="EMPTY")
    ...     reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    >>> server.chat_requests
    1

Run standalone (used by the benchmark so the server does not share the client's GIL):
``python -m dataset_builder.fake_openai_server --latency 0.2`` prints ``PORT <n>`` and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import threading
import time
from collections import Counter
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai  # noqa: F401  (documented in the example)

TASK_TYPES = ("summarization", "general_qa", "creative_writing", "temporal")
# What OpenAI answers a model without Structured Outputs (HTTP 400).
JSON_SCHEMA_REFUSAL = {
    "message": "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
    "type": "invalid_request_error",
    "param": "response_format",
    "code": None,
}
# HTTP 200 bodies no client can use, built from a good reply.
UNUSABLE_REPLIES = {
    "malformed": lambda reply: b'{"id": "x", "choices": [ this is not json',
    "not_object": lambda reply: json.dumps([reply]).encode(),
    "empty_choices": lambda reply: {**reply, "choices": []},
    "no_message": lambda reply: {**reply, "choices": [{"index": 0, "finish_reason": "stop"}]},
    "null_content": lambda reply: {
        **reply,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}],
    },
}


def wants_json(body: dict) -> bool:
    return (body.get("response_format") or {}).get("type") in ("json_object", "json_schema")


def default_content(body: dict) -> str:
    """A deterministic answer: QA JSON for JSON-mode and Structured Outputs requests, a caption otherwise."""
    user = body["messages"][-1]["content"]
    text = user if isinstance(user, str) else " ".join(p.get("text", "") for p in user if p.get("type") == "text")
    images = 0 if isinstance(user, str) else sum(p.get("type") == "image_url" for p in user)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    if wants_json(body):
        listed = re.search(r"for these task types: ([a-z_, ]+)\.", text)
        quoted = re.findall(r'task type "([a-z_]+)"', text)
        types = [t.strip() for t in listed.group(1).split(",")] if listed else quoted or ["general_qa"]
        qa = [{"task_type": t, "question": f"Q {t} {digest}?", "answer": f"A {t} {digest}."} for t in types]
        return json.dumps({"qa": qa})
    words = " ".join(["detail"] * (len(text) % 17 + 5 * images))
    return f"Caption {digest} of {images} frames: {words}."


def invalid_content(body: dict) -> str:
    """A schema-invalid answer: broken JSON for JSON requests, an empty caption otherwise."""
    return "this is not json {" if wants_json(body) else ""


def completion(body: dict, content: str) -> dict:
    user = json.dumps(body["messages"])
    prompt_tokens = len(user) // 4
    completion_tokens = max(1, len(content) // 4)
    return {
        "id": "chatcmpl-" + hashlib.sha256(user.encode()).hexdigest()[:12],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a client opening 64 connections at once overflows it and waits a
    # 1 s SYN retransmit on the dropped ones (the p99 latency of a 64-wide burst was 1.6 s instead of 0.2 s).
    request_queue_size = 1024
    daemon_threads = True


class FakeOpenAIServer:
    """Threaded local server; ``base_url`` ends with ``/v1``. Counters are safe to read from tests."""

    def __init__(
        self, latency: float = 0.0, retry_after: str = "0", timeout_sleep: float = 2.0, content_fn=None, port: int = 0
    ):
        self.latency = latency
        self.retry_after = retry_after
        self.timeout_sleep = timeout_sleep
        self.content_fn = content_fn or default_content
        self.json_schema = True  # False: refuse Structured Outputs as servers without them do (HTTP 400)
        self.faults: list[str] = []
        self.fault_for = None
        self.lock = threading.Lock()
        self.chat_requests = 0
        self.bodies: list[dict] = []
        self.arrivals: list[float] = []  # time.monotonic() of each chat request's arrival
        self.body_counts: Counter[str] = Counter()
        self.auth_headers: set[str] = set()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.batch_lines = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.answered_ids: list[str] = []
        self._httpd = _Server(("127.0.0.1", port), _make_handler(self))
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread: threading.Thread | None = None

    def start(self) -> FakeOpenAIServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def next_fault(self, body: dict) -> str | None:
        with self.lock:
            if self.fault_for is not None:
                return self.fault_for(body)
            return self.faults.pop(0) if self.faults else None

    def record(self, body: dict, auth: str | None) -> None:
        with self.lock:
            self.chat_requests += 1
            self.arrivals.append(time.monotonic())
            self.bodies.append(body)
            self.body_counts[json.dumps(body, sort_keys=True)] += 1
            if auth:
                self.auth_headers.add(auth)

    def refuses(self, body: dict) -> bool:
        """Whether this server refuses the request's ``response_format`` (``json_schema`` when it lacks them)."""
        return not self.json_schema and (body.get("response_format") or {}).get("type") == "json_schema"

    def run_batch(self, batch: dict) -> None:
        """Answer every line of a batch's input file into an output file and an error file."""
        outputs, errors = [], []
        for raw in self.files[batch["input_file_id"]].decode().splitlines():
            line = json.loads(raw)
            with self.lock:
                self.batch_lines += 1
            if self.refuses(line["body"]):
                response = {"status_code": 400, "request_id": "req", "body": {"error": JSON_SCHEMA_REFUSAL}}
                outputs.append({"id": "r", "custom_id": line["custom_id"], "response": response, "error": None})
                continue
            fault = self.next_fault(line["body"])
            if fault in (None, "invalid") or fault in UNUSABLE_REPLIES:
                content = invalid_content(line["body"]) if fault == "invalid" else self.content_fn(line["body"])
                reply = completion(line["body"], content)
                if fault in UNUSABLE_REPLIES:
                    reply = UNUSABLE_REPLIES[fault](reply)
                    reply = reply.decode() if isinstance(reply, bytes) else reply
                response = {"status_code": 200, "request_id": "req", "body": reply}
                outputs.append({"id": "r", "custom_id": line["custom_id"], "response": response, "error": None})
            else:
                error = {"code": "server_error", "message": f"injected {fault}"}
                errors.append({"id": "r", "custom_id": line["custom_id"], "response": None, "error": error})
        for kind, rows in (("output_file_id", outputs), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{len(self.files)}"
                self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                batch[kind] = file_id
        batch["request_counts"] = {
            "total": len(outputs) + len(errors),
            "completed": len(outputs),
            "failed": len(errors),
        }


def _make_handler(server: FakeOpenAIServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes; avoid 40 ms delayed-ACK stalls

        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, payload: bytes | dict, headers: dict | None = None) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self._leave()  # before the reply is out: the client may send its next request the moment it has it
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _error(self, status: int, message: str, headers: dict | None = None) -> None:
            self._send(status, {"error": {"message": message, "type": "server_error", "code": str(status)}}, headers)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.endswith("/chat/completions"):
                self._chat(json.loads(raw))
            elif self.path.endswith("/files"):
                self._upload(raw)
            elif self.path.endswith("/batches"):
                body = json.loads(raw)
                batch_id = f"batch-{len(server.batches)}"
                batch = {
                    "id": batch_id,
                    "object": "batch",
                    "endpoint": body["endpoint"],
                    "input_file_id": body["input_file_id"],
                    "completion_window": body["completion_window"],
                    "status": "validating",
                    "created_at": int(time.time()),
                    "metadata": body.get("metadata"),
                }
                server.batches[batch_id] = batch
                self._send(200, batch)
            else:
                self._error(404, f"no route {self.path}")

        def do_GET(self) -> None:
            match = re.search(r"/files/([^/]+)/content$", self.path)
            if match and match.group(1) in server.files:
                return self._send(200, server.files[match.group(1)])
            match = re.search(r"/batches/([^/]+)$", self.path)
            if match and match.group(1) in server.batches:
                batch = server.batches[match.group(1)]
                if batch["status"] == "validating":
                    batch["status"] = "in_progress"
                elif batch["status"] == "in_progress":
                    server.run_batch(batch)
                    batch["status"] = "completed"
                return self._send(200, batch)
            self._error(404, f"no route {self.path}")

        def _upload(self, raw: bytes) -> None:
            header = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
            message = BytesParser(policy=HTTP).parsebytes(header + raw)
            parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
            file_id = f"file-{len(server.files)}"
            server.files[file_id] = parts["file"].get_payload(decode=True)
            self._send(
                200,
                {
                    "id": file_id,
                    "object": "file",
                    "bytes": len(server.files[file_id]),
                    "created_at": int(time.time()),
                    "filename": parts["file"].get_filename() or "upload.jsonl",
                    "purpose": parts["purpose"].get_payload(decode=True).decode(),
                    "status": "processed",
                },
            )

        def _chat(self, body: dict) -> None:
            server.record(body, self.headers.get("Authorization"))
            with server.lock:
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            self._counted = True
            try:
                self._answer(body)
            finally:
                self._leave()

        def _leave(self) -> None:
            """End this chat request's count in `in_flight` (once)."""
            if getattr(self, "_counted", False):
                self._counted = False
                with server.lock:
                    server.in_flight -= 1

        def _answer(self, body: dict) -> None:
            if server.refuses(body):
                return self._send(400, {"error": JSON_SCHEMA_REFUSAL})
            fault = server.next_fault(body)
            if server.latency:
                time.sleep(server.latency)
            if fault == "429":
                return self._error(429, "rate limited", {"Retry-After": server.retry_after})
            if fault == "500":
                return self._error(500, "internal error")
            if fault == "echo_auth":
                return self._error(400, f"bad request from {self.headers.get('Authorization')}")
            if fault in UNUSABLE_REPLIES:
                return self._send(200, UNUSABLE_REPLIES[fault](completion(body, server.content_fn(body))))
            if fault == "timeout":
                time.sleep(server.timeout_sleep)
            content = invalid_content(body) if fault == "invalid" else server.content_fn(body)
            reply = completion(body, content)
            self._send(200, reply)
            with server.lock:
                server.answered_ids.append(reply["id"])

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeOpenAIServer(latency=args.latency)
    server.start()
    print(f"PORT {server.port}", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
