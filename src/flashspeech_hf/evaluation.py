"""Zero-shot TTS evaluation runner: the paper's protocol over a test list, with per-utterance error reporting.

FlashSpeech (like NaturalSpeech 2, VALL-E and Voicebox) is evaluated on LibriSpeech test-clean utterances of 4 to 10
seconds, each synthesized from a 3-second prompt cut from *another* utterance of the same speaker (cross-sentence).
The runner reports, for the synthesized speech and for the ground-truth recordings:

- WER: ASR transcript (HuBERT-large CTC in the paper; Whisper base offline) against the text;
- Sim-O: speaker similarity of the output with the original prompt;
- Sim-R: speaker similarity of the output with the prompt reconstructed by the pipeline's codec;
- pitch JSD: Jensen-Shannon divergence of the output's pitch distribution against the ground truth's, drawn in
  `pitch_distributions.png`;
- DNSMOS: predicted P.835 SIG/BAK/OVRL and P.808 MOS (Microsoft's DNSMOS, offline with `speechmos`), a quality
  score speech synthesis papers quote;
- RTF: synthesis wall time over the audio duration.

A test item that cannot be used (missing file, audio without speech, failed synthesis) is reported with its reason
and left out of the averages instead of stopping the run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import soundfile as sf
import torch

from .audio import check_speech, load_audio, write_text_atomically
from .metrics import RealTimeFactorTimer, load_metric, transcribe
from .metrics.asr import default_asr_backend
from .metrics.dnsmos_predictor import DNSMOS_KEYS, load_dnsmos_predictor, mean_dnsmos
from .metrics.prosody_statistics import extract_pitch, jensen_shannon_divergence, pitch_histogram
from .metrics.speaker_embeddings import DEFAULT_SPEAKER_BACKEND

TEST_LIST_COLUMNS = ("text", "prompt_audio", "reference_audio")
PITCH_FIGURE = "pitch_distributions.png"
"""File name of the pitch-distribution figure that [`evaluate_pipeline`] writes next to `results.md`."""
# The pitch JSD's settings (the `prosody_jsd` metric's defaults): 16 kHz, DIO, 512 log-spaced bins over 50-1100 Hz.
_PITCH_RATE, _PITCH_BINS, _F0_MIN, _F0_MAX = 16000, 512, 50.0, 1100.0


@dataclass
class EvaluationItem:
    """
    One test utterance.

    Args:
        id (`str`): Name of the item (used for output file names).
        text (`str`): The sentence to synthesize (the reference utterance's transcript).
        prompt_audio (`str`): Path of the speech prompt (another utterance of the same speaker).
        reference_audio (`str`): Path of the ground-truth recording of `text`.
        prompt_text (`str`, *optional*): Transcript of the prompt.
        speaker_id (`str`, *optional*): Speaker of the item.
    """

    id: str
    text: str
    prompt_audio: str
    reference_audio: str
    prompt_text: str = ""
    speaker_id: str = ""


@dataclass
class ItemResult:
    """Per-utterance scores (NaN where not scored) and the reasons of every failure."""

    id: str
    text: str
    output_audio: str | None = None
    audio_seconds: float = math.nan
    synthesis_seconds: float = math.nan
    transcript: str | None = None
    wer: float = math.nan
    sim_o: float = math.nan
    sim_r: float = math.nan
    pitch_jsd: float = math.nan
    dnsmos_sig: float = math.nan
    dnsmos_bak: float = math.nan
    dnsmos_ovrl: float = math.nan
    dnsmos_p808: float = math.nan
    ground_truth_transcript: str | None = None
    ground_truth_wer: float = math.nan
    ground_truth_sim_o: float = math.nan
    ground_truth_dnsmos_sig: float = math.nan
    ground_truth_dnsmos_bak: float = math.nan
    ground_truth_dnsmos_ovrl: float = math.nan
    ground_truth_dnsmos_p808: float = math.nan
    errors: list[str] = field(default_factory=list)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "item"


def load_test_list(path: str | os.PathLike) -> list[EvaluationItem]:
    """
    Reads a CSV test list with columns `text,prompt_audio,reference_audio[,prompt_text][,id][,speaker_id]`.

    Relative audio paths are taken relative to the CSV's folder. Missing files are not checked here: they are reported
    per utterance by [`evaluate_pipeline`].

    Args:
        path (`str` or `os.PathLike`): The CSV file.

    Returns:
        `list[EvaluationItem]`

    Examples:

    ```py
    >>> from flashspeech_hf.evaluation import load_test_list
    >>> items = load_test_list("test_list.csv")  # doctest: +SKIP
    >>> items[0].text  # doctest: +SKIP
    'He hoped there would be stew for dinner.'
    ```
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Test list not found: {path}")
    root = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in TEST_LIST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"Test list {path} lacks the column(s) {missing}; it needs {list(TEST_LIST_COLUMNS)} "
                f"(and optionally prompt_text, id, speaker_id), got {reader.fieldnames}."
            )
        rows = list(reader)
    if not rows:
        raise ValueError(f"Test list {path} has no rows.")
    items = []
    for index, row in enumerate(rows):

        def resolve(value: str) -> str:
            value = (value or "").strip()
            return value if not value or os.path.isabs(value) else os.path.join(root, value)

        items.append(
            EvaluationItem(
                id=_safe_name(row.get("id") or f"{index:05d}"),
                text=(row["text"] or "").strip(),
                prompt_audio=resolve(row["prompt_audio"]),
                reference_audio=resolve(row["reference_audio"]),
                prompt_text=(row.get("prompt_text") or "").strip(),
                speaker_id=(row.get("speaker_id") or "").strip(),
            )
        )
    return items


