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
"""Learned monotonic text-to-latent aligner that gives phoneme durations without an external forced aligner.

The design follows the unsupervised alignment learning of RAD-TTS (Shih et al. 2021) as described in "One TTS Alignment
To Rule Them All" ([Badlani et al. 2021](https://huggingface.co/papers/2108.10447)): phonemes and
codec latent frames are embedded in a shared space, each frame gets a soft distribution over the phonemes from their
distances (optionally times a beta-binomial prior that favours the diagonal), the forward-sum loss trains it, and
monotonic alignment search (MAS) hardens it into durations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn

from .model_utils import resize_embedding

__all__ = [
    "FlashSpeechAligner",
    "FlashSpeechAlignerOutput",
    "beta_binomial_log_prior",
    "monotonic_alignment_search",
]


@dataclass
class FlashSpeechAlignerOutput(BaseOutput):
    """
    Output of [`FlashSpeechAligner`].

    Args:
        log_soft_alignment (`torch.Tensor` of shape `(batch_size, num_frames, num_phonemes)`):
            Log-probability of each latent frame over the phonemes (each valid row sums to one in probability space).
            Padded phonemes and padded frames are `-inf`.
        hard_alignment (`torch.Tensor` of shape `(batch_size, num_frames, num_phonemes)`, *optional*):
            The monotonic 0/1 alignment found by [`monotonic_alignment_search`] on `log_soft_alignment`, returned
            when `return_hard_alignment=True`; zero on padding.
    """

    log_soft_alignment: torch.Tensor
    hard_alignment: torch.Tensor | None = None


def _lengths_from_mask(mask: torch.Tensor, name: str) -> torch.Tensor:
    """Number of valid positions per row of a right-padded boolean mask `(batch_size, length)`."""
    lengths = mask.sum(dim=-1)
    positions = torch.arange(mask.shape[-1], device=mask.device)
    if not torch.equal(mask, positions < lengths.unsqueeze(-1)):
        raise ValueError(f"`{name}` must be right-padded: True for the first valid positions of each row, then False.")
    if torch.any(lengths == 0):
        raise ValueError(f"`{name}` has an item with no valid position.")
    return lengths


def _as_bool_mask(mask: torch.Tensor | None, shape: tuple[int, int], device: torch.device, name: str) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)}, got {tuple(mask.shape)}.")
    if mask.dtype != torch.bool:
        if mask.dtype.is_floating_point or not torch.all((mask == 0) | (mask == 1)):
            raise ValueError(f"`{name}` must be boolean (True = valid) or hold only 0 and 1, got dtype {mask.dtype}.")
        mask = mask.bool()
    return mask.to(device)


@torch.no_grad()
def monotonic_alignment_search(
    log_probs: torch.Tensor,
    text_mask: torch.Tensor | None = None,
    frame_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""
    Monotonic alignment search (Glow-TTS): the most likely monotonic path through a frame-by-phoneme score matrix.

    The path starts at (frame 0, phoneme 0), ends at (last valid frame, last valid phoneme) and, from one frame to the
    next, either stays on the same phoneme or moves to the next one, so every phoneme gets at least one frame when there
    are at least as many frames as phonemes, and the durations of each item sum exactly to its number of frames. (With
    fewer frames than phonemes no such path exists; the search then skips the first phonemes, which get 0 frames.)

    The dynamic program is vectorized over the batch and the phonemes and loops over frames only: `O(num_frames)`
    tensor operations, each over `(batch_size, num_phonemes)`.

    Args:
        log_probs (`torch.Tensor` of shape `(batch_size, num_frames, num_phonemes)`):
            Log-scores of each frame for each phoneme (e.g. `FlashSpeechAlignerOutput.log_soft_alignment`); `-inf` is
            allowed and values on padding are ignored.
        text_mask (`torch.BoolTensor` of shape `(batch_size, num_phonemes)`, *optional*):
            True for valid phonemes; right-padded. All valid when omitted.
        frame_mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`, *optional*):
            True for valid frames; right-padded. All valid when omitted.

    Returns:
        `torch.Tensor` of shape `(batch_size, num_frames, num_phonemes)`: the 0/1 alignment in the dtype of
        `log_probs` (or float32 for integer inputs), zero on padding. `hard.sum(1)` gives the durations.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf.models.modeling_aligner import monotonic_alignment_search

    >>> log_probs = torch.randn(2, 12, 4).log_softmax(-1)
    >>> hard = monotonic_alignment_search(log_probs)
    >>> hard.sum(1)  # frames per phoneme, each row sums to 12
    ```
    """
    if log_probs.ndim != 3:
        raise ValueError(
            f"`log_probs` must have shape (batch_size, num_frames, num_phonemes), got {tuple(log_probs.shape)}."
        )
    if torch.isnan(log_probs).any():
        raise ValueError("`log_probs` contains NaN.")
    batch_size, num_frames, num_phonemes = log_probs.shape
    device = log_probs.device
    text_mask = _as_bool_mask(text_mask, (batch_size, num_phonemes), device, "text_mask")
    frame_mask = _as_bool_mask(frame_mask, (batch_size, num_frames), device, "frame_mask")
    text_lengths = _lengths_from_mask(text_mask, "text_mask")
    frame_lengths = _lengths_from_mask(frame_mask, "frame_mask")

    scores = log_probs.float().masked_fill(~text_mask.unsqueeze(1), float("-inf"))
    neg_inf = torch.full((batch_size, 1), float("-inf"), device=device)

    # Forward pass: best[b, l] = best score of a path ending on phoneme l at the current frame; `moved[b, f, l]`
    # records whether that path came from phoneme l - 1 at frame f - 1 (ties keep the phoneme).
    moved = torch.zeros(batch_size, num_frames, num_phonemes, dtype=torch.bool, device=device)
    best = torch.cat([scores[:, 0, :1], scores.new_full((batch_size, num_phonemes - 1), float("-inf"))], dim=1)
    for frame in range(1, num_frames):
        from_previous = torch.cat([neg_inf, best[:, :-1]], dim=1)
        moved[:, frame] = from_previous > best
        best = torch.maximum(best, from_previous) + scores[:, frame]

    # Backtracking from (last frame, last phoneme) of each item, all items at once. Moves are forced where the path
    # would otherwise be unable to reach phoneme 0 at frame 0, and forbidden below phoneme 0, so the path is valid even
    # where every score is -inf.
    batch_index = torch.arange(batch_size, device=device)
    phoneme = text_lengths - 1
    hard = torch.zeros(batch_size, num_frames, num_phonemes, dtype=torch.bool, device=device)
    for frame in range(num_frames - 1, -1, -1):
        active = frame < frame_lengths
        hard[batch_index, frame, phoneme] = active
        if frame == 0:
            break
        step = moved[batch_index, frame, phoneme] | (phoneme >= frame)
        step = step & (phoneme > 0) & active
        phoneme = phoneme - step.long()

    out_dtype = log_probs.dtype if log_probs.dtype.is_floating_point else torch.float32
    return hard.to(out_dtype)


