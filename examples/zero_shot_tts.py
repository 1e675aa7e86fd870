"""Zero-shot text-to-speech with FlashSpeech: speak a text in the voice of a short prompt.

    python examples/zero_shot_tts.py --model path/or/hub-id --prompt prompt.wav --text "Hello there." --output_dir out

Without `--model`, the bundled demo checkpoint `checkpoints/flashspeech-demo` is used (a small model trained on a
CPU on flite voices, see `checkpoints/README.md`); if it is missing, the script builds the randomly initialised `tiny`
pipeline and says so, so the output is the right length and format but not speech. Without `--prompt`, a prompt is
spoken into the output folder by flite (the demo's training voices) or, without flite, by espeak-ng.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

import soundfile as sf
import torch

from flashspeech_hf import FlashSpeechPipeline

DEFAULT_TEXT = "FlashSpeech turns text into speech in one or two network evaluations."
PROMPT_TEXT = "This is the voice that the model should imitate, spoken for three seconds or so."
DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "flashspeech-demo"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", default=None, help="Saved pipeline folder or Hub id (default: the bundled demo checkpoint)."
    )
    parser.add_argument("--text", default=DEFAULT_TEXT, help="Text to speak.")
    parser.add_argument("--prompt", default=None, help="Prompt audio file of the target voice (>= 1 s; 3 s ideal).")
    parser.add_argument("--prompt_voice", default="slt", help="flite voice of the default prompt (`flite -lv`).")
    parser.add_argument("--num_inference_steps", type=int, default=2, help="Consistency steps (paper: 2).")
    parser.add_argument("--prosody_alpha", type=float, default=0.2, help="Prosody refinement weight (paper: 0.2).")
    parser.add_argument("--speed", type=float, default=1.0, help="Speaking rate.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output_dir", default="outputs", help="Where to write the audio.")
    return parser.parse_args(argv)


def speak_prompt(path: str, flite_voice: str = "slt") -> str:
    """Writes a prompt spoken by flite (the demo's training voices) or espeak-ng (the project makes its own speech)."""
    if shutil.which("flite") is not None:
        subprocess.run(["flite", "-voice", flite_voice, "-t", PROMPT_TEXT, "-o", path], check=True)
        return path
    if shutil.which("espeak-ng") is None:
        raise SystemExit("No --prompt given and neither flite nor espeak-ng is installed to make one: pass --prompt.")
    subprocess.run(["espeak-ng", "-v", "en-us+f2", "-s", "150", "-w", path, PROMPT_TEXT], check=True)
    return path


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    if args.model is None and (DEMO_CHECKPOINT / "model_index.json").is_file():
        print(
            f"No --model given: using the bundled demo checkpoint {DEMO_CHECKPOINT}: 1.8M parameters trained for under "
            "an hour on a CPU. It follows the prompt's voice but its words are NOT intelligible (WER 0.97, see "
            "checkpoints/README.md)."
        )
        args.model = str(DEMO_CHECKPOINT)
    if args.model is None:
        print(
            f"No --model given and the bundled checkpoint {DEMO_CHECKPOINT} is missing: using the randomly "
            "initialised 'tiny' pipeline. The output has the right length and format but is noise, not speech."
        )
        torch.manual_seed(args.seed)
        pipe = FlashSpeechPipeline.from_named_config("tiny")
    else:
        pipe = FlashSpeechPipeline.from_pretrained(args.model)
    pipe.to(args.device)
    prompt = args.prompt or speak_prompt(os.path.join(args.output_dir, "prompt.wav"), args.prompt_voice)

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
    return path


if __name__ == "__main__":
    main()
