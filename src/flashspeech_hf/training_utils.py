"""Training helpers that sampling does not need (kept out of the scheduler's config): noise-level draws."""

from __future__ import annotations

import os

import torch

__all__ = ["idle_cpu_count", "sample_denoising_sigmas"]


def sample_denoising_sigmas(
    batch_size: int,
    generator: torch.Generator | None = None,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_min: float = 0.004,
    sigma_max: float = 80.0,
    max_sigma_fraction: float = 0.2,
) -> torch.Tensor:
    """
    Noise levels for the denoising objective: EDM's lognormal `ln sigma ~ N(p_mean, p_std^2)` clipped to
    `[sigma_min, sigma_max]`, with a share `max_sigma_fraction` of the items set to exactly `sigma_max`, the level that
    one-step sampling starts from (a lognormal alone almost never draws it).

    Args:
        batch_size (`int`): Number of items.
        generator (`torch.Generator`, *optional*): CPU generator for the draws.
        p_mean (`float`, defaults to -1.2), p_std (`float`, defaults to 1.2): Lognormal parameters (EDM's).
        sigma_min (`float`, defaults to 0.004): Lower clip; must exceed the model's boundary level (0.002).
        sigma_max (`float`, defaults to 80.0): Upper clip and the level of the forced share.
        max_sigma_fraction (`float`, defaults to 0.2): Probability that an item is drawn at `sigma_max`.

    Returns:
        `torch.Tensor` of shape `(batch_size,)`, float32.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf.training_utils import sample_denoising_sigmas

    >>> sigmas = sample_denoising_sigmas(8, torch.Generator().manual_seed(0))
    >>> bool(((sigmas >= 0.004) & (sigmas <= 80.0)).all())
    True
    ```
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"Need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}.")
    if not 0 <= max_sigma_fraction <= 1:
        raise ValueError(f"`max_sigma_fraction` must be in [0, 1], got {max_sigma_fraction}.")
    log_sigma = torch.randn(batch_size, generator=generator) * p_std + p_mean
    sigma = log_sigma.exp().clamp(sigma_min, sigma_max)
    at_max = torch.rand(batch_size, generator=generator) < max_sigma_fraction
    return torch.where(at_max, torch.full_like(sigma, sigma_max), sigma).float()


def idle_cpu_count() -> int:
    """
    The number of CPU cores not busy with other work, from the 1-minute load average: at least 1, at most the cores
    this process may run on. A default for `torch.set_num_threads` in scripts that share a machine: OpenMP threads
    that outnumber the idle cores spin against the other jobs and can slow a step many times over.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))
