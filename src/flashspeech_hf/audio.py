"""Audio input helpers: loading, resampling and validation of user-facing waveforms.

Every waveform that enters the library goes through [`load_audio`] (paths, numpy arrays, tensors) and every change
of sample rate goes through [`resample`], so that sample rates are checked in one place and never assumed.
"""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf
import soxr
import torch

AudioInput = str | os.PathLike | np.ndarray | torch.Tensor


def resample(waveform: torch.Tensor, orig_sampling_rate: int, target_sampling_rate: int) -> torch.Tensor:
    """Resamples audio with soxr (high quality, band-limited).

    Args:
        waveform (`torch.Tensor` of shape `(num_samples,)` or `(batch_size, num_samples)`):
            Audio at `orig_sampling_rate`.
        orig_sampling_rate (`int`): Sample rate of `waveform` in Hz.
        target_sampling_rate (`int`): Wanted sample rate in Hz.

    Returns:
        `torch.Tensor` of shape `(num_samples_out,)` or `(batch_size, num_samples_out)` on the input's device and dtype.
    """
    if orig_sampling_rate <= 0 or target_sampling_rate <= 0:
        raise ValueError(f"Sample rates must be positive, got {orig_sampling_rate} -> {target_sampling_rate}.")
    if orig_sampling_rate == target_sampling_rate:
        return waveform
    array = waveform.detach().to("cpu", torch.float32).numpy()
    if array.ndim == 1:
        out = soxr.resample(array, orig_sampling_rate, target_sampling_rate)
    else:
        # soxr takes (frames, channels): resample every row of the batch in one call.
        out = soxr.resample(array.T, orig_sampling_rate, target_sampling_rate).T
    return torch.from_numpy(np.ascontiguousarray(out)).to(device=waveform.device, dtype=waveform.dtype)


def load_audio(
    audio: AudioInput,
    sampling_rate: int | None = None,
    target_sampling_rate: int | None = None,
    name: str = "audio",
) -> tuple[torch.Tensor, int]:
    """Reads a waveform from a path, numpy array or tensor, as mono float32, resampled when asked.

    Args:
        audio (`str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`):
            A path to an audio file that `soundfile` reads, or a 1-D waveform of shape `(num_samples,)`.
        sampling_rate (`int`, *optional*):
            Sample rate of `audio` when it is an array or tensor. Required for arrays; for files it is read from the
            file, and a value given here must match it.
        target_sampling_rate (`int`, *optional*):
            Resample to this rate when given.
        name (`str`): The argument's name, used in error messages.

    Returns:
        `(waveform, sampling_rate)`: a float32 tensor of shape `(num_samples,)` and its sample rate.
    """
    if isinstance(audio, (str, os.PathLike)):
        path = os.fspath(audio)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"`{name}` file not found: {path}")
        try:
            array, file_rate = sf.read(path, dtype="float32", always_2d=True)
        except Exception as err:  # soundfile raises several types for corrupt or unsupported files
            raise ValueError(f"`{name}` could not be read as audio ({path}): {err}") from err
        if sampling_rate is not None and sampling_rate != file_rate:
            raise ValueError(f"`{name}` file {path} is sampled at {file_rate} Hz, but sampling_rate={sampling_rate}.")
        waveform = torch.from_numpy(array.mean(axis=1))
        sampling_rate = file_rate
    elif isinstance(audio, (np.ndarray, torch.Tensor)):
        if sampling_rate is None:
            raise ValueError(
                f"`{name}` is an array: pass its sample rate (e.g. `prompt_sampling_rate=16000`); it is never assumed."
            )
        waveform = torch.as_tensor(audio).detach().to(torch.float32).cpu()
        if waveform.ndim != 1:
            raise ValueError(f"`{name}` must be a 1-D mono waveform, got shape {tuple(waveform.shape)}.")
    else:
        raise TypeError(f"`{name}` must be a path, numpy array or torch tensor, got {type(audio).__name__}.")

    if waveform.numel() == 0:
        raise ValueError(f"`{name}` is empty.")
    if not torch.isfinite(waveform).all():
        raise ValueError(f"`{name}` contains NaN or infinite samples.")
    if target_sampling_rate is not None and sampling_rate != target_sampling_rate:
        waveform = resample(waveform, sampling_rate, target_sampling_rate)
        sampling_rate = target_sampling_rate
    return waveform, int(sampling_rate)


def check_speech(
    waveform: torch.Tensor,
    sampling_rate: int,
    min_seconds: float = 1.0,
    name: str = "audio",
    silence_rms: float = 1e-4,
) -> None:
    """Raises a `ValueError` naming the problem when a waveform is too short or silent.

    Args:
        waveform (`torch.Tensor` of shape `(num_samples,)`): Mono audio.
        sampling_rate (`int`): Its sample rate in Hz.
        min_seconds (`float`): Shortest duration accepted.
        name (`str`): The argument's name, used in error messages.
        silence_rms (`float`): Root-mean-square level under which the audio counts as silent.
    """
    seconds = waveform.shape[-1] / sampling_rate
    if seconds < min_seconds:
        raise ValueError(f"`{name}` is {seconds:.2f} s long; at least {min_seconds:.1f} s of speech is needed.")
    rms = waveform.float().pow(2).mean().sqrt().item()
    if rms < silence_rms:
        raise ValueError(f"`{name}` is silent (RMS {rms:.2e}); it must contain speech.")
