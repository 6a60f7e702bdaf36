"""`python space/app.py` as users run it (a subprocess on 127.0.0.1, offline, default model -> the bundled world
model), driven through `gradio_client` and through a real browser (Playwright + Debian's headless Chromium).

One server is shared by the module. The browser test saves `artifacts/space_browser_*.png` (gitignored).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README_COMMAND = "python space/app.py"
EXAMPLES_DIR = REPO / "space" / "examples"
SAMPLE_VIDEO = EXAMPLES_DIR / "sample.mp4"
EXAMPLES = json.loads((EXAMPLES_DIR / "examples.json").read_text())
WORLD_MODEL = REPO / "modeling_prolongvid" / "world_model"
ARTIFACTS = REPO / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UPLOAD_LIMIT_MB = 5
UPLOAD_QUOTA_MB = 8
ERROR_PREFIX = "⚠ "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Run the README's demo command with PROLONGVID_MODEL unset and no Hub access; yields the base URL."""
    yield from serve(tmp_path_factory.mktemp("space-server"))


@pytest.fixture(scope="module")
def random_weights_server(tmp_path_factory, tiny_checkpoint):
    """The app serving the tiny random checkpoint: its answers stream many visible pieces, whatever the bundled
    world model (which may answer in one token, or be the untrained placeholder) would say."""
    yield from serve(tmp_path_factory.mktemp("space-server-random"), model=str(tiny_checkpoint))


def serve(workdir: Path, model: str | None = None):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PROLONGVID_MODEL"}
    if model:
        env["PROLONGVID_MODEL"] = model
    env.update(
        HF_HUB_OFFLINE="1",  # CI may have internet: never start downloading the 7B model here
        GRADIO_TEMP_DIR=str(workdir / "uploads"),
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        PROLONGVID_MAX_UPLOAD=f"{UPLOAD_LIMIT_MB}mb",
        PROLONGVID_UPLOAD_QUOTA=f"{UPLOAD_QUOTA_MB}mb",
        PROLONGVID_CONCURRENCY="1",
    )
    log_path = workdir / "server.log"
    command = [sys.executable, *README_COMMAND.split()[1:]]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 240
    while True:
        if process.poll() is not None:
            pytest.fail(f"`{README_COMMAND}` exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            http_get(url)
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"`{README_COMMAND}` did not serve {url} within 240 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
    yield {"url": url, "uploads": workdir / "uploads", "log": log_path, "process": process}
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ask(url: str, question: str, files: list[Path] = (), frames: int = 32, max_new_tokens: int = 24) -> str:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    message = {"text": question, "files": [handle_file(str(path)) for path in files]}
    answer, _ = client.predict(message, frames, max_new_tokens, api_name="/chat")
    return answer


# ---------------------------------------------------------------- the README's command


def test_readme_demo_command_serves_offline_with_the_labelled_world_model(server):
    readme = (REPO / "README.md").read_text()
    assert README_COMMAND in readme, f"README.md must document `{README_COMMAND}`, the demo command this test runs"
    assert b"<html" in http_get(server["url"]).lower()
    config = json.loads(http_get(server["url"] + "config"))
    texts = json.dumps(config)
    # The banner says what serves (trained only on the synthetic world), how well (its card) and how to load real
    # weights.
    stated = json.loads((WORLD_MODEL / "results.json").read_text())
    for phrase in (
        "Demo model",
        "trained only on",
        "synthetic world",
        f"{stated['accuracy']:.1f}%",
        "PROLONGVID_MODEL",
    ):
        assert phrase in texts, phrase
    assert "prolongvid/ProLongVid-7B-hf" in texts and "convert_prolongvid_weights_to_hf.py" in texts
    assert "random" not in texts and "gibberish" not in texts
    for example in EXAMPLES["examples"]:  # the page offers the bundled examples
        assert json.dumps(example["question"])[1:-1] in texts
    assert config["max_file_size"] == UPLOAD_LIMIT_MB * 1024 * 1024


# ---------------------------------------------------------------- gradio_client


@pytest.mark.parametrize(
    "example",
    EXAMPLES["examples"]
    or [pytest.param(None, marks=pytest.mark.skip(reason="examples.json has no example: the model answered none"))],
    ids=lambda example: example and f"{example['video']}-{example['family']}",
)
def test_the_space_answers_its_example_questions_correctly(server, example):
    """Asked as a user would (the video uploaded, the example's settings), the served model gives the ground-truth
    answer that `make_examples.py` recorded."""
    answer = ask(
        server["url"],
        example["question"],
        [EXAMPLES_DIR / example["video"]],
        frames=EXAMPLES["frames"],
        max_new_tokens=EXAMPLES["max_new_tokens"],
    )
    assert answer.strip() == example["answer"], (example["question"], answer)


def test_client_uploads_a_generated_video_and_gets_an_answer(server, make_video):
    answer = ask(server["url"], "What moves?", [make_video("bar.mp4", num_frames=20)])
    assert answer.strip() and not answer.startswith(ERROR_PREFIX), answer
    uploads = list(server["uploads"].rglob("bar.mp4"))
    assert uploads, "uploads must land in the app's GRADIO_TEMP_DIR"


def test_two_concurrent_clients_both_finish(server, make_video):
    videos = [make_video(f"clip{index}.mp4", num_frames=15 + 10 * index) for index in range(2)]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda video: ask(server["url"], "Describe.", [video], max_new_tokens=48), videos))
    assert all(answer.strip() and not answer.startswith(ERROR_PREFIX) for answer in answers), answers


