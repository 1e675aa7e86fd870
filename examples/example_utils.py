"""Plumbing shared by the example scripts: each example is the `flashspeech` command line with defaults.

An example takes the flags of its `flashspeech` subcommand (the pipeline's argument names: `--num_inference_steps`,
`--prosody_alpha`, `--seed`, ...), none of them required: a missing model is the bundled demo checkpoint, missing
audio is spoken by flite (or espeak-ng) into `--output_dir`. It prints the equivalent `flashspeech` command and runs it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import torch

from flashspeech_hf import FlashSpeechPipeline
from flashspeech_hf.cli import SUBCOMMANDS
from flashspeech_hf.cli import main as flashspeech

DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "flashspeech-demo"


def _subcommand_options(command: str) -> list[argparse.Action]:
    parser = argparse.ArgumentParser(add_help=False)
    SUBCOMMANDS[command][1](parser)
    return [action for action in parser._actions if action.option_strings]


def build_parser(command: str, description: str, **defaults) -> argparse.ArgumentParser:
    """
    The arguments of `flashspeech <command>`, none required, with the example's `defaults`, plus `--output_dir`.
    """
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Every other flag is the one of `flashspeech {command}`.",
    )
    SUBCOMMANDS[command][1](parser)
    for action in parser._actions:
        action.required = False
    for group in parser._mutually_exclusive_groups:
        group.required = False
    output_dir = next((a for a in parser._actions if "--output_dir" in a.option_strings), None)
    if output_dir is None:
        parser.add_argument("--output_dir", help="Where the example writes its audio.")
    else:  # `synthesize` has one for batch synthesis; here it is the example's folder
        output_dir.help = "Where the example writes its audio."
    parser.set_defaults(output_dir="outputs", **defaults)
    return parser


def run_cli(command: str, args: argparse.Namespace) -> None:
    """Runs `flashspeech <command>` with the values of `args` (but `--output_dir`, the example's folder)."""
    argv = [command]
    for action in _subcommand_options(command):
        value = getattr(args, action.dest, None) if action.dest != "output_dir" else None
        if value is not None:
            argv += [action.option_strings[0], str(value)]
    print("$ flashspeech " + shlex.join(argv))
    status = flashspeech(argv)
    if status:
        raise SystemExit(status)


def default_model(output_dir: str, seed: int = 0) -> str:
    """
    The bundled demo checkpoint; when it is missing, a randomly initialised `tiny` pipeline saved in `output_dir`.
    Says plainly which it is and what to expect of it.
    """
    if (DEMO_CHECKPOINT / "model_index.json").is_file():
        print(
            f"No --model given: using the bundled demo checkpoint {DEMO_CHECKPOINT}, a small model trained on a CPU "
            "(its measured word error rates and speaker similarity: checkpoints/README.md)."
        )
        return str(DEMO_CHECKPOINT)
    print(
        f"No --model given and the bundled checkpoint {DEMO_CHECKPOINT} is missing: using a randomly initialised "
        "'tiny' pipeline. The output has the right length and format but is noise, not speech."
    )
    torch.manual_seed(seed)
    path = os.path.join(output_dir, "random-tiny-pipeline")
    FlashSpeechPipeline.from_named_config("tiny").save_pretrained(path)
    return path


def speak(path: str, text: str, voice: str = "rms") -> str:
    """
    Writes `text` spoken by Debian's flite `voice` (`rms` is a voice the demo checkpoint never heard in training) or,
    without flite, by espeak-ng, so the examples run without any audio of the user's. Returns `path`.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if shutil.which("flite") is not None:
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", path], check=True)
    elif shutil.which("espeak-ng") is not None:
        subprocess.run(["espeak-ng", "-v", "en-us+f2", "-s", "150", "-w", path, text], check=True)
    else:
        raise SystemExit("Neither flite nor espeak-ng is installed to speak the example audio: pass audio files.")
    return path


def what_whisper_hears(path: str, text: str) -> str | None:
    """
    Transcribes the audio file `path` with the offline Whisper tiny.en judge and returns a line with the text, what
    Whisper heard and the word error rate; `None` (with the reason printed) when the `eval` extra is not installed.
    """
    import soundfile as sf

    audio, sampling_rate = sf.read(path, dtype="float32")
    try:
        from flashspeech_hf.metrics import load_metric, transcribe

        heard = transcribe([audio], sampling_rate=sampling_rate, backend="whisper-tiny.en")[0]
    except ImportError as err:
        print(f"(Whisper is not installed, so the output is not transcribed: {err})")
        return None
    # "one or two" and "1 or 2" are the same words to a listener
    wer = load_metric("wer").compute(predictions=[heard], references=[text], normalize_numbers=True)["wer"]
    return f"Text:            {text}\nWhisper hears:   {heard}\nWord error rate: {wer:.2f}"
