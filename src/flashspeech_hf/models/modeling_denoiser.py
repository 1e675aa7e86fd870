"""The latent consistency model of FlashSpeech: a non-causal WaveNet backbone and the consistency parametrization."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn

from ..configuration_utils import DropLegacyConfigKeysMixin
from .model_utils import CONSISTENCY_CONFIG_KEYS


class SinusoidalNoiseEmbedding(nn.Module):
    """Sinusoidal embedding of `c_noise` followed by a two-layer MLP: `(batch,) -> (batch, hidden_size)`."""

    def __init__(self, embedding_dim: int, hidden_size: int):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.mlp = nn.Sequential(nn.Linear(embedding_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        half = self.embedding_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=c_noise.device, dtype=torch.float32) / half)
        args = c_noise.float()[:, None] * freqs[None]
        emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
        weight = self.mlp[0].weight  # a method of int8 dynamically quantized layers, which take float32
        return self.mlp(emb.to(weight.dtype if isinstance(weight, torch.Tensor) else torch.float32))


class PromptQueryAttention(nn.Module):
    """
    Summarizes a variable-length prompt into `num_query_tokens` learned query tokens by cross-attention (NS2).

    `(batch, prompt_frames, prompt_dim) -> (batch, num_query_tokens, hidden_size)`.
    """

    def __init__(self, prompt_dim: int, hidden_size: int, num_query_tokens: int, num_heads: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(num_query_tokens, hidden_size) * 0.02)
        self.proj = nn.Linear(prompt_dim, hidden_size)
        self.attn = nn.MultiheadAttention(hidden_size, num_heads, batch_first=True)

    def forward(self, prompt_hidden: torch.Tensor, prompt_mask: torch.Tensor | None) -> torch.Tensor:
        keys = self.proj(prompt_hidden)
        query = self.query.unsqueeze(0).expand(keys.shape[0], -1, -1)
        padding = None if prompt_mask is None else ~prompt_mask
        out, _ = self.attn(query, keys, keys, key_padding_mask=padding, need_weights=False)
        return out


class WaveNetLayer(nn.Module):
    """
    One gated residual layer of a non-causal WaveNet with condition, noise embedding and optional FiLM from
    cross-attention to prompt query tokens.
    """

    def __init__(
        self,
        hidden_size: int,
        cond_size: int,
        kernel_size: int,
        dilation: int,
        num_heads: int,
        use_film: bool,
        dropout,
    ):
        super().__init__()
        self.conv = nn.Conv1d(hidden_size, 2 * hidden_size, kernel_size, dilation=dilation, padding="same")
        self.cond_proj = nn.Conv1d(cond_size, 2 * hidden_size, 1)
        self.noise_proj = nn.Linear(hidden_size, 2 * hidden_size)
        self.out_proj = nn.Conv1d(hidden_size, 2 * hidden_size, 1)
        self.dropout = nn.Dropout(dropout)
        if use_film:
            self.film_attn = nn.MultiheadAttention(hidden_size, num_heads, batch_first=True)
            self.film_proj = nn.Linear(hidden_size, 4 * hidden_size)
            nn.init.zeros_(self.film_proj.weight)
            nn.init.zeros_(self.film_proj.bias)
        else:
            self.film_attn = None

    def forward(
        self,
        x: torch.Tensor,
        cond_term: torch.Tensor,
        noise_emb: torch.Tensor,
        mask: torch.Tensor,
        query_tokens: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`cond_term` is `self.cond_proj(cond)`, `(batch, 2 * hidden_size, frames)`: it does not depend on `x`."""
        h = self.conv(self.dropout(x)) + cond_term + self.noise_proj(noise_emb)[:, :, None]
        if self.film_attn is not None and query_tokens is not None:
            attended, _ = self.film_attn(x.transpose(1, 2), query_tokens, query_tokens, need_weights=False)
            scale, shift = self.film_proj(attended).transpose(1, 2).chunk(2, dim=1)
            h = h * (1 + scale) + shift
        filt, gate = h.chunk(2, dim=1)
        y = torch.tanh(filt) * torch.sigmoid(gate)
        residual, skip = self.out_proj(y).chunk(2, dim=1)
        return (x + residual) * mask / math.sqrt(2.0), skip * mask


@dataclass
class WaveNetCondition:
    """
    What a [`WaveNet`] pass computes from its condition alone ([`WaveNet.prepare_condition`]).

    Args:
        cond_terms (`list[torch.Tensor]`): Per layer, `(batch, 2 * hidden_size, frames)`: its condition projection.
        mask (`torch.Tensor` of shape `(batch, 1, frames)`): 1 on valid frames, in the weights' dtype.
        query_tokens (`torch.Tensor` of shape `(batch, num_query_tokens, hidden_size)`, *optional*): The prompt
            summarized by the learned queries (FiLM keys and values).
    """

    cond_terms: list[torch.Tensor]
    mask: torch.Tensor
    query_tokens: torch.Tensor | None = None


