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


def load_pipeline(model: str | None, seed: int, device: str, pipeline_class=FlashSpeechPipeline):
    """
    Loads `model` as `pipeline_class` (text-to-speech, voice conversion or editing); without one, the bundled demo
    checkpoint, or (when it is missing) a random `tiny` pipeline. Says plainly which it is and what to expect of it.
    """
    if model is None and (DEMO_CHECKPOINT / "model_index.json").is_file():
        print(
            f"No --model given: using the bundled demo checkpoint {DEMO_CHECKPOINT}, a small model trained on a CPU "
            "(its measured word error rates and speaker similarity: checkpoints/README.md)."
        )
        model = str(DEMO_CHECKPOINT)
    if model is None:
        print(
            f"No --model given and the bundled checkpoint {DEMO_CHECKPOINT} is missing: using the randomly "
            "initialised 'tiny' pipeline. The output has the right length and format but is noise, not speech."
        )
        torch.manual_seed(seed)
        pipe = pipeline_class.from_named_config("tiny")
    else:
        pipe = pipeline_class.from_pretrained(model)
    return pipe.to(device)


def speak(path: str, text: str, voice: str = "rms") -> str:
    """
    Writes `text` spoken by Debian's flite `voice` (`rms` is a voice the demo checkpoint never heard in training) or,
    without flite, by espeak-ng, so the examples run without any audio of the user's. Returns `path`.
    """
    if shutil.which("flite") is not None:
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", path], check=True)
    elif shutil.which("espeak-ng") is not None:
        subprocess.run(["espeak-ng", "-v", "en-us+f2", "-s", "150", "-w", path, text], check=True)
    else:
        raise SystemExit("Neither flite nor espeak-ng is installed to speak the example audio: pass audio files.")
    return path


def what_whisper_hears(audio, sampling_rate: int, text: str) -> str | None:
    """
    Transcribes `audio` with the offline Whisper tiny.en judge and returns a line with the text, what Whisper heard
    and the word error rate; `None` (with the reason printed) when the `eval` extra is not installed.
    """
    try:
        from flashspeech_hf.metrics import load_metric, transcribe

        heard = transcribe([audio], sampling_rate=sampling_rate, backend="whisper-tiny.en")[0]
    except ImportError as err:
        print(f"(Whisper is not installed, so the output is not transcribed: {err})")
        return None
    wer = load_metric("wer").compute(predictions=[heard], references=[text])["wer"]
    return f"Text:           {text}\nWhisper hears:  {heard}\nWord error rate: {wer:.2f}"
