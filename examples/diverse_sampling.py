"""Diverse sampling with FlashSpeech: several renditions of one text, with different prosody, under seeds.

    python examples/diverse_sampling.py --model path/or/hub-id --prompt prompt.wav --text "Hello there." \
        --num_samples 4 --prosody_alpha 0.5 --output_dir out

Each waveform has its own generator (seed `--seed + i`): the prosody refinement draws different durations and pitch
around the regression prediction, weighted by `--prosody_alpha` (0 = the same deterministic prosody for every
seed; the paper uses 0.2, larger is more diverse), and the consistency sampler draws different noise. The same seed
always gives the same audio.

Without `--model`, no trained checkpoint is bundled yet: the script builds the randomly initialised `tiny` pipeline
and says so, so the outputs are noise, not speech. Without `--prompt`, a prompt is spoken by espeak-ng into the output
folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

import soundfile as sf
import torch

from flashspeech_hf import FlashSpeechPipeline

DEFAULT_TEXT = "Every sample of this sentence has its own rhythm and melody."
PROMPT_TEXT = "This is the voice that the model should imitate, spoken for three seconds or so."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Saved pipeline folder or Hub id (default: random tiny model).")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="Text to speak.")
    parser.add_argument("--prompt", default=None, help="Prompt audio file of the target voice (>= 1 s; 3 s ideal).")
    parser.add_argument("--num_samples", type=int, default=4, help="Number of waveforms.")
    parser.add_argument("--prosody_alpha", type=float, default=0.5, help="Prosody diversity (0 = none, paper: 0.2).")
    parser.add_argument("--num_inference_steps", type=int, default=2, help="Consistency steps (paper: 2).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the first waveform; the i-th uses seed + i.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output_dir", default="outputs", help="Where to write the audio.")
    return parser.parse_args(argv)


def speak_prompt(path: str) -> str:
    """Writes a prompt spoken by espeak-ng (the project generates its own test speech)."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("No --prompt given and espeak-ng is not installed to make one: pass --prompt PATH.")
    subprocess.run(["espeak-ng", "-v", "en-us+f2", "-s", "150", "-w", path, PROMPT_TEXT], check=True)
    return path


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    if args.model is None:
        print(
            "No --model given and no trained checkpoint is bundled yet: using the randomly initialised 'tiny' "
            "pipeline. The outputs differ from seed to seed but are noise, not speech."
        )
        torch.manual_seed(args.seed)
        pipe = FlashSpeechPipeline.from_named_config("tiny")
    else:
        pipe = FlashSpeechPipeline.from_pretrained(args.model)
    pipe.to(args.device)
    prompt = args.prompt or speak_prompt(os.path.join(args.output_dir, "prompt.wav"))

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
