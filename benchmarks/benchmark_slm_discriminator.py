"""
Whisper as the discriminator's SLM: its positional embeddings cut to the input, or the input padded to its 30 s window.

For each mode, times one forward + backward (generator adversarial loss, gradient to the waveform) of
`FlashSpeechDiscriminator` on a batch of 4 s clips, and measures how far the cut encoder's hidden states are from
the padded window's on the valid frames of spoken audio (flite's voice, relative L2 per hidden state). Prints a
markdown table.

Examples:

```bash
python benchmarks/benchmark_slm_discriminator.py --slm whisper-tiny.en --batch_size 8 --seconds 4 --threads 1
```
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from flashspeech_hf.losses import generator_adversarial_loss
from flashspeech_hf.models.modeling_discriminator import FlashSpeechDiscriminator

SENTENCES = (
    "the birch canoe slid on the smooth planks",
    "glue the sheet to the dark blue background",
    "it is easy to tell the depth of a well",
    "these days a chicken leg is a rare dish",
)


def spoken_batch(batch_size: int, seconds: float) -> torch.Tensor:
    """`(batch_size, seconds * 16000)`: flite sentences at 16 kHz, repeated to fill the length."""
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(batch_size):
            path = Path(tmp) / f"{index}.wav"
            text = SENTENCES[index % len(SENTENCES)]
            subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True, capture_output=True)
            audio, rate = sf.read(path, dtype="float32")
            audio = soxr.resample(audio, rate, 16000).astype(np.float32)
            clips.append(np.resize(audio, int(seconds * 16000)))
    return torch.from_numpy(np.stack(clips))


def time_step(discriminator: FlashSpeechDiscriminator, waveform: torch.Tensor, repeats: int) -> float:
    """Median seconds of one forward + backward to the waveform."""
    condition = discriminator.encode_prompt(waveform[:, :16000])
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        fake = waveform.clone().requires_grad_(True)
        start = time.perf_counter()
        out = discriminator(fake, prompt_features=condition)
        generator_adversarial_loss(out.logits, out.mask).backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--slm", default="whisper-tiny.en", help="A Whisper SLM for from_slm_pretrained.")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cut = FlashSpeechDiscriminator.from_slm_pretrained(args.slm, hidden_channels=256).train()
    padded = FlashSpeechDiscriminator.from_slm_pretrained(args.slm, hidden_channels=256, whisper_pad_to_30s=True)
    padded.load_state_dict(cut.state_dict())
    padded.train()
    waveform = spoken_batch(args.batch_size, args.seconds)
    lengths = torch.full((args.batch_size,), waveform.shape[-1])
    with torch.no_grad():
        states_cut = cut._whisper_hidden_states(waveform, lengths)
        states_padded = padded._whisper_hidden_states(waveform, lengths)  # padded to 30 s inside
    frames = states_cut[0].shape[1]
    differences = [float((a - b[:, :frames]).norm() / b[:, :frames].norm()) for a, b in zip(states_cut, states_padded)]
    seconds_cut = time_step(cut, waveform, args.repeats)
    seconds_padded = time_step(padded, waveform, args.repeats)
    load = __import__("os").getloadavg()[0]
    print(f"SLM {args.slm}, batch {args.batch_size} x {args.seconds:g} s, {args.threads} thread(s), load {load:.1f}")
    print("| mode | forward + backward (s) | encoder frames |")
    print("| --- | --- | --- |")
    print(f"| positional embeddings cut to the input | {seconds_cut:.2f} | {frames} |")
    print(f"| padded to 30 s | {seconds_padded:.2f} | {states_padded[0].shape[1]} |")
    print("relative L2 difference of the hidden states on the valid frames (embedding, layers...): ", end="")
    print(", ".join(f"{d:.3f}" for d in differences))


if __name__ == "__main__":
    main()