def beta_binomial_log_prior(
    text_lengths: torch.Tensor,
    frame_lengths: torch.Tensor,
    num_phonemes: int | None = None,
    num_frames: int | None = None,
    scaling: float = 1.0,
) -> torch.Tensor:
    r"""
    Log of the beta-binomial alignment prior of RAD-TTS, computed for a whole batch with `lgamma`.

    For an item with `N` phonemes and `T` frames, frame `t` (1-based) has the prior
    `P(phoneme k) = BetaBinomial(k; n = N - 1, a = scaling * t, b = scaling * (T + 1 - t))`, whose mass moves along the
    diagonal of the alignment matrix; a smaller `scaling` gives a broader prior.

    Args:
        text_lengths (`torch.LongTensor` of shape `(batch_size,)`): Number of phonemes of each item.
        frame_lengths (`torch.LongTensor` of shape `(batch_size,)`): Number of frames of each item.
        num_phonemes (`int`, *optional*): Padded number of phonemes (defaults to `text_lengths.max()`).
        num_frames (`int`, *optional*): Padded number of frames (defaults to `frame_lengths.max()`).
        scaling (`float`, defaults to 1.0): Concentration of the prior.

    Returns:
        `torch.Tensor` of shape `(batch_size, num_frames, num_phonemes)`: the log-prior (float32), 0 on padding.
    """
    if scaling <= 0:
        raise ValueError(f"`scaling` must be positive, got {scaling}.")
    num_phonemes = int(text_lengths.max()) if num_phonemes is None else num_phonemes
    num_frames = int(frame_lengths.max()) if num_frames is None else num_frames
    device = text_lengths.device
    n = (text_lengths.float() - 1).view(-1, 1, 1)
    frames_total = frame_lengths.float().view(-1, 1, 1)
    k = torch.arange(num_phonemes, device=device, dtype=torch.float32).view(1, 1, -1)
    t = torch.arange(1, num_frames + 1, device=device, dtype=torch.float32).view(1, -1, 1)
    valid = (k <= n) & (t <= frames_total)
    # Clamp the arguments on padding so lgamma stays finite there; those cells are zeroed below.
    n_minus_k = (n - k).clamp_min(0)
    a = scaling * t
    b = (scaling * (frames_total + 1 - t)).clamp_min(scaling)

    def log_beta(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.lgamma(x) + torch.lgamma(y) - torch.lgamma(x + y)

    log_choose = torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n_minus_k + 1)
    log_prior = log_choose + log_beta(k + a, n_minus_k + b) - log_beta(a, b)
    return torch.where(valid, log_prior, torch.zeros_like(log_prior))


