"""Zero-shot text-to-speech with FlashSpeech: speak a text in the voice of a short prompt.

    python examples/zero_shot_tts.py --model path/or/hub-id --prompt prompt.wav --text "Hello there." --output_dir out

`flashspeech synthesize` with defaults: every flag is the command's (`--num_inference_steps`, `--prosody_alpha`,
`--speed`, `--seed`, ...). Without `--model`, the bundled demo checkpoint `checkpoints/flashspeech-demo` is used (a
small model trained on a CPU, see `checkpoints/README.md`); if it is missing, a randomly initialised `tiny` pipeline,
and the script says so. Without `--prompt`, a prompt is spoken into the output folder by flite's `--prompt_voice`
(`rms`, a voice the demo checkpoint never heard in training) or, without flite, by espeak-ng. The script then prints
what Whisper tiny.en (the offline judge, `eval` extra) hears in the output next to the text.
"""

from __future__ import annotations

import os

from example_utils import build_parser, default_model, run_cli, speak, what_whisper_hears

DEFAULT_TEXT = "FlashSpeech turns text into speech in one or two network evaluations."
PROMPT_TEXT = "This is the voice that the model should imitate, spoken for three seconds or so."


def main(argv: list[str] | None = None) -> str:
    parser = build_parser("synthesize", __doc__, text=DEFAULT_TEXT)
    parser.add_argument("--prompt_voice", default="rms", help="flite voice of the default prompt (`flite -lv`).")
    args = parser.parse_args(argv)
    args.output = args.output or os.path.join(args.output_dir, "zero_shot_tts.wav")
    args.model = args.model or default_model(args.output_dir, args.seed)
    args.prompt = args.prompt or speak(os.path.join(args.output_dir, "prompt.wav"), PROMPT_TEXT, args.prompt_voice)
    run_cli("synthesize", args)
    heard = what_whisper_hears(args.output, args.text)
    if heard:
        print(heard)
    return args.output


if __name__ == "__main__":
    main()