def test_client_bad_upload_gets_an_error_message_and_the_server_keeps_serving(server, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("meeting notes, definitely not a video")
    answer = ask(server["url"], "What happens?", [fake])
    assert answer.startswith(ERROR_PREFIX) and "notes.mp4: not a readable video" in answer, answer
    assert not ask(server["url"], "What happens?", [SAMPLE_VIDEO]).startswith(ERROR_PREFIX)


def test_uploads_over_the_size_cap_are_refused(server, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (UPLOAD_LIMIT_MB + 1) * 1024 * 1024)
    with pytest.raises(Exception, match="(?i)exceed|too large|size"):
        ask(server["url"], "What happens?", [big])


def post_upload(url: str, name: str, payload: bytes) -> int:
    """POST one file to gradio's upload endpoint without any chat message; returns the HTTP status."""
    boundary = "prolongvid-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url + "gradio_api/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_uploads_without_a_question_cannot_fill_the_disk(server):
    statuses = [post_upload(server["url"], f"filler{index}.mp4", os.urandom(2**20)) for index in range(30)]
    assert set(statuses) == {200}, statuses
    kept = sum(path.stat().st_size for path in server["uploads"].rglob("*") if path.is_file())
    assert kept <= UPLOAD_QUOTA_MB * 2**20, f"{kept / 2**20:.1f} MB kept, quota {UPLOAD_QUOTA_MB} MB"
    assert len(list(server["uploads"].rglob("filler*.mp4"))) < 30
    answer = ask(server["url"], "What happens?", [SAMPLE_VIDEO])  # a long video still fits after the flood
    assert answer.strip() and not answer.startswith(ERROR_PREFIX), answer


# ---------------------------------------------------------------- a real browser


BOT_TEXTS_JS = """() => Array.from(document.querySelectorAll('#chatbot [data-testid="bot"]')).map(e => e.innerText)"""
RECORD_STREAM_JS = """() => {
    window.__botLengths = [];
    const record = () => {
        const bots = document.querySelectorAll('#chatbot [data-testid="bot"]');
        if (bots.length) window.__botLengths.push(bots[bots.length - 1].innerText.length);
    };
    new MutationObserver(record).observe(document.querySelector('#chatbot'),
                                         {subtree: true, childList: true, characterData: true});
}"""


def upload_and_ask(page, path: Path, question: str) -> None:
    page.locator("#chat-input input[type=file]").set_input_files(str(path))
    page.locator('#chat-input [aria-label="File thumbnail"]').wait_for(timeout=30_000)
    page.locator("#chat-input textarea").fill(question)
    page.locator("#chat-input textarea").press("Enter")


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent: run .ci/install_browser.sh")
def test_browser_upload_ask_stream_frame_strip_and_bad_file(random_weights_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(random_weights_server["url"])
            page.locator("#chat-input textarea").wait_for(timeout=60_000)
            expect(page.locator("#model-notice")).to_contain_text("Model: ")
            max_tokens = page.get_by_label("number input for Max new tokens")
            max_tokens.fill("2048")
            max_tokens.press("Enter")
            page.evaluate(RECORD_STREAM_JS)

            upload_and_ask(page, SAMPLE_VIDEO, "What happens in this video?")
            captions = page.locator("#frame-strip .caption-label")
            expect(captions).to_have_count(8, timeout=60_000)  # the tiny model's default: 8 frames
            assert captions.first.inner_text() == "0.0 s" and captions.last.inner_text().endswith(" s")
            expect(page.locator("#frame-strip img")).to_have_count(8)
            page.wait_for_function("() => window.__botLengths.filter(n => n > 0).length >= 3", timeout=60_000)
            stop = page.locator("#chat-input").get_by_role("button", name="Stop")
            if stop.is_visible():  # still streaming: the Stop button ends it
                stop.click()
            expect(page.locator('#chat-input [data-testid="submit-button"]')).to_be_visible(timeout=60_000)
            answer = page.evaluate(BOT_TEXTS_JS)
            assert len(answer) == 1 and answer[0].strip() and not answer[0].startswith(ERROR_PREFIX), answer
            lengths = page.evaluate("() => window.__botLengths")
            assert len({length for length in lengths if length}) >= 3, f"the answer did not stream in: {lengths}"
            page.wait_for_timeout(500)
            assert page.evaluate(BOT_TEXTS_JS) == answer, "the answer kept growing after Stop"
            page.screenshot(path=str(ARTIFACTS / "space_browser_answer.png"))

            fake = tmp_path / "holiday.mp4"
            fake.write_text("this is a text file with a video extension")
            upload_and_ask(page, fake, "What happens?")
            error = page.locator('#chatbot [data-testid="bot"]').nth(1)
            expect(error).to_contain_text("holiday.mp4: not a readable video", timeout=60_000)
            assert page.evaluate(BOT_TEXTS_JS)[1].startswith(ERROR_PREFIX)
            page.screenshot(path=str(ARTIFACTS / "space_browser_error.png"))
        finally:
            browser.close()
