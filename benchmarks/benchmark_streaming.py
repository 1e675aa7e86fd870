"""Time to first audio of streaming synthesis against the time for the whole text.

On a 10-sentence text, spoken in the voice of a prompt, the script times (median of repeats after a warm-up, one
process):

- `pipe.stream(text, prompt, batch_size=1)`: time from the call to the first chunk (time to first audio) and to the
  last chunk;
- `pipe.long_form(text, prompt, batch_size=B)` for each `--batch_sizes`: time for the whole waveform;

with the audio length and real-time factors. The prompt is spoken by flite's `rms` voice (a voice the demo checkpoint
never heard; espeak-ng without flite).

Usage:

```bash
python benchmarks/benchmark_streaming.py --threads 1 --output benchmarks/results/streaming_cpu.md  # demo checkpoint
python benchmarks/benchmark_streaming.py --smoke    # seconds: a random tiny pipeline, 3 sentences
```
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from benchmark_inference import write_report

from flashspeech_hf import FlashSpeechPipeline

DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "flashspeech-demo"
SENTENCES = (
    "The old lighthouse stood at the edge of the cliff for more than a century.",
    "Every evening the keeper climbed the narrow stairs to light the great lamp.",
    "Ships passing in the night would see its beam sweep across the dark water.",
    "One winter a storm broke the windows and put out the flame.",
    "The keeper worked until dawn to repair the glass and start the light again.",
    "By morning the sea was calm, and the fishing boats returned safely to the harbor.",
    "The villagers brought him bread and warm soup to thank him for his work.",
    "Years later his daughter took his place and kept the light burning.",
    "Today the lighthouse is a small museum that welcomes visitors in summer.",
    "Its lamp still shines on special nights to remember the people of the sea.",
)
PROMPT_TEXT = "Please give the red box to my sister at the market."


def speak_prompt(folder: str) -> str:
    """A prompt spoken by flite's `rms` voice, or by espeak-ng without flite."""
    path = os.path.join(folder, "prompt.wav")
    if shutil.which("flite"):
        subprocess.run(["flite", "-voice", "rms", "-t", PROMPT_TEXT, "-o", path], check=True, capture_output=True)
    elif shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", path, PROMPT_TEXT], check=True, capture_output=True)
    else:
        raise SystemExit("error: flite or espeak-ng is needed to speak the prompt")
    return path


def build_pipeline(args: argparse.Namespace) -> FlashSpeechPipeline:
    if args.smoke:
        torch.manual_seed(0)
        pipe = FlashSpeechPipeline.from_named_config("tiny")
        torch.nn.init.constant_(pipe.prosody_generator.duration_predictor.out.bias, 1.5)
    else:
        pipe = FlashSpeechPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def time_stream(pipe, text, prompt, steps, batch_size) -> tuple[float, float, float]:
    """`(seconds to the first chunk, seconds to the last, audio seconds)` of one `pipe.stream` run."""
    start = time.perf_counter()
    first, samples = None, 0
    for chunk in pipe.stream(text, prompt, num_inference_steps=steps, generator=0, batch_size=batch_size):
        if first is None:
            first = time.perf_counter() - start
        samples += len(chunk.audio)
    return first, time.perf_counter() - start, samples / pipe.sampling_rate


def time_long_form(pipe, text, prompt, steps, batch_size) -> tuple[float, float]:
    """`(seconds, audio seconds)` of one `pipe.long_form` run."""
    start = time.perf_counter()
    out = pipe.long_form(text, prompt, num_inference_steps=steps, generator=0, batch_size=batch_size)
    return time.perf_counter() - start, out.audios.shape[-1] / pipe.sampling_rate


def measure(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    pipe = build_pipeline(args)
    sentences = SENTENCES[: 3 if args.smoke else 10]
    text = " ".join(sentences)
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        prompt = speak_prompt(folder)
        time_stream(pipe, text, prompt, args.num_inference_steps, 1)  # warm-up
        runs = [time_stream(pipe, text, prompt, args.num_inference_steps, 1) for _ in range(args.repeats)]
        rows = [
            {
                "method": "stream, batch_size=1",
                "first_audio_s": statistics.median(r[0] for r in runs),
                "total_s": statistics.median(r[1] for r in runs),
                "audio_s": runs[0][2],
            }
        ]
        for batch_size in args.batch_sizes:
            times = [
                time_long_form(pipe, text, prompt, args.num_inference_steps, batch_size) for _ in range(args.repeats)
            ]
            rows.append(
                {
                    "method": f"long_form, batch_size={batch_size}",
                    "first_audio_s": statistics.median(t[0] for t in times),  # all audio arrives at the end
                    "total_s": statistics.median(t[0] for t in times),
                    "audio_s": times[0][1],
                }
            )
    for row in rows:
        row["rtf"] = row["total_s"] / row["audio_s"]
    return {
        "model": "tiny (random)" if args.smoke else os.path.relpath(args.model, Path(__file__).parents[1]),
        "num_sentences": len(sentences),
        "num_characters": len(text),
        "steps": args.num_inference_steps,
        "threads": args.threads,
        "repeats": args.repeats,
        "machine": f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), torch "
        f"{torch.__version__}",
        "rows": rows,
    }


def format_report(result: dict) -> str:
    lines = [
        f"Model: {result['model']}; {result['num_sentences']} sentences ({result['num_characters']} characters); "
        f"{result['steps']} steps; {result['threads']} thread(s); median of {result['repeats']} after a warm-up.",
        f"Machine: {result['machine']}.",
        "",
        "| method | time to first audio (s) | whole text (s) | audio (s) | RTF |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['method']} | {row['first_audio_s']:.2f} | {row['total_s']:.2f} | {row['audio_s']:.1f} | "
            f"{row['rtf']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(DEMO_CHECKPOINT), help="Saved pipeline (default: the demo checkpoint).")
    parser.add_argument("--smoke", action="store_true", help="A random tiny pipeline and 3 sentences (seconds).")
    parser.add_argument("--num_inference_steps", type=int, default=2, help="Consistency steps.")
    parser.add_argument("--batch_sizes", nargs="+", type=int, default=[1, 10], help="long_form batch sizes.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None, help="Markdown table to write (and a .json beside it).")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    result = measure(args)
    report = format_report(result)
    print(report)
    if args.output:
        write_report(args.output, report, result)
    return result


if __name__ == "__main__":
    main()