def _decode_audio_value(value) -> tuple[np.ndarray, int]:
    """Decodes a `datasets` audio cell: `{"bytes", "path"}` (undecoded), `{"array", "sampling_rate"}` or a decoder."""
    if isinstance(value, dict) and value.get("bytes"):
        array, rate = sf.read(io.BytesIO(value["bytes"]), dtype="float32", always_2d=True)
        return array.mean(axis=1), rate
    if isinstance(value, dict) and value.get("path") and "array" not in value:
        array, rate = sf.read(value["path"], dtype="float32", always_2d=True)
        return array.mean(axis=1), rate
    array = np.asarray(value["array"], dtype=np.float32)
    return (array.mean(axis=0) if array.ndim == 2 else array), int(value["sampling_rate"])


def build_test_list_from_dataset(
    dataset,
    output_dir: str | os.PathLike,
    audio_column: str = "audio",
    text_column: str = "text",
    speaker_column: str = "speaker_id",
    min_seconds: float = 4.0,
    max_seconds: float = 10.0,
    prompt_seconds: float = 3.0,
    max_items: int | None = None,
    seed: int = 0,
) -> tuple[list[EvaluationItem], list[dict]]:
    """
    The paper's cross-sentence protocol over any `datasets` source with audio, text and speaker columns.

    Targets are utterances of `min_seconds` to `max_seconds`; each one's prompt is the first `prompt_seconds` of another
    utterance (at least that long) of the same speaker, drawn with `seed`. Prompts and references are written as WAV
    files under `output_dir/inputs/`.

    Args:
        dataset (`datasets.Dataset` or an iterable of dicts): The source, e.g. LibriSpeech test-clean.
        output_dir (`str` or `os.PathLike`): Where the input WAVs are written.
        audio_column (`str`), text_column (`str`), speaker_column (`str`): Column names.
        min_seconds (`float`), max_seconds (`float`): Duration range of the target utterances (4-10 s in the paper).
        prompt_seconds (`float`): Prompt length (3 s in the paper).
        max_items (`int`, *optional*): Keep at most this many targets.
        seed (`int`): Seed of the prompt draw.

    Returns:
        `(items, skipped)`: the test items, and `{"id", "reason"}` for every target that could not get a prompt.
    """
    try:
        from datasets import Audio, Dataset

        if isinstance(dataset, Dataset) and audio_column in dataset.column_names:
            if isinstance(dataset.features[audio_column], Audio):
                dataset = dataset.cast_column(audio_column, Audio(decode=False))
    except ImportError:  # pragma: no cover - datasets is a dependency
        pass
    inputs_dir = os.path.join(os.fspath(output_dir), "inputs")
    os.makedirs(inputs_dir, exist_ok=True)
    utterances = []  # (id, text, speaker, seconds, array, rate)
    for index, row in enumerate(dataset):
        for column in (audio_column, text_column, speaker_column):
            if column not in row:
                raise ValueError(f"The dataset has no column {column!r}; it has {sorted(row)}.")
        array, rate = _decode_audio_value(row[audio_column])
        uid = _safe_name(str(row.get("id", f"{index:05d}")))
        utterances.append(
            (uid, str(row[text_column]).strip(), str(row[speaker_column]), len(array) / rate, array, rate)
        )
    by_speaker: dict[str, list[int]] = {}
    for i, u in enumerate(utterances):
        by_speaker.setdefault(u[2], []).append(i)
    rng = random.Random(seed)
    items, skipped = [], []
    for i, (uid, text, speaker, seconds, array, rate) in enumerate(utterances):
        if not min_seconds <= seconds <= max_seconds:
            continue
        if max_items is not None and len(items) >= max_items:
            break
        candidates = [j for j in by_speaker[speaker] if j != i and utterances[j][3] >= prompt_seconds]
        if not candidates:
            skipped.append(
                {"id": uid, "reason": f"no other utterance of speaker {speaker!r} lasts {prompt_seconds} s"}
            )
            continue
        j = rng.choice(candidates)
        prompt, prompt_rate = utterances[j][4], utterances[j][5]
        prompt_path = os.path.join(inputs_dir, f"{uid}_prompt.wav")
        reference_path = os.path.join(inputs_dir, f"{uid}_reference.wav")
        sf.write(prompt_path, prompt[: int(prompt_seconds * prompt_rate)], prompt_rate)
        sf.write(reference_path, array, rate)
        items.append(EvaluationItem(uid, text, prompt_path, reference_path, utterances[j][1], speaker))
    return items, skipped


