"""Audio I/O helpers: loading, resampling and validation of user-facing waveforms, and atomic writing.

Every waveform that enters the library goes through [`load_audio`] (paths, numpy arrays, tensors) and every change
of sample rate goes through [`resample`], so that sample rates are checked in one place and never assumed. Every audio
file the command line writes goes through [`open_audio_for_writing`], so that no half-written file is ever left.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import numbers
import os
import re
import shutil
from collections.abc import Iterator
from typing import BinaryIO

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
MAX_CHANNELS = 8
"""Most channels accepted in an audio file (7.1 surround): speech is mixed down to mono, and a file with many more
channels (Ogg Vorbis holds up to 255 in a few kilobytes) would only cost decoding time and memory."""
_READ_BLOCK_FRAMES = 16_384
"""Frames decoded at a time: a file is mixed down to mono as it is read, so memory is that of the mono waveform."""

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


def _check_duration(num_samples: int, rate: int, name: str, max_seconds: float | None, max_seconds_name: str) -> None:
    if max_seconds is not None and num_samples / rate > max_seconds:
        raise ValueError(
            f"`{name}` is {num_samples / rate:.1f} s long, over the limit of {max_seconds:g} s set by "
            f"`{max_seconds_name}`: trim it, or raise `{max_seconds_name}` if you mean it (time and memory grow with "
            "its length)."
        )


def _check_header(
    channels: int,
    samplerate: int,
    frames: int,
    source: str,
    name: str,
    max_seconds: float | None,
    max_seconds_name: str,
) -> int:
    """Checks a file's header (channels, rate, duration) before any sample is decoded; returns its sample rate."""
    if channels > MAX_CHANNELS:
        raise ValueError(
            f"`{name}` ({source}) has {channels} channels; at most {MAX_CHANNELS} are accepted (speech is mixed down "
            "to mono): mix it down first, e.g. `ffmpeg -i in.ogg -ac 1 out.wav`."
        )
    rate = check_sampling_rate(samplerate, name)
    _check_duration(frames, rate, name, max_seconds, max_seconds_name)
    return rate


