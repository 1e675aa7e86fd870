"""`flashspeech app`: a browser demo of zero-shot TTS, voice conversion and speech editing (gradio, the `app` extra).

The pipeline is loaded once; each tab calls one task pipeline ([`FlashSpeechPipeline`],
[`FlashSpeechVoiceConversionPipeline`], [`FlashSpeechEditPipeline`], sharing the loaded components) and shows the
audio, a picture of its mel spectrogram with the predicted pitch contour, and the time the call took. Bad input (an
empty text, a prompt under a second) shows the pipeline's own error message in the page. The app runs offline: gradio's analytics are off, its
fonts are served locally, and nothing is shared unless `share=True`. Uploads are limited to [`MAX_FILE_SIZE`], and
the files the app stores (uploads, recordings, outputs) are deleted after an hour and when it stops ([`DELETE_CACHE`]).

Examples:

```bash
flashspeech app                                   # the bundled demo checkpoint, on http://127.0.0.1:7860
flashspeech app --model path/or/org/flashspeech --device cuda --port 8080
```

```py
>>> from flashspeech_hf.app import build_app, load_app_pipeline

>>> demo = build_app(load_app_pipeline())
>>> demo.launch()
```
"""

from __future__ import annotations

import hashlib
import html
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Before gradio is imported: no usage statistics, no version check against a remote server.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

#: The checkpoint trained for this repository (`checkpoints/flashspeech-demo`, present in a source checkout).
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "checkpoints" / "flashspeech-demo"
#: Upper bound of the steps slider (the paper's default is 2).
MAX_STEPS = 8
#: Encoded prompts kept between requests (least recently used first out), keyed by the uploaded file's content.
VOICE_CACHE_SIZE = 16
#: Largest upload accepted in bytes (gradio's `max_file_size`, 20 MiB): a minute of 48 kHz stereo 24-bit WAV is
#: 17 MB, and prompts are at most 30 s, edited or converted recordings at most 60 s.
MAX_FILE_SIZE = 20 * 2**20
#: gradio's `delete_cache` `(frequency, age)` in seconds: every 10 minutes, the uploads, recordings and outputs of this
#: app older than an hour are deleted from gradio's temporary folder, and all of them when the app stops.
DELETE_CACHE = (600, 3600)


def _import_gradio():
    try:
        import gradio as gr
    except ImportError as err:
        raise ImportError(
            "The app needs gradio: `pip install 'flashspeech-hf[app]'` (or `pip install gradio matplotlib`)."
        ) from err
    return gr


def load_app_pipeline(model: str | os.PathLike | None = None, device: str | None = None):
    """
    Loads the pipeline the app serves.

    Args:
        model (`str` or `os.PathLike`, *optional*): A saved [`FlashSpeechPipeline`] folder or a Hub id; defaults to
            the bundled demo checkpoint ([`DEFAULT_MODEL`]).
        device (`str`, *optional*): Torch device, e.g. `"cuda"` (default: CPU).

    Returns:
        [`FlashSpeechPipeline`] with its progress bars off.
    """
    from .pipelines import FlashSpeechPipeline

    if model is None:
        if not (DEFAULT_MODEL / "model_index.json").is_file():
            raise ValueError(
                f"No --model given and the bundled checkpoint {DEFAULT_MODEL} is missing (it ships with a source "
                "checkout of flashspeech-hf): pass a saved pipeline folder or a Hub id."
            )
        model = DEFAULT_MODEL
    pipe = FlashSpeechPipeline.from_pretrained(model)
    if device:
        pipe = pipe.to(torch.device(device))
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------------------------------------------------------------
# Rendering the output
# ---------------------------------------------------------------------------------------------------------------------