def _mean(values: Sequence[float]) -> float:
    valid = [v for v in values if v is not None and not math.isnan(v)]
    return float(sum(valid) / len(valid)) if valid else math.nan


def _import_pyplot_free_figure():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "The evaluation figure needs `pip install matplotlib` (or the `eval` extra of flashspeech-hf: "
            "`pip install 'flashspeech-hf[eval]'`)."
        ) from err
    return Figure, FigureCanvasAgg


def voiced_pitch(paths: Sequence[str | None]) -> tuple[np.ndarray, list[str | None]]:
    """Voiced pitch frames of clips, pooled, as the pitch JSD sees them (16 kHz, WORLD DIO + StoneMask, 10 ms hop).

    Args:
        paths (`list[str | None]`): Audio files; `None` entries are skipped.

    Returns:
        `(f0, errors)`: the pitch in Hz of every voiced frame of every clip, concatenated, and per clip `None` or why
        it gave no frame (unreadable file, no speech, no voiced frame).
    """
    frames, errors = [], []
    for path in paths:
        if path is None:
            errors.append("no audio")
            continue
        try:
            waveform, rate = load_audio(path, target_sampling_rate=_PITCH_RATE)
            f0 = extract_pitch(waveform, rate, f0_min=_F0_MIN, f0_max=_F0_MAX)
        except (FileNotFoundError, ValueError, TypeError) as err:
            errors.append(str(err))
            continue
        voiced = f0[f0 > 0]
        frames.append(voiced)
        errors.append(None if voiced.size else "no voiced frame")
    return (np.concatenate(frames) if frames else np.zeros(0)), errors


