"""Zero-shot voice conversion with FlashSpeech: say what a source recording says, in the voice of a reference.

    python examples/voice_conversion.py --model path/or/hub-id --source source.wav \
        --source_text "What the source says." --reference reference.wav --output_dir out

The pipeline needs its `aligner` component (a checkpoint made by the training scripts carries one): the source's
phonemes and durations are kept, the pitch is predicted for the reference voice, and sampling starts from the source
latents noised to a level set by `--strength` (1 = from pure noise, lower keeps more of the source).

Without `--model`, the bundled demo checkpoint is used (see `checkpoints/README.md`: it is not intelligible), or a
random `tiny` pipeline when it is missing, and the script says which. Without `--source` or `--reference`, flite (or
espeak-ng) speaks them into the output folder.
"""

from __future__ import annotations

import argparse
import os
import time

import soundfile as sf
import torch
from example_utils import add_common_arguments, load_pipeline, speak

from flashspeech_hf import FlashSpeechVoiceConversionPipeline

SOURCE_TEXT = "Voice conversion keeps the words and the timing, and changes the voice."
REFERENCE_TEXT = "This is the voice that the converted speech should have, spoken for three seconds or so."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=None, help="Source speech file (what to say, and its timing).")
    parser.add_argument("--source_text", default=None, help="Transcript of --source (required with --source).")
    parser.add_argument("--reference", default=None, help="Reference speech file of the target voice (>= 1 s).")
    parser.add_argument("--strength", type=float, default=0.7, help="Noise level to start from, in (0, 1].")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.source is not None and not args.source_text:
        parser.error("--source_text is required with --source (the aligner needs the transcript).")
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    pipe = load_pipeline(args.model, args.seed, args.device, FlashSpeechVoiceConversionPipeline)
    source, source_text = args.source, args.source_text
    if source is None:
        source, source_text = speak(os.path.join(args.output_dir, "source.wav"), SOURCE_TEXT, "rms"), SOURCE_TEXT
    reference = args.reference or speak(os.path.join(args.output_dir, "reference.wav"), REFERENCE_TEXT, "slt")

    start = time.perf_counter()
    out = pipe(
        source,
        source_text,
        reference,
        strength=args.strength,
        num_inference_steps=args.num_inference_steps,
        prosody_alpha=args.prosody_alpha,
        generator=torch.Generator(device=args.device).manual_seed(args.seed),
    )
    elapsed = time.perf_counter() - start
    audio = out.audios[0, : out.audio_lengths[0]]
    path = os.path.join(args.output_dir, "voice_conversion.wav")
    sf.write(path, audio, pipe.sampling_rate)
    print(
        f"Wrote {path}: {len(audio) / pipe.sampling_rate:.2f} s at {pipe.sampling_rate} Hz "
        f"({len(out.durations[0])} phonemes with the source's durations, strength {args.strength}, "
        f"{elapsed:.2f} s)."
    )
    return path


if __name__ == "__main__":
    main()
