"""Audio I/O helpers: loading, resampling and validation of user-facing waveforms, and atomic writing.

Every waveform that enters the library goes through [`load_audio`] (paths, numpy arrays, tensors) and every change
of sample rate goes through [`resample`], so that sample rates are checked in one place and never assumed. Every audio
file the command line writes goes through [`open_audio_for_writing`], so that no half-written file is ever left.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import os
from collections.abc import Iterator

import numpy as np
import soundfile as sf
import soxr
import torch

logger = logging.getLogger(__name__)

AudioInput = str | os.PathLike | np.ndarray | torch.Tensor

MIN_SAMPLING_RATE = 4_000
"""Lowest sample rate (Hz) accepted for user audio: below it, a rate was almost surely typed in kHz."""
MAX_SAMPLING_RATE = 192_000
"""Highest sample rate (Hz) accepted for user audio."""

# Integer PCM types and their full scale, as soundfile reads files: int16 / 32768, int32 / 2**31, uint8 offset by 128.
_NUMPY_PCM = {np.dtype(np.int8): (0, 2**7), np.dtype(np.int16): (0, 2**15), np.dtype(np.int32): (0, 2**31),
              np.dtype(np.uint8): (2**7, 2**7)}  # fmt: skip
_TORCH_PCM = {torch.int8: (0, 2**7), torch.int16: (0, 2**15), torch.int32: (0, 2**31), torch.uint8: (2**7, 2**7)}


def check_sampling_rate(sampling_rate, name: str = "sampling_rate") -> int:
    """
    Checks that a sample rate is a whole number of Hz in `[MIN_SAMPLING_RATE, MAX_SAMPLING_RATE]` (4-192 kHz).

    Args:
        sampling_rate (`int`): The rate in Hz.
        name (`str`): What the rate belongs to, used in error messages.

    Returns:
        `int`: The rate.

    Raises:
        `TypeError`: If it is not a number. `ValueError`: If it is not a whole number or lies outside 4-192 kHz (a rate
        typed in kHz, such as `16` for 16 kHz, would otherwise stretch 2 s of audio to 2,000 s).
    """
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, numbers.Real):
        raise TypeError(f"The sample rate of `{name}` must be a number of Hz such as 16000, got {sampling_rate!r}.")
    if not math.isfinite(sampling_rate) or sampling_rate != int(sampling_rate):
        raise ValueError(
            f"The sample rate of `{name}` must be a whole number of Hz such as 16000, got {sampling_rate}."
        )
    rate = int(sampling_rate)
    if not MIN_SAMPLING_RATE <= rate <= MAX_SAMPLING_RATE:
        hint = (
            f" Sample rates are given in Hz: {rate} kHz is {rate * 1000}." if rate * 1000 <= MAX_SAMPLING_RATE else ""
        )
        raise ValueError(
            f"The sample rate of `{name}` is {rate} Hz, outside the plausible range {MIN_SAMPLING_RATE}-"
            f"{MAX_SAMPLING_RATE} Hz.{hint}"
        )
    return rate


def waveform_to_float(audio: np.ndarray | torch.Tensor, name: str = "audio") -> torch.Tensor:
    """
    Converts an array or tensor of samples to a float32 CPU tensor, scaling integer PCM as `soundfile` reads files.

    Float input is kept as it is (expected in `[-1, 1]`). Integer PCM is scaled to `[-1, 1)`: `int8 / 2**7`,
    `int16 / 2**15`, `int32 / 2**31`, and unsigned 8-bit (WAV's 8-bit format) as `(x - 128) / 128`.

    Args:
        audio (`np.ndarray` or `torch.Tensor`): Samples.
        name (`str`): The argument's name, used in error messages.

    Returns:
        `torch.Tensor` (float32, CPU) of the input's shape.

    Raises:
        `TypeError`: For other integer types (`int64`, `uint16`, ...), booleans and complex numbers, with how to
        convert them.
    """
    if isinstance(audio, np.ndarray):
        dtype, pcm, floating = audio.dtype, _NUMPY_PCM.get(audio.dtype), audio.dtype.kind == "f"
    else:
        dtype, pcm, floating = audio.dtype, _TORCH_PCM.get(audio.dtype), audio.dtype.is_floating_point
    if not floating and pcm is None:
        raise TypeError(
            f"`{name}` holds {dtype} samples. Give float samples in [-1, 1], or integer PCM as int16, int32, int8 or "
            "uint8 (scaled like a file is read: int16 / 32768). Convert it first, e.g. `audio.astype(np.float32) / "
            "32768` for 16-bit samples stored in a wider integer type."
        )
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float64 if floating else audio.dtype))
    waveform = audio.detach().cpu()
    if floating:
        return waveform.to(torch.float32)
    offset, scale = pcm
    return ((waveform.to(torch.float64) - offset) / scale).to(torch.float32)


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


def check_audio_input(
    audio: AudioInput,
    sampling_rate: int | None = None,
    name: str = "audio",
    max_seconds: float | None = None,
    max_seconds_name: str = "max_seconds",
) -> None:
    """
    Checks an audio argument without reading or converting its samples: its type, its sample rate (4-192 kHz), that
    a file exists, and its duration against `max_seconds` (files through their header).

    Args:
        audio (`str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`): A path or a 1-D waveform.
        sampling_rate (`int`, *optional*): Sample rate of an array (required for arrays); for a file, if given, it
            must match the file's.
        name (`str`): The argument's name, used in error messages.
        max_seconds (`float`, *optional*): Longest duration accepted.
        max_seconds_name (`str`): The argument that sets `max_seconds`, named in the error.
    """
    if isinstance(audio, (str, os.PathLike)):
        path = os.fspath(audio)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"`{name}` file not found: {path}")
        try:
            info = sf.info(path)
        except Exception as err:  # soundfile raises several types for corrupt or unsupported files
            raise ValueError(f"`{name}` could not be read as audio ({path}): {err}") from err
        if sampling_rate is not None and sampling_rate != info.samplerate:
            raise ValueError(
                f"`{name}` file {path} is sampled at {info.samplerate} Hz, but sampling_rate={sampling_rate}."
            )
        rate, num_samples = check_sampling_rate(info.samplerate, name), info.frames
    elif isinstance(audio, (np.ndarray, torch.Tensor)):
        if sampling_rate is None:
            raise ValueError(
                f"`{name}` is an array: pass its sample rate (e.g. `prompt_sampling_rate=16000`); it is never assumed."
            )
        rate = check_sampling_rate(sampling_rate, name)
        if audio.ndim != 1:
            raise ValueError(f"`{name}` must be a 1-D mono waveform, got shape {tuple(audio.shape)}.")
        num_samples = audio.shape[0]
    else:
        raise TypeError(f"`{name}` must be a path, numpy array or torch tensor, got {type(audio).__name__}.")
    if max_seconds is not None and num_samples / rate > max_seconds:
        raise ValueError(
            f"`{name}` is {num_samples / rate:.1f} s long, over the limit of {max_seconds:g} s set by "
            f"`{max_seconds_name}`: trim it, or raise `{max_seconds_name}` if you mean it (time and memory grow with "
            "its length)."
        )


def load_audio(
    audio: AudioInput,
    sampling_rate: int | None = None,
    target_sampling_rate: int | None = None,
    name: str = "audio",
    max_seconds: float | None = None,
    max_seconds_name: str = "max_seconds",
) -> tuple[torch.Tensor, int]:
    """Reads a waveform from a path, numpy array or tensor, as mono float32, resampled when asked.

    Integer PCM arrays are scaled as files are read (`int16 / 32768`, see [`waveform_to_float`]); float samples are
    expected in `[-1, 1]` (a warning names a larger peak). Sample rates must lie in 4-192 kHz.

    Args:
        audio (`str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`):
            A path to an audio file that `soundfile` reads, or a 1-D waveform of shape `(num_samples,)`.
        sampling_rate (`int`, *optional*):
            Sample rate of `audio` when it is an array or tensor. Required for arrays; for files it is read from the
            file, and a value given here must match it.
        target_sampling_rate (`int`, *optional*):
            Resample to this rate when given.
        name (`str`): The argument's name, used in error messages.
        max_seconds (`float`, *optional*): Longest duration accepted, checked before the samples are read.
        max_seconds_name (`str`): The argument that sets `max_seconds`, named in the error.

    Returns:
        `(waveform, sampling_rate)`: a float32 tensor of shape `(num_samples,)` and its sample rate.
    """
    check_audio_input(audio, sampling_rate, name, max_seconds, max_seconds_name)
    if isinstance(audio, (str, os.PathLike)):
        path = os.fspath(audio)
        try:
            array, file_rate = sf.read(path, dtype="float32", always_2d=True)
        except Exception as err:  # soundfile raises several types for corrupt or unsupported files
            raise ValueError(f"`{name}` could not be read as audio ({path}): {err}") from err
        waveform = torch.from_numpy(array.mean(axis=1))
        sampling_rate = file_rate
    else:
        waveform = waveform_to_float(audio, name)
        sampling_rate = int(sampling_rate)

    if waveform.numel() == 0:
        raise ValueError(f"`{name}` is empty.")
    if not torch.isfinite(waveform).all():
        raise ValueError(f"`{name}` contains NaN or infinite samples.")
    peak = float(waveform.abs().max())
    if peak > 1.5:
        logger.warning(
            f"`{name}` peaks at {peak:.4g}, but float audio is expected in [-1, 1]: if it holds integer PCM values cast "
            "to float, divide by the full scale (32768 for 16-bit samples), or pass the integer array itself."
        )
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


def _audio_format(path: str | os.PathLike) -> str:
    """The `soundfile` format of an output path, from its extension (`out.wav` -> `WAV`)."""
    extension = os.path.splitext(os.fspath(path))[1].lstrip(".").upper()
    if extension not in sf.available_formats():
        raise ValueError(
            f"Cannot write audio to {os.fspath(path)!r}: its extension is not an audio format soundfile writes (use "
            ".wav, .flac or .ogg)."
        )
    return extension


@contextlib.contextmanager
def open_audio_for_writing(path: str | os.PathLike, sampling_rate: int) -> Iterator[sf.SoundFile]:
    """
    Opens a mono audio file for writing, atomically: the samples go to a hidden temporary file in the same folder,
    which replaces `path` (`os.replace`) only when the block ends without an error and is deleted otherwise. Readers
    never see a half-written `path`. The folder is created if needed; the format follows the extension.

    Args:
        path (`str` or `os.PathLike`): The final file (`.wav`, `.flac`, `.ogg`, ...).
        sampling_rate (`int`): Sample rate in Hz.

    Yields:
        `soundfile.SoundFile`: Write float samples in [-1, 1] with `.write(samples)`, as many times as needed.

    Examples:

    ```python
    >>> import numpy as np
    >>> from flashspeech_hf.audio import open_audio_for_writing

    >>> with open_audio_for_writing("out.wav", 16000) as f:
    ...     f.write(np.zeros(1600, dtype=np.float32))
    ```
    """
    path = os.path.abspath(os.fspath(path))
    audio_format = _audio_format(path)
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.partial")
    try:
        with sf.SoundFile(temporary, "w", samplerate=int(sampling_rate), channels=1, format=audio_format) as handle:
            yield handle
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_audio(path: str | os.PathLike, audio: np.ndarray | torch.Tensor, sampling_rate: int) -> None:
    """
    Writes a mono waveform atomically (see [`open_audio_for_writing`]).

    Args:
        path (`str` or `os.PathLike`): Output file; the format follows the extension.
        audio (`np.ndarray` or `torch.Tensor` of shape `(num_samples,)`): Float samples in [-1, 1].
        sampling_rate (`int`): Sample rate in Hz.
    """
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    with open_audio_for_writing(path, sampling_rate) as handle:
        handle.write(np.asarray(audio))


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """
    Writes a text file atomically: `text` goes to a hidden temporary file in the same folder (named with the process
    id, so concurrent writers do not collide), which then replaces `path` (`os.replace`).

    Args:
        path (`str` or `os.PathLike`): The file to write.
        text (`str`): Its content (UTF-8, newlines as given).
    """
    path = os.fspath(path)
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.partial")
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.replace(temporary, path)
