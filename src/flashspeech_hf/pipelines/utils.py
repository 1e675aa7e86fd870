"""
Public helpers shared by the FlashSpeech task pipelines: the limits of a call and the argument checks of their
`check_inputs` (each raises a `ValueError`/`TypeError` naming the argument and what to pass).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback

from .voice import FlashSpeechVoice

MIN_PROMPT_SECONDS = 1.0
MIN_SOURCE_SECONDS = 0.25
MAX_OUTPUT_SECONDS = 60.0
"""Default `max_output_seconds`: the longest waveform one call generates (longer text: split it into sentences)."""
MAX_PROMPT_SECONDS = 30.0
"""Default `max_prompt_seconds`: the longest speech prompt accepted (the paper uses 3 s prompts)."""
MAX_INFERENCE_STEPS = 1000
"""Most evaluations per sampled sequence (consistency models need 1-4)."""
MAX_BATCH_SIZE = 256
"""Most waveforms generated in one call (`len(text) * num_waveforms_per_prompt`)."""
SPEED_RANGE = (0.25, 4.0)
"""Accepted `speed` values (inclusive): from four times slower to four times faster than the predicted rate."""
MAX_CHARACTERS_PER_SECOND = 100
"""Text longer than this many characters per second of `max_output_seconds` cannot be spoken within it."""
GeneratorInput = torch.Generator | int | list[torch.Generator | int] | None


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value, name: str, low: int, high: int | None = None) -> int:
    """Raises unless `value` is an integer (not a bool) in `[low, high]`."""
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    if not _is_int(value) or value < low or (high is not None and value > high):
        raise ValueError(f"`{name}` must be an integer {bounds}, got {value!r}.")
    return int(value)


def check_float(
    value, name: str, low: float, high: float | None = None, low_open: bool = False, note: str = ""
) -> float:
    """Raises unless `value` is a finite real number in `[low, high]` (`(low, high]` with `low_open`)."""
    bounds = (
        ("> " if low_open else ">= ") + f"{low:g}"
        if high is None
        else f"in {'(' if low_open else '['}{low:g}, {high:g}]"
    )
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        raise ValueError(f"`{name}` must be a finite number {bounds}, got {value!r}.{note}")
    return float(value)


def as_generators(generator: GeneratorInput, batch_size: int) -> list[torch.Generator | None]:
    """
    One generator (or None) per output waveform, from `None`, a `torch.Generator`, an `int` seed (the same as
    `torch.Generator().manual_seed(seed)`) or a list of one of them per waveform. Raises a `TypeError`/`ValueError`
    naming what to pass.
    """

    def one(item, where: str) -> torch.Generator | None:
        if item is None or isinstance(item, torch.Generator):
            return item
        if _is_int(item):
            if not 0 <= item < 2**64:
                raise ValueError(f"A seed given as `generator`{where} must lie in [0, 2**64), got {item}.")
            return torch.Generator().manual_seed(int(item))
        raise TypeError(
            f"`generator`{where} must be a `torch.Generator` (e.g. `torch.Generator().manual_seed(0)`), an int seed "
            f"or None, got {type(item).__name__}."
        )

    if isinstance(generator, (list, tuple)):
        if len(generator) != batch_size:
            raise ValueError(
                f"Got {len(generator)} generators for {batch_size} waveforms; pass one per waveform "
                "(len(text) * num_waveforms_per_prompt) or a single generator."
            )
        return [one(g, f"[{i}]") for i, g in enumerate(generator)]
    return [one(generator, "")] * batch_size


def check_text_length(text: str, name: str, max_output_seconds: float) -> None:
    """Raises when `text` has more characters than any speaking rate fits in `max_output_seconds`."""
    max_characters = int(max_output_seconds * MAX_CHARACTERS_PER_SECOND)
    if len(text) > max_characters:
        raise ValueError(
            f"`{name}` has {len(text)} characters, more than can be spoken in `max_output_seconds`="
            f"{max_output_seconds:g} s (at most {max_characters}): split it into sentences with "
            "`pipe.long_form(text, prompt_audio)` (or synthesize them one at a time), or raise `max_output_seconds`."
        )


def check_output_type(output_type, return_dict, allowed: Sequence[str] = ("np", "pt", "latent")) -> None:
    if output_type not in allowed:
        raise ValueError(f"`output_type` must be one of {', '.join(repr(a) for a in allowed)}, got {output_type!r}.")
    if not isinstance(return_dict, bool):
        raise ValueError(f"`return_dict` must be True or False, got {return_dict!r}.")


def check_callback(callback_on_step_end, tensor_inputs, allowed: Sequence[str]) -> list[str]:
    """Validates `callback_on_step_end` and its tensor names; returns the names (a `PipelineCallback`'s own)."""
    if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
        tensor_inputs = callback_on_step_end.tensor_inputs
    if callback_on_step_end is not None and not callable(callback_on_step_end):
        raise TypeError(
            "`callback_on_step_end` must be a callable `(pipe, step, timestep, callback_kwargs) -> dict`, got "
            f"{type(callback_on_step_end).__name__}."
        )
    tensor_inputs = list(tensor_inputs)
    unknown = [name for name in tensor_inputs if name not in allowed]
    if unknown:
        raise ValueError(f"`callback_on_step_end_tensor_inputs` has {unknown}; the callback can get {list(allowed)}.")
    return tensor_inputs


def check_latents(latents, batch_size: int, latent_dim: int) -> None:
    """Raises unless `latents` is None or a finite float tensor of shape `(batch_size, latent_dim, frames)`."""
    if latents is None:
        return
    if not isinstance(latents, torch.Tensor) or not latents.is_floating_point():
        raise TypeError(f"`latents` must be a float torch.Tensor, got {type(latents).__name__}.")
    if latents.ndim != 3 or latents.shape[:2] != (batch_size, latent_dim):
        raise ValueError(
            f"`latents` must have shape ({batch_size}, {latent_dim}, num_frames) (one row per output waveform), got "
            f"{tuple(latents.shape)}."
        )
    if not torch.isfinite(latents).all():
        raise ValueError("`latents` holds NaN or infinite values.")


def check_voice_or_audio(voice, audio, audio_name: str) -> None:
    """
    Raises unless exactly one of `voice` (a [`FlashSpeechVoice`] or a list of them) and the prompt audio argument
    `audio_name` is given.
    """
    if voice is None and audio is None:
        raise ValueError(f"Give the target voice: `{audio_name}` (audio) or `voice` (from `pipe.encode_voice`).")
    if voice is not None and audio is not None:
        raise ValueError(f"Give either `{audio_name}` or `voice`, not both.")
    for i, v in enumerate(voice if isinstance(voice, (list, tuple)) else [voice]):
        if v is not None and not isinstance(v, FlashSpeechVoice):
            raise TypeError(
                f"`voice` must be a FlashSpeechVoice (`pipe.encode_voice(...)` or `FlashSpeechVoice.load(path)`), "
                f"got {type(v).__name__}" + (f" at index {i}." if isinstance(voice, (list, tuple)) else ".")
            )