def plot_pitch_distributions(
    generated_f0: np.ndarray,
    reference_f0: np.ndarray,
    path: str | os.PathLike,
    num_bins: int = _PITCH_BINS,
    f0_min: float = _F0_MIN,
    f0_max: float = _F0_MAX,
    title: str | None = None,
) -> str:
    """Draws the pitch distributions of generated and ground-truth speech, the histograms behind the pitch JSD.

    Both histograms use the pitch JSD's bins (`num_bins` log-spaced bins from `f0_min` to `f0_max`; out-of-range
    frames count in the end bins); the title gives their Jensen-Shannon divergence (natural logarithm). A side without
    voiced frames is left out and named in the legend. Drawn with matplotlib's Agg canvas, without `pyplot`, so it
    neither needs a display nor changes the caller's matplotlib backend.

    Args:
        generated_f0 (`np.ndarray` of shape `(num_frames,)`): Pitch in Hz of the generated speech; zeros are ignored.
        reference_f0 (`np.ndarray` of shape `(num_frames,)`): Pitch in Hz of the ground truth; zeros are ignored.
        path (`str` or `os.PathLike`): The PNG file to write.
        num_bins (`int`), f0_min (`float`), f0_max (`float`): The histogram bins (the pitch JSD's by default).
        title (`str`, *optional*): Replaces the default title.

    Returns:
        `str`: `path`.

    Examples:

    ```py
    >>> import numpy as np
    >>> from flashspeech_hf.evaluation import plot_pitch_distributions
    >>> rng = np.random.default_rng(0)
    >>> plot_pitch_distributions(rng.normal(180, 20, 500), rng.normal(200, 30, 500), "pitch.png")  # doctest: +SKIP
    'pitch.png'
    ```
    """
    Figure, FigureCanvasAgg = _import_pyplot_free_figure()
    edges = np.geomspace(f0_min, f0_max, num_bins + 1)
    figure = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    histograms, voiced_all = {}, []
    for label, f0, color in (("ground truth", reference_f0, "tab:blue"), ("generated", generated_f0, "tab:orange")):
        f0 = np.asarray(f0, dtype=np.float64).ravel()
        voiced = f0[f0 > 0]
        if voiced.size == 0:
            axes.plot([], [], color=color, label=f"{label}: no voiced frame")
            continue
        histogram = pitch_histogram(voiced, num_bins=num_bins, f0_min=f0_min, f0_max=f0_max)
        histograms[label] = histogram
        voiced_all.append(voiced)
        axes.stairs(
            histogram,
            edges,
            fill=True,
            alpha=0.35,
            color=color,
            label=f"{label}: {voiced.size} voiced frames, median {np.median(voiced):.0f} Hz",
        )
        axes.stairs(histogram, edges, color=color, linewidth=0.8)
    axes.set_xscale("log")
    # Zoom on the voiced range (speech rarely spans more than 60-500 Hz of the 50-1100 Hz bins).
    low, high = f0_min, f0_max
    if voiced_all:
        low, high = np.percentile(np.clip(np.concatenate(voiced_all), f0_min, f0_max), [0.5, 99.5])
        low, high = max(f0_min, low / 1.25), min(f0_max, high * 1.25)
    ticks = [
        tick for tick in (50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 600, 800, 1100) if low <= tick <= high
    ]
    axes.set_xticks(ticks, [str(tick) for tick in ticks])
    axes.set_xticks([], minor=True)
    axes.set_xlim(low, high)  # after the ticks, which would widen the view
    axes.set_ylim(bottom=0)
    axes.set_xlabel("pitch (Hz, log scale)")
    axes.set_ylabel("share of voiced frames per bin")
    if title is None:
        title = f"Pitch distributions ({num_bins} log-spaced bins, {f0_min:g}-{f0_max:g} Hz)"
        if len(histograms) == 2:
            jsd = jensen_shannon_divergence(histograms["generated"], histograms["ground truth"])
            title += f": pitch JSD {jsd:.3f}"
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="upper right")
    axes.grid(alpha=0.3, linewidth=0.5)
    figure.tight_layout()
    path = os.fspath(path)
    figure.savefig(path, format="png")
    return path


