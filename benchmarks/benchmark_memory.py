"""Peak memory of loading a saved FlashSpeech pipeline and synthesizing once, per precision option.

The named config (`paper` by default) is built with random weights and saved once in float32 (safetensors). Then, for
each option, a fresh Python process loads it with `FlashSpeechPipeline.from_pretrained(path, dtype=...)` (or
`quantization="int8"`), synthesizes one utterance of about `--seconds` seconds from a 3 s prompt at 2 steps, and
reports its peak resident set size (`VmHWM`) at three points: after the imports, after loading, after synthesis.
A fresh process per option is the only honest peak: the allocator keeps freed pages.

Usage:

```bash
python benchmarks/benchmark_memory.py --output benchmarks/results/memory_cpu.md
python benchmarks/benchmark_memory.py --config tiny --options float32 bfloat16   # seconds
```
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from benchmark_inference import (
    FRAMES_PER_PHONEME,
    build_pipeline,
    frame_rate,
    make_prompt,
    peak_memory_mb,
    text_for_phonemes,
    write_report,
)

CPU = torch.device("cpu")  # peak_memory_mb reads VmHWM there: it starts afresh at `exec` (`ru_maxrss` does not)
OPTIONS = ("float32", "bfloat16", "bfloat16-checkpoint", "float16", "int8")
"""`bfloat16-checkpoint` loads a copy saved in bfloat16 (`pipe.to(torch.bfloat16).save_pretrained`), without a `dtype`
argument (the saved pipeline records its dtype): the file read is half the size, where `bfloat16` casts a float32
checkpoint while loading it."""


def child(path: str, option: str, seconds: float, threads: int) -> dict:
    """Runs in a fresh process: import, load with `option`, synthesize once; returns the peaks."""
    from flashspeech_hf import FlashSpeechPipeline

    torch.set_num_threads(threads)
    after_import = peak_memory_mb(CPU)
    kwargs = {"quantization": "int8"} if option == "int8" else {"dtype": getattr(torch, option.split("-")[0])}
    if option == "bfloat16-checkpoint":
        kwargs = {}  # the checkpoint records its dtype (`_torch_dtype` in model_index.json): it loads in bfloat16
    start = time.perf_counter()
    pipe = FlashSpeechPipeline.from_pretrained(path, **kwargs)
    load_s = time.perf_counter() - start
    after_load = peak_memory_mb(CPU)
    if option != "int8":
        assert pipe.denoiser.dtype == getattr(torch, option.split("-")[0]), pipe.denoiser.dtype
    sr = pipe.codec.sampling_rate
    prompt = make_prompt(3.0, sr)
    # the saved pipeline's durations are forced (FRAMES_PER_PHONEME per phoneme): the text sets the output length
    text = text_for_phonemes(pipe.tokenizer, max(1, round(seconds * frame_rate(pipe) / FRAMES_PER_PHONEME)))[0]
    with torch.inference_mode():
        start = time.perf_counter()
        audio = pipe(text, prompt, prompt_sampling_rate=sr, num_inference_steps=2, generator=torch.manual_seed(0))
        synth_s = time.perf_counter() - start
    return {
        "option": option,
        "after_import_mb": after_import,
        "after_load_mb": after_load,
        "after_synthesis_mb": peak_memory_mb(CPU),
        "load_s": load_s,
        "synthesis_s": synth_s,
        "audio_s": audio.audios.shape[-1] / sr,
    }


def format_report(config: str, rows: list[dict], checkpoint_mb: float, threads: int) -> str:
    base = next((r for r in rows if r["option"] == "float32"), None)
    lines = [
        f"Config `{config}` (random weights, durations forced to {FRAMES_PER_PHONEME} frames per phoneme) saved in "
        f"float32 ({checkpoint_mb:.0f} MB of safetensors; `bfloat16-checkpoint`: a copy saved in bfloat16); one fresh process per option, {threads} thread(s); peak RSS "
        "(`VmHWM`) after imports, after `from_pretrained`, after one 2-step "
        "synthesis.",
        "",
        "| option | peak MB after imports | peak MB after load | peak MB after synthesis | above imports | "
        "vs float32 (total / above imports) | load s | synthesis s | audio s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        above = r["after_synthesis_mb"] - r["after_import_mb"]
        ratio = "-"
        if base:
            base_above = base["after_synthesis_mb"] - base["after_import_mb"]
            ratio = f"{r['after_synthesis_mb'] / base['after_synthesis_mb']:.2f}x / "
            ratio += f"{above / base_above:.2f}x" if base_above >= 1 else "-"  # a tiny config adds nothing measurable
        lines.append(
            f"| {r['option']} | {r['after_import_mb']:.0f} | {r['after_load_mb']:.0f} | {r['after_synthesis_mb']:.0f} "
            f"| {above:.0f} | {ratio} | {r['load_s']:.2f} | {r['synthesis_s']:.2f} | {r['audio_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="paper", help="named pipeline config (tiny, demo, paper)")
    parser.add_argument(
        "--options", nargs="+", choices=OPTIONS, default=["float32", "bfloat16", "bfloat16-checkpoint", "int8"]
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="approximate output length")
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--output", default=None, help="markdown file to write (a .json is written beside it)")
    parser.add_argument("--_child", nargs=2, metavar=("PATH", "OPTION"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    if args._child:
        print(json.dumps(child(args._child[0], args._child[1], args.seconds, args.num_threads)))
        return []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pipe = build_pipeline(args.config, CPU)  # random weights, durations forced
        pipe.save_pretrained(os.path.join(tmp, "float32"))
        if "bfloat16-checkpoint" in args.options:
            pipe.to(torch.bfloat16).save_pretrained(os.path.join(tmp, "bfloat16"))
        del pipe
        folder = os.path.join(tmp, "float32")
        checkpoint_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)
        checkpoint_mb /= 2**20
        for option in args.options:
            cmd = [sys.executable, os.path.abspath(__file__), "--seconds", str(args.seconds)]
            path = os.path.join(tmp, "bfloat16" if option == "bfloat16-checkpoint" else "float32")
            cmd += ["--num_threads", str(args.num_threads), "--_child", path, option]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode:
                raise SystemExit(f"option {option} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    report = format_report(args.config, rows, checkpoint_mb, args.num_threads)
    print(report)
    if args.output:
        write_report(args.output, report, {"config": args.config, "checkpoint_mb": checkpoint_mb, "rows": rows})
    return rows


if __name__ == "__main__":
    main()
