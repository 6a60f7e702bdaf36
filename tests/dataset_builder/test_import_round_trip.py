"""Round trip: a LLaVA-NeXT row imported, loaded back and rendered by the kit's chat template gives the prompt text
that upstream's ``qwen_1_5`` preprocessing gives the original row. Upstream is re-implemented here, independently of the
importer, from what ProLongVid's ``llava/train/train.py`` does:

* ``preprocess_multimodal``, on every turn: when the turn holds exactly one ``<image>`` and does not start with it,
  the token is removed, the text stripped, ``"<image>\\n"`` put in front and the result stripped again; then the
  marker ``QA_GT_caption_based_noisy`` is deleted.
* ``preprocess_qwen``: a first turn that is not from ``human`` is dropped; the system turn "You are a helpful
  assistant." comes first; every turn is ``<|im_start|>{user|assistant}\\n{value}<|im_end|>\\n``.

Upstream marks media with ``<image>`` only (also for videos); the kit's template writes ``<video>`` / ``<image>`` by
media type. The comparison maps the kit's video token to upstream's ``<image>`` and nothing else.
"""

from __future__ import annotations

import copy

import pytest
from datasets import load_dataset

from dataset_builder.importing.conversations import MalformedRow, convert_conversation, frames_of
from tests.dataset_builder.test_import_support import read_jsonl, run_import, turns, video_row, write_json, write_media

UPSTREAM_SYSTEM = "You are a helpful assistant."
UPSTREAM_ROLES = {"human": "user", "gpt": "assistant"}


def upstream_qwen_1_5_prompt(conversations: list[dict]) -> str:
    """Upstream's prompt text of one row (see the module docstring); the media placeholder stays ``<image>``."""
    sentences = copy.deepcopy(conversations)
    for sentence in sentences:
        value = sentence["value"]
        if value.count("<image>") == 1 and not value.startswith("<image>"):
            value = ("<image>\n" + value.replace("<image>", "").strip()).strip()
        sentence["value"] = value.replace("QA_GT_caption_based_noisy", "")
    if sentences[0]["from"] != "human":
        sentences = sentences[1:]
    prompt = f"<|im_start|>system\n{UPSTREAM_SYSTEM}<|im_end|>\n"
    for sentence in sentences:
        prompt += f"<|im_start|>{UPSTREAM_ROLES[sentence['from']]}\n{sentence['value']}<|im_end|>\n"
    return prompt


# Multi-turn rows covering every rule above; each renders identically through the kit.
EXACT_ROWS = {
    "standard": turns("<image>\nWhat happens first?", "A dog runs.", "And then?", "It sits down."),
    "placeholder_at_end": turns("Describe the video in detail. <image>", "A long description.\nTwo lines."),
    "placeholder_in_middle": turns("  Look at  <image>  this clip, please.\n", " A gray ramp. ", " Why? ", "Because."),
    "leading_gpt_turn": [{"from": "gpt", "value": "Hello!"}, *turns("<image>\nQ?", "A.", "Q2?", "A2.")],
    "noise_marker": turns(
        "<image>\nQA_GT_caption_based_noisyWhat?", "An answer QA_GT_caption_based_noisy.", "Ok?", "Ok."
    ),
    "untouched_start": turns("<image>\n  spaced question  \n", "\n  spaced answer\n", "unicode? 视频", "是的 — yes."),
    "three_rounds": turns("<image>\nQ1", "A1", "Q2", "A2", "Q3", "A3"),
}