class _MaskedConvStack(nn.Module):
    """Same-length Conv1d + ReLU layers that zero padded frames before every convolution, then a 1x1 projection."""

    def __init__(self, in_channels: int, hidden_size: int, out_channels: int, num_layers: int, kernel_size: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(in_channels if i == 0 else hidden_size, hidden_size, kernel_size, padding=kernel_size // 2)
            for i in range(num_layers)
        )
        self.proj = nn.Conv1d(hidden_size if num_layers > 0 else in_channels, out_channels, 1)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.unsqueeze(1).to(hidden_states.dtype)
        for conv in self.convs:
            hidden_states = torch.relu(conv(hidden_states * mask))
        return self.proj(hidden_states * mask) * mask


class FlashSpeechAligner(ModelMixin, ConfigMixin):
    r"""
    Learned monotonic aligner between phonemes and codec latent frames, used to extract phoneme durations for training.

    A text encoder (embedding + convolutions) embeds the phonemes and an acoustic encoder (convolutions) embeds the
    latent frames in a shared `attention_dim`-dimensional space. Frame `f` attends to phoneme `l` with the logit
    `-temperature * ||q_f - k_l||^2`; the soft alignment is the softmax of these logits over the phonemes, multiplied
    by a beta-binomial prior when `use_prior` is set and renormalized. Train it with
    [`~flashspeech_hf.losses.forward_sum_loss`] (plus [`~flashspeech_hf.losses.binarization_loss`] later in
    training), then call [`~FlashSpeechAligner.durations`] to get integer durations through monotonic alignment
    search.

    This model inherits from [`ModelMixin`] and [`ConfigMixin`]; check the superclass documentation for the generic
    methods (saving, loading, device placement).

    Args:
        vocab_size (`int`, defaults to 256): Size of the phoneme vocabulary.
        latent_dim (`int`, defaults to 128): Channels of the codec latents.
        hidden_size (`int`, defaults to 256): Channels of both encoders' convolutions.
        attention_dim (`int`, defaults to 80): Dimension of the shared space in which distances are measured.
        num_text_layers (`int`, defaults to 2): Convolutions of the text encoder.
        num_latent_layers (`int`, defaults to 3): Convolutions of the acoustic encoder.
        kernel_size (`int`, defaults to 3): Kernel size of the convolutions (odd).
        temperature (`float`, defaults to 0.0005): Scale of the negative squared distance (RAD-TTS's value).
        use_prior (`bool`, defaults to `True`): Whether to apply the beta-binomial prior by default.
        prior_scaling (`float`, defaults to 1.0): Concentration of the prior (see [`beta_binomial_log_prior`]).
        pad_token_id (`int`, defaults to 0): Id of the padding phoneme (its embedding is kept at zero).
        silent_token_ids (`list[int]`, *optional*): Tokens that have no sound of their own (word boundaries, stress
            marks). [`~FlashSpeechAligner.durations`] aligns the other tokens only and gives these 0 frames, so that
            they do not take frames from their neighbours; train on [`~FlashSpeechAligner.remove_silent_tokens`]'s
            output to match.
    """

    @register_to_config
    def __init__(
        self,
        vocab_size: int = 256,
        latent_dim: int = 128,
        hidden_size: int = 256,
        attention_dim: int = 80,
        num_text_layers: int = 2,
        num_latent_layers: int = 3,
        kernel_size: int = 3,
        temperature: float = 0.0005,
        use_prior: bool = True,
        prior_scaling: float = 1.0,
        pad_token_id: int = 0,
        silent_token_ids: list[int] | None = None,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"`kernel_size` must be odd to keep the sequence length, got {kernel_size}.")
        if temperature <= 0:
            raise ValueError(f"`temperature` must be positive, got {temperature}.")
        if not 0 <= pad_token_id < vocab_size:
            raise ValueError(f"`pad_token_id` ({pad_token_id}) must lie in [0, vocab_size={vocab_size}).")
        self.embed_tokens = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_token_id)
        self.text_encoder = _MaskedConvStack(hidden_size, hidden_size, attention_dim, num_text_layers, kernel_size)
        self.latent_encoder = _MaskedConvStack(latent_dim, hidden_size, attention_dim, num_latent_layers, kernel_size)

    def _check_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        latents: torch.Tensor,
        latent_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if input_ids.ndim != 2 or input_ids.dtype.is_floating_point:
            raise ValueError(
                f"`input_ids` must be an integer tensor of shape (batch_size, num_phonemes), got "
                f"{tuple(input_ids.shape)} of dtype {input_ids.dtype}."
            )
        if torch.any(input_ids < 0) or torch.any(input_ids >= self.config.vocab_size):
            raise ValueError(f"`input_ids` must lie in [0, {self.config.vocab_size}) (the aligner's `vocab_size`).")
        if latents.ndim != 3 or latents.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"`latents` must have shape (batch_size, {self.config.latent_dim}, num_frames), got "
                f"{tuple(latents.shape)}."
            )
        if latents.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"`input_ids` and `latents` have different batch sizes ({input_ids.shape[0]} and {latents.shape[0]})."
            )
        batch_size, num_phonemes = input_ids.shape
        attention_mask = _as_bool_mask(attention_mask, (batch_size, num_phonemes), input_ids.device, "attention_mask")
        latent_mask = _as_bool_mask(latent_mask, (batch_size, latents.shape[2]), latents.device, "latent_mask")
        return attention_mask, latent_mask

    def resize_token_embeddings(self, new_num_tokens: int) -> nn.Embedding:
        """
        Grows (or shrinks) the phoneme embedding to `new_num_tokens` rows, e.g. after phonemes were added to the
        tokenizer. Existing rows keep their values; new rows are initialised like a fresh embedding (an aligner must be
        trained on data with the new phonemes before it aligns them well). Updates `config.vocab_size`.

        Args:
            new_num_tokens (`int`): The new vocabulary size (larger than `config.pad_token_id`).

        Returns:
            `nn.Embedding`: The new phoneme embedding.

        Examples:

        ```py
        >>> from flashspeech_hf.models.modeling_aligner import FlashSpeechAligner

        >>> aligner = FlashSpeechAligner(vocab_size=64, latent_dim=16, hidden_size=32, attention_dim=16)
        >>> aligner.resize_token_embeddings(70).weight.shape
        torch.Size([70, 32])
        ```
        """
        self.embed_tokens = resize_embedding(self.embed_tokens, new_num_tokens)
        self.register_to_config(vocab_size=new_num_tokens)
        return self.embed_tokens

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        latents: torch.Tensor,
        latent_mask: torch.Tensor | None = None,
        use_prior: bool | None = None,
        return_hard_alignment: bool = False,
        return_dict: bool = True,
    ) -> FlashSpeechAlignerOutput | tuple:
        r"""
        Computes the soft alignment of every latent frame over the phonemes.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, num_phonemes)`): Phoneme ids.
            attention_mask (`torch.BoolTensor` of shape `(batch_size, num_phonemes)` or `None`):
                True for valid phonemes, right-padded; `None` means all valid.
            latents (`torch.Tensor` of shape `(batch_size, latent_dim, num_frames)`): Codec latents.
            latent_mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`, *optional*):
                True for valid frames, right-padded; all valid when omitted.
            use_prior (`bool`, *optional*): Overrides `config.use_prior` for this call.
            return_hard_alignment (`bool`, defaults to `False`):
                Also run [`monotonic_alignment_search`] on the (detached) soft alignment.
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechAlignerOutput`] instead of a tuple.

        Returns:
            [`FlashSpeechAlignerOutput`] or `tuple`: `(log_soft_alignment, hard_alignment)` when not a dict.

        Examples:

        ```py
        >>> import torch
        >>> from flashspeech_hf.models.modeling_aligner import FlashSpeechAligner
        >>> from flashspeech_hf.losses import forward_sum_loss

        >>> aligner = FlashSpeechAligner(vocab_size=64, latent_dim=16, hidden_size=32, attention_dim=16)
        >>> input_ids = torch.randint(1, 64, (2, 7))
        >>> attention_mask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
        >>> latents = torch.randn(2, 16, 30)
        >>> latent_mask = torch.tensor([[True] * 30, [True] * 21 + [False] * 9])
        >>> out = aligner(input_ids, attention_mask, latents, latent_mask)
        >>> loss = forward_sum_loss(out.log_soft_alignment, attention_mask.sum(1), latent_mask.sum(1))
        ```
        """
        attention_mask, latent_mask = self._check_inputs(input_ids, attention_mask, latents, latent_mask)
        text_lengths = _lengths_from_mask(attention_mask, "attention_mask")
        frame_lengths = _lengths_from_mask(latent_mask, "latent_mask")

        keys = self.text_encoder(self.embed_tokens(input_ids).transpose(1, 2), attention_mask)  # [B, D, L]
        queries = self.latent_encoder(latents.to(keys.dtype), latent_mask)  # [B, D, F]
        queries, keys = queries.transpose(1, 2), keys.transpose(1, 2)
        # ||q - k||^2 = ||q||^2 + ||k||^2 - 2 q.k, without materializing a [B, F, L, D] tensor.
        distance = (
            queries.pow(2).sum(-1, keepdim=True)
            + keys.pow(2).sum(-1).unsqueeze(1)
            - 2 * queries @ keys.transpose(1, 2)
        )
        logits = -self.config.temperature * distance  # [B, F, L]
        use_prior = self.config.use_prior if use_prior is None else use_prior
        if use_prior:
            log_prior = beta_binomial_log_prior(
                text_lengths, frame_lengths, logits.shape[2], logits.shape[1], self.config.prior_scaling
            )
            logits = logits.log_softmax(dim=-1) + log_prior.to(logits.dtype)
        logits = logits.masked_fill(~attention_mask.unsqueeze(1), float("-inf"))
        log_soft_alignment = logits.log_softmax(dim=-1).masked_fill(~latent_mask.unsqueeze(-1), float("-inf"))

        hard_alignment = None
        if return_hard_alignment:
            hard_alignment = monotonic_alignment_search(log_soft_alignment.detach(), attention_mask, latent_mask)
        if not return_dict:
            return (log_soft_alignment, hard_alignment)
        return FlashSpeechAlignerOutput(log_soft_alignment=log_soft_alignment, hard_alignment=hard_alignment)

    def remove_silent_tokens(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""
        Drops the `config.silent_token_ids` from each row, keeping the order of the others.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, num_phonemes)`): Phoneme ids, right-padded.
            attention_mask (`torch.BoolTensor` of shape `(batch_size, num_phonemes)` or `None`): True for valid ids.

        Returns:
            `(input_ids, attention_mask, positions)`: the sounding ids right-padded to `(batch_size, num_sounding)`,
            their mask, and `positions` (`torch.LongTensor`, same shape) of each kept id in the original row.

        Raises:
            `ValueError`: When a row has no sounding token.
        """
        batch_size, num_phonemes = input_ids.shape
        valid = _as_bool_mask(attention_mask, (batch_size, num_phonemes), input_ids.device, "attention_mask")
        silent = torch.tensor(list(self.config.silent_token_ids or []), dtype=input_ids.dtype, device=input_ids.device)
        sounding = valid & ~torch.isin(input_ids, silent)
        counts = sounding.sum(dim=1)
        if torch.any(counts == 0):
            raise ValueError("A row holds only silent tokens (word boundaries, stress marks): nothing to align.")
        # a stable sort puts the sounding positions first, in order
        order = torch.sort((~sounding).to(torch.int8), dim=1, stable=True).indices[:, : int(counts.max())]
        mask = torch.arange(order.shape[1], device=order.device)[None] < counts[:, None]
        ids = torch.gather(input_ids, 1, order).masked_fill(~mask, self.config.pad_token_id)
        return ids, mask, order

    @torch.no_grad()
    @apply_forward_hook
    def durations(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        latents: torch.Tensor,
        latent_mask: torch.Tensor | None = None,
        use_prior: bool | None = None,
    ) -> torch.LongTensor:
        r"""
        Integer phoneme durations from the hardened (MAS) alignment.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, num_phonemes)`): Phoneme ids.
            attention_mask (`torch.BoolTensor` of shape `(batch_size, num_phonemes)` or `None`):
                True for valid phonemes, right-padded; `None` means all valid.
            latents (`torch.Tensor` of shape `(batch_size, latent_dim, num_frames)`): Codec latents.
            latent_mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`, *optional*):
                True for valid frames, right-padded.
            use_prior (`bool`, *optional*): Overrides `config.use_prior` for this call.

        Returns:
            `torch.LongTensor` of shape `(batch_size, num_phonemes)`: frames per phoneme; each row sums to the item's
            number of valid frames, padded phonemes and `config.silent_token_ids` get 0, and every other valid
            phoneme gets at least one frame when the item has at least as many frames as such phonemes.

        Examples:

        ```py
        >>> import torch
        >>> from flashspeech_hf.models.modeling_aligner import FlashSpeechAligner

        >>> aligner = FlashSpeechAligner(vocab_size=64, latent_dim=16, hidden_size=32, attention_dim=16)
        >>> durations = aligner.durations(torch.randint(1, 64, (1, 7)), None, torch.randn(1, 16, 30))
        >>> int(durations.sum())
        30
        ```
        """
        if not self.config.silent_token_ids:
            output = self.forward(
                input_ids, attention_mask, latents, latent_mask, use_prior=use_prior, return_hard_alignment=True
            )
            return output.hard_alignment.sum(dim=1).round().long()
        ids, mask, positions = self.remove_silent_tokens(input_ids, attention_mask)
        output = self.forward(ids, mask, latents, latent_mask, use_prior=use_prior, return_hard_alignment=True)
        sounding = output.hard_alignment.sum(dim=1).round().long() * mask
        return torch.zeros_like(input_ids, dtype=torch.long).scatter_add_(1, positions, sounding)
