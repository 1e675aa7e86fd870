"""Zero-shot text-to-speech with FlashSpeech: speak a text in the voice of a short prompt.

    python examples/zero_shot_tts.py --model path/or/hub-id --prompt prompt.wav --text "Hello there." --output_dir out

Without `--model`, the bundled demo checkpoint `checkpoints/flashspeech-demo` is used (a small model trained on a
CPU, see `checkpoints/README.md`); if it is missing, the script builds the randomly initialised `tiny` pipeline and
says so, so the output is the right length and format but not speech. Without `--prompt`, a prompt is spoken into the
output folder by flite's `rms` voice, which the demo checkpoint never heard in training (or, without flite, by
espeak-ng). The script prints what Whisper tiny.en (the offline judge, `eval` extra) hears in the output.
"""

from __future__ import annotations

import argparse
import os
import time

import soundfile as sf
import torch
from example_utils import add_common_arguments, load_pipeline, speak, what_whisper_hears

DEFAULT_TEXT = "FlashSpeech turns text into speech in one or two network evaluations."
PROMPT_TEXT = "This is the voice that the model should imitate, spoken for three seconds or so."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", default=DEFAULT_TEXT, help="Text to speak.")
    parser.add_argument("--prompt", default=None, help="Prompt audio file of the target voice (>= 1 s; 3 s ideal).")
    parser.add_argument(
        "--prompt_voice",
        default="rms",
        help="flite voice of the default prompt (`flite -lv`); rms is not among the demo checkpoint's training voices.",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="Speaking rate.")
    add_common_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    pipe = load_pipeline(args.model, args.seed, args.device)
    prompt = args.prompt or speak(os.path.join(args.output_dir, "prompt.wav"), PROMPT_TEXT, args.prompt_voice)

    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    start = time.perf_counter()
    out = pipe(
        args.text,
        prompt_audio=prompt,
        num_inference_steps=args.num_inference_steps,
        prosody_alpha=args.prosody_alpha,
        speed=args.speed,
        generator=generator,
    )
    elapsed = time.perf_counter() - start
    audio = out.audios[0, : out.audio_lengths[0]]
    path = os.path.join(args.output_dir, "zero_shot_tts.wav")
    sf.write(path, audio, pipe.sampling_rate)
    seconds = len(audio) / pipe.sampling_rate
    print(
        f"Wrote {path}: {seconds:.2f} s at {pipe.sampling_rate} Hz, {len(out.durations[0])} phonemes, "
        f"{args.num_inference_steps} steps in {elapsed:.2f} s (real-time factor {elapsed / seconds:.3f}, "
        f"first call included)."
    )
    heard = what_whisper_hears(audio, pipe.sampling_rate, args.text)
    if heard:
        print(heard)
    return path


if __name__ == "__main__":
    main()