@pytest.fixture(scope="module")
def processor():
    from modeling_prolongvid.tiny_checkpoint import build_tiny_processor

    return build_tiny_processor()


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The rows above (plus a `<video>` one and a glued one) imported from a JSON file and loaded back."""
    tmp = tmp_path_factory.mktemp("round-trip")
    media = write_media(tmp / "media")
    rows = [{"id": name, "video": "videos/short.mp4", "conversations": value} for name, value in EXACT_ROWS.items()]
    rows.append(video_row("video_token", "videos/short.mp4", "What is in <video>?", "Gray frames.", "More?", "No."))
    rows.append(video_row("glued", "videos/short.mp4", "<image>Describe it.", "Gray.", "Sure?", "Yes."))
    write_json(tmp / "annotations" / "rows.json", rows)
    assert run_import(tmp / "annotations" / "rows.json", media, tmp / "out") == 0
    loaded = load_dataset(str(tmp / "out"), "stage1", split="train", cache_dir=str(tmp / "hf_cache"))
    by_id = {row_id: row for row_id, row in zip([r["id"] for r in rows], loaded)}
    assert len(loaded) == len(rows)
    return rows, by_id, tmp / "out"


def kit_prompt(processor, row: dict) -> str:
    text = processor.apply_chat_template(row["messages"], tokenize=False)
    return text.replace(processor.video_token, "<image>")


@pytest.mark.parametrize("name", list(EXACT_ROWS))
def test_imported_multi_turn_rows_render_as_upstream_qwen_1_5(processor, imported, name):
    rows, loaded, _ = imported
    original = next(row for row in rows if row["id"] == name)["conversations"]
    assert kit_prompt(processor, loaded[name]) == upstream_qwen_1_5_prompt(original)


def test_video_placeholder_is_read_as_upstreams_image_placeholder(processor, imported):
    rows, loaded, _ = imported
    original = next(row for row in rows if row["id"] == "video_token")["conversations"]
    as_upstream = [{**turn, "value": turn["value"].replace("<video>", "<image>")} for turn in original]
    assert kit_prompt(processor, loaded["video_token"]) == upstream_qwen_1_5_prompt(as_upstream)


def test_glued_placeholder_gets_a_newline_and_is_counted(processor, imported):
    rows, loaded, out = imported
    original = next(row for row in rows if row["id"] == "glued")["conversations"]
    upstream = upstream_qwen_1_5_prompt(original)
    assert "<image>Describe it." in upstream
    assert kit_prompt(processor, loaded["glued"]) == upstream.replace("<image>Describe", "<image>\nDescribe", 1)
    assert "glued to its text get a newline after it: 1." in (out / "README.md").read_text()


def test_media_item_comes_first_and_every_turn_is_kept(imported):
    _, loaded, _ = imported
    messages = loaded["three_rounds"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert messages[0]["content"] == [{"type": "video", "text": None}, {"type": "text", "text": "Q1"}]
    assert [m["content"] for m in messages[1:]] == [
        [{"type": "text", "text": t}] for t in ("A1", "Q2", "A2", "Q3", "A3")
    ]


@pytest.mark.parametrize(
    ("conversation", "kind"),
    [
        ([], "no_conversation"),
        ("not a list", "no_conversation"),
        (turns("No placeholder here.", "A."), "placeholder_count"),
        (turns("<image> and <image>", "A."), "placeholder_count"),
        (turns("<image>\nQ", "A.", "<image> again?", "B."), "placeholder_position"),
        ([{"from": "human", "value": "<image>\nQ"}, {"from": "system", "value": "x"}], "bad_role"),
        ([{"from": "human", "value": 3}], "bad_turn"),
        (turns("<image>\nQ", "   "), "no_answer"),
        ([{"from": "gpt", "value": "only an answer"}], "no_conversation"),
    ],
)
def test_unusable_conversations_are_refused_with_their_reason(conversation, kind):
    with pytest.raises(MalformedRow) as refused:
        convert_conversation(conversation, "video")
    assert refused.value.kind == kind and str(refused.value)


def test_malformed_rows_go_to_the_errors_file_with_file_row_and_reason(tmp_path):
    media = write_media(tmp_path / "media")
    rows = [
        video_row("ok", "videos/short.mp4", "<image>\nQ?", "A."),
        video_row("no_placeholder", "videos/short.mp4", "Q?", "A."),
        "not an object",
        {"id": "no_media", "conversations": turns("<image>\nQ?", "A.")},
        {"id": "an_image", "image": "images/img0.png", "conversations": turns("<image>\nQ?", "A.")},
        video_row("two_videos", ["videos/short.mp4", "videos/mid.mp4"], "<image>\nQ?", "A."),
        video_row("bad_frames", "videos/short.mp4", "<image>\nQ?", "A.", num_frames="many"),
    ]
    write_json(tmp_path / "rows.json", rows)
    assert run_import(tmp_path / "rows.json", media, tmp_path / "out") == 0
    errors = {(e["video_id"], e["kind"]): e for e in read_jsonl(tmp_path / "out" / "import_errors.jsonl")}
    assert set(errors) == {
        ("no_placeholder", "placeholder_count"), ("rows.json:2", "not_an_object"), ("no_media", "no_media"),
        ("an_image", "other_modality"), ("two_videos", "several_media"), ("bad_frames", "bad_num_frames"),
    }  # fmt: skip
    assert errors[("an_image", "other_modality")]["reason"].endswith("import it with --modality image")
    assert all(e["stage"] == "parse" and e["file"] == "rows.json" for e in errors.values())
    assert [e["row"] for e in errors.values()] == [1, 2, 3, 4, 5, 6]


def test_per_row_num_frames_follows_upstream():
    """Upstream samples a row's own `num_frames` only when it is a positive number."""
    assert [frames_of({"num_frames": n}) for n in (32, 64.0, 0, -3, None)] == [32, 64, None, None, None]
    assert frames_of({}) is None
    for bad in ("32", 3.5, True):
        with pytest.raises(MalformedRow, match="whole number"):
            frames_of({"num_frames": bad})