def evaluate_pipeline(
    pipe,
    items: Sequence[EvaluationItem],
    output_dir: str | os.PathLike,
    asr_backend: str | None = None,
    speaker_backend: str = DEFAULT_SPEAKER_BACKEND,
    num_inference_steps: int = 2,
    prosody_alpha: float = 0.2,
    prompt_seconds: float | None = 3.0,
    seed: int = 0,
    device: str | None = None,
    skipped: Sequence[dict] = (),
) -> dict:
    """
    Synthesizes every test item and scores it and its ground truth; writes `results.json`, `results.md` and the figure
    `pitch_distributions.png` (linked from `results.md`).

    Args:
        pipe ([`FlashSpeechPipeline`]): The model.
        items (`list[EvaluationItem]`): The test list.
        output_dir (`str` or `os.PathLike`): Receives `audio/` (outputs and codec-reconstructed prompts), the reports
            and the figure.
        asr_backend (`str`, *optional*): `"whisper-base"`, `"whisper-tiny.en"`, `"pocketsphinx"` or a transformers
            ASR model. Defaults to [`~metrics.default_asr_backend`]: Whisper base when `HF_HUB_OFFLINE` is set, the
            paper's HuBERT-large CTC otherwise.
        speaker_backend (`str`): `"resemblyzer"` or a transformers x-vector model.
        num_inference_steps (`int`), prosody_alpha (`float`): Sampling settings (2 and 0.2 in the paper).
        prompt_seconds (`float`, *optional*): Crop prompts to this length (3 s in the paper); `None` keeps them whole.
        seed (`int`): Each item is sampled with `torch.Generator().manual_seed(seed + index)`.
        device (`str`, *optional*): Device of the ASR and speaker models (DNSMOS runs on the CPU).
        skipped (`list[dict]`): Items dropped before evaluation (`{"id", "reason"}`), listed in the report.

    Returns:
        `dict`: the report written to `results.json` (`summary` with `generated` and `ground_truth` metrics, `items`,
        `settings`, `figures`: the figure's file name relative to `output_dir`).

    Examples:

    ```py
    >>> from flashspeech_hf import FlashSpeechPipeline
    >>> from flashspeech_hf.evaluation import evaluate_pipeline, load_test_list
    >>> pipe = FlashSpeechPipeline.from_pretrained("path/to/pipeline")  # doctest: +SKIP
    >>> report = evaluate_pipeline(
    ...     pipe, load_test_list("list.csv"), "eval_out", asr_backend="pocketsphinx", speaker_backend="resemblyzer"
    ... )  # doctest: +SKIP
    >>> report["summary"]["generated"]["wer"]  # doctest: +SKIP
    ```
    """
    output_dir = os.fspath(output_dir)
    if asr_backend is None:
        asr_backend = default_asr_backend()
    # The scorers that need optional packages load first: a missing extra fails before any synthesis.
    dnsmos_predictor = load_dnsmos_predictor()
    _import_pyplot_free_figure()
    audio_dir = os.path.join(output_dir, "audio")
    os.makedirs(audio_dir, exist_ok=True)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)

    results, prompts, reconstructed, timer = _synthesize_items(
        pipe, items, audio_dir, num_inference_steps, prosody_alpha, prompt_seconds, seed
    )
    done = [i for i, r in enumerate(results) if r.output_audio is not None]
    references = [item.reference_audio for item in items]
    _score_wer(results, items, done, asr_backend, device)
    _score_speaker_similarity(results, done, prompts, reconstructed, references, speaker_backend, device)
    pitch_jsd = _score_pitch(results, done, references, output_dir)
    generated_dnsmos = _score_dnsmos(dnsmos_predictor, results, done, [results[i].output_audio for i in done], "")
    truth_dnsmos = _score_dnsmos(dnsmos_predictor, results, range(len(items)), references, "ground_truth_")

    report = {
        "settings": {
            "num_inference_steps": num_inference_steps,
            "prosody_alpha": prosody_alpha,
            "prompt_seconds": prompt_seconds,
            "seed": seed,
            "asr_backend": asr_backend,
            "speaker_backend": speaker_backend,
            "quality_model": "DNSMOS P.835 + P.808 (speechmos)",
            "sampling_rate": pipe.sampling_rate,
        },
        "summary": _summarize(results, done, len(skipped), pitch_jsd, generated_dnsmos, truth_dnsmos, timer),
        "figures": {"pitch_distributions": PITCH_FIGURE},
        "items": [asdict(r) for r in results],
        "skipped": list(skipped),
    }
    write_text_atomically(os.path.join(output_dir, "results.json"), json.dumps(report, indent=2, default=float))
    write_text_atomically(os.path.join(output_dir, "results.md"), format_markdown(report))
    return report


