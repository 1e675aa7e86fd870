"""`flashspeech app`: the gradio app on the bundled checkpoint, driven in headless Chromium as a person uses it.

The browser tests need Debian's `chromium` and `chromium-driver` (`make test` installs them as root) and are skipped,
with that reason, only where they are not installed. Every wait is an explicit condition with a generous limit: the
machines running these tests can be slow and shared.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import urllib.parse
import urllib.request

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from speech_data import speak

from flashspeech_hf.app import FlashSpeechDemo, launch_app, load_app_pipeline, plot_spectrogram_and_pitch
from flashspeech_hf.cli import main

TEXT = "The little boy found a silver key."
PROMPT_TEXT = "Please give the red box to my sister at the market."
PAGE_TIMEOUT = 120  # seconds: first page load on a busy machine
RUN_TIMEOUT = 300  # seconds: upload plus synthesis on a busy machine
# Chromium as the machines' notes prescribe: no sandbox (root), no GPU, and none of its own background traffic.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    # a microphone that plays a test tone, granted without asking
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
)
MICROPHONE = "microphone"


@pytest.fixture(scope="module")
def pipe():
    return load_app_pipeline()  # the bundled checkpoint, as `flashspeech app` without --model


@pytest.fixture(scope="module")
def prompt_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("prompt") / "prompt.wav"
    speak(PROMPT_TEXT, path)
    return str(path)


@pytest.fixture(scope="module")
def short_prompt_path(prompt_path, tmp_path_factory) -> str:
    """The first half second of the prompt: speech, but under the pipeline's 1 s minimum."""
    audio, rate = sf.read(prompt_path, dtype="float32")
    path = tmp_path_factory.mktemp("short") / "short.wav"
    sf.write(path, audio[: rate // 2], rate)
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """
    The app as `flashspeech app --port PORT` serves it (bundled checkpoint), on a free localhost port from a thread of
    this process; closed after the module.
    """
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))  # uploads and outputs land here
    port = _free_port()
    demo = launch_app(port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    if previous is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = previous


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip(
            "Chromium and ChromeDriver are not installed (Debian: `apt-get install chromium chromium-driver`, which "
            "`make test` runs as root); the browser tests of the app need them."
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request the page makes
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_page_load_timeout(PAGE_TIMEOUT)
    yield chrome
    chrome.quit()


def _recorded_seconds(browser) -> int:
    """Seconds shown by the prompt's recording timer (`m:ss`; the last one shown is the recording's length)."""
    times = re.findall(
        r"(\d+):(\d\d)", " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, "#tts-prompt time"))
    )
    return max((60 * int(m) + int(s) for m, s in times), default=0)


def _open_tts_tab(browser, url: str, text: str, prompt: str) -> None:
    """
    Loads the page, types `text`, gives the prompt (uploads the file `prompt`, or records 2 s from the microphone for
    `MICROPHONE`), waits until the prompt is shown and clicks Synthesize.
    """
    browser.get(url)
    wait = WebDriverWait(browser, PAGE_TIMEOUT)
    upload = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#tts-prompt input[type=file]"))[0]
    if text:
        browser.find_element(By.CSS_SELECTOR, "#tts-text textarea").send_keys(text)
    if prompt == MICROPHONE:
        browser.find_element(By.CSS_SELECTOR, "#tts-prompt button[aria-label='Record audio']").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#tts-prompt button.record-button"))[0].click()
        WebDriverWait(browser, RUN_TIMEOUT).until(lambda d: _recorded_seconds(d) >= 2)
        browser.find_element(By.CSS_SELECTOR, "#tts-prompt button.stop-button").click()
    else:
        upload.send_keys(prompt)
    # once uploaded (a recording is uploaded when it stops), the prompt component shows a player for the file
    WebDriverWait(browser, RUN_TIMEOUT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#tts-prompt audio"))
    browser.find_element(By.ID, "tts-run").click()


def _error_messages(browser) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, "[data-testid=toast-text]") if e.text]


def _failed(browser) -> bool:
    """Whether the TTS call has ended in an error: a notice, or the output's status showing one."""
    status = browser.find_elements(By.CSS_SELECTOR, "#tts-output [data-testid=status-tracker]")
    return bool(browser.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]")) or any(
        "Error" in e.text for e in status
    )


def _fetch(url: str) -> bytes:
    assert urllib.parse.urlparse(url).hostname == "127.0.0.1", url
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost: never through a proxy
    with opener.open(url, timeout=60) as response:
        return response.read()


