"""Prosody statistics, the backend of the `prosody_jsd.py` metric: pitch, quantized histograms, Jensen-Shannon divergence.

The paper compares the distribution of pitch (and of phoneme durations) in synthesized speech with that of the ground
truth by their Jensen-Shannon divergence: lower means the generated prosody covers the real distribution better.
Pitch is estimated with WORLD (`pyworld`) on voiced frames and quantized into log-spaced bins, as the prosody
generator quantizes pitch (512 bins from 50 to 1100 Hz).
"""

from __future__ import annotations

import numpy as np
import torch

PITCH_METHODS = ("dio", "harvest")


def extract_pitch(
    waveform: torch.Tensor | np.ndarray,
    sampling_rate: int,
    method: str = "dio",
    frame_period: float = 10.0,
    f0_min: float = 50.0,
    f0_max: float = 1100.0,
) -> np.ndarray:
    """Estimates the fundamental frequency of speech with WORLD.

    Args:
        waveform (`torch.Tensor` or `np.ndarray` of shape `(num_samples,)`): Mono speech.
        sampling_rate (`int`): Its sample rate in Hz.
        method (`str`, *optional*, defaults to `"dio"`):
            `"dio"` (DIO refined by StoneMask: fast) or `"harvest"` (slower, fewer voicing errors).
        frame_period (`float`, *optional*, defaults to 10.0): Hop between pitch frames in milliseconds.
        f0_min (`float`, *optional*, defaults to 50.0): Lowest pitch searched, in Hz.
        f0_max (`float`, *optional*, defaults to 1100.0): Highest pitch searched, in Hz.

    Returns:
        `np.ndarray` of shape `(num_frames,)`: pitch in Hz per frame, 0 on unvoiced frames.

    Examples:

    ```py
    >>> import numpy as np
    >>> from flashspeech_hf.metrics import extract_pitch
    >>> time = np.arange(16000) / 16000
    >>> f0 = extract_pitch(0.5 * np.sin(2 * np.pi * 220 * time), 16000)
    >>> bool(abs(np.median(f0[f0 > 0]) - 220) < 5)
    True
    ```
    """
    try:
        import pyworld
    except ImportError as err:
        raise ImportError(
            "Pitch extraction needs `pip install pyworld` (pyworld 0.3.5 also imports `pkg_resources`, which "
            "setuptools >= 81 no longer ships: `pip install 'setuptools<81'`)."
        ) from err
    if method not in PITCH_METHODS:
        raise ValueError(f"`method` must be one of {PITCH_METHODS}, got {method!r}.")
    if not 0 < f0_min < f0_max:
        raise ValueError(f"Need 0 < f0_min < f0_max, got f0_min={f0_min}, f0_max={f0_max}.")
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu().numpy()
    signal = np.ascontiguousarray(waveform, dtype=np.float64)
    if signal.ndim != 1:
        raise ValueError(f"`waveform` must have shape (num_samples,), got {signal.shape}.")
    if method == "dio":
        f0, times = pyworld.dio(signal, sampling_rate, f0_floor=f0_min, f0_ceil=f0_max, frame_period=frame_period)
        f0 = pyworld.stonemask(signal, f0, times, sampling_rate)
    else:
        f0, _ = pyworld.harvest(signal, sampling_rate, f0_floor=f0_min, f0_ceil=f0_max, frame_period=frame_period)
    return f0