def _synthesize_items(
    pipe,
    items: Sequence[EvaluationItem],
    audio_dir: str,
    num_inference_steps: int,
    prosody_alpha: float,
    prompt_seconds: float | None,
    seed: int,
) -> tuple[list[ItemResult], list[str | None], list[str | None], RealTimeFactorTimer]:
    """
    Step 1 of [`evaluate_pipeline`]: each item's (cropped) prompt, output and codec-reconstructed prompt, written to
    `audio_dir`; a failed item keeps its error and no output.

    Returns:
        `(results, prompt_paths, reconstructed_prompt_paths, timer)`, the paths `None` where the item failed first.
    """
    rate = pipe.sampling_rate
    results = [ItemResult(id=item.id, text=item.text) for item in items]
    prompts: list[str | None] = [None] * len(items)
    reconstructed: list[str | None] = [None] * len(items)
    timer = RealTimeFactorTimer()
    for index, (item, result) in enumerate(zip(items, results)):
        if not item.text:
            result.errors.append("text is empty")
            continue
        try:
            prompt, prompt_rate = load_audio(item.prompt_audio, target_sampling_rate=rate, name="prompt_audio")
            if prompt_seconds is not None:
                prompt = prompt[: int(prompt_seconds * prompt_rate)]
            check_speech(prompt, prompt_rate, min_seconds=1.0, name="prompt_audio")
        except (FileNotFoundError, ValueError, TypeError) as err:
            result.errors.append(f"prompt: {err}")
            continue
        prompt_path = os.path.join(audio_dir, f"{item.id}_prompt.wav")
        sf.write(prompt_path, prompt.numpy(), rate)
        prompts[index] = prompt_path
        try:
            generator = torch.Generator().manual_seed(seed + index)
            item_timer = RealTimeFactorTimer()
            with item_timer("total"), timer("total"):
                out = pipe(
                    item.text,
                    prompt,
                    prompt_sampling_rate=rate,
                    num_inference_steps=num_inference_steps,
                    prosody_alpha=prosody_alpha,
                    generator=generator,
                )
            audio = out.audios[0, : out.audio_lengths[0]]
            with torch.no_grad():
                device_ = pipe._execution_device
                latents = pipe.codec.encode(prompt[None].to(device_), rate)
                recon = pipe.codec.decode(latents)[0].float().cpu().numpy()
        except Exception as err:  # a failed item is reported, not raised
            result.errors.append(f"synthesis: {type(err).__name__}: {err}")
            continue
        result.audio_seconds = len(audio) / rate
        result.synthesis_seconds = item_timer.processing_seconds
        timer.add_audio(result.audio_seconds)
        result.output_audio = os.path.join(audio_dir, f"{item.id}.wav")
        sf.write(result.output_audio, audio, rate)
        reconstructed[index] = os.path.join(audio_dir, f"{item.id}_prompt_codec.wav")
        sf.write(reconstructed[index], recon, rate)
    return results, prompts, reconstructed, timer


def _record(results: list[ItemResult], indices, values, errors, attribute: str, label: str) -> None:
    """Stores per-item scores (NaN where missing) on `results[i].<attribute>` and their errors, labelled."""
    for k, i in enumerate(indices):
        setattr(results[i], attribute, values[k] if values[k] is not None else math.nan)
        if errors[k]:
            results[i].errors.append(f"{label}: {errors[k]}")


