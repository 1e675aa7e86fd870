"""Trains the vocoder of a [`MelCodec`] (Vocos-style ConvNeXt backbone + inverse-STFT head) on a folder of audio.

The mel front-end is fixed signal processing, so only the vocoder learns: random segments are encoded to log-mels,
decoded back, and the reconstruction is scored by a multi-resolution STFT loss (spectral convergence + log-magnitude
L1, Yamamoto et al. 2020) plus a mel L1 loss (no GAN: this is the CPU recipe of the demo checkpoint). The result is
saved with `save_pretrained` and can be given to `training/prepare_dataset.py --codec_name_or_path`.

Example:

```bash
python training/train_vocoder.py --audio_dir outputs/demo_corpus --pipeline_config demo \
    --output_dir outputs/demo/codec --max_train_minutes 15
```
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from arg_checks import check_numeric_flags

from flashspeech_hf import MelCodec
from flashspeech_hf.audio import load_audio
from flashspeech_hf.configs import get_pipeline_config
from flashspeech_hf.training_utils import idle_cpu_count, resolve_mixed_precision

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
# flag -> (type, accepted interval, whether None is allowed); see `arg_checks.check_numeric_flags`
NUMERIC_FLAGS = {
    "segment_frames": (int, "[1, inf)", False),
    "train_batch_size": (int, "[1, inf)", False),
    "learning_rate": (float, "(0, inf)", False),
    "max_train_steps": (int, "[1, inf)", False),
    "max_train_minutes": (float, "(0, inf)", True),
    "lambda_mel": (float, "[0, inf)", False),
    "num_validation": (int, "[1, inf)", False),
    "validation_steps": (int, "[1, inf)", False),
    "checkpointing_steps": (int, "[1, inf)", False),
    "seed": (int, "[0, 4294967295]", False),
    "num_threads": (int, "[1, inf)", True),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audio_dir", required=True, help="Folder searched recursively for .wav/.flac/.ogg files.")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--pipeline_config", default="demo", help="Named config whose `codec` entry sizes the model.")
    parser.add_argument("--codec_name_or_path", default=None, help="Start from a saved MelCodec instead.")
    parser.add_argument("--segment_frames", type=int, default=48, help="Latent frames per training segment.")
    parser.add_argument("--train_batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--max_train_steps", type=int, default=100000)
    parser.add_argument("--max_train_minutes", type=float, default=None, help="Stop after this much wall time.")
    parser.add_argument("--lambda_mel", type=float, default=1.0)
    parser.add_argument("--num_validation", type=int, default=16, help="Held-out files for the validation loss.")
    parser.add_argument("--validation_steps", type=int, default=200)
    parser.add_argument("--checkpointing_steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_threads", type=int, default=None, help="torch CPU threads (default: the idle cores).")
    parser.add_argument(
        "--mixed_precision",
        choices=("no", "bf16", "auto"),
        default="no",
        help="bf16: the vocoder backbone under bfloat16 autocast (weights, losses, optimizer state and the iSTFT head\n"
        "stay float32); auto: bf16 where the CPU computes in bfloat16 natively, else no (logged).",
    )
    args = parser.parse_args(argv)
    check_numeric_flags(
        args,
        NUMERIC_FLAGS,
        {"checkpointing_steps": " It is the number of steps between saves; the last step is always saved."},
    )
    return args


def save_codec_atomically(codec: MelCodec, output_dir: Path, log: dict) -> None:
    """
    Saves the codec and the training log to a temporary folder, then moves the files into `output_dir` (the log first,
    `config.json` last), so that a kill during the save never leaves a torn codec behind: `output_dir` keeps the
    previous complete save until the new files are complete.
    """
    tmp = tempfile.mkdtemp(prefix=".codec-", dir=output_dir)
    try:
        codec.save_pretrained(tmp)
        Path(tmp, "train_vocoder_log.json").write_text(json.dumps(log, indent=2))
        for name in sorted(os.listdir(tmp), key=lambda n: n == "config.json"):
            os.replace(os.path.join(tmp, name), output_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def multi_resolution_stft_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (256, 64)),
) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over `(n_fft, hop)` resolutions; waveforms `[B, T]`."""
    loss = prediction.new_zeros(())
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft, device=prediction.device)
        pred = torch.stft(prediction, n_fft, hop, window=window, return_complex=True).abs().clamp(min=1e-5)
        true = torch.stft(target, n_fft, hop, window=window, return_complex=True).abs().clamp(min=1e-5)
        convergence = torch.linalg.norm(true - pred, dim=(1, 2)) / torch.linalg.norm(true, dim=(1, 2)).clamp(min=1e-5)
        loss = loss + convergence.mean() + F.l1_loss(pred.log(), true.log())
    return loss / len(resolutions)


