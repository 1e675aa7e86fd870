"""Word-boundary error of a pipeline's aligner against flite's own phone timings.

flite (Debian main) prints the end time of every phone it speaks (`-psdur`); the internal word boundaries of a
sentence are the ends of its words' last phones. The pipeline's aligner (`pipe.align`) places the tokenizer's
word-boundary tokens; the figure is the mean absolute difference over the internal boundaries, in milliseconds, next to
what uniform durations (every token the same share of the frames) would give. Sentences whose phones or words flite
and espeak-ng count differently are skipped and counted.

    python benchmarks/benchmark_alignment.py --model checkpoints/flashspeech-demo --num_sentences 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "training"))
from make_demo_corpus import load_harvard  # noqa: E402
from speech_data import aligned_word_boundaries, flite_word_boundaries  # noqa: E402

from flashspeech_hf import FlashSpeechPipeline  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "flashspeech-demo"))
    parser.add_argument("--voices", nargs="+", default=["slt", "awb", "kal16", "rms"])
    parser.add_argument("--num_sentences", type=int, default=20, help="Harvard sentences per voice.")
    args = parser.parse_args(argv)
    pipe = FlashSpeechPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    errors, uniform, skipped = {}, {}, 0
    with tempfile.TemporaryDirectory() as tmp:
        for voice in args.voices:
            errors[voice], uniform[voice] = [], []
            for text in load_harvard()[: args.num_sentences]:
                path = Path(tmp) / "clip.wav"
                try:
                    reference = flite_word_boundaries(text, voice, path)
                except ValueError:
                    skipped += 1
                    continue
                predicted, flat = aligned_word_boundaries(pipe, path, text)
                if len(predicted) != len(reference):
                    skipped += 1
                    continue
                errors[voice] += list(np.abs(np.subtract(predicted, reference)) * 1000)
                uniform[voice] += list(np.abs(np.subtract(flat, reference)) * 1000)
    print("| flite voice | boundaries | aligner error (ms) | uniform durations (ms) |")
    print("|---|---|---|---|")
    for voice in args.voices:
        print(f"| {voice} | {len(errors[voice])} | {np.mean(errors[voice]):.0f} | {np.mean(uniform[voice]):.0f} |")
    everything = [e for v in errors.values() for e in v]
    flat_all = [e for v in uniform.values() for e in v]
    print(f"| all | {len(everything)} | {np.mean(everything):.0f} | {np.mean(flat_all):.0f} |")
    print(f"({skipped} sentences skipped: flite and espeak-ng split them differently)")
    return {"mean_ms": float(np.mean(everything)), "uniform_ms": float(np.mean(flat_all)), "skipped": skipped}


if __name__ == "__main__":
    main()