class WaveNet(nn.Module):
    """
    Non-causal WaveNet `F_theta` (NaturalSpeech 2): `(batch, in_channels, frames) -> (batch, in_channels, frames)`.

    Used by the latent denoiser and by the prosody refinement models. Every `cross_attention_every`-th layer applies
    FiLM from cross-attention to prompt query tokens when `prompt_dim` is set.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_size: int,
        cond_size: int,
        num_layers: int,
        kernel_size: int = 3,
        dilation_cycle: int = 2,
        prompt_dim: int | None = None,
        num_query_tokens: int = 32,
        num_heads: int = 8,
        cross_attention_every: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.in_proj = nn.Conv1d(in_channels, hidden_size, 1)
        self.noise_embedding = SinusoidalNoiseEmbedding(hidden_size, hidden_size)
        self.prompt_queries = (
            PromptQueryAttention(prompt_dim, hidden_size, num_query_tokens, num_heads) if prompt_dim else None
        )
        self.layers = nn.ModuleList(
            [
                WaveNetLayer(
                    hidden_size,
                    cond_size,
                    kernel_size,
                    dilation=2 ** (i % dilation_cycle),
                    num_heads=num_heads,
                    use_film=prompt_dim is not None and (i + 1) % cross_attention_every == 0,
                    dropout=dropout,
                )
                for i in range(num_layers)
            ]
        )
        self.skip_proj = nn.Conv1d(hidden_size, hidden_size, 1)
        self.out_proj = nn.Conv1d(hidden_size, in_channels, 1)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def prepare_condition(
        self,
        cond: torch.Tensor,
        mask: torch.Tensor,
        prompt_hidden: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
    ) -> WaveNetCondition:
        """
        The part of the forward pass that does not depend on the noisy input: each layer's condition projection and
        the prompt query tokens. Sampling computes it once per call and reuses it at every step.

        Args:
            cond (`torch.Tensor` of shape `(batch, cond_size, frames)`): Frame-aligned condition.
            mask (`torch.Tensor` of shape `(batch, frames)`): True on valid frames.
            prompt_hidden (`torch.Tensor` of shape `(batch, prompt_frames, prompt_dim)`, *optional*): Prompt features.
            prompt_mask (`torch.Tensor` of shape `(batch, prompt_frames)`, *optional*): True on valid prompt frames.

        Returns:
            [`WaveNetCondition`].
        """
        # inputs of any float dtype run in the weights' dtype (the pipeline samples in float32 for bf16 models)
        m = mask[:, None, :].to(self.in_proj.weight.dtype)
        cond = cond.to(m.dtype) * m
        queries = None
        if self.prompt_queries is not None and prompt_hidden is not None:
            queries = self.prompt_queries(prompt_hidden, prompt_mask)
        return WaveNetCondition(
            cond_terms=[layer.cond_proj(cond) for layer in self.layers], mask=m, query_tokens=queries
        )

    def forward(
        self,
        sample: torch.Tensor,
        c_noise: torch.Tensor,
        cond: torch.Tensor | WaveNetCondition,
        mask: torch.Tensor | None = None,
        prompt_hidden: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            sample (`torch.Tensor` of shape `(batch, in_channels, frames)`): Scaled noisy input `c_in * x`.
            c_noise (`torch.Tensor` of shape `(batch,)`): Noise conditioning.
            cond (`torch.Tensor` of shape `(batch, cond_size, frames)` or [`WaveNetCondition`]): Frame-aligned
                condition, or its [`~WaveNet.prepare_condition`] (then `mask` and the prompt arguments are unused).
            mask (`torch.Tensor` of shape `(batch, frames)`): True on valid frames (required with a tensor `cond`).
            prompt_hidden (`torch.Tensor` of shape `(batch, prompt_frames, prompt_dim)`, *optional*): Prompt features.
            prompt_mask (`torch.Tensor` of shape `(batch, prompt_frames)`, *optional*): True on valid prompt frames.

        Returns:
            `torch.Tensor` of shape `(batch, in_channels, frames)` in the dtype of the weights, zero on padded frames.
        """
        if not isinstance(cond, WaveNetCondition):
            cond = self.prepare_condition(cond, mask, prompt_hidden, prompt_mask)
        m = cond.mask
        x = self.in_proj(sample.to(m.dtype)) * m
        noise_emb = self.noise_embedding(c_noise)
        skips = 0
        for layer, cond_term in zip(self.layers, cond.cond_terms):
            x, skip = layer(x, cond_term, noise_emb, m, cond.query_tokens)
            skips = skips + skip
        h = F.relu(self.skip_proj(skips / math.sqrt(len(self.layers)))) * m
        return self.out_proj(h) * m


