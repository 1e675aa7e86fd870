"""Diverse sampling with FlashSpeech: several renditions of one text, with different prosody, under seeds.

    python examples/diverse_sampling.py --model path/or/hub-id --prompt prompt.wav --text "Hello there." \
        --num_samples 4 --prosody_alpha 0.5 --output_dir out

Each waveform has its own generator (seed `--seed + i`): the prosody refinement draws different durations and pitch
around the regression prediction, weighted by `--prosody_alpha` (0 = the same deterministic prosody for every
seed; the paper uses 0.2, larger is more diverse), and the consistency sampler draws different noise. The same seed
always gives the same audio.

Without `--model`, the bundled demo checkpoint is used (see `checkpoints/README.md`: it is not intelligible), or a
random `tiny` pipeline when it is missing, and the script says which. Without `--prompt`, flite (or espeak-ng) speaks
one into the output folder.
"""

from __future__ import annotations

import argparse
import os

import soundfile as sf
import torch
from example_utils import add_common_arguments, load_pipeline, speak

DEFAULT_TEXT = "Every sample of this sentence has its own rhythm and melody."
PROMPT_TEXT = "This is the voice that the model should imitate, spoken for three seconds or so."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", default=DEFAULT_TEXT, help="Text to speak.")
    parser.add_argument("--prompt", default=None, help="Prompt audio file of the target voice (>= 1 s; 3 s ideal).")
    parser.add_argument("--num_samples", type=int, default=4, help="Number of waveforms.")
    add_common_arguments(parser, prosody_alpha=0.5)  # --seed: the i-th waveform uses seed + i
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    pipe = load_pipeline(args.model, args.seed, args.device)
    prompt = args.prompt or speak(os.path.join(args.output_dir, "prompt.wav"), PROMPT_TEXT)

    seeds = [args.seed + i for i in range(args.num_samples)]
    out = pipe(
        args.text,
        prompt_audio=prompt,
        num_inference_steps=args.num_inference_steps,
        prosody_alpha=args.prosody_alpha,
        num_waveforms_per_prompt=args.num_samples,
        generator=[torch.Generator(device=args.device).manual_seed(seed) for seed in seeds],
    )
    paths = []
    for i, seed in enumerate(seeds):
        audio = out.audios[i, : out.audio_lengths[i]]
        path = os.path.join(args.output_dir, f"diverse_sampling_seed{seed}.wav")
        sf.write(path, audio, pipe.sampling_rate)
        mean_f0 = out.log_pitch[i].exp().mean().item()
        print(
            f"Wrote {path}: {len(audio) / pipe.sampling_rate:.2f} s, {int(out.durations[i].sum())} frames, "
            f"mean F0 {mean_f0:.0f} Hz."
        )
        paths.append(path)
    return paths


if __name__ == "__main__":
    main()
