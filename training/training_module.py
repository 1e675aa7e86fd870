# Copyright 2026 The flashspeech-hf Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The losses of one FlashSpeech training step, as one `nn.Module` for `accelerator.prepare`.

[`FlashSpeechTrainingModule`] holds the prior encoder, the prosody generator and the denoiser (and the frozen codec),
and its `forward` computes a stage's losses from a collated batch. Every model call of the step happens inside that
`forward`, methods such as `predict_durations` or `refine_pitch` included, so the DistributedDataParallel wrapper that
`accelerator.prepare` puts around the module reduces the gradient of every trained parameter.

The SLM discriminator trains against the generator with its own optimizer, so it stays a model of its own (prepared
separately): `forward` scores the fake audio with the bare discriminator (the generator's loss) and returns what
[`discriminator_step_loss`] needs to train the discriminator through its own wrapper.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
from data_utils import split_prompt_from_target
from torch import nn

from flashspeech_hf import (
    FlashSpeechDenoiser,
    FlashSpeechPriorEncoder,
    FlashSpeechProsodyGenerator,
    FlashSpeechScheduler,
)
from flashspeech_hf.losses import (
    adaptive_adversarial_weight,
    consistency_training_loss,
    denoising_loss,
    discriminator_loss,
    duration_loss,
    generator_adversarial_loss,
    pitch_loss,
)
from flashspeech_hf.models.modeling_discriminator import FlashSpeechDiscriminator
from flashspeech_hf.models.modeling_prosody import length_regulate
from flashspeech_hf.training_utils import (
    ConsistencyTrainingCurriculum,
    EasyConsistencyTuningSchedule,
    sample_denoising_sigmas,
)

TRAINABLE_COMPONENTS = ("prior_encoder", "prosody_generator", "denoiser")


def check_stage_components(stage: int, train_components: Sequence[str] | None = None) -> list[str]:
    """
    The components a training stage trains, checked (the one place the stage and its components are validated): stage
    1 trains any non-empty subset of `TRAINABLE_COMPONENTS` (default: all three), stage 2 only the prosody
    generator's refiners (`["prosody_generator"]`, the default).

    Args:
        stage (`int`): 1 or 2.
        train_components (`Sequence[str]`, *optional*): The components asked for; `None` for the stage's default.

    Returns:
        `list[str]`: the components in `TRAINABLE_COMPONENTS` order.
    """
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage}.")
    if train_components is None:
        return ["prosody_generator"] if stage == 2 else list(TRAINABLE_COMPONENTS)
    components = list(train_components)
    unknown = sorted(set(components) - set(TRAINABLE_COMPONENTS))
    if unknown or not components:
        raise ValueError(f"train_components {components}: choose among {list(TRAINABLE_COMPONENTS)}.")
    if stage == 2 and components != ["prosody_generator"]:
        raise ValueError("stage 2 trains only the prosody refiners: train_components must be ['prosody_generator'].")
    return [name for name in TRAINABLE_COMPONENTS if name in components]