def _score_wer(
    results: list[ItemResult], items: Sequence[EvaluationItem], done: list[int], asr_backend: str, device: str | None
) -> None:
    """Step 2: the transcripts and word error rates of the outputs (`done`) and of every ground truth with a text."""
    wer_metric = load_metric("wer")
    if done:
        texts, asr_errors = transcribe(
            [results[i].output_audio for i in done], backend=asr_backend, device=device, return_errors=True
        )
        for k, i in enumerate(done):
            results[i].transcript = texts[k]
            if asr_errors[k]:
                results[i].errors.append(f"asr: {asr_errors[k]}")
        scores = wer_metric.compute(predictions=texts, references=[items[i].text for i in done])
        _record(results, done, scores["wer_per_item"], [None] * len(done), "wer", "wer")
    all_idx = [i for i in range(len(items)) if items[i].text]
    if all_idx:
        texts, asr_errors = transcribe(
            [items[i].reference_audio for i in all_idx], backend=asr_backend, device=device, return_errors=True
        )
        for k, i in enumerate(all_idx):
            results[i].ground_truth_transcript = texts[k]
            if asr_errors[k]:
                results[i].errors.append(f"ground truth asr: {asr_errors[k]}")
        scores = wer_metric.compute(predictions=texts, references=[items[i].text for i in all_idx])
        _record(
            results, all_idx, scores["wer_per_item"], [None] * len(all_idx), "ground_truth_wer", "ground truth wer"
        )


def _score_speaker_similarity(
    results: list[ItemResult],
    done: list[int],
    prompts: list[str | None],
    reconstructed: list[str | None],
    references: list[str],
    speaker_backend: str,
    device: str | None,
) -> None:
    """Step 3: Sim-O (original prompt), Sim-R (codec-reconstructed prompt) and the ground truth's Sim-O."""
    similarity = load_metric("speaker_similarity")
    sim_kwargs = {"backend": speaker_backend, "device": device}
    if done:
        scores = similarity.compute(
            predictions=[results[i].output_audio for i in done], references=[prompts[i] for i in done], **sim_kwargs
        )
        _record(results, done, scores["speaker_similarity_per_item"], scores["errors"], "sim_o", "sim-o")
        scores = similarity.compute(
            predictions=[results[i].output_audio for i in done],
            references=[reconstructed[i] for i in done],
            **sim_kwargs,
        )
        _record(results, done, scores["speaker_similarity_per_item"], scores["errors"], "sim_r", "sim-r")
    with_prompt = [i for i in range(len(results)) if prompts[i] is not None]
    if with_prompt:
        scores = similarity.compute(
            predictions=[references[i] for i in with_prompt],
            references=[prompts[i] for i in with_prompt],
            **sim_kwargs,
        )
        _record(
            results, with_prompt, scores["speaker_similarity_per_item"], scores["errors"], "ground_truth_sim_o",
            "gt sim-o",
        )  # fmt: skip


def _score_pitch(results: list[ItemResult], done: list[int], references: list[str], output_dir: str) -> float:
    """Step 4: the pitch JSD of the outputs against the ground truth, and the figure behind it. Returns the JSD."""
    pitch_jsd = math.nan
    if done:
        scores = load_metric("prosody_jsd").compute(
            predictions=[results[i].output_audio for i in done], references=[references[i] for i in done]
        )
        _record(results, done, scores["pitch_jsd_per_item"], scores["errors"], "pitch_jsd", "pitch jsd")
        pitch_jsd = scores["pitch_jsd"]
    # the figure behind the pitch JSD: the pooled pitch histograms of the items it scored (of every clip with voiced
    # frames on its side when it scored none)
    jsd_scored = [i for i in done if not math.isnan(results[i].pitch_jsd)]
    generated_f0, _ = voiced_pitch([results[i].output_audio for i in (jsd_scored or done)])
    reference_f0, _ = voiced_pitch([references[i] for i in (jsd_scored or range(len(references)))])
    plot_pitch_distributions(
        generated_f0,
        reference_f0,
        os.path.join(output_dir, PITCH_FIGURE),
        title=None
        if jsd_scored
        else "Pitch distributions of every clip with voiced frames (pitch JSD: no item scored)",
    )
    return pitch_jsd


def _score_dnsmos(dnsmos_predictor, results: list[ItemResult], indices, paths: list[str], prefix: str) -> list:
    """Step 5: DNSMOS of `paths` (the items `indices`), stored as `<prefix>dnsmos_<key>`; returns the scores."""
    if not paths:
        return []
    label = "ground truth dnsmos" if prefix else "dnsmos"
    scores, errors = dnsmos_predictor(paths, return_errors=True)
    for k, i in enumerate(indices):
        if scores[k] is None:
            results[i].errors.append(f"{label}: {errors[k]}")
            continue
        for key in DNSMOS_KEYS:
            setattr(results[i], f"{prefix}dnsmos_{key}", scores[k][key])
    return scores