def check_audio_input(
    audio: AudioInput,
    sampling_rate: int | None = None,
    name: str = "audio",
    max_seconds: float | None = None,
    max_seconds_name: str = "max_seconds",
) -> None:
    """
    Checks an audio argument without reading or converting its samples: its type, its sample rate (4-192 kHz), that
    a file exists, its channels (at most [`MAX_CHANNELS`]) and its duration against `max_seconds` (files through their
    header).

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
        _check_header(info.channels, info.samplerate, info.frames, path, name, max_seconds, max_seconds_name)
    elif isinstance(audio, (np.ndarray, torch.Tensor)):
        if sampling_rate is None:
            raise ValueError(
                f"`{name}` is an array: pass its sample rate (e.g. `prompt_sampling_rate=16000`); it is never assumed."
            )
        rate = check_sampling_rate(sampling_rate, name)
        if audio.ndim != 1:
            raise ValueError(f"`{name}` must be a 1-D mono waveform, got shape {tuple(audio.shape)}.")
        _check_duration(audio.shape[0], rate, name, max_seconds, max_seconds_name)
    else:
        raise TypeError(f"`{name}` must be a path, numpy array or torch tensor, got {type(audio).__name__}.")


def read_audio_file(
    file: str | os.PathLike | BinaryIO,
    name: str = "audio",
    max_seconds: float | None = None,
    max_seconds_name: str = "max_seconds",
) -> tuple[np.ndarray, int]:
    """
    Decodes an audio file as mono float32, checking its header first and mixing the channels down as it reads.

    The header's channels (at most [`MAX_CHANNELS`]), sample rate (4-192 kHz) and duration (`max_seconds`) are checked
    before any sample is decoded; then the file is decoded [`_READ_BLOCK_FRAMES`] frames at a time, each block averaged
    over its channels, and only the frames the header announces are read. Memory is that of the mono result (4 bytes a
    sample), however many channels the file has: a tiny file cannot expand to gigabytes of multichannel float32.

    Args:
        file (`str`, `os.PathLike` or a binary file object): What `soundfile` reads (WAV, FLAC, Ogg, MP3, ...).
        name (`str`): The argument's name, used in error messages.
        max_seconds (`float`, *optional*): Longest duration accepted.
        max_seconds_name (`str`): The argument that sets `max_seconds`, named in the error.

    Returns:
        `(samples, sampling_rate)`: a float32 array of shape `(num_samples,)` (the mean of the channels) and its rate.

    Raises:
        `ValueError`: If the file cannot be decoded, or its header fails a check (naming the problem).
    """
    source = os.fspath(file) if isinstance(file, (str, os.PathLike)) else "in memory"
    try:
        handle = sf.SoundFile(file)
    except Exception as err:  # soundfile raises several types for corrupt or unsupported files
        raise ValueError(f"`{name}` could not be read as audio ({source}): {err}") from err
    with handle:
        rate = _check_header(
            handle.channels, handle.samplerate, handle.frames, source, name, max_seconds, max_seconds_name
        )
        mono = np.empty(handle.frames, dtype=np.float32)
        block = np.empty((min(_READ_BLOCK_FRAMES, max(handle.frames, 1)), handle.channels), dtype=np.float32)
        done = 0
        try:
            for samples in handle.blocks(out=block, frames=handle.frames):
                mono[done : done + len(samples)] = samples.mean(axis=1)
                done += len(samples)
        except Exception as err:
            raise ValueError(f"`{name}` could not be decoded ({source}): {err}") from err
    return mono[:done], rate


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
        array, sampling_rate = read_audio_file(audio, name, max_seconds, max_seconds_name)
        waveform = torch.from_numpy(array)
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


class OutputError(OSError):
    """
    An output cannot be written where asked: its folder is a file or read-only, or the disk filled up while writing.
    The message names the path and the reason; the command line exits with its own status for it.
    """

    def __str__(self) -> str:
        return self.strerror or super().__str__()


_WAV_MAX_BYTES = 2**32 - 2**20
"""Most bytes of samples a `.wav` file holds as RIFF WAV, whose 32-bit size fields end at 4 GiB (less a margin for
the header); a longer output continues as RF64, the 64-bit WAV that soundfile, ffmpeg and sox read."""
_PCM_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}
_LOW_SPACE_BYTES = 2**20
"""Free bytes under which a folder counts as full before anything is written to it."""


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def remove_stale_partials(path: str | os.PathLike) -> list[str]:
    """
    Deletes the hidden temporary files that writers of `path` left when killed (`.<name>.<pid>[.<kind>].partial` in its
    folder, see [`open_audio_for_writing`]), if their process no longer exists. A running writer's file is kept.

    Args:
        path (`str` or `os.PathLike`): The final file.

    Returns:
        `list[str]`: The files deleted.
    """
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)(?:\.[a-z0-9]+)?\.partial")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.listdir(folder):
            match = pattern.fullmatch(entry)
            if match and int(match.group(1)) != os.getpid() and not _process_exists(int(match.group(1))):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, entry))
                    removed.append(os.path.join(folder, entry))
    if removed:
        logger.info(f"Removed {len(removed)} temporary file(s) of writers that were killed: {removed}")
    return removed


def check_output_folder(folder: str | os.PathLike, name: str = "output") -> None:
    """
    Checks, before any work, that files can be created in `folder` (created later if missing): that it, or its nearest
    existing parent, is a folder, writable, and not full.

    Args:
        folder (`str` or `os.PathLike`): The folder that will receive the output.
        name (`str`): What the folder is for (e.g. `--output_dir`), used in error messages.

    Raises:
        [`OutputError`]: Naming the problem: not a folder, read-only, or no space left.
    """
    folder = os.path.abspath(os.fspath(folder))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise OutputError(errno.ENOTDIR, f"{name} {folder} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            errno.EACCES, f"{name} {folder} cannot be written: {existing} is read-only (or not writable by this user)"
        )
    free = shutil.disk_usage(existing).free
    if free < _LOW_SPACE_BYTES:
        raise OutputError(errno.ENOSPC, f"{name} {folder} cannot be written: no space left ({free} bytes free)")


def check_output_file(path: str | os.PathLike, name: str = "output") -> None:
    """
    Checks, before any work, that the audio file `path` can be written: an audio extension, not an existing folder,
    and a folder that [`check_output_folder`] accepts.

    Raises:
        `ValueError`: For an extension that is not an audio format. [`OutputError`]: Naming the problem otherwise.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise OutputError(errno.EISDIR, f"{name} {path} is a folder; give a file name such as {path}/out.wav")
    _audio_format(path)
    check_output_folder(os.path.dirname(path), f"The folder of {name}")


def _audio_format(path: str | os.PathLike) -> str:
    """The `soundfile` format of an output path, from its extension (`out.wav` -> `WAV`)."""
    extension = os.path.splitext(os.fspath(path))[1].lstrip(".").upper()
    if extension not in sf.available_formats():
        raise ValueError(
            f"Cannot write audio to {os.fspath(path)!r}: its extension is not an audio format soundfile writes (use "
            ".wav, .flac or .ogg)."
        )
    return extension


