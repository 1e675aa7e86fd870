"""Consistency scheduler for FlashSpeech: Karras sigmas, 1/2/N-step sampling and improved consistency training."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput


@dataclass
class FlashSpeechSchedulerOutput(BaseOutput):
    """
    Output of [`FlashSpeechScheduler.step`].

    Args:
        prev_sample (`torch.Tensor` of shape `(batch_size, num_channels, num_frames)`):
            The sample at the next (lower) noise level, input to the next network evaluation. After the last step it
            equals `denoised`.
        denoised (`torch.Tensor` of shape `(batch_size, num_channels, num_frames)`):
            The consistency model's estimate of the clean sample at this step.
    """

    prev_sample: torch.Tensor
    denoised: torch.Tensor


class FlashSpeechScheduler(SchedulerMixin, ConfigMixin):
    """
    Sampling and training schedule of the latent consistency model of FlashSpeech.

    Noise levels are continuous EDM sigmas (no discrete DDPM alphas and no clamping of the denoised estimate: codec
    latents are not bounded). The model given to [`~FlashSpeechScheduler.step`] is the consistency function itself:
    its output is the denoised estimate `f(x, sigma)`. One-step sampling evaluates `f(sigma_max * z, sigma_max)`;
    multistep sampling re-noises each estimate to the next sigma with `sqrt(sigma^2 - sigma_min^2) * z` and applies `f`
    again (Song et al. 2023, Algorithm 1).

    Sigmas for `num_inference_steps`:
        - 1: `[sigma_max]`.
        - 2: `[sigma_max, two_step_sigma]` with `two_step_sigma = 2.0`, the intermediate level of the FlashSpeech paper.
          The Karras level at the same rank (3 points, rho 7) is about 2.5, so the two choices nearly agree.
        - N > 2: the first N of N + 1 Karras levels from `sigma_max` down to `sigma_min`.
        - Any explicit decreasing list given as `sigmas`.

    The training helpers implement improved consistency training (iCT, Song & Dhariwal 2023): the discretization
    curriculum `N(k) = min(s0 * 2^floor(k / K'), s1) + 1` with `K' = floor(K / (log2(floor(s1 / s0)) + 1))`, Karras
    training levels, level indices drawn from a discretized lognormal and the loss weight `1 / (sigma_{i+1} - sigma_i)`.

    This scheduler inherits from [`SchedulerMixin`] and [`ConfigMixin`]: it saves and loads with `save_pretrained` and
    `from_pretrained`.

    Args:
        sigma_min (`float`, defaults to 0.002): Smallest noise level (the consistency boundary).
        sigma_max (`float`, defaults to 80.0): Largest noise level; sampling starts there.
        sigma_data (`float`, defaults to 0.5): Standard deviation of the (normalized) data.
        rho (`float`, defaults to 7.0): Exponent of the Karras schedule.
        two_step_sigma (`float`, defaults to 2.0): Intermediate sigma of two-step sampling.
        s0 (`int`, defaults to 10): Initial number of discretization steps of consistency training.
        s1 (`int`, defaults to 1280): Final number of discretization steps (160 for the prosody refinement stage).
        total_training_steps (`int`, defaults to 650000): `K`, the number of training steps the curriculum spans.
        p_mean (`float`, defaults to -1.1): Mean of the lognormal that level indices are drawn from.
        p_std (`float`, defaults to 2.0): Standard deviation of that lognormal.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf import FlashSpeechScheduler

    >>> scheduler = FlashSpeechScheduler()
    >>> scheduler.set_timesteps(2)
    >>> scheduler.sigmas
    tensor([80.,  2.])
    >>> scheduler.num_discretization_steps(0)
    11
    ```
    """

    order = 1

    @register_to_config
    def __init__(
        self,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        sigma_data: float = 0.5,
        rho: float = 7.0,
        two_step_sigma: float = 2.0,
        s0: int = 10,
        s1: int = 1280,
        total_training_steps: int = 650000,
        p_mean: float = -1.1,
        p_std: float = 2.0,
    ):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"Need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}.")
        if not sigma_min < two_step_sigma < sigma_max:
            raise ValueError(f"two_step_sigma={two_step_sigma} must lie strictly between sigma_min and sigma_max.")
        if s0 < 1 or s1 < s0:
            raise ValueError(f"Need 1 <= s0 <= s1, got s0={s0}, s1={s1}.")
        self.init_noise_sigma = sigma_max
        self.num_inference_steps: int | None = None
        self.sigmas = torch.tensor([sigma_max], dtype=torch.float32)
        self.timesteps = self.sigmas.clone()
        self._step_index: int | None = None

    @property
    def step_index(self) -> int | None:
        """Index of the current sigma in `self.sigmas`; `None` before the first `step`."""
        return self._step_index

    def karras_sigmas(self, num_levels: int) -> torch.Tensor:
        """
        Karras noise levels from `sigma_min` to `sigma_max`, increasing.

        `sigma_i = (sigma_min^(1/rho) + (i - 1) / (N - 1) * (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho`, i = 1..N.

        Args:
            num_levels (`int`): N, at least 2.

        Returns:
            `torch.Tensor` of shape `(num_levels,)`, float64.
        """
        if num_levels < 2:
            raise ValueError(f"num_levels must be >= 2, got {num_levels}.")
        rho = self.config.rho
        ramp = torch.linspace(0, 1, num_levels, dtype=torch.float64)
        min_inv, max_inv = self.config.sigma_min ** (1 / rho), self.config.sigma_max ** (1 / rho)
        return (min_inv + ramp * (max_inv - min_inv)) ** rho

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        sigmas: list[float] | None = None,
    ) -> None:
        """
        Sets the decreasing sigmas to sample with (see the class docstring for the rule).

        Args:
            num_inference_steps (`int`, *optional*): Number of network evaluations, at least 1.
            device (`str` or `torch.device`, *optional*): Where to put `sigmas` and `timesteps`.
            sigmas (`list[float]`, *optional*): Explicit strictly decreasing sigmas within `[sigma_min, sigma_max]`;
                overrides `num_inference_steps`.
        """
        if sigmas is not None:
            values = torch.tensor(list(sigmas), dtype=torch.float64)
            if values.ndim != 1 or len(values) == 0:
                raise ValueError("`sigmas` must be a non-empty list of floats.")
            if (values[1:] >= values[:-1]).any():
                raise ValueError(f"`sigmas` must be strictly decreasing, got {list(sigmas)}.")
            if values.min() < self.config.sigma_min or values.max() > self.config.sigma_max:
                raise ValueError(f"`sigmas` must lie in [{self.config.sigma_min}, {self.config.sigma_max}].")
        elif num_inference_steps is None or int(num_inference_steps) != num_inference_steps or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be an integer >= 1, got {num_inference_steps}.")
        elif num_inference_steps == 1:
            values = torch.tensor([self.config.sigma_max], dtype=torch.float64)
        elif num_inference_steps == 2:
            values = torch.tensor([self.config.sigma_max, self.config.two_step_sigma], dtype=torch.float64)
        else:
            values = self.karras_sigmas(num_inference_steps + 1).flip(0)[:-1]
        self.num_inference_steps = len(values)
        self.sigmas = values.to(device=device, dtype=torch.float32)
        self.timesteps = self.sigmas.clone()
        self._step_index = None

    def scale_model_input(self, sample: torch.Tensor, timestep: float | torch.Tensor | None = None) -> torch.Tensor:
        """Identity: the consistency model applies `c_in` itself. Kept for interchangeability with other schedulers."""
        return sample

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, sigmas: float | torch.Tensor
    ) -> torch.Tensor:
        """
        Noises samples to the given levels: `x + sigma * noise`.

        Args:
            original_samples (`torch.Tensor` of shape `(batch_size, num_channels, num_frames)`): Clean samples.
            noise (`torch.Tensor` of the same shape): Standard Gaussian noise.
            sigmas (`float` or `torch.Tensor` of shape `(batch_size,)`): Noise level per item.

        Returns:
            `torch.Tensor` of the same shape as `original_samples`.
        """
        sigmas = torch.as_tensor(sigmas, device=original_samples.device, dtype=original_samples.dtype)
        while sigmas.ndim < original_samples.ndim:
            sigmas = sigmas.unsqueeze(-1)
        return original_samples + sigmas * noise

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> FlashSpeechSchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """
        Moves from the current sigma to the next one.

        Args:
            model_output (`torch.Tensor` of shape `(batch_size, num_channels, num_frames)`):
                The consistency function's output `f(sample, sigma)`, i.e. the denoised estimate.
            timestep (`float` or `torch.Tensor`): The current sigma (an element of `self.timesteps`).
            sample (`torch.Tensor` of the same shape): The noisy input of this step (unused by the update itself,
                which only re-noises the estimate; kept for the diffusers scheduler signature).
            noise (`torch.Tensor` of the same shape, *optional*): Standard Gaussian noise for re-noising. Pass it to
                control each item's noise (the pipeline draws it per item); otherwise it is drawn with `generator`.
            generator (`torch.Generator`, *optional*): Random generator for the re-noising draw.
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechSchedulerOutput`] rather than a tuple.

        Returns:
            [`FlashSpeechSchedulerOutput`] or `(prev_sample, denoised)`.
        """
        if self.num_inference_steps is None:
            raise ValueError("Call `set_timesteps` before `step`.")
        if self._step_index is None:
            matches = (self.timesteps - torch.as_tensor(timestep, dtype=self.timesteps.dtype).cpu()).abs() < 1e-6
            matches = matches.nonzero()
            self._step_index = int(matches[0]) if len(matches) else 0
        denoised = model_output
        if self._step_index + 1 < len(self.sigmas):
            next_sigma = float(self.sigmas[self._step_index + 1])
            if noise is None:
                noise = torch.randn(
                    sample.shape, generator=generator, device=sample.device if generator is None else generator.device
                ).to(sample.device, sample.dtype)
            scale = math.sqrt(max(next_sigma**2 - self.config.sigma_min**2, 0.0))
            prev_sample = denoised + scale * noise
        else:
            prev_sample = denoised
        self._step_index += 1
        if not return_dict:
            return prev_sample, denoised
        return FlashSpeechSchedulerOutput(prev_sample=prev_sample, denoised=denoised)

    # ----------------------------------------------------------------------------------------------------------------
    # Improved consistency training (iCT)
    # ----------------------------------------------------------------------------------------------------------------

    def num_discretization_steps(self, training_step: int, total_training_steps: int | None = None) -> int:
        """
        `N(k) = min(s0 * 2^floor(k / K'), s1) + 1` with `K' = floor(K / (log2(floor(s1 / s0)) + 1))`.

        Args:
            training_step (`int`): k, the current optimizer step.
            total_training_steps (`int`, *optional*): K; defaults to the config's `total_training_steps`.

        Returns:
            `int`: the number of noise levels used at step k.
        """
        total = self.config.total_training_steps if total_training_steps is None else total_training_steps
        s0, s1 = self.config.s0, self.config.s1
        k_prime = max(math.floor(total / (math.log2(math.floor(s1 / s0)) + 1)), 1)
        return min(s0 * 2 ** math.floor(training_step / k_prime), s1) + 1

    def training_sigmas(self, training_step: int, total_training_steps: int | None = None) -> torch.Tensor:
        """Increasing Karras levels `sigma_1..sigma_N(k)` of shape `(N(k),)`, float64, used at step k."""
        return self.karras_sigmas(self.num_discretization_steps(training_step, total_training_steps))

    def level_probabilities(self, sigmas: torch.Tensor) -> torch.Tensor:
        """
        Discretized lognormal over level pairs: `p(i) ∝ erf((ln s_{i+1} - P_mean) / (sqrt(2) P_std)) -
        erf((ln s_i - P_mean) / (sqrt(2) P_std))` for i = 0..N-2.

        Args:
            sigmas (`torch.Tensor` of shape `(N,)`): Increasing levels.

        Returns:
            `torch.Tensor` of shape `(N - 1,)` summing to 1.
        """
        scale = math.sqrt(2.0) * self.config.p_std
        cdf = torch.erf((torch.log(sigmas.double()) - self.config.p_mean) / scale)
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
            total_training_steps (`int`, *optional*): K; defaults to the config's.

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
