"""Zero-shot voice conversion with FlashSpeech: say what a source recording says, in the voice of a reference.

    python examples/voice_conversion.py --model path/or/hub-id --source source.wav \
        --source_text "What the source says." --reference reference.wav --output_dir out

`flashspeech convert` with defaults. The pipeline needs its `aligner` component (a checkpoint made by the training
scripts carries one): the source's phonemes and durations are kept, the pitch is predicted for the reference voice,
and sampling starts from the source latents noised to a level set by `--strength` (1 = from pure noise, lower keeps
more of the source).

Without `--model`, the bundled demo checkpoint is used, or a random `tiny` pipeline when it is missing, and the script
says which. Without `--source` or `--reference`, flite (or espeak-ng) speaks them into the output folder.
"""

from __future__ import annotations

import os

from example_utils import build_parser, default_model, run_cli, speak

SOURCE_TEXT = "Voice conversion keeps the words and the timing, and changes the voice."
REFERENCE_TEXT = "This is the voice that the converted speech should have, spoken for three seconds or so."


def main(argv: list[str] | None = None) -> str:
    parser = build_parser("convert", __doc__)
    args = parser.parse_args(argv)
    if args.source is not None and not args.source_text:
        parser.error("--source_text is required with --source (the aligner needs the transcript).")
    if args.source is None:
        args.source_text = SOURCE_TEXT
        args.source = speak(os.path.join(args.output_dir, "source.wav"), SOURCE_TEXT, "rms")
    args.reference = args.reference or speak(os.path.join(args.output_dir, "reference.wav"), REFERENCE_TEXT, "slt")
    args.output = args.output or os.path.join(args.output_dir, "voice_conversion.wav")
    args.model = args.model or default_model(args.output_dir, args.seed)
    run_cli("convert", args)
    return args.output


if __name__ == "__main__":
    main()