def log_mel_spectrogram(audio: np.ndarray, sampling_rate: int, hop_length: int, num_mels: int = 80) -> np.ndarray:
    """
    Log-mel spectrogram for display (Hann window of `4 * hop_length`, Slaney mel scale up to Nyquist).

    Args:
        audio (`np.ndarray` of shape `(num_samples,)`): Mono waveform.
        sampling_rate (`int`): Its sample rate in Hz.
        hop_length (`int`): Samples between frames.
        num_mels (`int`): Mel bands.

    Returns:
        `np.ndarray` of shape `(num_mels, num_frames)`: `log10` of the mel power, floored at 1e-10.
    """
    from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

    n_fft = 4 * hop_length
    filters = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1,
        num_mel_filters=num_mels,
        min_frequency=0.0,
        max_frequency=sampling_rate / 2,
        sampling_rate=sampling_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return spectrogram(
        np.asarray(audio, dtype=np.float32),
        window_function(n_fft, "hann"),
        frame_length=n_fft,
        hop_length=hop_length,
        power=2.0,
        mel_filters=filters,
        log_mel="log10",
    )


def plot_spectrogram_and_pitch(
    audio: np.ndarray,
    sampling_rate: int,
    hop_length: int,
    log_pitch: torch.Tensor | np.ndarray | None = None,
    span: tuple[float, float] | None = None,
):
    """
    Draws the log-mel spectrogram of `audio` with the predicted pitch contour on a second axis.

    Drawn on matplotlib's Agg canvas without `pyplot`, so it needs no display and leaves the caller's backend alone.

    Args:
        audio (`np.ndarray` of shape `(num_samples,)`): Mono waveform.
        sampling_rate (`int`): Its sample rate in Hz.
        hop_length (`int`): Samples per latent frame (the pitch is one value per frame).
        log_pitch (`torch.Tensor` or `np.ndarray` of shape `(num_frames,)`, *optional*): Predicted `ln F0`.
        span (`tuple[float, float]`, *optional*): A region `(start, end)` in seconds to shade (the edited words).

    Returns:
        `matplotlib.figure.Figure`
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mel = log_mel_spectrogram(audio, sampling_rate, hop_length)
    seconds = len(audio) / sampling_rate
    figure = Figure(figsize=(9, 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.imshow(
        mel,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0.0, seconds, 0, mel.shape[0]),
        vmin=mel.max() - 8.0,  # 80 dB of range
        vmax=mel.max(),
    )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    if span is not None:
        ax.axvspan(*span, color="white", alpha=0.25, label="edited")
    if log_pitch is not None and len(log_pitch) > 0:
        f0 = np.exp(np.asarray(log_pitch, dtype=np.float64))
        times = (np.arange(len(f0)) + 0.5) * hop_length / sampling_rate
        pitch_ax = ax.twinx()
        pitch_ax.plot(times, f0, color="#22d3ee", linewidth=1.5, label="predicted F0")
        pitch_ax.set_ylabel("F0 (Hz)")
        pitch_ax.set_ylim(0.75 * float(f0.min()), 1.25 * float(f0.max()))  # the contour's own range
        pitch_ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(0, seconds)
    return figure


def _to_int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)


def _timing(seconds_of_audio: float, elapsed: float, device: torch.device) -> str:
    return (
        f"**{seconds_of_audio:.2f} s** of audio in **{elapsed:.2f} s** on {device.type} "
        f"(real-time factor {elapsed / max(seconds_of_audio, 1e-9):.3f})"
    )


def _from_the_page() -> bool:
    """
    Whether the current request comes from the app's own page (gradio's front end sends `x-gradio-user: app`), which
    shows error text as HTML; API clients (`gradio_client` sends `api`, `curl` nothing) show it as it is.
    """
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    return request is not None and request.headers.get("x-gradio-user") == "app"


def _user_message(message: str, inputs: tuple) -> str:
    """
    An error message as the user should read it: the server's temporary paths of the uploads in `inputs` shortened to
    the file names the user gave, and HTML-escaped only for the page (so it reads exactly as the pipeline wrote it).
    """
    uploads = {value for value in inputs if isinstance(value, str) and os.path.isfile(value)}
    for path in sorted(uploads, key=len, reverse=True):
        message = message.replace(path, os.path.basename(path))
    return html.escape(message, quote=False) if _from_the_page() else message


def _require(value: Any, message: str) -> None:
    gr = _import_gradio()
    if value is None or (isinstance(value, str) and not value):
        raise gr.Error(message)


class FlashSpeechDemo:
    """
    The app's callbacks around one loaded pipeline: each returns `((rate, int16 audio), figure, timing markdown)` and
    turns the pipeline's `ValueError`s (bad input) into `gradio.Error`s, which the page shows as they are.

    Args:
        pipe ([`FlashSpeechPipeline`]): The loaded pipeline.
    """

    def __init__(self, pipe):
        from .pipelines import FlashSpeechEditPipeline, FlashSpeechVoiceConversionPipeline

        self.pipe = pipe
        # the task pipelines share the loaded components (no copy of any weight)
        self.voice_conversion = FlashSpeechVoiceConversionPipeline(**pipe.components)
        self.editing = FlashSpeechEditPipeline(**pipe.components)
        for task in (self.voice_conversion, self.editing):
            task.set_progress_bar_config(disable=True)
        self._voices: OrderedDict[str, Any] = OrderedDict()
        self._voices_lock = threading.Lock()

    def voice(self, path: str, name: str = "prompt_audio"):
        """
        The [`FlashSpeechVoice`] of an uploaded prompt file, encoded once: the last `VOICE_CACHE_SIZE` are kept, keyed
        by the SHA-256 of the file's bytes, so the same prompt sent again (a new upload of the same file, another
        text) skips the codec and the prompt encoder; the audio is the same as from the file.
        """
        from .audio import check_audio_input
        from .pipelines.utils import MAX_PROMPT_SECONDS

        check_audio_input(path, None, name, MAX_PROMPT_SECONDS, "max_prompt_seconds")  # before reading the file
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        key = digest.hexdigest()
        with self._voices_lock:
            voice = self._voices.pop(key, None)
        if voice is None:
            voice = self.pipe.encode_voice(path, name=name)
        with self._voices_lock:
            self._voices[key] = voice
            while len(self._voices) > VOICE_CACHE_SIZE:
                self._voices.popitem(last=False)
        return voice

    def _run(self, fn, *args, uploads: tuple = (), **kwargs):
        """`fn(*args, **kwargs)` and its time; bad input becomes a `gradio.Error` naming `args`/`uploads` by name."""
        gr = _import_gradio()
        start = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
        except (ValueError, FileNotFoundError) as err:
            message = _user_message(str(err), (*args, *uploads))
            raise gr.Error(message, duration=None, print_exception=False) from err
        return out, time.perf_counter() - start

    def _result(self, audio: np.ndarray, log_pitch, elapsed: float, span: tuple[float, float] | None = None):
        rate, hop = self.pipe.sampling_rate, self.pipe.codec.hop_length
        figure = plot_spectrogram_and_pitch(audio, rate, hop, log_pitch, span)
        return (rate, _to_int16(audio)), figure, _timing(len(audio) / rate, elapsed, self.pipe._execution_device)

    def synthesize(self, text: str, prompt: str | None, steps: float, alpha: float, speed: float, seed: float):
        """Zero-shot TTS: `text` in the voice of the `prompt` file."""
        _require(prompt, "Upload or record a speech prompt (at least 1 s of the target voice).")
        out, elapsed = self._run(
            lambda **kwargs: self.pipe(text or "", voice=self.voice(prompt), **kwargs),
            uploads=(prompt,),
            num_inference_steps=int(steps),
            prosody_alpha=float(alpha),
            speed=float(speed),
            generator=int(seed or 0),
        )
        return self._result(out.audios[0, : out.audio_lengths[0]], out.log_pitch[0], elapsed)

    def convert(
        self,
        source: str | None,
        source_text: str,
        reference: str | None,
        strength: float,
        steps: float,
        alpha: float,
        seed: float,
    ):
        """Voice conversion: what `source` says, in the voice of `reference`."""
        _require(source, "Upload or record the source speech.")
        _require(reference, "Upload or record a reference of the target voice (at least 1 s).")
        out, elapsed = self._run(
            lambda **kwargs: self.voice_conversion(
                source, source_text or "", voice=self.voice(reference, "reference_audio"), **kwargs
            ),
            uploads=(source, reference),
            strength=float(strength),
            num_inference_steps=int(steps),
            prosody_alpha=float(alpha),
            generator=int(seed or 0),
        )
        return self._result(out.audios[0, : out.audio_lengths[0]], out.log_pitch[0], elapsed)

    def edit(self, audio: str | None, original_text: str, new_text: str, steps: float, alpha: float, seed: float):
        """Speech editing: regenerates the words that differ between the texts and splices them into `audio`."""
        _require(audio, "Upload or record the speech to edit.")
        out, elapsed = self._run(
            self.editing,
            audio,
            original_text or "",
            new_text or "",
            num_inference_steps=int(steps),
            prosody_alpha=float(alpha),
            generator=int(seed or 0),
        )
        rate = self.pipe.sampling_rate
        return self._result(out.audios[0], out.log_pitch[0], elapsed, (out.edit_start / rate, out.edit_end / rate))


def _sampling_controls(gr, prefix: str, speed: bool = False) -> list:
    with gr.Accordion("Sampling", open=True):
        with gr.Row():
            controls = [
                gr.Slider(1, MAX_STEPS, value=2, step=1, label="Steps", elem_id=f"{prefix}-steps"),
                gr.Slider(0.0, 1.0, value=0.2, step=0.05, label="Prosody alpha", elem_id=f"{prefix}-alpha"),
            ]
            if speed:
                controls.append(gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speed", elem_id=f"{prefix}-speed"))
            controls.append(gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id=f"{prefix}-seed"))
    return controls


def _outputs(gr, prefix: str) -> list:
    return [
        gr.Audio(
            label="Output",
            type="numpy",
            format="wav",
            interactive=False,
            buttons=["download"],
            waveform_options=gr.WaveformOptions(show_recording_waveform=False),  # the browser's own <audio> player
            elem_id=f"{prefix}-output",
        ),
        gr.Plot(label="Mel spectrogram and predicted pitch", format="png", elem_id=f"{prefix}-plot"),
        gr.Markdown(elem_id=f"{prefix}-time"),
    ]


def build_app(pipe, title: str = "FlashSpeech"):
    """
    Builds the gradio app around a loaded pipeline: tabs for zero-shot TTS, voice conversion and speech editing.

    All three run in one queue, one request at a time (`concurrency_id="pipeline"`): the pipeline is shared.

    Args:
        pipe ([`FlashSpeechPipeline`]): The pipeline to serve (see [`load_app_pipeline`]).
        title (`str`): Page title.

    Returns:
        `gradio.Blocks`: Call `.launch()` on it (or use [`launch_app`]).

    Examples:

    ```py
    >>> from flashspeech_hf import FlashSpeechPipeline
    >>> from flashspeech_hf.app import build_app

    >>> pipe = FlashSpeechPipeline.from_pretrained("path/or/org/flashspeech")
    >>> build_app(pipe).launch(server_port=7860)
    ```
    """
    gr = _import_gradio()
    demo_fns = FlashSpeechDemo(pipe)
    audio_in = {"type": "filepath", "sources": ["upload", "microphone"], "buttons": []}
    has_aligner = getattr(pipe, "aligner", None) is not None
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(
            f"# {title}\nZero-shot speech synthesis with a latent consistency model "
            f"([arXiv 2404.14700](https://arxiv.org/abs/2404.14700)); {pipe.sampling_rate} Hz."
        )
        with gr.Tab("Text to speech", id="tts"):
            with gr.Row():
                with gr.Column():
                    text = gr.Textbox(label="Text", lines=3, placeholder="The sentence to speak.", elem_id="tts-text")
                    prompt = gr.Audio(label="Voice prompt (1-30 s of speech)", elem_id="tts-prompt", **audio_in)
                    controls = _sampling_controls(gr, "tts", speed=True)
                    button = gr.Button("Synthesize", variant="primary", elem_id="tts-run")
                with gr.Column():
                    outputs = _outputs(gr, "tts")
            button.click(
                demo_fns.synthesize, [text, prompt, *controls], outputs, concurrency_id="pipeline", api_name="tts"
            )
        with gr.Tab("Voice conversion", id="vc"):
            if not has_aligner:
                gr.Markdown("This pipeline has no `aligner` component, which voice conversion needs.")
            with gr.Row():
                with gr.Column():
                    source = gr.Audio(label="Source speech (words and timing)", elem_id="vc-source", **audio_in)
                    source_text = gr.Textbox(label="Transcript of the source", elem_id="vc-source-text")
                    reference = gr.Audio(label="Reference (the target voice)", elem_id="vc-reference", **audio_in)
                    strength = gr.Slider(
                        0.05, 1.0, value=0.7, step=0.05, label="Strength (1 = from pure noise)", elem_id="vc-strength"
                    )
                    controls = _sampling_controls(gr, "vc")
                    button = gr.Button("Convert", variant="primary", elem_id="vc-run")
                with gr.Column():
                    outputs = _outputs(gr, "vc")
            button.click(
                demo_fns.convert,
                [source, source_text, reference, strength, *controls],
                outputs,
                concurrency_id="pipeline",
                api_name="convert",
            )
        with gr.Tab("Speech editing", id="edit"):
            if not has_aligner:
                gr.Markdown("This pipeline has no `aligner` component, which speech editing needs.")
            with gr.Row():
                with gr.Column():
                    audio = gr.Audio(label="Recording to edit", elem_id="edit-audio", **audio_in)
                    original_text = gr.Textbox(label="What it says", elem_id="edit-original-text")
                    new_text = gr.Textbox(label="What it should say", elem_id="edit-new-text")
                    controls = _sampling_controls(gr, "edit")
                    button = gr.Button("Edit", variant="primary", elem_id="edit-run")
                with gr.Column():
                    outputs = _outputs(gr, "edit")
            button.click(
                demo_fns.edit,
                [audio, original_text, new_text, *controls],
                outputs,
                concurrency_id="pipeline",
                api_name="edit",
            )
    demo.queue(default_concurrency_limit=1)
    return demo


def launch_app(
    model: str | os.PathLike | None = None,
    device: str | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    block: bool = True,
    max_file_size: str | int | None = MAX_FILE_SIZE,
):
    """
    Loads the pipeline once, builds the app and serves it.

    What it stores: each upload or recording, and each output, is a file in gradio's temporary folder
    (`GRADIO_TEMP_DIR`, by default `<tmp>/gradio`), deleted an hour after it was made (checked every 10 minutes,
    [`DELETE_CACHE`]) and when the app stops; uploads over `max_file_size` are refused.

    Args:
        model (`str` or `os.PathLike`, *optional*): Pipeline folder or Hub id (default: the bundled checkpoint).
        device (`str`, *optional*): Torch device of the pipeline.
        host (`str`, defaults to `"127.0.0.1"`): Interface to listen on (`"0.0.0.0"` for every interface).
        port (`int`, defaults to 7860): TCP port.
        share (`bool`, defaults to `False`): Ask gradio for a public link (needs the internet).
        block (`bool`, defaults to `True`): Serve until interrupted (Ctrl-C, or SIGTERM in the command line), then
            stop the server, which deletes the files it stored; with `False`, return at once (the server runs in a
            thread; call `.close()` on the returned app to stop it).
        max_file_size (`str` or `int`, defaults to [`MAX_FILE_SIZE`]): Largest upload in bytes (or a string such as
            `"50mb"`; `None`: no limit).

    Returns:
        `gradio.Blocks`: The app: running with `block=False`, stopped otherwise.

    Examples:

    ```py
    >>> from flashspeech_hf.app import launch_app

    >>> demo = launch_app(port=7861, block=False)  # the bundled checkpoint, served from a thread
    >>> demo.close()
    ```
    """
    demo = build_app(load_app_pipeline(model, device))
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            share=share,
            prevent_thread_lock=True,
            show_error=True,  # an unexpected error shows its message (never the traceback, which stays in the console)
            inbrowser=False,
            max_file_size=max_file_size,
        )
        if block:
            demo.block_thread()  # until Ctrl-C, or SIGTERM (`SystemExit` in the command line)
    except BaseException:
        demo.close()  # the server's shutdown deletes the files the app stored
        raise
    if block:
        demo.close()
    return demo