def load_waves(paths: list[Path], sampling_rate: int) -> list[torch.Tensor]:
    return [load_audio(str(p), target_sampling_rate=sampling_rate)[0] for p in paths]


def random_batch(waves: list[torch.Tensor], batch_size: int, num_samples: int, rng: random.Random) -> torch.Tensor:
    """`[batch_size, num_samples]` random crops (zero-padded when a clip is shorter)."""
    batch = torch.zeros(batch_size, num_samples)
    for row in range(batch_size):
        wave = waves[rng.randrange(len(waves))]
        start = rng.randrange(max(1, len(wave) - num_samples + 1))
        crop = wave[start : start + num_samples]
        batch[row, : len(crop)] = crop
    return batch


def reconstruction_losses(
    codec: MelCodec, waveform: torch.Tensor, lambda_mel: float, autocast_dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """
    Analysis-resynthesis of `waveform [B, T]` (T a multiple of the hop); returns the losses. With `autocast_dtype`
    the decoding runs under CPU autocast (the codec keeps its mel front-end and iSTFT head in float32); the losses are
    float32.
    """
    with torch.no_grad():
        mel = codec._encode_frames(waveform)
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        reconstruction = codec._decode_frames(mel)
    stft_loss = multi_resolution_stft_loss(reconstruction, waveform)
    mel_loss = F.l1_loss(codec._encode_frames(reconstruction), mel)
    return {"loss": stft_loss + lambda_mel * mel_loss, "stft": stft_loss, "mel_l1": mel_loss}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads or idle_cpu_count())
    mixed_precision, note = resolve_mixed_precision(args.mixed_precision, "cpu")
    if note is not None:
        print(note, flush=True)
    autocast_dtype = torch.bfloat16 if mixed_precision == "bf16" else None
    set_seed(args.seed)
    rng = random.Random(args.seed)
    if args.codec_name_or_path:
        codec = MelCodec.from_pretrained(args.codec_name_or_path)
    else:
        config = get_pipeline_config(args.pipeline_config)["codec"]
        if config.pop("class_name", "MelCodec") != "MelCodec":
            raise ValueError(f"The {args.pipeline_config!r} config's codec is not a MelCodec.")
        codec = MelCodec(**config)
    paths = sorted(p for p in Path(args.audio_dir).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if len(paths) <= args.num_validation:
        raise ValueError(f"Need more than {args.num_validation} audio files in {args.audio_dir}, found {len(paths)}.")
    rng.shuffle(paths)
    valid_waves = load_waves(paths[: args.num_validation], codec.sampling_rate)
    train_waves = load_waves(paths[args.num_validation :], codec.sampling_rate)
    num_samples = args.segment_frames * codec.hop_length
    valid_batch = random_batch(valid_waves, len(valid_waves), 2 * num_samples, random.Random(1))

    optimizer = torch.optim.AdamW(codec.parameters(), lr=args.learning_rate, betas=(0.8, 0.99))
    total = args.max_train_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0)))
    )
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = []
    start = time.time()
    codec.train()
    for step in range(1, args.max_train_steps + 1):
        losses = reconstruction_losses(
            codec, random_batch(train_waves, args.train_batch_size, num_samples, rng), args.lambda_mel, autocast_dtype
        )
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        minutes = (time.time() - start) / 60
        done = step == args.max_train_steps or (args.max_train_minutes and minutes >= args.max_train_minutes)
        if step % args.validation_steps == 0 or done:
            codec.eval()
            with torch.no_grad():
                valid = {k: v.item() for k, v in reconstruction_losses(codec, valid_batch, args.lambda_mel).items()}
            codec.train()
            entry = {"step": step, "minutes": round(minutes, 2), "train_loss": losses["loss"].item()}
            entry.update({f"valid_{k}": round(v, 4) for k, v in valid.items()})
            log.append(entry)
            print(json.dumps(entry), flush=True)
        if step % args.checkpointing_steps == 0 or done:
            save_codec_atomically(codec, out, {"args": vars(args), "log": log})
        if done:
            break
    print(f"saved {out} after {step} steps, {minutes:.1f} min", flush=True)


if __name__ == "__main__":
    main()