def _summarize(
    results: list[ItemResult],
    done: list[int],
    num_skipped: int,
    pitch_jsd: float,
    generated_dnsmos: list,
    truth_dnsmos: list,
    timer: RealTimeFactorTimer,
) -> dict:
    """Step 6: the means of the generated and ground-truth metrics, the real-time factor and the counts."""
    rtf = timer.compute()["rtf"] if timer.audio_seconds > 0 else math.nan
    return {
        "generated": {
            "wer": _mean([results[i].wer for i in done]),
            "sim_o": _mean([r.sim_o for r in results]),
            "sim_r": _mean([r.sim_r for r in results]),
            "pitch_jsd": pitch_jsd,
            **{f"dnsmos_{key}": value for key, value in mean_dnsmos(generated_dnsmos).items()},
            "rtf": rtf,
            "num_scored": len(done),
        },
        "ground_truth": {
            "wer": _mean([r.ground_truth_wer for r in results]),
            "sim_o": _mean([r.ground_truth_sim_o for r in results]),
            "sim_r": math.nan,
            "pitch_jsd": math.nan,  # the reference of the divergence itself
            **{f"dnsmos_{key}": value for key, value in mean_dnsmos(truth_dnsmos).items()},
            "rtf": math.nan,
            "num_scored": sum(not math.isnan(r.ground_truth_wer) for r in results),
        },
        "num_items": len(results),
        "num_failed": len(results) - len(done),
        "num_skipped": num_skipped,
    }


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def format_markdown(report: dict) -> str:
    """Renders an [`evaluate_pipeline`] report as a markdown summary table plus per-utterance errors."""
    s, summary = report["settings"], report["summary"]
    lines = [
        "# FlashSpeech evaluation",
        "",
        f"{summary['num_items']} utterances, {summary['num_failed']} failed, {summary['num_skipped']} skipped; "
        f"{s['num_inference_steps']} steps, prosody alpha {s['prosody_alpha']}, prompts {s['prompt_seconds']} s; "
        f"ASR `{s['asr_backend']}`, speaker model `{s['speaker_backend']}`.",
        "",
        "| system | WER (%) | Sim-O | Sim-R | pitch JSD | DNSMOS OVRL | SIG | BAK | P.808 | RTF | scored |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, key in (("FlashSpeech", "generated"), ("Ground truth", "ground_truth")):
        m = summary[key]
        wer = m["wer"] * 100 if not math.isnan(m["wer"]) else math.nan
        dnsmos = " | ".join(_fmt(m.get(f"dnsmos_{k}", math.nan), 2) for k in ("ovrl", "sig", "bak", "p808"))
        lines.append(
            f"| {name} | {_fmt(wer, 1)} | {_fmt(m['sim_o'])} | {_fmt(m['sim_r'])} | {_fmt(m['pitch_jsd'])} "
            f"| {dnsmos} | {_fmt(m['rtf'], 4)} | {m['num_scored']} |"
        )
    lines += [
        "",
        "DNSMOS: predicted mean opinion score (1-5) of Microsoft's DNSMOS, P.835 overall (OVRL), speech signal (SIG) "
        "and background (BAK), and P.808.",
    ]
    figure = report.get("figures", {}).get("pitch_distributions")
    if figure:
        lines += [
            "",
            "## Pitch distributions",
            "",
            "Voiced pitch of the generated speech and of the ground truth over the pitch JSD's bins:",
            "",
            f"![Pitch distributions of ground truth and generated speech]({figure})",
        ]
    problems = [(item["id"], e) for item in report["items"] for e in item["errors"]]
    problems += [(item["id"], item["reason"]) for item in report.get("skipped", [])]
    if problems:
        lines += ["", "## Per-utterance errors", ""]
        lines += [f"- `{uid}`: {message}" for uid, message in problems]
    return "\n".join(lines) + "\n"
