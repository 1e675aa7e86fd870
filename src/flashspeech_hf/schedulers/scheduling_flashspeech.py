"""Consistency scheduler for FlashSpeech: Karras sigmas, the consistency parametrization and 1/2/N-step sampling."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

from ..configuration_utils import DropLegacyConfigKeysMixin

PAPER_TWO_STEP_SIGMA = 2.0
"""The intermediate level of two-step sampling in the FlashSpeech paper (the default `two_step_sigma`)."""

LEGACY_TRAINING_KEYS = ("s0", "s1", "total_training_steps", "p_mean", "p_std")
"""Keys of the improved-consistency-training curriculum that older `scheduler_config.json` files carry; the curriculum
now lives in `flashspeech_hf.training_utils.ConsistencyTrainingCurriculum` and loading drops them."""


def karras_sigmas(
    ramp: torch.Tensor | float, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> torch.Tensor:
    """
    The Karras noise schedule at positions `ramp` in [0, 1]: `(sigma_min^(1/rho) + ramp (sigma_max^(1/rho) -
    sigma_min^(1/rho)))^rho`, so 0 maps to `sigma_min` and 1 to `sigma_max` (Karras et al. 2022, eq. 5).

    Args:
        ramp (`torch.Tensor` of any shape, or `float`): Positions in [0, 1].
        sigma_min (`float`, defaults to 0.002), sigma_max (`float`, defaults to 80.0), rho (`float`, defaults to 7.0):
            The schedule's ends and exponent.

    Returns:
        `torch.Tensor` shaped like `ramp`, float64.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf.schedulers.scheduling_flashspeech import karras_sigmas

    >>> [round(s, 6) for s in karras_sigmas(torch.linspace(0, 1, 3, dtype=torch.float64)).tolist()]
    [0.002, 2.515219, 80.0]
    ```
    """
    ramp = torch.as_tensor(ramp, dtype=torch.float64)
    min_inv, max_inv = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (min_inv + ramp * (max_inv - min_inv)) ** rho


def consistency_scalings(
    sigma: torch.Tensor, sigma_data: float, sigma_min: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    EDM/consistency-model scalings with the boundary condition `f(x, sigma_min) = x`.

    `c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2)`,
    `c_out = (sigma - sigma_min) sigma_data / sqrt(sigma_data^2 + sigma^2)`, `c_in = 1 / sqrt(sigma^2 + sigma_data^2)`.

    Args:
        sigma (`torch.Tensor` of any shape): Noise levels.
        sigma_data (`float`): Standard deviation of the data.
        sigma_min (`float`): The boundary noise level.

    Returns:
        `(c_skip, c_out, c_in)`, each shaped like `sigma`.
    """
    c_skip = sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)
    c_out = (sigma - sigma_min) * sigma_data / torch.sqrt(sigma_data**2 + sigma**2)
    c_in = 1.0 / torch.sqrt(sigma**2 + sigma_data**2)
    return c_skip, c_out, c_in


def noise_conditioning(sigma: torch.Tensor) -> torch.Tensor:
    """`c_noise = 1000 * 0.25 * ln(sigma)`: the iCT noise input, scaled by 1000 for the sinusoidal embedding."""
    return 1000.0 * 0.25 * torch.log(sigma.clamp_min(1e-20))


def _per_item(sigma: torch.Tensor | float, sample: torch.Tensor) -> torch.Tensor:
    """`sigma` as a float32 tensor of shape `(batch,)` on `sample`'s device (a scalar is shared by every item)."""
    sigma = torch.as_tensor(sigma, device=sample.device, dtype=torch.float32)
    if sigma.ndim == 0:
        sigma = sigma.expand(sample.shape[0])
    if sigma.shape != (sample.shape[0],):
        raise ValueError(f"`sigma` must be a scalar or have shape ({sample.shape[0]},), got {tuple(sigma.shape)}.")
    return sigma


def _broadcast(scale: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """A per-item `(batch,)` scale reshaped to `(batch, 1, ..., 1)` and cast to `sample`'s dtype."""
    return scale.reshape(-1, *([1] * (sample.ndim - 1))).to(sample.dtype)


@dataclass
class FlashSpeechSchedulerOutput(BaseOutput):
    """
    Output of [`FlashSpeechScheduler.step`].

    Args:
        prev_sample (`torch.Tensor` of shape `(batch_size, num_channels, num_frames)`):
            The sample at the next (lower) noise level, input to the next network evaluation. After the last step it
            equals `denoised`.
        denoised (`torch.Tensor` of shape `(batch_size, num_channels, num_frames)`):
            The consistency model's estimate of the clean sample at this step: `c_skip * sample + c_out *
            model_output` (with `known_sample` pasted where `known_mask` is True).
    """

    prev_sample: torch.Tensor
    denoised: torch.Tensor


class FlashSpeechScheduler(DropLegacyConfigKeysMixin, SchedulerMixin, ConfigMixin):
    """
    Sampling schedule and consistency parametrization of the latent consistency model of FlashSpeech.

    Noise levels are continuous EDM sigmas (no discrete DDPM alphas and no clamping of the denoised estimate: codec
    latents are not bounded). As in diffusers' `CMStochasticIterativeScheduler`, the scheduler owns the consistency
    parametrization `f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma))` and the models
    return their raw output `F`: [`~FlashSpeechScheduler.scale_model_input`] applies `c_in`, the `timesteps` given to
    the model are `c_noise = 1000 * 0.25 ln(sigma)` ([`~FlashSpeechScheduler.sigma_to_t`]), and
    [`~FlashSpeechScheduler.step`] applies `c_skip` and `c_out` (the scalings of
    [`~FlashSpeechScheduler.get_scalings_for_boundary_condition`]) and re-noises. Training calls the same scalings
    per item ([`~FlashSpeechScheduler.precondition_inputs`], [`~FlashSpeechScheduler.precondition_noise`],
    [`~FlashSpeechScheduler.precondition_outputs`], named as in diffusers' `EDMEulerScheduler`). One-step sampling
    evaluates `f(sigma_max * z, sigma_max)`; multistep sampling re-noises each estimate to the next sigma with
    `sqrt(sigma^2 - sigma_min^2) * z` and applies `f` again (Song et al. 2023, Algorithm 1).

    Sigmas for `num_inference_steps`:
        - 1: `[sigma_max]`.
        - 2: `[sigma_max, two_step_sigma]` with `two_step_sigma = 2.0`, the intermediate level of the FlashSpeech paper.
          The Karras level at the same rank (3 points, rho 7) is about 2.5, so the two choices nearly agree.
        - N > 2: the first N of N + 1 Karras levels from `sigma_max` down to `sigma_min`.
        - Any explicit decreasing list given as `sigmas`.
        - With `strength` < 1 (voice conversion from a noised source), the first level moves down the Karras scale.

    Training draws its noise levels elsewhere (`flashspeech_hf.training_utils`): this config holds only what sampling
    needs. Configs saved by older versions with the training curriculum's keys (`s0`, `s1`, `total_training_steps`,
    `p_mean`, `p_std`) still load; those keys are dropped.

    This scheduler inherits from [`SchedulerMixin`] and [`ConfigMixin`]: it saves and loads with `save_pretrained` and
    `from_pretrained`.

    Args:
        sigma_min (`float`, defaults to 0.002): Smallest noise level (the consistency boundary).
        sigma_max (`float`, defaults to 80.0): Largest noise level; sampling starts there.
        sigma_data (`float`, defaults to 0.5): Standard deviation of the (normalized) data.
        rho (`float`, defaults to 7.0): Exponent of the Karras schedule.
        two_step_sigma (`float`, defaults to 2.0): Intermediate sigma of two-step sampling.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf import FlashSpeechScheduler

    >>> scheduler = FlashSpeechScheduler()
    >>> scheduler.set_timesteps(2)
    >>> scheduler.sigmas
    tensor([80.,  2.])
    >>> scheduler.timesteps  # c_noise = 250 ln(sigma), what the model is given
    tensor([1095.5310,  173.2868])
    >>> scheduler.set_timesteps(2, strength=0.5)  # voice conversion: start from a noised source
    >>> scheduler.sigmas
    tensor([2.5152, 2.0000])
    ```
    """

    # config-compatible: `CMStochasticIterativeScheduler.from_config(scheduler.config)` and back round-trip, and it
    # applies the same scalings and c_noise (`clip_denoised=False` for unbounded codec latents)
    _compatibles = ["CMStochasticIterativeScheduler"]
    _legacy_config_keys = {
        key: "the training curriculum, now `flashspeech_hf.training_utils.ConsistencyTrainingCurriculum`"
        for key in LEGACY_TRAINING_KEYS
    }
    order = 1

    @register_to_config
    def __init__(
        self,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        sigma_data: float = 0.5,
        rho: float = 7.0,
        two_step_sigma: float = PAPER_TWO_STEP_SIGMA,
    ):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"Need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}.")
        if not sigma_min < two_step_sigma < sigma_max:
            raise ValueError(f"two_step_sigma={two_step_sigma} must lie strictly between sigma_min and sigma_max.")
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be positive, got {sigma_data}.")
        self.init_noise_sigma = sigma_max
        self.num_inference_steps: int | None = None
        self.sigmas = torch.tensor([sigma_max], dtype=torch.float32)
        self.timesteps = self.sigma_to_t(self.sigmas)
        self._step_index: int | None = None
        self._begin_index: int | None = None

    def __len__(self) -> int:
        """Number of noise levels currently set (`len(self.timesteps)`)."""
        return len(self.timesteps)

    @property
    def step_index(self) -> int | None:
        """Index of the current sigma in `self.sigmas`; `None` before the first `step`."""
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        """Index of the first timestep, set by a pipeline with `set_begin_index`; `None` when not set."""
        return self._begin_index

    # Copied from diffusers.schedulers.scheduling_dpmsolver_multistep.DPMSolverMultistepScheduler.set_begin_index
    def set_begin_index(self, begin_index: int = 0) -> None:
        """
        Sets the begin index for the scheduler. This function should be run from pipeline before the inference.

        Args:
            begin_index (`int`, defaults to `0`):
                The begin index for the scheduler.
        """
        self._begin_index = begin_index

    def index_for_timestep(
        self, timestep: float | torch.Tensor, schedule_timesteps: torch.Tensor | None = None
    ) -> int:
        """
        Index of `timestep` in the schedule (adapted from diffusers' `EulerDiscreteScheduler.index_for_timestep`, but
        an unknown timestep raises instead of failing with an `IndexError`).

        Args:
            timestep (`float` or `torch.Tensor`): A sigma of the schedule.
            schedule_timesteps (`torch.Tensor`, *optional*): The schedule to search; defaults to `self.timesteps`.

        Returns:
            `int`: its index (the second match if it occurs twice, as in diffusers).
        """
        if schedule_timesteps is None:
            schedule_timesteps = self.timesteps
        timestep = torch.as_tensor(timestep, device=schedule_timesteps.device, dtype=schedule_timesteps.dtype)
        indices = (schedule_timesteps == timestep).nonzero()
        if len(indices) == 0:
            raise ValueError(
                f"Timestep {float(timestep):g} is not one of the scheduler's timesteps {schedule_timesteps.tolist()}: "
                "pass an element of `scheduler.timesteps` (after `set_timesteps`)."
            )
        pos = 1 if len(indices) > 1 else 0
        return indices[pos].item()

    # Copied from diffusers.schedulers.scheduling_euler_discrete.EulerDiscreteScheduler._init_step_index
    def _init_step_index(self, timestep: float | torch.Tensor) -> None:
        """
        Initialize the step index for the scheduler based on the given timestep.

        Args:
            timestep (`float` or `torch.Tensor`):
                The current timestep to initialize the step index from.
        """
        if self.begin_index is None:
            if isinstance(timestep, torch.Tensor):
                timestep = timestep.to(self.timesteps.device)
            self._step_index = self.index_for_timestep(timestep)
        else:
            self._step_index = self._begin_index

    def karras_sigmas(self, num_levels: int) -> torch.Tensor:
        """
        `num_levels` Karras noise levels from `sigma_min` to `sigma_max`, increasing (see `karras_sigmas`).

        Args:
            num_levels (`int`): N, at least 2.

        Returns:
            `torch.Tensor` of shape `(num_levels,)`, float64.
        """
        if num_levels < 2:
            raise ValueError(f"num_levels must be >= 2, got {num_levels}.")
        ramp = torch.linspace(0, 1, num_levels, dtype=torch.float64)
        return karras_sigmas(ramp, self.config.sigma_min, self.config.sigma_max, self.config.rho)

    def get_scalings_for_boundary_condition(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        `c_skip` and `c_out` of the consistency parametrization (`f(x, sigma_min) = x`), as in diffusers'
        `CMStochasticIterativeScheduler`.

        Args:
            sigma (`torch.Tensor` of any shape): Noise levels.

        Returns:
            `(c_skip, c_out)`, each shaped like `sigma`.
        """
        c_skip, c_out, _ = consistency_scalings(sigma, self.config.sigma_data, self.config.sigma_min)
        return c_skip, c_out

    def sigma_to_t(self, sigmas: float | torch.Tensor) -> torch.Tensor:
        """The noise conditioning `c_noise = 1000 * 0.25 * ln(sigma)` that the networks are given, elementwise."""
        return noise_conditioning(torch.as_tensor(sigmas, dtype=torch.float32))

    def precondition_inputs(self, sample: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """
        The model's input `c_in(sigma) * sample`, per item (training; sampling goes through `scale_model_input`).

        Args:
            sample (`torch.Tensor` of shape `(batch_size, num_channels, num_frames)`): Noisy samples `x`.
            sigma (`torch.Tensor` of shape `(batch_size,)`, or a scalar): Noise level of each item.

        Returns:
            `torch.Tensor` shaped and typed like `sample`.
        """
        _, _, c_in = consistency_scalings(_per_item(sigma, sample), self.config.sigma_data, self.config.sigma_min)
        return _broadcast(c_in, sample) * sample

    def precondition_noise(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """The model's noise input `c_noise(sigma)` (the same as `sigma_to_t`), float32, shaped like `sigma`."""
        return self.sigma_to_t(sigma)

    def precondition_outputs(
        self, sample: torch.Tensor, model_output: torch.Tensor, sigma: torch.Tensor | float
    ) -> torch.Tensor:
        """
        The consistency function `f(x, sigma) = c_skip(sigma) x + c_out(sigma) F` from the model's raw output `F`,
        per item; `f(x, sigma_min) = x`.

        Args:
            sample (`torch.Tensor` of shape `(batch_size, num_channels, num_frames)`): The noisy samples `x`.
            model_output (`torch.Tensor` of the same shape): `F`, the model's output for `precondition_inputs(x)`.
            sigma (`torch.Tensor` of shape `(batch_size,)`, or a scalar): Noise level of each item.

        Returns:
            `torch.Tensor` of the same shape, in `sample`'s dtype or `model_output`'s if wider: with a float32
            `sample` the skip connection and scalings stay float32 whatever precision the model runs in.
        """
        c_skip, c_out, _ = consistency_scalings(
            _per_item(sigma, sample), self.config.sigma_data, self.config.sigma_min
        )
        return _broadcast(c_skip, sample) * sample + _broadcast(c_out, sample) * model_output

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        sigmas: list[float] | None = None,
        strength: float = 1.0,
    ) -> None:
        """
        Sets the decreasing sigmas to sample with (see the class docstring for the rule).

        Args:
            num_inference_steps (`int`, *optional*): Number of network evaluations, at least 1.
            device (`str` or `torch.device`, *optional*): Where to put `sigmas` and `timesteps`.
            sigmas (`list[float]`, *optional*): Explicit strictly decreasing sigmas within `[sigma_min, sigma_max]`;
                overrides `num_inference_steps`.
            strength (`float`, defaults to 1.0): In `(0, 1]`, for sampling from a noised clean sample (voice
                conversion). The first level moves down the Karras scale, linear in `sigma^(1/rho)`:
                `sigma_start = (sigma_min^(1/rho) + strength (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho`, so
                strength 1 starts at `sigma_max` and small strengths keep more of the sample (rho 7: 0.5 starts at
                about 2.5, 0.7 at 12, 0.9 at 45). The later levels are the levels of `num_inference_steps` below
                `sigma_start` (with 2 steps: `two_step_sigma`), so a low strength may use fewer evaluations.
        """
        if isinstance(strength, bool) or not (isinstance(strength, (int, float)) and 0 < strength <= 1):
            raise ValueError(f"`strength` must be a number in (0, 1], got {strength!r}.")
        if sigmas is not None:
            if strength != 1.0:
                raise ValueError("Pass either explicit `sigmas` or a `strength`, not both.")
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
        if strength != 1.0:
            config = self.config
            start = float(karras_sigmas(strength, config.sigma_min, config.sigma_max, config.rho))
            later = values.float()[1:]
            values = torch.cat([torch.tensor([start], dtype=torch.float64), later[later.double() < start].double()])
        self.num_inference_steps = len(values)
        self.sigmas = values.to(device=device, dtype=torch.float32)
        self.timesteps = self.sigma_to_t(self.sigmas)
        self._step_index = None
        self._begin_index = None

    def scale_model_input(self, sample: torch.Tensor, timestep: float | torch.Tensor) -> torch.Tensor:
        """
        Scales the sample of the current step by `c_in(sigma) = 1 / sqrt(sigma^2 + sigma_data^2)`, the model's input.

        Args:
            sample (`torch.Tensor` of shape `(batch_size, num_channels, num_frames)`): The noisy sample `x`.
            timestep (`float` or `torch.Tensor`): The current timestep (an element of `self.timesteps`).

        Returns:
            `torch.Tensor` shaped and typed like `sample`.
        """
        if self.step_index is None:
            self._init_step_index(timestep)
        return self.precondition_inputs(sample, self.sigmas[self.step_index])

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
        known_sample: torch.Tensor | None = None,
        known_mask: torch.Tensor | None = None,
    ) -> FlashSpeechSchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """
        Moves from the current sigma to the next one: the denoised estimate `c_skip * sample + c_out * model_output`,
        re-noised to the next sigma (`sqrt(sigma_next^2 - sigma_min^2) * noise`) unless this was the last one.

        Args:
            model_output (`torch.Tensor` of shape `(batch_size, num_channels, num_frames)`):
                The model's raw output `F` for `scale_model_input(sample, timestep)`.
            timestep (`float` or `torch.Tensor`): The current timestep (an element of `self.timesteps`; another
                value raises a `ValueError`).
            sample (`torch.Tensor` of the same shape): The noisy sample of this step (before `scale_model_input`).
            noise (`torch.Tensor` of the same shape, *optional*): Standard Gaussian noise for re-noising. Pass it to
                control each item's noise (the pipeline draws it per item); otherwise it is drawn with `generator`.
            generator (`torch.Generator`, *optional*): Random generator for the re-noising draw.
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechSchedulerOutput`] rather than a tuple.
            known_sample (`torch.Tensor` of the same shape, *optional*), known_mask (`torch.BoolTensor`
                broadcastable to it, *optional*): Inpainting (speech editing): where `known_mask` is True the estimate
                is `known_sample`, before re-noising (as diffusers' `RePaintScheduler` takes `original_image` and
                `mask`). Pass both or neither.

        Returns:
            [`FlashSpeechSchedulerOutput`] or `(prev_sample, denoised)`.
        """
        if self.num_inference_steps is None:
            raise ValueError("Call `set_timesteps` before `step`.")
        if (known_sample is None) != (known_mask is None):
            raise ValueError("Pass both `known_sample` and `known_mask`, or neither.")
        if self.step_index is None:
            self._init_step_index(timestep)
        denoised = self.precondition_outputs(sample, model_output, self.sigmas[self._step_index])
        if known_sample is not None:
            denoised = torch.where(known_mask, known_sample.to(denoised.dtype), denoised)
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