def pitch_histogram(f0: np.ndarray, num_bins: int = 512, f0_min: float = 50.0, f0_max: float = 1100.0) -> np.ndarray:
    """Distribution of voiced pitch over log-spaced bins.

    Args:
        f0 (`np.ndarray` of shape `(num_frames,)`): Pitch in Hz; frames at 0 (unvoiced) are ignored.
        num_bins (`int`, *optional*, defaults to 512): Number of bins, log-spaced from `f0_min` to `f0_max`.
        f0_min (`float`, *optional*, defaults to 50.0): Lower edge of the first bin in Hz.
        f0_max (`float`, *optional*, defaults to 1100.0): Upper edge of the last bin in Hz.

    Returns:
        `np.ndarray` of shape `(num_bins,)`: bin probabilities summing to 1. Values outside the range count in the
        first or last bin.

    Raises:
        `ValueError`: when `f0` has no voiced frame.
    """
    if num_bins < 1:
        raise ValueError(f"`num_bins` must be positive, got {num_bins}.")
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0[f0 > 0]
    if voiced.size == 0:
        raise ValueError("no voiced frame (no pitch found; is this speech?).")
    edges = np.geomspace(f0_min, f0_max, num_bins + 1)
    counts, _ = np.histogram(np.clip(voiced, f0_min, f0_max), bins=edges)
    return counts / counts.sum()


def duration_bin_edges(durations: list[np.ndarray], num_bins: int = 50) -> np.ndarray:
    """Bin edges shared by several sets of durations.

    Integer durations (frame counts) get one bin per integer from 0 to the largest value; other durations (seconds)
    get `num_bins` equal bins from 0 to the largest value.

    Args:
        durations (`list[np.ndarray]`): Duration arrays of any shape.
        num_bins (`int`, *optional*, defaults to 50): Number of bins for non-integer durations.

    Returns:
        `np.ndarray` of shape `(num_edges,)`.
    """
    values = np.concatenate([np.asarray(d, dtype=np.float64).ravel() for d in durations])
    largest = float(values.max()) if values.size else 1.0
    if values.size and np.all(values == np.round(values)):
        return np.arange(-0.5, largest + 1.0)
    return np.linspace(0.0, max(largest, 1e-9), num_bins + 1)


def duration_histogram(durations: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Distribution of phoneme durations over given bin edges.

    Args:
        durations (`np.ndarray` of shape `(num_phonemes,)`): Non-negative durations (frames or seconds).
        edges (`np.ndarray` of shape `(num_bins + 1,)`): Bin edges, e.g. from [`duration_bin_edges`].

    Returns:
        `np.ndarray` of shape `(num_bins,)`: bin probabilities summing to 1 (values past the last edge count in the
        last bin).
    """
    durations = np.asarray(durations, dtype=np.float64).ravel()
    if durations.size == 0:
        raise ValueError("no durations (empty array).")
    if not np.all(np.isfinite(durations)) or np.any(durations < 0):
        raise ValueError("durations must be finite and non-negative.")
    counts, _ = np.histogram(np.clip(durations, edges[0], edges[-1]), bins=edges)
    return counts / counts.sum()


def jensen_shannon_divergence(p: np.ndarray, q: np.ndarray, base: float | None = None) -> float:
    """Jensen-Shannon divergence between two discrete distributions (not its square root, the JS distance).

    `JSD(P, Q) = KL(P || M) / 2 + KL(Q || M) / 2` with `M = (P + Q) / 2`. It is 0 for identical distributions and at
    most `log(2)` in the chosen base: ln 2 ~ 0.693 nats with the natural logarithm (the default), 1 bit with `base=2`.

    Args:
        p (`np.ndarray` of shape `(num_bins,)`): Probabilities (normalized here if they do not sum to 1).
        q (`np.ndarray` of shape `(num_bins,)`): Probabilities over the same bins.
        base (`float`, *optional*): Logarithm base; natural logarithm when `None`.

    Returns:
        `float`: The divergence.

    Examples:

    ```py
    >>> from flashspeech_hf.metrics import jensen_shannon_divergence
    >>> jensen_shannon_divergence([0.5, 0.5, 0.0], [0.5, 0.5, 0.0])
    0.0
    >>> round(jensen_shannon_divergence([1.0, 0.0], [0.0, 1.0], base=2), 6)
    1.0
    ```
    """
    from scipy.spatial.distance import jensenshannon

    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"`p` and `q` must have the same bins, got shapes {p.shape} and {q.shape}.")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("`p` and `q` must each have positive mass.")
    # scipy returns the Jensen-Shannon distance, the square root of the divergence.
    return float(jensenshannon(p, q, base=base)) ** 2
