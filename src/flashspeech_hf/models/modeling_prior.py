"""Phoneme encoder and prompt encoder of FlashSpeech (NaturalSpeech 2 structure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn

from .model_utils import resize_embedding


def sinusoidal_positions(length: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Absolute sinusoidal position table of shape `(length, dim)`."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device, dtype=torch.float32)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div[: dim // 2])
    return table.to(dtype)


class ConditionalLayerNorm(nn.Module):
    """LayerNorm whose scale and shift are predicted from a condition vector: `(B, L, D), (B, C) -> (B, L, D)`."""

    def __init__(self, hidden_size: int, condition_size: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=eps)
        self.scale = nn.Linear(condition_size, hidden_size)
        self.shift = nn.Linear(condition_size, hidden_size)
        nn.init.zeros_(self.scale.weight)
        nn.init.ones_(self.scale.bias)
        nn.init.zeros_(self.shift.weight)
        nn.init.zeros_(self.shift.bias)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.scale(condition)[:, None] + self.shift(condition)[:, None]


class ConvFeedForward(nn.Module):
    """FastSpeech-style feed-forward with a convolution: `(B, L, D) -> (B, L, D)`, padded positions kept at zero."""

    def __init__(self, hidden_size: int, ffn_size: int, kernel_size: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv1d(hidden_size, ffn_size, kernel_size, padding="same")
        self.conv2 = nn.Conv1d(ffn_size, hidden_size, 1)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, :, None].to(x.dtype)
        h = self.act(self.conv1((x * m).transpose(1, 2)))
        return self.conv2(self.dropout(h)).transpose(1, 2) * m


class TransformerConvLayer(nn.Module):
    """
    Post-norm transformer layer with self-attention and a convolutional feed-forward; its LayerNorms are conditional
    on a global vector when `condition_size` is given.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        ffn_size: int,
        kernel_size: int,
        dropout: float,
        condition_size: int | None = None,
    ):
        super().__init__()
        self.attn = nn.MultiheadAttention(hidden_size, num_heads, dropout=dropout, batch_first=True)
        self.ffn = ConvFeedForward(hidden_size, ffn_size, kernel_size, dropout)
        if condition_size is None:
            self.norm1, self.norm2 = nn.LayerNorm(hidden_size), nn.LayerNorm(hidden_size)
        else:
            self.norm1 = ConditionalLayerNorm(hidden_size, condition_size)
            self.norm2 = ConditionalLayerNorm(hidden_size, condition_size)
        self.dropout = nn.Dropout(dropout)

    def _norm(self, norm: nn.Module, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        return norm(x) if condition is None else norm(x, condition)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        attended, _ = self.attn(x, x, x, key_padding_mask=~mask, need_weights=False)
        x = self._norm(self.norm1, x + self.dropout(attended), condition)
        x = self._norm(self.norm2, x + self.dropout(self.ffn(x, mask)), condition)
        return x * mask[:, :, None].to(x.dtype)


@dataclass
class FlashSpeechPriorEncoderOutput(BaseOutput):
    """
    Output of [`FlashSpeechPriorEncoder`].

    Args:
        phoneme_hidden_states (`torch.Tensor` of shape `(batch_size, num_phonemes, hidden_size)`):
            Phoneme features, zero on padded phonemes.
        prompt_hidden_states (`torch.Tensor` of shape `(batch_size, prompt_frames, hidden_size)`):
            Prompt features, zero on padded prompt frames.
    """

    phoneme_hidden_states: torch.Tensor
    prompt_hidden_states: torch.Tensor


class FlashSpeechPriorEncoder(ModelMixin, ConfigMixin):
    r"""
    Phoneme encoder and prompt encoder of FlashSpeech (NaturalSpeech 2 structure).

    The prompt encoder is a transformer over the prompt's codec latents. The phoneme encoder is a transformer over
    phoneme embeddings whose LayerNorms are conditioned on the time-averaged prompt features, so the phoneme
    features carry the prompt's speaker and style. Both use convolutional feed-forward blocks.

    Args:
        vocab_size (`int`, defaults to 256): Size of the phoneme vocabulary (the tokenizer's `len(tokenizer)`).
        latent_dim (`int`, defaults to 256): Channels of the codec latents.
        hidden_size (`int`, defaults to 512): Width of both encoders.
        num_layers (`int`, defaults to 6): Phoneme encoder layers.
        prompt_num_layers (`int`, defaults to 6): Prompt encoder layers.
        num_attention_heads (`int`, defaults to 8): Attention heads.
        ffn_size (`int`, defaults to 2048): Width of the convolutional feed-forward.
        ffn_kernel_size (`int`, defaults to 9): Its kernel size.
        dropout (`float`, defaults to 0.1): Dropout.
        pad_token_id (`int`, defaults to 0): Padding id of the tokenizer.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf import FlashSpeechPriorEncoder

    >>> encoder = FlashSpeechPriorEncoder(vocab_size=40, latent_dim=8, hidden_size=16, num_layers=1,
    ...                                   prompt_num_layers=1, num_attention_heads=2, ffn_size=32)
    >>> out = encoder(torch.randint(1, 40, (2, 12)), torch.ones(2, 12, dtype=torch.bool), torch.randn(2, 8, 30))
    >>> out.phoneme_hidden_states.shape, out.prompt_hidden_states.shape
    (torch.Size([2, 12, 16]), torch.Size([2, 30, 16]))
    ```
    """

    @register_to_config
    def __init__(
        self,
        vocab_size: int = 256,
        latent_dim: int = 256,
        hidden_size: int = 512,
        num_layers: int = 6,
        prompt_num_layers: int = 6,
        num_attention_heads: int = 8,
        ffn_size: int = 2048,
        ffn_kernel_size: int = 9,
        dropout: float = 0.1,
        pad_token_id: int = 0,
    ):
        super().__init__()
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size={hidden_size} must be divisible by num_attention_heads={num_attention_heads}."
            )
        self.embed_tokens = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_token_id)
        self.prompt_in = nn.Linear(latent_dim, hidden_size)
        self.prompt_layers = nn.ModuleList(
            [
                TransformerConvLayer(hidden_size, num_attention_heads, ffn_size, ffn_kernel_size, dropout)
                for _ in range(prompt_num_layers)
            ]
        )
        self.phoneme_layers = nn.ModuleList(
            [
                TransformerConvLayer(
                    hidden_size, num_attention_heads, ffn_size, ffn_kernel_size, dropout, condition_size=hidden_size
                )
                for _ in range(num_layers)
            ]
        )

    @apply_forward_hook
    def encode_prompt(self, prompt_latents: torch.Tensor, prompt_mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            prompt_latents (`torch.Tensor` of shape `(batch_size, latent_dim, prompt_frames)`): Normalized latents.
            prompt_mask (`torch.Tensor` of shape `(batch_size, prompt_frames)`, *optional*): True on valid frames.

        Returns:
            `torch.Tensor` of shape `(batch_size, prompt_frames, hidden_size)`.
        """
        if prompt_latents.ndim != 3 or prompt_latents.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"`prompt_latents` must have shape (batch, {self.config.latent_dim}, frames), "
                f"got {tuple(prompt_latents.shape)}."
            )
        if prompt_mask is None:
            prompt_mask = torch.ones(prompt_latents.shape[0], prompt_latents.shape[2], dtype=torch.bool)
        prompt_mask = prompt_mask.to(prompt_latents.device)
        x = self.prompt_in(prompt_latents.transpose(1, 2))
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device, x.dtype)
        x = x * prompt_mask[:, :, None].to(x.dtype)
        for layer in self.prompt_layers:
            x = layer(x, prompt_mask)
        return x

    @apply_forward_hook
    def encode_phonemes(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_hidden: torch.Tensor,
        prompt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, num_phonemes)`): Phoneme ids.
            attention_mask (`torch.Tensor` of shape `(batch_size, num_phonemes)`): True/1 on real phonemes.
            prompt_hidden (`torch.Tensor` of shape `(batch_size, prompt_frames, hidden_size)`): From `encode_prompt`.
            prompt_mask (`torch.Tensor` of shape `(batch_size, prompt_frames)`, *optional*): True on valid frames.

        Returns:
            `torch.Tensor` of shape `(batch_size, num_phonemes, hidden_size)`.
        """
        if input_ids.max() >= self.config.vocab_size or input_ids.min() < 0:
            raise ValueError(
                f"Phoneme id {int(input_ids.max())} is outside the encoder's vocabulary of {self.config.vocab_size}: "
                "the tokenizer and the prior encoder do not match."
            )
        mask = attention_mask.bool()
        if prompt_mask is None:
            pooled = prompt_hidden.mean(dim=1)
        else:
            weights = prompt_mask[:, :, None].to(prompt_hidden.dtype)
            pooled = (prompt_hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        x = self.embed_tokens(input_ids)
        x = x * math.sqrt(self.config.hidden_size) + sinusoidal_positions(x.shape[1], x.shape[2], x.device, x.dtype)
        x = x * mask[:, :, None].to(x.dtype)
        for layer in self.phoneme_layers:
            x = layer(x, mask, pooled)
        return x

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_latents: torch.Tensor,
        prompt_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> FlashSpeechPriorEncoderOutput | tuple[torch.Tensor, torch.Tensor]:
        """
        Encodes the prompt, then the phonemes conditioned on it.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, num_phonemes)`): Phoneme ids.
            attention_mask (`torch.Tensor` of shape `(batch_size, num_phonemes)`): True/1 on real phonemes.
            prompt_latents (`torch.Tensor` of shape `(batch_size, latent_dim, prompt_frames)`): Prompt latents.
            prompt_mask (`torch.Tensor` of shape `(batch_size, prompt_frames)`, *optional*): True on valid frames.
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechPriorEncoderOutput`].

        Returns:
            [`FlashSpeechPriorEncoderOutput`] or `(phoneme_hidden_states, prompt_hidden_states)`.
        """
        prompt_hidden = self.encode_prompt(prompt_latents, prompt_mask)
        phoneme_hidden = self.encode_phonemes(input_ids, attention_mask, prompt_hidden, prompt_mask)
        if not return_dict:
            return phoneme_hidden, prompt_hidden
        return FlashSpeechPriorEncoderOutput(phoneme_hidden_states=phoneme_hidden, prompt_hidden_states=prompt_hidden)

    def resize_token_embeddings(self, new_num_tokens: int) -> nn.Embedding:
        """
        Grows (or shrinks) the phoneme embedding to `new_num_tokens` rows; existing rows keep their values and new rows
        are initialised like the originals. Updates `config.vocab_size`.

        Args:
            new_num_tokens (`int`): The new vocabulary size.

        Returns:
            The new `nn.Embedding`.
        """
        self.embed_tokens = resize_embedding(self.embed_tokens, new_num_tokens)
        self.register_to_config(vocab_size=new_num_tokens)
        return self.embed_tokens
