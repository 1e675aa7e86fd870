"""What each speed lever buys: interleaved A/B timings of the FlashSpeech pipeline's call, one lever at a time.

On a shared, busy CPU absolute timings swing several times over within minutes; the ratio of two variants timed in
alternation (A B B A, ...) in the same process over the same inputs stays meaningful. Each round times every variant
once, in a rotated order; a lever's gain is the median over rounds of `time(before) / time(after)` of that round.

Variants, on a random pipeline of a named size with forced durations (`benchmark_inference.build_pipeline`), one
text of about `--seconds` of speech, a 3 s prompt, `--nfe` steps, `torch.inference_mode`:

- `float32, prompt audio` -> `bfloat16, prompt audio` (lever: bfloat16 networks, the fragile parts float32)
- `bfloat16, prompt audio` -> `bfloat16, saved voice` (lever: `voice=pipe.encode_voice(prompt)`, encoded before)
- `bfloat16, saved voice` -> `... 1 thread` (or 2 threads with `--threads 1`; on a busy 2-core CPU 1 may win)
- `bfloat16, saved voice` -> `... oneDNN off` (`torch.backends.mkldnn.enabled = False`: what oneDNN brings)
- `bfloat16, saved voice` -> `... compiled (frozen weights)` (`--levers compile`: `compile_networks`)

Usage:

```bash
python benchmarks/benchmark_levers.py --config paper --seconds 5 --nfe 2 --threads 2 --rounds 7 --levers threads compile \\
    --output benchmarks/results/levers_paper.md
python benchmarks/benchmark_levers.py --smoke      # tiny config, seconds (the test)
```
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import torch
from benchmark_inference import (
    FRAMES_PER_PHONEME,
    PROMPT_SECONDS,
    PROMPT_SR,
    build_pipeline,
    frame_rate,
    machine_description,
    make_prompt,
    text_for_phonemes,
    write_report,
)

CPU = torch.device("cpu")


@contextlib.contextmanager
def _threads(n: int | None):
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _mkldnn(enabled: bool):
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def compile_networks(pipe) -> None:
    """
    `torch.compile` (inductor, `freezing=True`: weights folded in as constants and pre-packed for oneDNN, so no weight
    is reordered at each call) of the denoiser and of the prosody generator's predictors and refiners, in place.
    Static shapes: each new output length compiles again. Inference only (the weights are frozen at the first call).
    """
    options = {"freezing": True}
    prosody = pipe.prosody_generator
    for module in (pipe.denoiser, prosody.duration_predictor, prosody.pitch_predictor, prosody.duration_refiner,
                   prosody.pitch_refiner):  # fmt: skip
        module.compile(dynamic=False, options=options)


def build_variants(args) -> tuple[dict[str, Callable[[], object]], list[tuple[str, str, str]], dict]:
    """The timed calls by name, the levers `(lever, before, after)`, and a dict the calls put their audio seconds in."""
    prompt = make_prompt(PROMPT_SECONDS, PROMPT_SR)
    fp32 = build_pipeline(args.config, CPU)
    bf16 = build_pipeline(args.config, CPU, dtype="bfloat16")
    phonemes = max(1, round(args.seconds * frame_rate(fp32) / FRAMES_PER_PHONEME))
    text = text_for_phonemes(fp32.tokenizer, phonemes)[0]
    voice = bf16.encode_voice(prompt, PROMPT_SR)
    audio_seconds = {}

    def call(pipe, threads=None, mkldnn=True, **prompt_kwargs):
        def run():
            with _threads(threads), _mkldnn(mkldnn):
                out = pipe(text, num_inference_steps=args.nfe, generator=0, **prompt_kwargs)
            audio_seconds[0] = out.audio_lengths[0] / pipe.sampling_rate

        return run

    audio = {"prompt_audio": prompt, "prompt_sampling_rate": PROMPT_SR}
    other_threads = 1 if args.threads > 1 else 2
    threads_variant = f"bfloat16, saved voice, {other_threads} thread{'s' if other_threads > 1 else ''}"
    variants = {
        "float32, prompt audio": call(fp32, **audio),
        "bfloat16, prompt audio": call(bf16, **audio),
        "bfloat16, saved voice": call(bf16, voice=voice),
    }
    levers = [
        ("bfloat16 networks (iSTFT, pitch bins, latent stats float32)", "float32, prompt audio",
         "bfloat16, prompt audio"),
        ("saved voice (`voice=`)", "bfloat16, prompt audio", "bfloat16, saved voice"),
    ]  # fmt: skip
    if "threads" in args.levers:
        variants[threads_variant] = call(bf16, threads=other_threads, voice=voice)
        levers.append(
            (f"{other_threads} thread(s) instead of {args.threads}", "bfloat16, saved voice", threads_variant)
        )
    if "onednn" in args.levers:
        variants["bfloat16, saved voice, oneDNN off"] = call(bf16, mkldnn=False, voice=voice)
        levers.append(("oneDNN (mkldnn) off", "bfloat16, saved voice", "bfloat16, saved voice, oneDNN off"))
    if "compile" in args.levers:
        compiled = build_pipeline(args.config, CPU, dtype="bfloat16")
        compile_networks(compiled)
        compiled_voice = compiled.encode_voice(prompt, PROMPT_SR)
        name = "bfloat16, saved voice, compiled (frozen weights)"
        variants[name] = call(compiled, voice=compiled_voice)
        levers.append(("torch.compile, inductor freezing: denoiser + prosody networks", "bfloat16, saved voice", name))
    return variants, levers, audio_seconds


def run_rounds(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """`rounds` rounds; each times every variant once, the order rotated by one per round."""
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in names), flush=True)
    return times


def format_report(times, levers, audio_seconds: float, args, machine: str, load: str) -> str:
    lines = [
        f"Machine: {machine}. Load average at the start / end: {load}.",
        f"Config `{args.config}` (random weights, durations forced), {audio_seconds:.2f} s of audio, {args.nfe} steps, "
        f"3 s prompt, {args.rounds} interleaved rounds after a warm-up (every variant once per round, order rotated).",
        "",
        "| variant | median s | min s | max s | RTF (median) |",
        "|---|---|---|---|---|",
    ]
    for name, t in times.items():
        med = statistics.median(t)
        lines.append(f"| {name} | {med:.3f} | {min(t):.3f} | {max(t):.3f} | {med / audio_seconds:.4f} |")
    lines += ["", "| lever | before | after | speed-up (median of paired ratios) | min-max of the ratios |",
              "|---|---|---|---|---|"]  # fmt: skip
    for lever, before, after in levers:
        ratios = [b / a for b, a in zip(times[before], times[after])]
        lines.append(
            f"| {lever} | {before} | {after} | {statistics.median(ratios):.2f}x | "
            f"{min(ratios):.2f}-{max(ratios):.2f}x |"
        )
    return "\n".join(lines) + "\n"


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="paper")
    parser.add_argument("--seconds", type=float, default=5.0, help="approximate output length")
    parser.add_argument("--nfe", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--levers", nargs="*", choices=["threads", "onednn", "compile"], default=["threads", "onednn"],
                        help="optional variants besides bfloat16 and the saved voice (each against `bfloat16, saved "
                        "voice`): another thread count, oneDNN off, torch.compile with frozen weights")  # fmt: skip
    parser.add_argument("--output", default=None, help="markdown file to write (a .json is written beside it)")
    parser.add_argument("--smoke", action="store_true", help="tiny config, 2 s, 2 rounds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.config, args.seconds, args.rounds = "tiny", 2.0, 2
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = _load()
    with torch.inference_mode(False):  # built outside inference mode, as a user loads it (see benchmark_inference)
        variants, levers, audio_seconds = build_variants(args)
    with torch.inference_mode():
        for run in variants.values():  # warm-up (and compilation)
            run()
        times = run_rounds(variants, args.rounds)
    audio_seconds = audio_seconds[0]
    report = format_report(times, levers, audio_seconds, args, machine_description(CPU), f"{load_start} / {_load()}")
    print(report)
    result = {"config": args.config, "audio_seconds": audio_seconds, "times": times, "levers": levers}
    if args.output:
        write_report(args.output, report, result)
    return result


if __name__ == "__main__":
    main()
