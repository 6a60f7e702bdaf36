"""The one error log: secrets removed, reasons cut, every shard's lines appended and read back."""

from dataset_builder.error_log import MAX_REASON_CHARS, ErrorLog
from dataset_builder.store import JsonlStore

KEY = "my-private-key-4f9a"  # not sk- shaped: only the environment says it is the key


def test_reasons_lose_the_key_bearer_tokens_and_sk_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    log = ErrorLog(JsonlStore(tmp_path, "shard-0"))
    log.record("v1", "api", "http_401", f"key {KEY} rejected; header Authorization: Bearer abc.def; sk-proj-AbC123xyz")
    log.close()
    (line,) = (tmp_path / "shard-0.jsonl").read_text().splitlines()
    assert KEY not in line and "abc.def" not in line and "AbC123xyz" not in line
    (record,) = ErrorLog(JsonlStore(tmp_path, "reader")).records()
    assert record["reason"] == "key *** rejected; header Authorization: Bearer *** sk-***"


def test_reasons_are_cut_after_redaction_and_fields_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    log = ErrorLog(JsonlStore(tmp_path, "shard-0"))
    reason = "x" * (MAX_REASON_CHARS - 3) + KEY  # the key straddles the cut: it must not survive as a prefix
    log.record("v1", "read", "unreadable", reason, video="/videos/v1.mp4")
    (record,) = log.records()
    assert record["reason"] == "x" * (MAX_REASON_CHARS - 3) + "***" and len(record["reason"]) == MAX_REASON_CHARS
    assert record["video"] == "/videos/v1.mp4" and record["time"] > 0
    log.close()


def test_lines_append_across_runs_and_shards(tmp_path):
    first = ErrorLog(JsonlStore(tmp_path, "shard-0"))
    first.record("a", "api", "http_500", "one", key="k1", attempts=7)
    first.close()
    again = ErrorLog(JsonlStore(tmp_path, "shard-0"))  # a resumed run appends
    again.record("b", "api", "connection", "two", key="k2", attempts=1)
    other_shard = ErrorLog(JsonlStore(tmp_path, "shard-1"))
    other_shard.record("c", "read", "unreadable", "three", video="c.mp4")
    again.close(), other_shard.close()
    records = list(ErrorLog(JsonlStore(tmp_path, "reader")).records())
    assert [(r["video_id"], r["stage"], r["kind"]) for r in records] == [
        ("a", "api", "http_500"),
        ("b", "api", "connection"),
        ("c", "read", "unreadable"),
    ]
    assert (records[0]["key"], records[0]["attempts"]) == ("k1", 7)