@dataclasses.dataclass
class TrainingLossConfig:
    """
    The settings of a stage's losses; each field is the training script's flag of the same name.

    Args:
        stage (`int`): 1 (prior encoder, prosody regression, denoiser) or 2 (the prosody refiners only).
        objective (`str`): Stage-1 denoiser loss, `"consistency"` (iCT) or `"denoising"` (EDM x0-regression).
        prompt_ratio_min (`float`), prompt_ratio_max (`float`): Range of the prompt's share of each utterance.
        huber_c (`float`): Pseudo-Huber constant of the consistency losses.
        lambda_duration (`float`), lambda_pitch (`float`): Weights of the prosody regression losses.
        denoising_p_mean (`float`), denoising_p_std (`float`), denoising_max_sigma_fraction (`float`): Noise levels
            of the denoising objective (see `flashspeech_hf.training_utils.sample_denoising_sigmas`).
        adversarial_start_step (`int`, *optional*): First step with the adversarial loss; None: never.
        lambda_adv (`float`): Scale of the adaptive adversarial weight.
        adv_segment_frames (`int`): Latent frames decoded for the discriminator.
        pad_to_multiple_of (`int`, *optional*): Phonemes, target and prompt frames padded up to a multiple of this
            (see `data_utils.split_prompt_from_target`): fewer distinct shapes, fewer kernels built on a CPU.
    """

    stage: int = 1
    objective: str = "consistency"
    prompt_ratio_min: float = 0.2
    prompt_ratio_max: float = 0.4
    huber_c: float = 0.03
    lambda_duration: float = 1.0
    lambda_pitch: float = 1.0
    denoising_p_mean: float = -1.2
    denoising_p_std: float = 1.2
    denoising_max_sigma_fraction: float = 0.2
    adversarial_start_step: int | None = None
    lambda_adv: float = 1.0
    adv_segment_frames: int = 64
    pad_to_multiple_of: int | None = None

    @classmethod
    def from_args(cls, args) -> TrainingLossConfig:
        """The fields of an `argparse.Namespace` (or any object) with attributes of the same names."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


@dataclasses.dataclass
class FlashSpeechTrainingOutput:
    """
    Output of [`FlashSpeechTrainingModule.forward`].

    Args:
        loss (`torch.Tensor`): Scalar to backpropagate, the weighted sum of the stage's losses.
        losses (`dict[str, torch.Tensor]`): Each term by name (`duration_loss`, `pitch_loss`, `ct_loss` or
            `denoising_loss`, `generator_adv_loss` and `adv_weight` in stage 1; `duration_refine_loss` and
            `pitch_refine_loss` in stage 2), scalars.
        adversarial (`dict[str, torch.Tensor]`, *optional*): At adversarial steps, the discriminator's inputs: `fake`
            and `real` waveforms `(batch_size, num_samples)` (`fake` still attached to the generator's graph) and the
            prompt's `prompt_features` `(batch_size, slm_hidden_size)` (None without prompt conditioning).
    """

    loss: torch.Tensor
    losses: dict[str, torch.Tensor]
    adversarial: dict[str, torch.Tensor | None] | None = None


def gather_segments(
    latents: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops `latents (B, C, F)` to `[starts, starts + lengths)` per item, right-padded: `(B, C, max_len)`, mask."""
    max_len = int(lengths.max())
    offsets = torch.arange(max_len)[None] + starts[:, None]
    mask = torch.arange(max_len)[None] < lengths[:, None]
    index = offsets.clamp(max=latents.shape[-1] - 1).to(latents.device)
    out = torch.gather(latents, 2, index[:, None, :].expand(-1, latents.shape[1], -1))
    return out * mask[:, None, :].to(latents.device, latents.dtype), mask.to(latents.device)


def add_noise(
    clean: torch.Tensor, sigmas: Sequence[torch.Tensor], mask: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, ...]:
    """`(clean + sigma z) * mask` for each of `sigmas` (each `(B,)`), all with the same draw `z` `(B, C, F)`."""
    noise = torch.randn(clean.shape, generator=generator).to(clean.device, clean.dtype)
    m = mask[:, None, :].to(clean.dtype)
    return tuple((clean + sigma[:, None, None] * noise) * m for sigma in sigmas)


class FlashSpeechTrainingModule(nn.Module):
    """
    The three trained FlashSpeech models and the losses of a training stage.

    The module sets which parameters train (`train_components`; in stage 1 never the prosody refiners, in stage 2
    only them) and keeps every fully frozen submodule in eval mode whatever `train()` asks, so frozen parts compute
    what they compute at inference. Random draws (the prompt cut, noise levels, noise, the adversarial window) come
    from the `generator` passed to `forward`, so the caller makes a step reproducible by seeding it.

    Args:
        prior_encoder ([`FlashSpeechPriorEncoder`]), prosody_generator ([`FlashSpeechProsodyGenerator`]),
        denoiser ([`FlashSpeechDenoiser`]): The models.
        codec (`nn.Module`): The frozen codec; it decodes latents for the adversarial loss.
        curriculum ([`~flashspeech_hf.training_utils.ConsistencyTrainingCurriculum`] or
            [`~flashspeech_hf.training_utils.EasyConsistencyTuningSchedule`]): The consistency objective's noise levels
            and weights (iCT: `s0`/`s1` over the scheduler's Karras scale; ECT: the shrinking gap, where a lower level
            of 0 means the clean latent), and `total_training_steps`, K, the span of the iCT curriculum or of ECT's
            stages; its `sigma_max` also bounds the denoising objective's levels.
        config ([`TrainingLossConfig`]): The stage and its loss settings.
        train_components (`Sequence[str]`): Which of `prior_encoder`, `prosody_generator`, `denoiser` train (see
            [`check_stage_components`]).
        pad_token_id (`int`): Padding id of the re-padded phoneme ids.
        weight_dtype (`torch.dtype`, defaults to `torch.float32`): The dtype of the frozen models (mixed precision).
        scheduler ([`FlashSpeechScheduler`]): The pipeline's scheduler, whose consistency scalings
            (`precondition_inputs`, `precondition_noise`, `precondition_outputs`) turn the models' raw outputs into
            the consistency function, exactly as sampling does.

    Examples:

    ```py
    >>> import torch
    >>> from training_module import FlashSpeechTrainingModule, TrainingLossConfig
    >>> from flashspeech_hf.training_utils import ConsistencyTrainingCurriculum
    >>> from flashspeech_hf import FlashSpeechPipeline

    >>> pipe = FlashSpeechPipeline.from_named_config("tiny")
    >>> module = FlashSpeechTrainingModule(
    ...     pipe.prior_encoder, pipe.prosody_generator, pipe.denoiser, pipe.codec,
    ...     ConsistencyTrainingCurriculum.from_scheduler(pipe.scheduler, total_training_steps=1000),
    ...     TrainingLossConfig(stage=1), train_components=["prior_encoder", "prosody_generator", "denoiser"],
    ...     pad_token_id=pipe.tokenizer.pad_token_id, scheduler=pipe.scheduler,
    ... )
    >>> batch = next(iter(loader))  # doctest: +SKIP  (a `data_utils.collate_prepared` batch of a prepared dataset)
    >>> output = module(batch, step=0, generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
    >>> output.loss.backward()  # doctest: +SKIP
    >>> sorted(output.losses)  # doctest: +SKIP
    ['ct_loss', 'duration_loss', 'pitch_loss']
    ```
    """

    def __init__(
        self,
        prior_encoder: FlashSpeechPriorEncoder,
        prosody_generator: FlashSpeechProsodyGenerator,
        denoiser: FlashSpeechDenoiser,
        codec: nn.Module,
        curriculum: ConsistencyTrainingCurriculum | EasyConsistencyTuningSchedule,
        config: TrainingLossConfig,
        train_components: Sequence[str],
        pad_token_id: int,
        weight_dtype: torch.dtype = torch.float32,
        *,
        scheduler: FlashSpeechScheduler,
    ):
        super().__init__()
        train_components = check_stage_components(config.stage, train_components)
        # registration order = the order of `trainable_parameters()` = the optimizer's parameter order in checkpoints
        self.prior_encoder = prior_encoder
        self.prosody_generator = prosody_generator
        self.denoiser = denoiser
        self.codec = codec.requires_grad_(False).eval()
        self.curriculum = curriculum
        self.scheduler = scheduler
        self.config = config
        self.train_components = train_components
        self.pad_token_id = pad_token_id
        self.weight_dtype = weight_dtype
        for name in TRAINABLE_COMPONENTS:
            self.get_submodule(name).requires_grad_(name in self.train_components)
        refiners = (prosody_generator.duration_refiner, prosody_generator.pitch_refiner)
        if config.stage == 2:
            prosody_generator.requires_grad_(False)
            for refiner in refiners:
                refiner.requires_grad_(True)
        else:
            for refiner in refiners:  # the refiners train in stage 2
                refiner.requires_grad_(False)
            if not self.trains_denoiser_loss:
                # the pitch embedding only conditions the denoiser, whose loss is not computed: nothing would train it
                # (and DDP would wait for its gradient)
                prosody_generator.pitch_embedding.requires_grad_(False)
        self.train()

    @property
    def trains_denoiser_loss(self) -> bool:
        """Whether stage 1 computes the denoiser's loss: when the denoiser or the prior encoder (its condition) trains."""
        return self.config.stage == 1 and bool({"denoiser", "prior_encoder"} & set(self.train_components))

    @property
    def components(self) -> dict[str, nn.Module]:
        """The three models by pipeline component name."""
        return {name: self.get_submodule(name) for name in TRAINABLE_COMPONENTS}

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters that train, component by component in `TRAINABLE_COMPONENTS` order."""
        return [p for name in self.train_components for p in self.get_submodule(name).parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> FlashSpeechTrainingModule:
        """Sets the trained components' mode; frozen components and fully frozen submodules always evaluate."""
        super().train(mode)
        for name, model in self.components.items():
            model.train(mode and name in self.train_components)
        for module in self.modules():
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()
        return self

    def consistency_function(
        self, model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], sample: torch.Tensor, sigma: torch.Tensor
    ) -> torch.Tensor:
        """
        `f(x, sigma) = c_skip x + c_out F(c_in x, c_noise)` per item, with the scheduler's scalings around the raw
        output of `model_fn(scaled sample, timestep)`.

        Args:
            model_fn (`Callable`): `(c_in x (B, C, T), c_noise (B,)) -> F (B, C, T)`: the denoiser or a refiner.
            sample (`torch.Tensor` of shape `(B, C, T)`): Noisy samples `x`.
            sigma (`torch.Tensor` of shape `(B,)`): Noise level of each item.

        Returns:
            `torch.Tensor` of shape `(B, C, T)`: the estimate of the clean samples.
        """
        scheduler = self.scheduler
        model_output = model_fn(scheduler.precondition_inputs(sample, sigma), scheduler.precondition_noise(sigma))
        return scheduler.precondition_outputs(sample, model_output, sigma)

    def uses_adversarial_loss(self, step: int) -> bool:
        """Whether stage-1 step `step` adds the adversarial loss (the denoiser trains and the start step is reached)."""
        start = self.config.adversarial_start_step
        return self.config.stage == 1 and "denoiser" in self.train_components and start is not None and step >= start

    def forward(
        self,
        batch: dict[str, torch.Tensor],
        step: int,
        generator: torch.Generator | None = None,
        discriminator: FlashSpeechDiscriminator | None = None,
    ) -> FlashSpeechTrainingOutput:
        """
        The losses of one batch.

        Args:
            batch (`dict[str, torch.Tensor]`): A `data_utils.collate_prepared` batch on the module's device:
                `input_ids`/`attention_mask`/`durations` `(batch_size, num_phonemes)`, `latents`
                `(batch_size, latent_dim, num_frames)`, `latent_mask`/`log_pitch` `(batch_size, num_frames)`.
            step (`int`): The optimizer step (the iCT curriculum and the adversarial start depend on it).
            generator (`torch.Generator`, *optional*): CPU generator of every random draw.
            discriminator ([`FlashSpeechDiscriminator`], *optional*): The bare (unwrapped) discriminator; needed at
                adversarial steps (see [`uses_adversarial_loss`]).

        Returns:
            [`FlashSpeechTrainingOutput`]
        """
        batch = split_prompt_from_target(
            batch,
            self.config.prompt_ratio_min,
            self.config.prompt_ratio_max,
            generator,
            pad_token_id=self.pad_token_id,
            pad_to_multiple_of=self.config.pad_to_multiple_of,
        )
        if self.config.stage == 2:
            return self._stage2_losses(batch, step, generator)
        return self._stage1_losses(batch, step, generator, discriminator)

    def _training_levels(self, batch_size: int, step: int, generator, device):
        sigma_low, sigma_high, weights = self.curriculum.sample_training_sigmas(batch_size, step, generator)
        return sigma_low.to(device), sigma_high.to(device), weights.to(device)

    def _stage1_losses(self, batch, step, generator, discriminator) -> FlashSpeechTrainingOutput:
        config, trained = self.config, self.train_components
        latents, frame_mask, phoneme_mask = batch["latents"], batch["latent_mask"], batch["attention_mask"]
        prompt_latents, prompt_mask = batch["prompt_latents"], batch["prompt_mask"]
        phoneme_hidden, prompt_hidden = self.prior_encoder(
            batch["input_ids"], phoneme_mask, prompt_latents, prompt_mask, return_dict=False
        )
        log_dur, _ = self.prosody_generator.predict_durations(phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask)
        frame_hidden, _ = length_regulate(phoneme_hidden, batch["durations"], max_frames=latents.shape[-1])
        log_pitch, _ = self.prosody_generator.predict_pitch(frame_hidden, frame_mask, prompt_hidden, prompt_mask)
        losses, loss = {}, 0.0
        if "prosody_generator" in trained or "prior_encoder" in trained:
            losses["duration_loss"] = duration_loss(log_dur, batch["durations"], phoneme_mask)
            losses["pitch_loss"] = pitch_loss(log_pitch, batch["log_pitch"], frame_mask)
            loss = config.lambda_duration * losses["duration_loss"] + config.lambda_pitch * losses["pitch_loss"]
        if not self.trains_denoiser_loss:
            return FlashSpeechTrainingOutput(loss=loss, losses=losses)
        condition = frame_hidden + self.prosody_generator.embed_pitch(batch["log_pitch"], frame_mask)

        if config.objective == "denoising":
            sigma = sample_denoising_sigmas(
                latents.shape[0],
                generator,
                p_mean=config.denoising_p_mean,
                p_std=config.denoising_p_std,
                sigma_max=float(self.curriculum.sigma_max),
                max_sigma_fraction=config.denoising_max_sigma_fraction,
            ).to(latents.device)
            (noisy,) = add_noise(latents, (sigma,), frame_mask, generator)
            prepared = self.denoiser.prepare_condition(condition, prompt_hidden, frame_mask, prompt_mask)
            student = self.consistency_function(lambda x, t: self.denoiser(x, t, prepared).sample, noisy, sigma)
            denoiser_loss_name = "denoising_loss"
            losses[denoiser_loss_name] = denoising_loss(
                student.float(),
                latents.float(),
                sigma,
                sigma_data=self.scheduler.config.sigma_data,
                sigma_min=self.scheduler.config.sigma_min,
                mask=frame_mask,
            )
        else:
            sigma_low, sigma_high, weights = self._training_levels(latents.shape[0], step, generator, latents.device)
            x_high, x_low = add_noise(latents, (sigma_high, sigma_low), frame_mask, generator)
            prepared = self.denoiser.prepare_condition(condition, prompt_hidden, frame_mask, prompt_mask)
            student = self.consistency_function(lambda x, t: self.denoiser(x, t, prepared).sample, x_high, sigma_high)
            with torch.no_grad():  # the stop-gradient teacher: the same model one level lower
                # (ECT's level 0 is the boundary, where the consistency function is the clean latent)
                at_boundary = (sigma_low == 0)[:, None, None]
                teacher = latents
                if not bool(at_boundary.all()):
                    teacher_condition = self.denoiser.prepare_condition(
                        condition.detach(), prompt_hidden.detach(), frame_mask, prompt_mask
                    )
                    teacher = self.consistency_function(
                        lambda x, t: self.denoiser(x, t, teacher_condition).sample,
                        x_low,
                        sigma_low.clamp_min(self.scheduler.config.sigma_min),
                    )
                    teacher = torch.where(at_boundary, latents, teacher)
            denoiser_loss_name = "ct_loss"
            losses[denoiser_loss_name] = consistency_training_loss(
                student.float(), teacher.float(), weights, frame_mask, c=config.huber_c
            )
        loss = loss + losses[denoiser_loss_name]

        adversarial = None
        if self.uses_adversarial_loss(step):
            if discriminator is None:
                raise ValueError(f"Step {step} uses the adversarial loss: pass the discriminator.")
            adversarial = self._adversarial_inputs(
                discriminator, student, latents, frame_mask, prompt_latents, prompt_mask, generator
            )
            fake_out = discriminator(adversarial["fake"], prompt_features=adversarial["prompt_features"])
            losses["generator_adv_loss"] = generator_adversarial_loss(fake_out.logits, fake_out.mask)
            adaptive = adaptive_adversarial_weight(
                losses[denoiser_loss_name], losses["generator_adv_loss"], self.adaptive_weight_parameter()
            )
            losses["adv_weight"] = adaptive * config.lambda_adv
            loss = loss + losses["adv_weight"] * losses["generator_adv_loss"]
        return FlashSpeechTrainingOutput(loss=loss, losses=losses, adversarial=adversarial)

    def adaptive_weight_parameter(self) -> torch.Tensor:
        """
        The trainable tensor where the adaptive adversarial weight compares gradient norms: the denoiser's last layer
        weight, or, with LoRA (the base weight frozen), that layer's LoRA `B` matrix.
        """
        weight = self.denoiser.last_layer_weight
        if weight.requires_grad:
            return weight
        for module in self.denoiser.modules():
            if hasattr(module, "lora_B") and module.get_base_layer().weight is weight:
                return next(iter(module.lora_B.values())).weight
        raise ValueError(
            "The adversarial loss weighs its gradient at the denoiser's last layer, which is frozen and has no LoRA "
            "adapter: add `backbone.out_proj` to --lora_target_modules or disable the adversarial loss."
        )

    def _adversarial_inputs(self, discriminator, student, latents, frame_mask, prompt_latents, prompt_mask, generator):
        """Decodes a random window of the target frames (one-step estimate and ground truth) and the prompt."""
        frames = frame_mask.sum(dim=1).cpu()
        window = int(min(self.config.adv_segment_frames, int(frames.min())))
        if window < 2:
            raise ValueError("Utterances are too short for the adversarial loss: a target has < 2 frames.")
        window_starts = (torch.rand(len(frames), generator=generator) * (frames - window + 1).float()).long()
        window_lengths = torch.full_like(window_starts, window)
        fake_latents, _ = gather_segments(student, window_starts, window_lengths)
        real_latents, _ = gather_segments(latents, window_starts, window_lengths)
        fake = self.codec.decode(fake_latents.to(self.weight_dtype)).float()
        with torch.no_grad():
            real = self.codec.decode(real_latents.to(self.weight_dtype)).float()
            prompt = self.codec.decode(prompt_latents.to(self.weight_dtype)).float()
            prompt_samples = prompt_mask.sum(dim=1) * self.codec.hop_length
            prompt_wave_mask = torch.arange(prompt.shape[-1], device=prompt.device)[None] < prompt_samples[:, None]
            features = None
            if discriminator.prompt_proj is not None:
                features = discriminator.encode_prompt(prompt, prompt_wave_mask)
        return {"fake": fake, "real": real, "prompt_features": features}

    def _stage2_losses(self, batch, step, generator) -> FlashSpeechTrainingOutput:
        latents, frame_mask, phoneme_mask = batch["latents"], batch["latent_mask"], batch["attention_mask"]
        prompt_latents, prompt_mask = batch["prompt_latents"], batch["prompt_mask"]
        prosody = self.prosody_generator
        with torch.no_grad():  # the frozen stage-1 models (in eval mode: the residual targets carry no dropout)
            phoneme_hidden, prompt_hidden = self.prior_encoder(
                batch["input_ids"], phoneme_mask, prompt_latents.to(self.weight_dtype), prompt_mask, return_dict=False
            )
            log_dur, dur_hidden = prosody.predict_durations(phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask)
            frame_hidden, _ = length_regulate(phoneme_hidden, batch["durations"], max_frames=latents.shape[-1])
            log_pitch, pitch_hidden = prosody.predict_pitch(frame_hidden, frame_mask, prompt_hidden, prompt_mask)
        residuals = (
            ("duration", torch.log1p(batch["durations"].float()) - log_dur.float(), dur_hidden, phoneme_mask),
            ("pitch", batch["log_pitch"] - log_pitch.float(), pitch_hidden, frame_mask),
        )
        refiners = {"duration": prosody.refine_durations, "pitch": prosody.refine_pitch}
        losses, loss = {}, 0.0
        for name, residual, hidden, mask in residuals:
            clean = (residual * mask)[:, None, :]
            sigma_low, sigma_high, weights = self._training_levels(clean.shape[0], step, generator, clean.device)
            x_high, x_low = add_noise(clean, (sigma_high, sigma_low), mask, generator)

            def refiner(x, t, refine=refiners[name], hidden=hidden, mask=mask):
                return refine(x, t, hidden, mask)

            student = self.consistency_function(refiner, x_high, sigma_high)
            with torch.no_grad():
                teacher = self.consistency_function(refiner, x_low, sigma_low)
            losses[f"{name}_refine_loss"] = consistency_training_loss(
                student.float(), teacher.float(), weights, mask, c=self.config.huber_c
            )
            loss = loss + losses[f"{name}_refine_loss"]
        return FlashSpeechTrainingOutput(loss=loss, losses=losses)


def discriminator_step_loss(discriminator: nn.Module, adversarial: dict[str, torch.Tensor | None]) -> torch.Tensor:
    """
    The discriminator's loss on the real and (detached) fake waveforms of [`FlashSpeechTrainingOutput.adversarial`],
    in one forward of `discriminator` (its DDP wrapper, so that its gradients are reduced), both scored against the
    same prompt.
    """
    features = adversarial["prompt_features"]
    out = discriminator(
        torch.cat([adversarial["real"], adversarial["fake"].detach()]),
        prompt_features=None if features is None else torch.cat([features, features]),
    )
    real_logits, fake_logits = out.logits.chunk(2)
    return discriminator_loss(real_logits, fake_logits, out.mask.chunk(2)[0])
