"""Training helpers that sampling does not need (kept out of the scheduler's config): noise-level draws."""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from .schedulers.scheduling_flashspeech import karras_sigmas

__all__ = [
    "ConsistencyTrainingCurriculum",
    "EasyConsistencyTuningSchedule",
    "cpu_has_native_bf16",
    "idle_cpu_count",
    "lower_precision_attention",
    "resolve_mixed_precision",
    "sample_denoising_sigmas",
]


@dataclass(frozen=True)
class ConsistencyTrainingCurriculum:
    """
    The discretization curriculum and noise-level draws of improved consistency training (iCT, Song & Dhariwal 2023).

    At training step k the Karras levels `sigma_1..sigma_N(k)` (from the sampling schedule's `sigma_min`,
    `sigma_max` and `rho`) are used, with `N(k) = min(s0 * 2^floor(k / K'), s1) + 1` and
    `K' = floor(K / (log2(floor(s1 / s0)) + 1))`; the index of an adjacent pair is drawn from a discretized lognormal
    (`p_mean`, `p_std`) and the pair's loss weight is `1 / (sigma_{i+1} - sigma_i)`.

    Args:
        s0 (`int`, defaults to 10): Initial number of discretization steps.
        s1 (`int`, defaults to 1280): Final number of discretization steps (160 for the prosody refinement stage).
        total_training_steps (`int`, defaults to 650000): `K`, the number of training steps the curriculum spans.
        p_mean (`float`, defaults to -1.1), p_std (`float`, defaults to 2.0): The lognormal over levels.
        sigma_min (`float`, defaults to 0.002), sigma_max (`float`, defaults to 80.0), rho (`float`, defaults to 7.0):
            The Karras scale; take them from the scheduler with [`~ConsistencyTrainingCurriculum.from_scheduler`].

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf import FlashSpeechScheduler
    >>> from flashspeech_hf.training_utils import ConsistencyTrainingCurriculum

    >>> curriculum = ConsistencyTrainingCurriculum.from_scheduler(FlashSpeechScheduler(), s1=160)
    >>> curriculum.num_discretization_steps(0)
    11
    >>> low, high, weights = curriculum.sample_training_sigmas(4, 0, torch.Generator().manual_seed(0))
    >>> bool((high > low).all())
    True
    ```
    """

    s0: int = 10
    s1: int = 1280
    total_training_steps: int = 650000
    p_mean: float = -1.1
    p_std: float = 2.0
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def __post_init__(self):
        if self.s0 < 1 or self.s1 < self.s0:
            raise ValueError(f"Need 1 <= s0 <= s1, got s0={self.s0}, s1={self.s1}.")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"Need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}.")

    @classmethod
    def from_scheduler(cls, scheduler, **kwargs) -> ConsistencyTrainingCurriculum:
        """The curriculum over `scheduler`'s Karras scale (`sigma_min`, `sigma_max`, `rho`); `kwargs` set the rest."""
        config = scheduler.config
        return cls(sigma_min=config.sigma_min, sigma_max=config.sigma_max, rho=config.rho, **kwargs)

    def num_discretization_steps(self, training_step: int, total_training_steps: int | None = None) -> int:
        """
        `N(k) = min(s0 * 2^floor(k / K'), s1) + 1` with `K' = floor(K / (log2(floor(s1 / s0)) + 1))`.

        Args:
            training_step (`int`): k, the current optimizer step.
            total_training_steps (`int`, *optional*): K; defaults to `self.total_training_steps`.

        Returns:
            `int`: the number of noise levels used at step k.
        """
        total = self.total_training_steps if total_training_steps is None else total_training_steps
        k_prime = max(math.floor(total / (math.log2(math.floor(self.s1 / self.s0)) + 1)), 1)
        return min(self.s0 * 2 ** math.floor(training_step / k_prime), self.s1) + 1

    def training_sigmas(self, training_step: int, total_training_steps: int | None = None) -> torch.Tensor:
        """Increasing Karras levels `sigma_1..sigma_N(k)` of shape `(N(k),)`, float64, used at step k."""
        num_levels = self.num_discretization_steps(training_step, total_training_steps)
        ramp = torch.linspace(0, 1, num_levels, dtype=torch.float64)
        return karras_sigmas(ramp, self.sigma_min, self.sigma_max, self.rho)

    def level_probabilities(self, sigmas: torch.Tensor) -> torch.Tensor:
        """
        Discretized lognormal over level pairs: `p(i) ∝ erf((ln s_{i+1} - P_mean) / (sqrt(2) P_std)) -
        erf((ln s_i - P_mean) / (sqrt(2) P_std))` for i = 0..N-2.

        Args:
            sigmas (`torch.Tensor` of shape `(N,)`): Increasing levels.

        Returns:
            `torch.Tensor` of shape `(N - 1,)` summing to 1.
        """
        scale = math.sqrt(2.0) * self.p_std
        cdf = torch.erf((torch.log(sigmas.double()) - self.p_mean) / scale)
        weights = cdf[1:] - cdf[:-1]
        return weights / weights.sum()

    def sample_training_sigmas(
        self,
        batch_size: int,
        training_step: int,
        generator: torch.Generator | None = None,
        total_training_steps: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Draws adjacent level pairs for a consistency-training batch.

        Args:
            batch_size (`int`): Number of items.
            training_step (`int`): k, which fixes N(k).
            generator (`torch.Generator`, *optional*): Random generator for the draw.
            total_training_steps (`int`, *optional*): K; defaults to `self.total_training_steps`.

        Returns:
            `(sigma_i, sigma_{i+1}, weights)`, each a float32 tensor of shape `(batch_size,)`, with
            `weights = 1 / (sigma_{i+1} - sigma_i)`.
        """
        sigmas = self.training_sigmas(training_step, total_training_steps)
        probs = self.level_probabilities(sigmas)
        indices = torch.multinomial(probs.float(), batch_size, replacement=True, generator=generator)
        sigma_low, sigma_high = sigmas[indices], sigmas[indices + 1]
        return sigma_low.float(), sigma_high.float(), self.loss_weights(sigma_low, sigma_high).float()

    @staticmethod
    def loss_weights(sigma_low: torch.Tensor, sigma_high: torch.Tensor) -> torch.Tensor:
        """iCT loss weight `lambda(sigma_i) = 1 / (sigma_{i+1} - sigma_i)`, elementwise."""
        return 1.0 / (sigma_high - sigma_low)


@dataclass(frozen=True)
class EasyConsistencyTuningSchedule:
    """
    The noise-level pairs and weights of Easy Consistency Tuning (ECT, Geng et al. 2024, "Consistency models made
    easy", [arXiv:2406.14548](https://huggingface.co/papers/2406.14548)): consistency training as the continuation of
    diffusion (denoising) pretraining, with a gap between the two levels that starts at the denoising limit and
    shrinks over training.

    At training step k the larger level `t` is drawn as in the denoising phase ([`sample_denoising_sigmas`]: EDM's
    lognormal, a share at `sigma_max`), and the smaller one is `r = t * max(0, 1 - n(t) / q^a)` with the stage
    `a = ceil(k / d)`, `d = K / num_stages`, and `n(t) = 1 + k_n * sigmoid(-b * t)` (the paper's mapping function
    `r / t = 1 - n(t) / q^a`). At `a = 0` (step 0) `r = 0` for every `t`: the target is the clean latent
    (`f(x, 0) = x`), the denoising phase's target, so ECT starts where denoising left off. Each stage divides the gap
    `t - r` by `q`; with the defaults (`q = 2`, 8 stages) the last gap at large `t` is `t / 256`, close to iCT's
    adjacent Karras levels at 1280 steps near `sigma_max` (`~t / 234`). `n(t)` keeps the gap wider at small `t`, where
    `r` stays 0 for longer. The loss weight is `1 / (t - r)` (ECT's; with the pseudo-Huber distance this is the
    adaptive weighting of their CIFAR-10 recipe).

    A pair with `r = 0` means "the clean target": the caller uses the clean latents instead of evaluating the model
    there (`r` is then below the model's boundary level `sigma_min`; ECT does the same with a mask).

    Args:
        total_training_steps (`int`, defaults to 650000): `K`, the steps over which the stages are spread.
        num_stages (`int`, defaults to 8): Number of stages after the first step (`K / d`).
        q (`float`, defaults to 2.0): The gap shrinks by `q` at each stage.
        k (`float`, defaults to 8.0), b (`float`, defaults to 1.0): `n(t) = 1 + k * sigmoid(-b * t)`.
        p_mean (`float`, defaults to -1.2), p_std (`float`, defaults to 1.2), max_sigma_fraction (`float`, defaults to
            0.2): The draw of `t` (the denoising phase's defaults: use the same values as that phase).
        sigma_min (`float`, defaults to 0.002), sigma_max (`float`, defaults to 80.0): The model's levels; `t` lies in
            `[2 * sigma_min, sigma_max]`, and `r < sigma_min` is taken as `r = 0`.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf.training_utils import EasyConsistencyTuningSchedule

    >>> schedule = EasyConsistencyTuningSchedule(total_training_steps=800)
    >>> r, t, weights = schedule.sample_training_sigmas(4, 0, torch.Generator().manual_seed(0))
    >>> bool((r == 0).all())  # step 0: the denoising target
    True
    >>> schedule.stage(800)
    8
    ```
    """

    total_training_steps: int = 650000
    num_stages: int = 8
    q: float = 2.0
    k: float = 8.0
    b: float = 1.0
    p_mean: float = -1.2
    p_std: float = 1.2
    max_sigma_fraction: float = 0.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0

    def __post_init__(self):
        if self.total_training_steps < 1 or self.num_stages < 1:
            raise ValueError(
                f"Need total_training_steps >= 1 and num_stages >= 1, got {self.total_training_steps} and "
                f"{self.num_stages}."
            )
        if self.q <= 1 or self.k < 0 or self.b < 0:
            raise ValueError(f"Need q > 1, k >= 0 and b >= 0, got q={self.q}, k={self.k}, b={self.b}.")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"Need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}.")

    @classmethod
    def from_scheduler(cls, scheduler, **kwargs) -> EasyConsistencyTuningSchedule:
        """The schedule over `scheduler`'s levels (`sigma_min`, `sigma_max`); `kwargs` set the rest."""
        return cls(sigma_min=scheduler.config.sigma_min, sigma_max=scheduler.config.sigma_max, **kwargs)

    def stage(self, training_step: int, total_training_steps: int | None = None) -> int:
        """`a = ceil(k / d)` with `d = K / num_stages`, at most `num_stages` (0 only at step 0)."""
        total = self.total_training_steps if total_training_steps is None else total_training_steps
        return min(math.ceil(training_step * self.num_stages / total), self.num_stages)

    def teacher_sigmas(
        self, sigma: torch.Tensor, training_step: int, total_training_steps: int | None = None
    ) -> torch.Tensor:
        """
        `r = t * max(0, 1 - n(t) / q^a)`, with `r < sigma_min` set to 0 (the clean target).

        Args:
            sigma (`torch.Tensor` of any shape): The larger levels `t`.
            training_step (`int`): k, which fixes the stage `a`.
            total_training_steps (`int`, *optional*): K; defaults to `self.total_training_steps`.

        Returns:
            `torch.Tensor` of the shape and dtype of `sigma`.
        """
        decay = self.q ** -self.stage(training_step, total_training_steps)
        adjustment = 1 + self.k * torch.sigmoid(-self.b * sigma)
        r = sigma * (1 - decay * adjustment).clamp_min(0)
        return torch.where(r < self.sigma_min, torch.zeros_like(r), r)

    def sample_training_sigmas(
        self,
        batch_size: int,
        training_step: int,
        generator: torch.Generator | None = None,
        total_training_steps: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Draws ECT's level pairs for a batch (the signature of
        [`ConsistencyTrainingCurriculum.sample_training_sigmas`]).

        Returns:
            `(r, t, weights)`, each a float32 tensor of shape `(batch_size,)`, with `weights = 1 / (t - r)`; `r = 0`
            marks the clean target.
        """
        t = sample_denoising_sigmas(
            batch_size,
            generator,
            p_mean=self.p_mean,
            p_std=self.p_std,
            sigma_min=2 * self.sigma_min,
            sigma_max=self.sigma_max,
            max_sigma_fraction=self.max_sigma_fraction,
        ).double()
        r = self.teacher_sigmas(t, training_step, total_training_steps)
        return r.float(), t.float(), (1.0 / (t - r)).float()


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


# CPU feature flags (/proc/cpuinfo) of native bfloat16 arithmetic: x86 AVX512-BF16 / AMX-BF16, Arm BF16 (ARMv8.6)
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_has_native_bf16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """
    Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX-BF16 on x86, BF16 on Arm), read from the
    `flags`/`Features` lines of `cpuinfo_path`. Without them torch emulates bfloat16 matrix products on CPU, slower
    than float32, so mixed precision only pays where this is True. False where the file cannot be read.
    """
    try:
        with open(cpuinfo_path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features") and NATIVE_BF16_CPU_FLAGS & set(value.split()):
                    return True
    except OSError:
        pass
    return False


def resolve_mixed_precision(requested: str | None, device_type: str = "cpu") -> tuple[str, str | None]:
    """
    The mixed precision to train with: `"auto"` becomes `"bf16"` where the device computes in bfloat16 natively (a
    CPU with [`cpu_has_native_bf16`], a CUDA GPU with bfloat16 support) and `"no"` elsewhere; other values are
    returned unchanged (`None` as `"no"`).

    Returns:
        `(mixed_precision, note)`: `note` explains a fallback from `"auto"` to `"no"` (for the log), else None.
    """
    if requested != "auto":
        return requested or "no", None
    if device_type == "cuda":
        supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    else:
        supported = device_type == "cpu" and cpu_has_native_bf16()
    if supported:
        return "bf16", None
    return "no", (
        f"--mixed_precision auto: this {device_type} has no native bfloat16 arithmetic (AVX512-BF16, AMX or Arm BF16 "
        "on a CPU), so training runs in float32."
    )


def lower_precision_attention(device_type: str, mixed_precision: str | None) -> contextlib.AbstractContextManager:
    """
    A context for the forward pass of a training step under autocast. On a CPU in `"bf16"` or `"fp16"` it routes
    `torch.nn.functional.scaled_dot_product_attention` (and so `nn.MultiheadAttention`) to its math backend: at this
    project's shapes (2 heads, 8-480 positions) the fused CPU flash-attention kernel's forward and backward run 2-4x
    slower in bfloat16 than in float32, while the math backend in bfloat16 is faster than either (benchmarks/README.md,
    issue 23). Inference keeps the fused kernel, the faster one there. Elsewhere (float32, CUDA) the backends are
    left as torch chooses.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf.training_utils import lower_precision_attention

    >>> attention = torch.nn.MultiheadAttention(16, 2, batch_first=True)
    >>> x = torch.randn(2, 30, 16)
    >>> with torch.autocast("cpu", dtype=torch.bfloat16), lower_precision_attention("cpu", "bf16"):
    ...     out, _ = attention(x, x, x, need_weights=False)
    >>> out.dtype
    torch.bfloat16
    ```
    """
    if device_type == "cpu" and mixed_precision in ("bf16", "fp16"):
        return sdpa_kernel([SDPBackend.MATH])
    return contextlib.nullcontext()
