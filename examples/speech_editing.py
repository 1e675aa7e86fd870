"""Zero-shot speech editing with FlashSpeech: change some words of a recording, keep the rest sample for sample.

    python examples/speech_editing.py --model path/or/hub-id --audio speech.wav \
        --original_text "I saw a black cat today." --new_text "I saw a big white dog today." --output_dir out

`flashspeech edit` with defaults. The pipeline needs its `aligner` component (a checkpoint made by the training
scripts carries one). The words that differ between the two texts are regenerated in context (the rest of the
recording is the prompt and the fixed context) and spliced into the original waveform with short cross-fades.

Without `--model`, the bundled demo checkpoint is used, or a random `tiny` pipeline when it is missing, and the script
says which. Without `--audio`, flite (or espeak-ng) speaks `--original_text` into the output folder.
"""

from __future__ import annotations

import os

from example_utils import build_parser, default_model, run_cli, speak

ORIGINAL_TEXT = "I saw a black cat sitting on the wall today."
NEW_TEXT = "I saw a big white dog sitting on the wall today."


def main(argv: list[str] | None = None) -> str:
    parser = build_parser("edit", __doc__, original_text=ORIGINAL_TEXT, new_text=NEW_TEXT)
    args = parser.parse_args(argv)
    args.audio = args.audio or speak(os.path.join(args.output_dir, "original.wav"), args.original_text)
    args.output = args.output or os.path.join(args.output_dir, "speech_editing.wav")
    args.model = args.model or default_model(args.output_dir, args.seed)
    run_cli("edit", args)
    return args.output


if __name__ == "__main__":
    main()
