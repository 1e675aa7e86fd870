"""Wall-clock timing of synthesis, end to end and per component: the backend of the `rtf.py` metric.

The real-time factor (RTF) is the processing time divided by the duration of the audio produced: 0.02 (the paper's
FlashSpeech on a V100) means one second of speech takes 20 ms to synthesize, and anything under 1 is faster than real
time.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


def _synchronize_accelerators() -> None:
    # Kernels run asynchronously: wait for them so that a section's time includes its work. Never initializes CUDA.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    if hasattr(torch, "mps") and torch.backends.mps.is_available():
        torch.mps.synchronize()


class RealTimeFactorTimer:
    r"""Accumulates the time spent in named sections of synthesis and the duration of the audio produced.

    Time components with `with timer("name"):` (e.g. `"text"`, `"prior"`, `"prosody"`, `"denoiser"`, `"codec_decode"`)
    and wrap the whole synthesis in `with timer("total"):` to measure it end to end, Python overhead included. Without
    a `"total"` section, the end-to-end time is the sum of the components. Components should not nest inside one
    another (only inside `"total"`), or their times would be counted twice. Sections accumulate over repeated
    entries, so a timer can run over a whole test set.

    Args:
        synchronize (`bool`, *optional*, defaults to `True`):
            Wait for pending GPU work (CUDA when already initialized, MPS) when a section starts and ends, so that
            asynchronous kernels are charged to the section that launched them.
        clock (`Callable[[], float]`, *optional*, defaults to `time.perf_counter`):
            Returns the current time in seconds.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf.metrics import RealTimeFactorTimer
    >>> timer = RealTimeFactorTimer()
    >>> with timer("total"):
    ...     with timer("denoiser"):
    ...         latents = torch.randn(1, 8, 100).tanh()
    ...     with timer("codec_decode"):
    ...         waveform = torch.randn(1, 16000)
    >>> timer.add_audio(num_samples=waveform.shape[-1], sampling_rate=16000)
    >>> report = timer.compute()
    >>> sorted(report["rtf_per_component"])
    ['codec_decode', 'denoiser']
    >>> report["audio_seconds"]
    1.0
    ```
    """

    TOTAL = "total"

    def __init__(self, synchronize: bool = True, clock: Callable[[], float] = time.perf_counter):
        self.synchronize = synchronize
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Forgets every recorded time and audio duration."""
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.audio_seconds = 0.0

    @contextmanager
    def __call__(self, name: str = TOTAL) -> Iterator[None]:
        """Times the enclosed block and adds it to section `name` (`"total"` for end to end)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"A section name must be a non-empty string, got {name!r}.")
        if self.synchronize:
            _synchronize_accelerators()
        start = self.clock()
        try:
            yield
        finally:
            if self.synchronize:
                _synchronize_accelerators()
            self.seconds[name] += self.clock() - start
            self.calls[name] += 1

    def add_audio(
        self, seconds: float | None = None, *, num_samples: int | None = None, sampling_rate: int | None = None
    ) -> None:
        """Records audio produced, either as `seconds` or as `num_samples` at `sampling_rate` Hz."""
        if seconds is None:
            if num_samples is None or sampling_rate is None:
                raise ValueError("Pass `seconds`, or both `num_samples` and `sampling_rate`.")
            if sampling_rate <= 0:
                raise ValueError(f"`sampling_rate` must be positive, got {sampling_rate}.")
            seconds = num_samples / sampling_rate
        elif num_samples is not None or sampling_rate is not None:
            raise ValueError("Pass either `seconds` or `num_samples` with `sampling_rate`, not both.")
        if not seconds >= 0:
            raise ValueError(f"Audio duration must be non-negative, got {seconds}.")
        self.audio_seconds += float(seconds)

    @property
    def components(self) -> dict[str, float]:
        """Seconds spent in each section other than `"total"`."""
        return {name: value for name, value in self.seconds.items() if name != self.TOTAL}

    @property
    def processing_seconds(self) -> float:
        """End-to-end seconds: the `"total"` section when timed, else the sum of the components."""
        if self.TOTAL in self.seconds:
            return self.seconds[self.TOTAL]
        return sum(self.components.values())

    def compute(self) -> dict:
        """Real-time factors of what was timed so far.

        Returns:
            `dict` with
            - `rtf` (`float`): processing seconds / audio seconds, end to end.
            - `rtf_per_component` (`dict[str, float]`): each section's seconds / audio seconds.
            - `processing_seconds`, `audio_seconds` (`float`): the totals.
            - `seconds_per_component` (`dict[str, float]`): seconds spent in each section.
            - `overhead_seconds` (`float`): with a `"total"` section, the end-to-end time not spent in any component
              (pipeline overhead); otherwise absent.

        Raises:
            `ValueError`: when no audio was recorded with [`add_audio`] (the factor would divide by zero).
        """
        if self.audio_seconds <= 0:
            raise ValueError("No audio recorded: call `add_audio` with the duration of the synthesized speech.")
        components = self.components
        report = {
            "rtf": self.processing_seconds / self.audio_seconds,
            "rtf_per_component": {name: value / self.audio_seconds for name, value in components.items()},
            "processing_seconds": self.processing_seconds,
            "audio_seconds": self.audio_seconds,
            "seconds_per_component": dict(components),
        }
        if self.TOTAL in self.seconds:
            report["overhead_seconds"] = self.seconds[self.TOTAL] - sum(components.values())
        return report
