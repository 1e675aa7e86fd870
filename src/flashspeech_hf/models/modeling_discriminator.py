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
"""Speech-language-model (SLM) discriminator of FlashSpeech's adversarial consistency training.

A frozen WavLM turns real or generated speech into the hidden states of all its layers; a small trainable head of
weight-normalized convolutions scores every WavLM frame as real or fake, conditioned on the time-averaged WavLM
features of the speaker prompt. Used in training only.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn
from torch.nn.utils.parametrizations import weight_norm
from transformers import WavLMConfig, WavLMModel

__all__ = ["FlashSpeechDiscriminator", "FlashSpeechDiscriminatorOutput"]

# Config entries of a transformers config that describe the checkpoint rather than the architecture.
_SLM_CONFIG_SKIP_KEYS = (
    "transformers_version",
    "id2label",
    "label2id",
    "_name_or_path",
    "_commit_hash",
    "dtype",
    "torch_dtype",
)


@dataclass
class FlashSpeechDiscriminatorOutput(BaseOutput):
    """
    Output of [`FlashSpeechDiscriminator`].

    Args:
        logits (`torch.Tensor` of shape `(batch_size, num_frames)`):
            Real/fake score of every WavLM frame (50 frames per second for WavLM); least-squares GAN targets are 1 for
            real and 0 for fake. Zero on padded frames.
        mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`):
            True for frames computed from valid samples; pass it to the losses.
    """

    logits: torch.Tensor
    # a default, so that the output can be rebuilt from a dict (Accelerate's mixed precision converts outputs so)
    mask: torch.Tensor | None = None


class FlashSpeechDiscriminator(ModelMixin, ConfigMixin):
    r"""
    SLM discriminator: a frozen WavLM and a trainable head of 5 weight-normalized Conv1d layers.

    The input waveforms (at the codec's `input_sampling_rate`) are resampled to the SLM's rate with a windowed-sinc
    filter written in torch (`julius.resample_frac`), so the generator's gradient flows through the resampler and the
    frozen WavLM back to the waveform. All hidden states of WavLM (the embedding output and every layer, 25 for
    WavLM-large) are stacked along the channel axis, `(batch_size, (num_hidden_layers + 1) * hidden_size, frames)`.

    The head is `conv 1x1 -> conv k -> conv k -> conv k` (LeakyReLU after each) then `conv 3` to one channel. Prompt
    conditioning is a projection discriminator ([Miyato & Koyama 2018](https://huggingface.co/papers/1802.05637)):
    the masked time-average of the prompt's stacked WavLM features is projected (weight-normalized linear layer) to
    an embedding `e` of the head's width, and the score of frame `t` is
    `conv_post(h)_t + <h_t, e> / sqrt(width)`, where `h` are the features entering `conv_post`. The inner product
    rewards frames whose features agree with the prompt's speaker and recording conditions. With
    `use_prompt_conditioning=False` the prompt is ignored.

    WavLM is frozen: its parameters never require gradients and it stays in eval mode (no dropout, LayerDrop or
    SpecAugment) even when this module is put in train mode. Only [`~FlashSpeechDiscriminator.trainable_parameters`]
    should be given to the optimizer. `save_pretrained` stores WavLM's weights too, so a saved discriminator reloads
    offline.

    Args:
        slm_config (`dict`, *optional*):
            A `transformers.WavLMConfig` as a dict (e.g. `WavLMModel.from_pretrained(...).config.to_diff_dict()`); the
            default `WavLMConfig()` (WavLM-base size) when omitted. Use
            [`~FlashSpeechDiscriminator.from_slm_pretrained`] to start from pretrained WavLM weights.
        input_sampling_rate (`int`, defaults to 16000): Sample rate of the waveforms given to `forward` (the codec's).
        slm_sampling_rate (`int`, defaults to 16000): Sample rate WavLM was trained on.
        normalize_input (`bool`, defaults to `False`):
            Normalize each waveform to zero mean and unit variance over its valid samples before WavLM, as the
            feature extractor of the checkpoint does (`do_normalize`: `False` for WavLM base/base-plus, `True` for
            WavLM-large).
        hidden_channels (`int`, defaults to 256): Width of the head's first layer; the next layers use 2x and 4x.
        kernel_size (`int`, defaults to 5): Kernel size of the three middle convolutions (odd).
        leaky_relu_slope (`float`, defaults to 0.1): Negative slope of the LeakyReLU activations.
        use_prompt_conditioning (`bool`, defaults to `True`): Whether to condition the scores on the prompt.
    """

    @register_to_config
    def __init__(
        self,
        slm_config: dict[str, Any] | None = None,
        input_sampling_rate: int = 16000,
        slm_sampling_rate: int = 16000,
        normalize_input: bool = False,
        hidden_channels: int = 256,
        kernel_size: int = 5,
        leaky_relu_slope: float = 0.1,
        use_prompt_conditioning: bool = True,
    ):
        super().__init__()
        if input_sampling_rate <= 0 or slm_sampling_rate <= 0:
            raise ValueError(
                f"Sample rates must be positive, got input_sampling_rate={input_sampling_rate}, "
                f"slm_sampling_rate={slm_sampling_rate}."
            )
        if kernel_size % 2 != 1:
            raise ValueError(f"`kernel_size` must be odd to keep the number of frames, got {kernel_size}.")

        self.slm = WavLMModel(WavLMConfig(**(slm_config or {})))
        self.slm.requires_grad_(False)
        self.slm.eval()

        if input_sampling_rate != slm_sampling_rate:
            try:
                import julius
            except ImportError as err:
                raise ImportError(
                    "FlashSpeechDiscriminator resamples differentiably with `julius`: `pip install julius` "
                    "(or `pip install flashspeech-hf[train]`)."
                ) from err
            self.resampler = julius.ResampleFrac(input_sampling_rate, slm_sampling_rate)
            # The sinc kernel is rebuilt from the config: keep it out of the saved weights.
            self.resampler.register_buffer("kernel", self.resampler.kernel, persistent=False)
        else:
            self.resampler = None

        slm_channels = (self.slm.config.num_hidden_layers + 1) * self.slm.config.hidden_size
        widths = [hidden_channels, 2 * hidden_channels, 4 * hidden_channels, 4 * hidden_channels]
        self.convs = nn.ModuleList(
            [weight_norm(nn.Conv1d(slm_channels, widths[0], 1))]
            + [
                weight_norm(nn.Conv1d(widths[i], widths[i + 1], kernel_size, padding=kernel_size // 2))
                for i in range(3)
            ]
        )
        self.conv_post = weight_norm(nn.Conv1d(widths[-1], 1, 3, padding=1))
        self.prompt_proj = weight_norm(nn.Linear(slm_channels, widths[-1])) if use_prompt_conditioning else None

    @classmethod
    def from_slm_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike = "microsoft/wavlm-base-plus",
        slm_kwargs: dict[str, Any] | None = None,
        **head_kwargs,
    ) -> FlashSpeechDiscriminator:
        r"""
        Builds a discriminator around pretrained WavLM weights, with a freshly initialized head.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`, defaults to `"microsoft/wavlm-base-plus"`):
                A Hub id or a local folder holding a WavLM checkpoint (the paper uses `"microsoft/wavlm-large"`).
            slm_kwargs (`dict`, *optional*):
                Extra arguments of `WavLMModel.from_pretrained` (e.g. `revision`, `cache_dir`, `local_files_only`).
            **head_kwargs:
                The other config arguments of [`FlashSpeechDiscriminator`] (e.g. `input_sampling_rate`,
                `hidden_channels`). `normalize_input` and `slm_sampling_rate` default to the checkpoint's feature
                extractor settings when it ships one.

        Returns:
            [`FlashSpeechDiscriminator`]

        Examples:

        ```py
        >>> from flashspeech_hf.models.modeling_discriminator import FlashSpeechDiscriminator

        >>> discriminator = FlashSpeechDiscriminator.from_slm_pretrained(
        ...     "microsoft/wavlm-base-plus", input_sampling_rate=24000
        ... )
        >>> optimizer = torch.optim.AdamW(discriminator.trainable_parameters(), lr=2e-4)
        ```
        """
        slm_kwargs = dict(slm_kwargs or {})
        if "slm_config" in head_kwargs:
            raise ValueError("`slm_config` comes from the pretrained checkpoint; do not pass it here.")
        slm = WavLMModel.from_pretrained(pretrained_model_name_or_path, **slm_kwargs)
        if "normalize_input" not in head_kwargs or "slm_sampling_rate" not in head_kwargs:
            from transformers import AutoFeatureExtractor

            hub_kwargs = {
                k: v for k, v in slm_kwargs.items() if k in ("revision", "cache_dir", "local_files_only", "token")
            }
            try:
                feature_extractor = AutoFeatureExtractor.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
            except (OSError, ValueError):
                feature_extractor = None
            if feature_extractor is not None:
                head_kwargs.setdefault("normalize_input", bool(getattr(feature_extractor, "do_normalize", False)))
                head_kwargs.setdefault("slm_sampling_rate", int(feature_extractor.sampling_rate))
        slm_config = {k: v for k, v in slm.config.to_diff_dict().items() if k not in _SLM_CONFIG_SKIP_KEYS}
        model = cls(slm_config=slm_config, **head_kwargs)
        model.slm.load_state_dict(slm.state_dict())
        return model

    def train(self, mode: bool = True) -> FlashSpeechDiscriminator:
        """Sets the head's training mode; the frozen WavLM always stays in eval mode."""
        super().train(mode)
        self.slm.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters of the head (convolutions and prompt projection), for the discriminator's optimizer."""
        modules = [self.convs, self.conv_post] + ([self.prompt_proj] if self.prompt_proj is not None else [])
        return [p for module in modules for p in module.parameters()]

    def _check_waveform(
        self, waveform: torch.Tensor, mask: torch.Tensor | None, name: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if waveform.ndim != 2 or not waveform.dtype.is_floating_point:
            raise ValueError(
                f"`{name}` must be a float tensor of shape (batch_size, num_samples) at "
                f"{self.config.input_sampling_rate} Hz, got shape {tuple(waveform.shape)} and dtype {waveform.dtype}."
            )
        if mask is None:
            mask = torch.ones(waveform.shape, dtype=torch.bool, device=waveform.device)
        if mask.shape != waveform.shape:
            raise ValueError(f"`{name}_mask` must have shape {tuple(waveform.shape)}, got {tuple(mask.shape)}.")
        lengths = mask.sum(-1)
        if not torch.equal(mask.bool(), torch.arange(mask.shape[-1], device=mask.device) < lengths.unsqueeze(-1)):
            raise ValueError(f"`{name}_mask` must be right-padded: True for the first valid samples, then False.")
        return waveform, lengths

    def _slm_features(self, waveform: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked WavLM hidden states `(batch, (layers + 1) * hidden, frames)` and their frame mask."""
        valid = torch.arange(waveform.shape[-1], device=waveform.device) < lengths.unsqueeze(-1)
        waveform = waveform * valid
        if self.resampler is not None:
            waveform = self.resampler(waveform)
            ratio = self.config.slm_sampling_rate / self.config.input_sampling_rate
            lengths = torch.floor(lengths * ratio).long().clamp_max(waveform.shape[-1])
            valid = torch.arange(waveform.shape[-1], device=waveform.device) < lengths.unsqueeze(-1)
        min_samples = self.config.slm_sampling_rate * 0.025
        if int(lengths.min()) < min_samples:
            raise ValueError(
                f"Every waveform must hold at least 25 ms of audio for WavLM; the shortest has "
                f"{int(lengths.min()) / self.config.slm_sampling_rate * 1000:.1f} ms."
            )
        if self.config.normalize_input:
            count = lengths.unsqueeze(-1).to(waveform.dtype)
            mean = (waveform * valid).sum(-1, keepdim=True) / count
            var = ((waveform - mean).pow(2) * valid).sum(-1, keepdim=True) / count
            waveform = (waveform - mean) / torch.sqrt(var + 1e-7) * valid
        # WavLM-large ("layer" feature-extractor norm) uses attention masks; the base models expect zero padding only.
        attention_mask = valid.long() if self.slm.config.feat_extract_norm == "layer" else None
        outputs = self.slm(waveform, attention_mask=attention_mask, output_hidden_states=True)
        features = torch.cat(outputs.hidden_states, dim=-1).transpose(1, 2)
        frame_lengths = self.slm._get_feat_extract_output_lengths(lengths).clamp_max(features.shape[-1])
        frame_mask = torch.arange(features.shape[-1], device=features.device) < frame_lengths.unsqueeze(-1)
        return features, frame_mask

    @torch.no_grad()
    def encode_prompt(
        self, prompt_waveform: torch.Tensor, prompt_waveform_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        r"""
        Time-averaged stacked WavLM features of the prompt, the discriminator's condition (no gradient).

        Args:
            prompt_waveform (`torch.Tensor` of shape `(batch_size, num_samples)`): Prompt audio at
                `input_sampling_rate`.
            prompt_waveform_mask (`torch.BoolTensor` of shape `(batch_size, num_samples)`, *optional*):
                True for valid samples, right-padded.

        Returns:
            `torch.Tensor` of shape `(batch_size, (num_hidden_layers + 1) * hidden_size)`.
        """
        prompt_waveform, lengths = self._check_waveform(prompt_waveform, prompt_waveform_mask, "prompt_waveform")
        features, frame_mask = self._slm_features(prompt_waveform, lengths)
        frame_mask = frame_mask.unsqueeze(1).to(features.dtype)
        return (features * frame_mask).sum(-1) / frame_mask.sum(-1)

    def forward(
        self,
        waveform: torch.Tensor,
        prompt_waveform: torch.Tensor | None = None,
        waveform_mask: torch.Tensor | None = None,
        prompt_waveform_mask: torch.Tensor | None = None,
        prompt_features: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> FlashSpeechDiscriminatorOutput | tuple:
        r"""
        Scores every WavLM frame of `waveform` as real (1) or fake (0), given the speaker prompt.

        Args:
            waveform (`torch.Tensor` of shape `(batch_size, num_samples)`):
                Real or generated audio at `input_sampling_rate`; gradients flow back to it.
            prompt_waveform (`torch.Tensor` of shape `(batch_size, prompt_samples)`, *optional*):
                The prompt audio at `input_sampling_rate`. Required when `use_prompt_conditioning` is set, unless
                `prompt_features` is given.
            waveform_mask (`torch.BoolTensor` of shape `(batch_size, num_samples)`, *optional*):
                True for valid samples, right-padded.
            prompt_waveform_mask (`torch.BoolTensor` of shape `(batch_size, prompt_samples)`, *optional*):
                True for valid prompt samples, right-padded.
            prompt_features (`torch.Tensor` of shape `(batch_size, (num_hidden_layers + 1) * hidden_size)`,
                *optional*): Precomputed [`~FlashSpeechDiscriminator.encode_prompt`] output, to score real and fake
                audio against the same prompt without running WavLM on it twice.
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechDiscriminatorOutput`] instead of a tuple.

        Returns:
            [`FlashSpeechDiscriminatorOutput`] or `tuple`: `(logits, mask)` when not a dict.

        Examples:

        ```py
        >>> import torch
        >>> from flashspeech_hf.models.modeling_discriminator import FlashSpeechDiscriminator
        >>> from flashspeech_hf.losses import discriminator_loss, generator_adversarial_loss

        >>> slm_config = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        ...                   conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
        >>> discriminator = FlashSpeechDiscriminator(slm_config, input_sampling_rate=24000, hidden_channels=8)
        >>> real, fake, prompt = torch.randn(2, 24000), torch.randn(2, 24000), torch.randn(2, 36000)
        >>> condition = discriminator.encode_prompt(prompt)
        >>> real_out = discriminator(real, prompt_features=condition)
        >>> fake_out = discriminator(fake.detach(), prompt_features=condition)
        >>> d_loss = discriminator_loss(real_out.logits, fake_out.logits, real_out.mask)
        ```
        """
        waveform, lengths = self._check_waveform(waveform, waveform_mask, "waveform")
        embedding = None
        if self.prompt_proj is not None:
            if prompt_features is None:
                if prompt_waveform is None:
                    raise ValueError(
                        "This discriminator is prompt-conditioned: pass `prompt_waveform` or `prompt_features`."
                    )
                prompt_features = self.encode_prompt(prompt_waveform, prompt_waveform_mask)
            expected = (waveform.shape[0], self.prompt_proj.in_features)
            if tuple(prompt_features.shape) != expected:
                raise ValueError(f"`prompt_features` must have shape {expected}, got {tuple(prompt_features.shape)}.")
            embedding = self.prompt_proj(prompt_features.to(waveform.dtype))

        hidden_states, frame_mask = self._slm_features(waveform, lengths)
        mask = frame_mask.unsqueeze(1).to(hidden_states.dtype)
        for conv in self.convs:
            hidden_states = F.leaky_relu(conv(hidden_states * mask), self.config.leaky_relu_slope)
        hidden_states = hidden_states * mask
        logits = self.conv_post(hidden_states).squeeze(1)
        if embedding is not None:
            logits = logits + torch.einsum("bct,bc->bt", hidden_states, embedding) / math.sqrt(embedding.shape[-1])
        logits = logits * frame_mask
        if not return_dict:
            return (logits, frame_mask)
        return FlashSpeechDiscriminatorOutput(logits=logits, mask=frame_mask)