@pytest.mark.parametrize("source", ["upload", MICROPHONE])
def test_tts_tab_speaks_in_the_browser(source, browser, app_url, prompt_path, pipe, tmp_path):
    _open_tts_tab(browser, app_url, TEXT, prompt_path if source == "upload" else MICROPHONE)

    def output_source(d):
        errors = _error_messages(d)
        assert not errors, f"the app showed an error: {errors}"
        players = d.find_elements(By.CSS_SELECTOR, "#tts-output audio[src]")
        return players[0].get_attribute("src") if players else False

    src = WebDriverWait(browser, RUN_TIMEOUT).until(output_source)
    audio, rate = sf.read(io.BytesIO(_fetch(src)), dtype="float32")
    assert rate == pipe.sampling_rate
    assert audio.ndim == 1 and len(audio) / rate >= 1.0
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 0.01, f"the output is near silent (RMS {rms:.4f})"

    # the picture of the spectrogram and pitch, and the time it took
    plot = WebDriverWait(browser, PAGE_TIMEOUT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#tts-plot img"))
    assert plot[0].get_attribute("src").startswith("data:image/png")
    timing = browser.find_element(By.ID, "tts-time").text
    assert f"{len(audio) / rate:.2f} s of audio in" in timing, timing

    screenshot = tmp_path / f"tts_tab_{source}.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # offline: the page asked nothing of any host but the app's
    hosts = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = urllib.parse.urlparse(message["params"]["request"]["url"])
            if url.scheme in ("http", "https", "ws", "wss"):
                hosts.add(url.hostname)
    assert hosts == {"127.0.0.1"}, hosts


@pytest.mark.parametrize("case", ["empty_text", "short_prompt"])
def test_bad_input_shows_the_pipeline_message(case, browser, app_url, pipe, prompt_path, short_prompt_path):
    text, prompt = ("", prompt_path) if case == "empty_text" else (TEXT, short_prompt_path)
    with pytest.raises(ValueError) as expected:
        pipe(text, prompt)
    _open_tts_tab(browser, app_url, text, prompt)
    WebDriverWait(browser, RUN_TIMEOUT).until(_failed)
    # the notice may be drawn a moment after the status
    messages = WebDriverWait(browser, 30).until(_error_messages, "the page shows an error, but no message")
    assert messages == [str(expected.value)]
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Traceback" not in page and "ValueError" not in page
    assert not browser.find_elements(By.CSS_SELECTOR, "#tts-output audio[src]")


# ---------------------------------------------------------------------------------------------------------------------
# The callbacks of the voice conversion and editing tabs, and the CLI, without a browser
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("recording") / "recording.wav"
    speak(TEXT, path, voice="en-us+f2", pitch=60)
    return str(path)


def test_voice_conversion_and_editing_callbacks(pipe, recording, prompt_path):
    demo = FlashSpeechDemo(pipe)
    (rate, audio), figure, timing = demo.convert(recording, TEXT, prompt_path, 0.7, 2, 0.2, 0)
    assert rate == pipe.sampling_rate and audio.dtype == np.int16 and len(audio) / rate >= 1.0
    assert np.abs(audio).max() > 300  # not silent
    assert "of audio in" in timing and len(figure.axes) == 2  # spectrogram and pitch axes

    original, _ = sf.read(recording, dtype="float32")
    (rate, edited), figure, _ = demo.edit(recording, TEXT, "The little girl found a silver key.", 2, 0.2, 0)
    assert len(edited) / rate > 1.0 and np.abs(edited).max() > 300
    assert any(patch.get_label() == "edited" for patch in figure.axes[0].patches)  # the edited span is shaded

    with pytest.raises(gr.Error, match="Upload or record the source speech"):
        demo.convert(None, TEXT, prompt_path, 0.7, 2, 0.2, 0)
    with pytest.raises(gr.Error, match="new_text"):  # the pipeline's own message
        demo.edit(recording, TEXT, "  ", 2, 0.2, 0)


def test_plot_draws_pitch_in_hertz():
    rate, hop = 16000, 200
    tone = np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
    log_pitch = np.log(np.full(rate // hop, 150.0))
    figure = plot_spectrogram_and_pitch(tone, rate, hop, log_pitch)
    spectrogram_ax, pitch_ax = figure.axes
    mel = spectrogram_ax.images[0].get_array()
    assert mel.shape[0] == 80
    # the tone's energy lies in one band low in the mel scale, far above the top band
    assert 5 < int(np.argmax(mel.mean(axis=1))) < 40
    (line,) = pitch_ax.lines
    np.testing.assert_allclose(line.get_ydata(), 150.0)
    assert line.get_xdata()[-1] < 1.0


def test_cli_app_reports_a_bad_model(tmp_path, capsys):
    assert main(["app", "--model", str(tmp_path), "--port", str(_free_port())]) == 2
    assert "model_index.json" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# Hostile use of a served app: large uploads, files left behind, error text for API clients
# ---------------------------------------------------------------------------------------------------------------------


def test_uploads_are_limited_and_deleted_and_api_errors_are_plain(pipe, tmp_path, monkeypatch, prompt_path):
    import httpx
    from gradio_client import Client, handle_file

    from flashspeech_hf.app import MAX_FILE_SIZE

    cache = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    not_audio = tmp_path / "uploads" / "voice & noise.wav"
    not_audio.parent.mkdir()
    not_audio.write_text("not audio")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    demo = launch_app(port=port, block=False)
    try:
        with httpx.Client(trust_env=False, timeout=60) as http:  # localhost: never through a proxy
            kept = http.post(f"{url}gradio_api/upload", files={"files": ("prompt.wav", open(prompt_path, "rb"))})
            assert kept.status_code == 200 and os.path.isfile(kept.json()[0])
            refused = http.post(f"{url}gradio_api/upload", files={"files": ("big.wav", b"\0" * (MAX_FILE_SIZE + 1))})
            assert refused.status_code == 413
        # an API client reads the pipeline's message as it is: no HTML entities, no temporary path of the server
        with pytest.raises(ValueError) as expected:
            pipe("Hello there.", str(not_audio))
        with pytest.raises(Exception) as api_error:
            Client(url, verbose=False).predict(
                "Hello there.", handle_file(str(not_audio)), 2, 0.2, 1.0, 0, api_name="/tts"
            )
        assert str(api_error.value) == str(expected.value).replace(str(not_audio), not_audio.name)
        assert any(files for _, _, files in os.walk(cache))  # the uploads are there while the app runs
    finally:
        demo.close()
    assert [files for _, _, files in os.walk(cache) if files] == []  # and deleted when it stops


def test_error_text_is_escaped_for_the_page_only(pipe, tmp_path):
    from types import SimpleNamespace

    from gradio.context import LocalContext

    not_audio = tmp_path / "a <b> & c.wav"
    not_audio.write_text("not audio")
    with pytest.raises(ValueError) as expected:
        pipe("Hello there.", str(not_audio))
    plain = str(expected.value).replace(str(not_audio), not_audio.name)
    assert str(tmp_path) not in plain and "'" in plain
    demo = FlashSpeechDemo(pipe)
    with pytest.raises(gr.Error) as error:
        demo.synthesize("Hello there.", str(not_audio), 2, 0.2, 1.0, 0)
    assert error.value.message == plain
    token = LocalContext.request.set(SimpleNamespace(headers={"x-gradio-user": "app"}))  # the app's own page
    try:
        with pytest.raises(gr.Error) as error:
            demo.synthesize("Hello there.", str(not_audio), 2, 0.2, 1.0, 0)
    finally:
        LocalContext.request.reset(token)
    assert error.value.message == plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_app_stopped_by_sigterm_deletes_what_it_stored(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import httpx

    port = _free_port()
    env = dict(os.environ, GRADIO_TEMP_DIR=str(tmp_path), OMP_NUM_THREADS="1")
    app = subprocess.Popen(
        [sys.executable, "-m", "flashspeech_hf.cli", "app", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + PAGE_TIMEOUT
        with httpx.Client(trust_env=False, timeout=30) as http:  # localhost: never through a proxy
            while True:  # until the server answers
                try:
                    upload = http.post(
                        f"http://127.0.0.1:{port}/gradio_api/upload", files={"files": ("a.wav", b"RIFF")}
                    )
                    break
                except httpx.TransportError:
                    assert app.poll() is None and time.monotonic() < deadline, "the app did not start"
                    time.sleep(0.5)
        assert upload.status_code == 200 and os.path.isfile(upload.json()[0])
        app.send_signal(signal.SIGTERM)  # as `docker stop` or systemd stop a server
        output, _ = app.communicate(timeout=PAGE_TIMEOUT)
    finally:
        app.kill()
    assert app.returncode == 143, output[-2000:]
    assert [files for _, _, files in os.walk(tmp_path) if files] == [], output[-3000:]