@dataclass
class FlashSpeechDenoiserOutput(BaseOutput):
    """
    Output of [`FlashSpeechDenoiser`].

    Args:
        sample (`torch.Tensor` of shape `(batch_size, latent_dim, num_frames)`):
            The network's raw output `F`, zero on padded frames; the scheduler turns it into the consistency
            function's estimate of the clean latents (`FlashSpeechScheduler.step` or `precondition_outputs`).
    """

    sample: torch.Tensor


class FlashSpeechDenoiser(DropLegacyConfigKeysMixin, ModelMixin, ConfigMixin):
    r"""
    The network `F_theta(c_in x, c_noise, condition, prompt)` of the latent consistency model of FlashSpeech.

    A non-causal WaveNet (NaturalSpeech 2) over codec latents, conditioned per frame on the length-regulated phoneme
    features plus the pitch embedding, on the noise level through a sinusoidal embedding of the timestep
    (`c_noise`), and on the prompt through FiLM computed by cross-attention to `num_query_tokens` learned query
    tokens every `cross_attention_every`-th layer. It returns its raw output `F`, as a diffusers UNet does: the
    scheduler ([`FlashSpeechScheduler`]) scales its input by `c_in`, gives it `c_noise` as the timestep, and forms
    the consistency function `f = c_skip x + c_out F`, which equals `x` at `sigma = sigma_min`. The model holds no
    diffusion constants (configs saved with `sigma_data`/`sigma_min` load; the keys are dropped).

    Args:
        latent_dim (`int`, defaults to 256): Channels of the codec latents.
        condition_dim (`int`, defaults to 512): Width of the frame-level condition.
        prompt_dim (`int`, defaults to 512): Width of the prompt encoder's features.
        hidden_size (`int`, defaults to 512): WaveNet width.
        num_layers (`int`, defaults to 40): WaveNet layers.
        kernel_size (`int`, defaults to 3): Convolution kernel.
        dilation_cycle (`int`, defaults to 2): Layer i is dilated by `2 ** (i % dilation_cycle)`.
        num_attention_heads (`int`, defaults to 8): Heads of the prompt attention.
        num_query_tokens (`int`, defaults to 32): Learned prompt query tokens.
        cross_attention_every (`int`, defaults to 3): FiLM from the prompt every this many layers.
        dropout (`float`, defaults to 0.0): Dropout on each layer's input.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf import FlashSpeechDenoiser, FlashSpeechScheduler

    >>> model = FlashSpeechDenoiser(latent_dim=8, condition_dim=16, prompt_dim=16, hidden_size=16, num_layers=3)
    >>> scheduler = FlashSpeechScheduler()
    >>> scheduler.set_timesteps(1)
    >>> t = scheduler.timesteps[0]
    >>> x = torch.randn(2, 8, 50) * scheduler.init_noise_sigma
    >>> model_output = model(scheduler.scale_model_input(x, t), t, condition=torch.randn(2, 50, 16),
    ...                      prompt_hidden=torch.randn(2, 20, 16)).sample
    >>> scheduler.step(model_output, t, x).prev_sample.shape
    torch.Size([2, 8, 50])
    ```
    """

    _supports_gradient_checkpointing = False
    _legacy_config_keys = CONSISTENCY_CONFIG_KEYS

    @register_to_config
    def __init__(
        self,
        latent_dim: int = 256,
        condition_dim: int = 512,
        prompt_dim: int = 512,
        hidden_size: int = 512,
        num_layers: int = 40,
        kernel_size: int = 3,
        dilation_cycle: int = 2,
        num_attention_heads: int = 8,
        num_query_tokens: int = 32,
        cross_attention_every: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size={hidden_size} must be divisible by num_attention_heads={num_attention_heads}."
            )
        self.backbone = WaveNet(
            in_channels=latent_dim,
            hidden_size=hidden_size,
            cond_size=condition_dim,
            num_layers=num_layers,
            kernel_size=kernel_size,
            dilation_cycle=dilation_cycle,
            prompt_dim=prompt_dim,
            num_query_tokens=num_query_tokens,
            num_heads=num_attention_heads,
            cross_attention_every=cross_attention_every,
            dropout=dropout,
        )

    @property
    def last_layer_weight(self) -> torch.Tensor:
        """The output projection's weight, where training measures gradient norms for the adaptive GAN weight."""
        return self.backbone.out_proj.weight

    @apply_forward_hook
    def prepare_condition(
        self,
        condition: torch.Tensor,
        prompt_hidden: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
    ) -> WaveNetCondition:
        """
        Everything of a forward pass that does not depend on the noisy latents (each layer's projection of the
        condition, the prompt's query tokens), computed once to be passed as `condition` at every sampling step.

        Args:
            condition (`torch.Tensor` of shape `(batch_size, num_frames, condition_dim)`): As in `forward`.
            prompt_hidden (`torch.Tensor` of shape `(batch_size, prompt_frames, prompt_dim)`, *optional*),
            mask (`torch.Tensor` of shape `(batch_size, num_frames)`, *optional*),
            prompt_mask (`torch.Tensor` of shape `(batch_size, prompt_frames)`, *optional*): As in `forward`.

        Returns:
            [`WaveNetCondition`]: `forward(sample, timestep, prepared)` equals `forward(sample, timestep, condition,
            prompt_hidden, mask, prompt_mask)` exactly.

        Examples:

        ```py
        >>> import torch
        >>> from flashspeech_hf import FlashSpeechDenoiser

        >>> model = FlashSpeechDenoiser(latent_dim=8, condition_dim=16, prompt_dim=16, hidden_size=16, num_layers=3)
        >>> condition, prompt = torch.randn(1, 50, 16), torch.randn(1, 20, 16)
        >>> prepared = model.prepare_condition(condition, prompt)
        >>> x, t = torch.randn(1, 8, 50), torch.tensor(1000.0)
        >>> torch.equal(model(x, t, prepared).sample, model(x, t, condition, prompt).sample)
        True
        ```
        """
        if condition.ndim != 3 or condition.shape[2] != self.config.condition_dim:
            raise ValueError(
                f"`condition` must have shape (batch, frames, {self.config.condition_dim}), got {tuple(condition.shape)}."
            )
        if mask is None:
            mask = torch.ones(condition.shape[:2], dtype=torch.bool, device=condition.device)
        return self.backbone.prepare_condition(condition.transpose(1, 2), mask, prompt_hidden, prompt_mask)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        condition: torch.Tensor | WaveNetCondition,
        prompt_hidden: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> FlashSpeechDenoiserOutput | tuple[torch.Tensor]:
        """
        Args:
            sample (`torch.Tensor` of shape `(batch_size, latent_dim, num_frames)`): The scaled noisy latents
                `c_in x` (`scheduler.scale_model_input`).
            timestep (`torch.Tensor` of shape `(batch_size,)`, a scalar tensor or `float`): The noise conditioning
                `c_noise` of each item (an element of `scheduler.timesteps`, or `scheduler.precondition_noise`).
            condition (`torch.Tensor` of shape `(batch_size, num_frames, condition_dim)` or [`WaveNetCondition`]):
                Length-regulated phoneme features plus pitch embedding, or their
                [`~FlashSpeechDenoiser.prepare_condition`] (which then holds the prompt and the mask: the three
                arguments below are ignored).
            prompt_hidden (`torch.Tensor` of shape `(batch_size, prompt_frames, prompt_dim)`, *optional*):
                Prompt encoder output.
            mask (`torch.Tensor` of shape `(batch_size, num_frames)`, *optional*): True on valid frames.
            prompt_mask (`torch.Tensor` of shape `(batch_size, prompt_frames)`, *optional*): True on valid frames.
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechDenoiserOutput`] rather than a tuple.

        Returns:
            [`FlashSpeechDenoiserOutput`] or a one-element tuple with the raw output `F`, in the weights' dtype.
        """
        if sample.ndim != 3 or sample.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"`sample` must have shape (batch, {self.config.latent_dim}, frames), got {tuple(sample.shape)}."
            )
        if isinstance(condition, WaveNetCondition):
            prepared = condition
            if prepared.mask.shape != (sample.shape[0], 1, sample.shape[2]):
                raise ValueError(
                    f"The prepared condition is for (batch, frames) = {tuple(prepared.mask.shape[::2])}, but `sample` "
                    f"has shape {tuple(sample.shape)}."
                )
        else:
            if condition.shape[:2] != (sample.shape[0], sample.shape[2]):
                raise ValueError(
                    f"`condition` must have shape ({sample.shape[0]}, {sample.shape[2]}, "
                    f"{self.config.condition_dim}), got {tuple(condition.shape)}."
                )
            prepared = self.prepare_condition(condition, prompt_hidden, mask, prompt_mask)
        timestep = torch.as_tensor(timestep, device=sample.device, dtype=torch.float32)
        if timestep.ndim == 0:
            timestep = timestep.expand(sample.shape[0])
        model_output = self.backbone(sample, timestep, prepared)
        if not return_dict:
            return (model_output,)
        return FlashSpeechDenoiserOutput(sample=model_output)
