"""Zero-shot speech editing with FlashSpeech: change some words of a recording, keep the rest sample for sample.

    python examples/speech_editing.py --model path/or/hub-id --audio speech.wav \
        --original_text "I saw a black cat today." --new_text "I saw a big white dog today." --output_dir out

The pipeline needs its `aligner` component (a checkpoint made by the training scripts carries one). The words that
differ between the two texts are regenerated in context (the rest of the recording is the prompt and the fixed
context) and spliced into the original waveform with short cross-fades.

Without `--model`, the bundled demo checkpoint is used (see `checkpoints/README.md`: it is not intelligible), or a
random `tiny` pipeline when it is missing, and the script says which. Without `--audio`, flite (or espeak-ng) speaks
the original text into the output folder.
"""

from __future__ import annotations

import argparse
import os
import time

import soundfile as sf
import torch
from example_utils import add_common_arguments, load_pipeline, speak

from flashspeech_hf import FlashSpeechEditPipeline

ORIGINAL_TEXT = "I saw a black cat sitting on the wall today."
NEW_TEXT = "I saw a big white dog sitting on the wall today."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", default=None, help="Recording to edit (default: flite speaks --original_text).")
    parser.add_argument("--original_text", default=ORIGINAL_TEXT, help="Transcript of --audio.")
    parser.add_argument("--new_text", default=NEW_TEXT, help="What the edited recording should say.")
    parser.add_argument("--crossfade_ms", type=float, default=10.0, help="Cross-fade on each side of the splice.")
    add_common_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    pipe = load_pipeline(args.model, args.seed, args.device, FlashSpeechEditPipeline)
    audio = args.audio or speak(os.path.join(args.output_dir, "original.wav"), args.original_text)

    start = time.perf_counter()
    out = pipe(
        audio,
        args.original_text,
        args.new_text,
        crossfade_ms=args.crossfade_ms,
        num_inference_steps=args.num_inference_steps,
        prosody_alpha=args.prosody_alpha,
        generator=torch.Generator(device=args.device).manual_seed(args.seed),
    )
    elapsed = time.perf_counter() - start
    path = os.path.join(args.output_dir, "speech_editing.wav")
    sf.write(path, out.audios[0], pipe.sampling_rate)
    rate = pipe.sampling_rate
    print(
        f"Replaced /{''.join(out.original_phonemes)}/ by /{''.join(out.new_phonemes)}/: the output differs from the "
        f"original between {out.edit_start / rate:.2f} s and {out.edit_end / rate:.2f} s (cross-fades included)."
    )
    print(f"Wrote {path}: {out.audios.shape[-1] / rate:.2f} s at {rate} Hz in {elapsed:.2f} s.")
    return path


if __name__ == "__main__":
    main()
