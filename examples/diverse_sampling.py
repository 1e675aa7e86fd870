"""Diverse sampling with FlashSpeech: several renditions of one text, with different prosody, under seeds.

    python examples/diverse_sampling.py --model path/or/hub-id --prompt prompt.wav --text "Hello there." \
        --num_waveforms_per_prompt 4 --prosody_alpha 0.5 --output_dir out

`flashspeech synthesize --num_waveforms_per_prompt N` with defaults (4 waveforms, `--prosody_alpha 0.5`). Waveform
i has its own generator (seed `--seed + i`): the prosody refinement draws different durations and pitch around the
regression prediction, weighted by `--prosody_alpha` (0 = the same deterministic prosody for every seed; the paper
uses 0.2, larger is more diverse), and the consistency sampler draws different noise. The same seed always gives the
same audio.

Without `--model`, the bundled demo checkpoint is used, or a random `tiny` pipeline when it is missing, and the script
says which. Without `--prompt`, flite (or espeak-ng) speaks one into the output folder.
"""

from __future__ import annotations

import os

from example_utils import build_parser, default_model, run_cli, speak

DEFAULT_TEXT = "Every sample of this sentence has its own rhythm and melody."
PROMPT_TEXT = "This is the voice that the model should imitate, spoken for three seconds or so."


def main(argv: list[str] | None = None) -> str:
    parser = build_parser("synthesize", __doc__, text=DEFAULT_TEXT, num_waveforms_per_prompt=4, prosody_alpha=0.5)
    args = parser.parse_args(argv)
    args.output = args.output or os.path.join(args.output_dir, "diverse_sampling.wav")
    args.model = args.model or default_model(args.output_dir, args.seed)
    args.prompt = args.prompt or speak(os.path.join(args.output_dir, "prompt.wav"), PROMPT_TEXT)
    run_cli("synthesize", args)
    return args.output


if __name__ == "__main__":
    main()