class AtomicAudioWriter:
    """
    A mono audio file written under a hidden temporary name (`.<name>.<pid>.partial` next to it), as
    [`open_audio_for_writing`] yields it: `write(samples)` as often as needed; `frames` counts what is written.

    A `.wav` output that grows past what RIFF WAV's 32-bit sizes hold (4 GiB: 37 h of 16-bit audio at 16 kHz) is
    carried over to RF64 (the 64-bit WAV) and continues there, so long outputs are never truncated; `format` tells
    which was written. A failed write raises an [`OutputError`] with the system's reason (e.g. no space left).

    Args:
        path (`str` or `os.PathLike`): The final file.
        sampling_rate (`int`): Sample rate in Hz.
    """

    def __init__(self, path: str | os.PathLike, sampling_rate: int):
        self.path = os.path.abspath(os.fspath(path))
        self.samplerate = int(sampling_rate)
        self.format = _audio_format(self.path)
        folder, name = os.path.split(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise OutputError(err.errno, f"Cannot create the folder of {self.path}: {err.strerror}") from err
        remove_stale_partials(self.path)
        self.temporary = os.path.join(folder, f".{name}.{os.getpid()}.partial")
        self._handle = self._open(self.temporary, self.format)

    def _open(self, temporary: str, audio_format: str, subtype: str | None = None) -> sf.SoundFile:
        try:
            return sf.SoundFile(temporary, "w", self.samplerate, channels=1, format=audio_format, subtype=subtype)
        except Exception as err:
            raise self._failure(err, opening=True) from err

    @property
    def frames(self) -> int:
        """Samples written so far."""
        return self._handle.frames

    def write(self, samples: np.ndarray) -> None:
        """Appends samples (`np.ndarray` of shape `(num_samples,)`, float in [-1, 1])."""
        samples = np.asarray(samples)
        if self.format == "WAV" and (self.frames + len(samples)) * _PCM_BYTES[self._handle.subtype] > _WAV_MAX_BYTES:
            self._continue_as_rf64()
        try:
            self._handle.write(samples)
        except Exception as err:
            raise self._failure(err, self._handle) from err

    def _continue_as_rf64(self) -> None:
        """Copies the samples written so far, exactly, into an RF64 file that takes the following ones."""
        subtype = self._handle.subtype
        self._handle.close()
        rf64 = os.path.join(
            os.path.dirname(self.temporary), f".{os.path.basename(self.path)}.{os.getpid()}.rf64.partial"
        )
        target = self._open(rf64, "RF64", subtype)
        try:
            with sf.SoundFile(self.temporary) as source:  # integer PCM read and written as int32: no rounding
                for block in source.blocks(
                    _READ_BLOCK_FRAMES, dtype="int32" if subtype.startswith("PCM") else "float64"
                ):
                    target.write(block)
        except Exception as err:
            target.close()
            os.remove(rf64)
            raise self._failure(err, target) from err
        os.remove(self.temporary)
        self.temporary, self.format, self._handle = rf64, "RF64", target
        logger.warning(f"{self.path} passed 4 GiB, the most a RIFF WAV holds: it continues as RF64 (the 64-bit WAV).")

    def _failure(self, err: Exception, handle: sf.SoundFile | None = None, opening: bool = False) -> OutputError:
        """An [`OutputError`] naming the path and the system's reason (libsndfile's own account when it has one)."""
        reason, code = getattr(err, "strerror", None) or str(err), getattr(err, "errno", None)
        if handle is not None or opening:
            with contextlib.suppress(Exception):  # "System error : No space left on device." not "System error."
                code = code or sf._ffi.errno
                reason = sf._ffi.string(sf._snd.sf_strerror(handle._file if handle else sf._ffi.NULL)).decode()
        return OutputError(code or errno.EIO, f"Could not write {self.path}: {reason}")

    def close(self) -> None:
        """Closes the temporary file, checks that it holds every sample written, and renames it to `path`."""
        expected = self.frames
        try:
            self._handle.close()
            written = sf.info(self.temporary).frames
        except Exception as err:
            raise self._failure(err) from err
        if written != expected:
            raise OutputError(
                errno.EIO,
                f"Could not write {self.path}: the {self.format} file holds {written} of the {expected} samples "
                "written (write long outputs as .flac or .wav).",
            )
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        """Closes and deletes the temporary file (after a failure); `path` is left as it was."""
        with contextlib.suppress(Exception):
            self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.temporary)


@contextlib.contextmanager
def open_audio_for_writing(path: str | os.PathLike, sampling_rate: int) -> Iterator[AtomicAudioWriter]:
    """
    Opens a mono audio file for writing, atomically: the samples go to a hidden temporary file in the same folder
    (`.<name>.<pid>.partial`), which replaces `path` (`os.replace`) only when the block ends without an error, after
    checking that it holds every sample written, and is deleted otherwise (also on SIGTERM in the command line, which
    turns it into `SystemExit`). Temporary files of killed writers of `path` are deleted first
    ([`remove_stale_partials`]). Readers never see a half-written `path`. The folder is created if needed; the format
    follows the extension, and a `.wav` that outgrows 4 GiB continues as RF64 (see [`AtomicAudioWriter`]).

    Args:
        path (`str` or `os.PathLike`): The final file (`.wav`, `.flac`, `.ogg`, ...).
        sampling_rate (`int`): Sample rate in Hz.

    Yields:
        [`AtomicAudioWriter`]: Write float samples in [-1, 1] with `.write(samples)`, as many times as needed.

    Raises:
        [`OutputError`]: When the file cannot be written (no space left, read-only folder, ...), naming the reason.

    Examples:

    ```python
    >>> import numpy as np
    >>> from flashspeech_hf.audio import open_audio_for_writing

    >>> with open_audio_for_writing("out.wav", 16000) as f:
    ...     f.write(np.zeros(1600, dtype=np.float32))
    ```
    """
    writer = AtomicAudioWriter(path, sampling_rate)
    try:
        yield writer
        writer.close()
    finally:
        writer.discard()


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
    remove_stale_partials(path)
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.partial")
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.replace(temporary, path)
