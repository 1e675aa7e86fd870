"""Shared helpers of the evaluation metrics: per-item audio loading with error capture, and NaN-aware means.

Evaluations run over hundreds of clips; one missing file or one silent clip must not lose the whole run. The helpers
here turn a bad item into `(None, "reason")` so that every metric can report a NaN score and an error string for that
item while scoring the others.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from ..audio import check_speech, load_audio

# The citation every metric module reports (`evaluate.MetricInfo.citation`).
FLASHSPEECH_CITATION = """\
@article{ye2024flashspeech,
  title={FlashSpeech: Efficient Zero-Shot Speech Synthesis},
  author={Ye, Zhen and Ju, Zeqian and Liu, Haohe and Tan, Xu and Chen, Jianyi and Lu, Yiwen and Sun, Peiwen and Pan,
          Jiahao and Bian, Weizhen and He, Shulin and others},
  journal={arXiv preprint arXiv:2404.14700},
  year={2024}
}
"""


def load_audio_items(
    audios: Sequence,
    sampling_rate: int | None,
    target_sampling_rate: int | None = None,
    name: str = "audio",
    min_seconds: float = 0.5,
) -> tuple[list[torch.Tensor | None], list[str | None]]:
    """Loads a list of clips, recording a reason instead of raising for every clip that cannot be used.

    Args:
        audios (`list` of `str`, `os.PathLike`, `np.ndarray`, `torch.Tensor` or `list[float]`):
            Paths to audio files, or 1-D waveforms of shape `(num_samples,)`.
        sampling_rate (`int`, *optional*):
            Sample rate of the waveforms in Hz. Required for waveforms; files carry their own.
        target_sampling_rate (`int`, *optional*):
            Resample every clip to this rate.
        name (`str`): Name of the argument, used in error messages (e.g. `"predictions"`).
        min_seconds (`float`): Shortest clip accepted as speech.

    Returns:
        `(waveforms, errors)`: for item `i`, either `waveforms[i]` is a float32 tensor of shape `(num_samples,)` and
        `errors[i]` is `None`, or `waveforms[i]` is `None` and `errors[i]` says why the clip was rejected.
    """
    waveforms: list[torch.Tensor | None] = []
    errors: list[str | None] = []
    for index, audio in enumerate(audios):
        item_name = f"{name}[{index}]"
        try:
            if audio is None:
                raise ValueError(f"`{item_name}` is missing (None).")
            if isinstance(audio, (list, tuple)):
                audio = np.asarray(audio, dtype=np.float32)
            is_file = isinstance(audio, (str, os.PathLike))
            waveform, rate = load_audio(
                audio,
                sampling_rate=None if is_file else sampling_rate,
                target_sampling_rate=target_sampling_rate,
                name=item_name,
            )
            check_speech(waveform, rate, min_seconds=min_seconds, name=item_name)
        except (FileNotFoundError, ValueError, TypeError) as err:
            waveforms.append(None)
            errors.append(str(err))
        else:
            waveforms.append(waveform)
            errors.append(None)
    return waveforms, errors


def check_same_length(**lists: Sequence) -> int:
    """Returns the common length of several lists, raising a `ValueError` that names them when they differ."""
    lengths = {key: len(value) for key, value in lists.items() if value is not None}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{key} ({length})" for key, length in lengths.items())
        raise ValueError(f"Mismatch in the number of items: {described}.")
    if not lengths or next(iter(lengths.values())) == 0:
        raise ValueError(f"Nothing to evaluate: {', '.join(lengths) or 'inputs'} are empty.")
    return next(iter(lengths.values()))


def nan_mean(values: Sequence[float]) -> float:
    """Mean over the finite values; NaN when there is none."""
    finite = [value for value in values if not math.isnan(value)]
    return float(np.mean(finite)) if finite else float("nan")


def merge_errors(*error_lists: Sequence[str | None]) -> list[str | None]:
    """Joins the per-item errors of several inputs: `None` where all are fine, else the messages joined by `"; "`."""
    merged = []
    for errors in zip(*error_lists):
        messages = [error for error in errors if error]
        merged.append("; ".join(messages) if messages else None)
    return merged
