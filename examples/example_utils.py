"""Plumbing shared by the example scripts: common arguments, the default model, and spoken default audio."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import torch

from flashspeech_hf import FlashSpeechPipeline

DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "flashspeech-demo"


def add_common_arguments(parser: argparse.ArgumentParser, prosody_alpha: float = 0.2) -> None:
    """Adds `--model`, `--num_inference_steps`, `--prosody_alpha`, `--seed`, `--device` and `--output_dir`."""
    parser.add_argument(
        "--model", default=None, help="Saved pipeline folder or Hub id (default: the bundled demo checkpoint)."
    )
    parser.add_argument("--num_inference_steps", type=int, default=2, help="Consistency steps (paper: 2).")
    parser.add_argument(
        "--prosody_alpha", type=float, default=prosody_alpha, help="Prosody refinement weight (paper: 0.2)."
    )
    parser.add_argument("--seed", type=int, default=0, help="Random seed.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output_dir", default="outputs", help="Where to write the audio.")


def load_pipeline(model: str | None, seed: int, device: str) -> FlashSpeechPipeline:
    """
    Loads `model`; without one, the bundled demo checkpoint, or (when it is missing) a random `tiny` pipeline. Says
    plainly which it is and what to expect of it.
    """
    if model is None and (DEMO_CHECKPOINT / "model_index.json").is_file():
        print(
            f"No --model given: using the bundled demo checkpoint {DEMO_CHECKPOINT}: 1.8M parameters trained for "
            "under an hour on a CPU. It follows the prompt's voice but its words are NOT intelligible (WER 0.97, "
            "see checkpoints/README.md)."
        )
        model = str(DEMO_CHECKPOINT)
    if model is None:
        print(
            f"No --model given and the bundled checkpoint {DEMO_CHECKPOINT} is missing: using the randomly "
            "initialised 'tiny' pipeline. The output has the right length and format but is noise, not speech."
        )
        torch.manual_seed(seed)
        pipe = FlashSpeechPipeline.from_named_config("tiny")
    else:
        pipe = FlashSpeechPipeline.from_pretrained(model)
    return pipe.to(device)


def speak(path: str, text: str, voice: str = "slt") -> str:
    """
    Writes `text` spoken by Debian's flite `voice` (the demo checkpoint's training voices: kal16, awb, rms, slt) or,
    without flite, by espeak-ng, so the examples run without any audio of the user's. Returns `path`.
    """
    if shutil.which("flite") is not None:
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", path], check=True)
    elif shutil.which("espeak-ng") is not None:
        subprocess.run(["espeak-ng", "-v", "en-us+f2", "-s", "150", "-w", path, text], check=True)
    else:
        raise SystemExit("Neither flite nor espeak-ng is installed to speak the example audio: pass audio files.")
    return path
