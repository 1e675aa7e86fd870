"""Prosody generator of FlashSpeech: duration and pitch regression, consistency refinement, length regulation."""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn

from ..configuration_utils import DropLegacyConfigKeysMixin
from ..precision import KeepInFloat32Mixin
from .model_utils import CONSISTENCY_CONFIG_KEYS
from .modeling_denoiser import WaveNet


def length_regulate(
    hidden_states: torch.Tensor, durations: torch.Tensor, max_frames: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Repeats each phoneme's features by its duration, vectorized (no loop over phonemes or frames).

    Args:
        hidden_states (`torch.Tensor` of shape `(batch_size, num_phonemes, hidden_size)`): Phoneme features.
        durations (`torch.LongTensor` of shape `(batch_size, num_phonemes)`): Frames per phoneme, 0 on padding.
        max_frames (`int`, *optional*): Output length; defaults to the longest item.

    Returns:
        `(frame_hidden_states, frame_mask)` of shapes `(batch_size, num_frames, hidden_size)` and
        `(batch_size, num_frames)`; padded frames are zero and False.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf.models.modeling_prosody import length_regulate

    >>> frames, mask = length_regulate(torch.tensor([[[1.0], [2.0]]]), torch.tensor([[2, 3]]))
    >>> frames[0, :, 0].tolist(), mask.tolist()
    ([1.0, 1.0, 2.0, 2.0, 2.0], [[True, True, True, True, True]])
    ```
    """
    durations = durations.long().clamp_min(0)
    ends = durations.cumsum(dim=1)  # (B, L)
    totals = ends[:, -1]
    num_frames = int(totals.max()) if max_frames is None else max_frames
    frames = torch.arange(num_frames, device=durations.device)
    # index of the phoneme each frame belongs to: number of phoneme ends at or before the frame
    index = torch.searchsorted(ends, frames.unsqueeze(0).expand(durations.shape[0], -1).contiguous(), right=True)
    index = index.clamp_max(durations.shape[1] - 1)
    mask = frames[None, :] < totals[:, None]
    gathered = torch.gather(hidden_states, 1, index[:, :, None].expand(-1, -1, hidden_states.shape[2]))
    return gathered * mask[:, :, None].to(gathered.dtype), mask


class ProsodyPredictor(nn.Module):
    """
    NaturalSpeech 2 duration/pitch predictor: a stack of convolutions with LayerNorm and ReLU, and cross-attention to
    the prompt every `cross_attention_every`-th layer. `(B, L, D) -> prediction (B, L), hidden (B, L, H)`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        kernel_size: int,
        num_heads: int,
        cross_attention_every: int,
        dropout: float,
    ):
        super().__init__()
        self.in_proj = nn.Linear(input_size, hidden_size)
        self.convs = nn.ModuleList(
            [nn.Conv1d(hidden_size, hidden_size, kernel_size, padding="same") for _ in range(num_layers)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(hidden_size) for _ in range(num_layers)])
        self.attns = nn.ModuleDict(
            {
                str(i): nn.MultiheadAttention(hidden_size, num_heads, batch_first=True)
                for i in range(num_layers)
                if (i + 1) % cross_attention_every == 0
            }
        )
        self.prompt_proj = nn.Linear(input_size, hidden_size)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, 1)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, prompt_hidden: torch.Tensor, prompt_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask[:, :, None].to(x.dtype)
        h = self.in_proj(x) * m
        prompt = self.prompt_proj(prompt_hidden)
        padding = None if prompt_mask is None else ~prompt_mask
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            y = self.dropout(self.act(norm(conv(h.transpose(1, 2)).transpose(1, 2))))
            h = (h + y) * m
            if str(i) in self.attns:
                attended, _ = self.attns[str(i)](h, prompt, prompt, key_padding_mask=padding, need_weights=False)
                h = (h + attended) * m
        return self.out(h).squeeze(-1) * mask.to(x.dtype), h


class FlashSpeechProsodyGenerator(DropLegacyConfigKeysMixin, KeepInFloat32Mixin, ModelMixin, ConfigMixin):
    r"""
    Prosody generator of FlashSpeech: duration and pitch regression plus consistency refinement of their residual.

    The regression predictors follow NaturalSpeech 2. The refinement models are small consistency models (non-causal
    WaveNets) that map noise to the residual `ground truth - regression`, conditioned on the regression's last
    hidden features; like the denoiser they return their raw output `F`, and the scheduler applies the consistency
    scalings (`c_in`, `c_noise`, `c_skip`, `c_out`) around them. At inference the prosody is `regression + alpha * residual` (alpha 0.2 in the paper), so
    alpha 0 gives the deterministic regression prosody and larger alpha gives more diverse prosody.

    Durations are predicted as `log(1 + frames)` per phoneme; pitch as `ln(F0 / 1 Hz)` per frame (continuous, unvoiced
    frames interpolated). Pitch is quantized into `num_pitch_bins` log-spaced bins from `pitch_min_hz` to
    `pitch_max_hz` and embedded for the denoiser's condition.

    Precision: in a low-precision model the predictors and refiners run in its dtype, while the pitch bin edges stay
    in float32 (`_keep_in_fp32_modules`): around `ln F0` they lie closer together than bfloat16's spacing. The
    refiners return float32 residuals when given a float32 sample (the pipeline samples in float32).

    Args:
        hidden_size (`int`, defaults to 512): Width of the prior encoder's features (the predictors' input).
        predictor_hidden_size (`int`, defaults to 512): Width of the predictors.
        duration_num_layers (`int`, defaults to 30), duration_kernel_size (`int`, defaults to 3): Duration predictor.
        pitch_num_layers (`int`, defaults to 30), pitch_kernel_size (`int`, defaults to 5): Pitch predictor.
        num_attention_heads (`int`, defaults to 8): Heads of the prompt cross-attention.
        cross_attention_every (`int`, defaults to 3): Cross-attention to the prompt every this many layers.
        refine_hidden_size (`int`, defaults to 256), refine_num_layers (`int`, defaults to 30): Refinement WaveNets.
        num_pitch_bins (`int`, defaults to 512), pitch_min_hz (`float`, defaults to 50.0),
        pitch_max_hz (`float`, defaults to 1100.0): Pitch quantization.
        dropout (`float`, defaults to 0.1): Dropout of the predictors.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf import FlashSpeechProsodyGenerator

    >>> prosody = FlashSpeechProsodyGenerator(hidden_size=16, predictor_hidden_size=16, duration_num_layers=2,
    ...     pitch_num_layers=2, num_attention_heads=2, refine_hidden_size=16, refine_num_layers=2)
    >>> log_dur, hidden = prosody.predict_durations(torch.randn(1, 7, 16), torch.ones(1, 7, dtype=torch.bool),
    ...                                             torch.randn(1, 20, 16))
    >>> log_dur.shape, hidden.shape
    (torch.Size([1, 7]), torch.Size([1, 7, 16]))
    ```
    """

    _keep_in_fp32_modules = ["pitch_bin_edges"]
    _legacy_config_keys = CONSISTENCY_CONFIG_KEYS

    @register_to_config
    def __init__(
        self,
        hidden_size: int = 512,
        predictor_hidden_size: int = 512,
        duration_num_layers: int = 30,
        duration_kernel_size: int = 3,
        pitch_num_layers: int = 30,
        pitch_kernel_size: int = 5,
        num_attention_heads: int = 8,
        cross_attention_every: int = 3,
        refine_hidden_size: int = 256,
        refine_num_layers: int = 30,
        num_pitch_bins: int = 512,
        pitch_min_hz: float = 50.0,
        pitch_max_hz: float = 1100.0,
        dropout: float = 0.1,
    ):
        super().__init__()
        for name, value in (("predictor_hidden_size", predictor_hidden_size), ("hidden_size", hidden_size)):
            if value % num_attention_heads:
                raise ValueError(f"{name}={value} must be divisible by num_attention_heads={num_attention_heads}.")
        if not 0 < pitch_min_hz < pitch_max_hz:
            raise ValueError(f"Need 0 < pitch_min_hz < pitch_max_hz, got {pitch_min_hz}, {pitch_max_hz}.")

        def predictor(num_layers: int, kernel_size: int) -> ProsodyPredictor:
            return ProsodyPredictor(
                hidden_size,
                predictor_hidden_size,
                num_layers,
                kernel_size,
                num_attention_heads,
                cross_attention_every,
                dropout,
            )

        def refiner() -> WaveNet:
            return WaveNet(
                in_channels=1,
                hidden_size=refine_hidden_size,
                cond_size=predictor_hidden_size,
                num_layers=refine_num_layers,
            )

        self.duration_predictor = predictor(duration_num_layers, duration_kernel_size)
        self.pitch_predictor = predictor(pitch_num_layers, pitch_kernel_size)
        self.duration_refiner = refiner()
        self.pitch_refiner = refiner()
        self.pitch_embedding = nn.Embedding(num_pitch_bins, hidden_size)
        self.register_buffer(
            "pitch_bin_edges",
            # float32 whatever the default dtype: the edges lie closer than bfloat16's spacing around ln F0
            torch.linspace(math.log(pitch_min_hz), math.log(pitch_max_hz), num_pitch_bins - 1, dtype=torch.float32),
            persistent=False,
        )

    @apply_forward_hook
    def predict_durations(
        self,
        phoneme_hidden: torch.Tensor,
        phoneme_mask: torch.Tensor,
        prompt_hidden: torch.Tensor,
        prompt_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Duration regression.

        Args:
            phoneme_hidden (`torch.Tensor` of shape `(batch_size, num_phonemes, hidden_size)`): Phoneme features.
            phoneme_mask (`torch.Tensor` of shape `(batch_size, num_phonemes)`): True on real phonemes.
            prompt_hidden (`torch.Tensor` of shape `(batch_size, prompt_frames, hidden_size)`): Prompt features.
            prompt_mask (`torch.Tensor` of shape `(batch_size, prompt_frames)`, *optional*): True on valid frames.

        Returns:
            `(log_durations, hidden)` of shapes `(batch_size, num_phonemes)` (`log(1 + frames)`) and
            `(batch_size, num_phonemes, predictor_hidden_size)`.
        """
        return self.duration_predictor(phoneme_hidden, phoneme_mask.bool(), prompt_hidden, prompt_mask)

    @apply_forward_hook
    def predict_pitch(
        self,
        frame_hidden: torch.Tensor,
        frame_mask: torch.Tensor,
        prompt_hidden: torch.Tensor,
        prompt_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Pitch regression over length-regulated frames.

        Args:
            frame_hidden (`torch.Tensor` of shape `(batch_size, num_frames, hidden_size)`): Expanded phoneme features.
            frame_mask (`torch.Tensor` of shape `(batch_size, num_frames)`): True on valid frames.
            prompt_hidden, prompt_mask: As in [`~FlashSpeechProsodyGenerator.predict_durations`].

        Returns:
            `(log_pitch, hidden)` of shapes `(batch_size, num_frames)` (`ln F0`) and
            `(batch_size, num_frames, predictor_hidden_size)`.
        """
        log_pitch, hidden = self.pitch_predictor(frame_hidden, frame_mask, prompt_hidden, prompt_mask)
        # centre the output on the geometric mean of the pitch range, so an untrained predictor starts in range
        return log_pitch + math.log(
            math.sqrt(self.config.pitch_min_hz * self.config.pitch_max_hz)
        ) * frame_mask, hidden

    @staticmethod
    def _refine(
        refiner: WaveNet,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        hidden: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        timestep = torch.as_tensor(timestep, device=sample.device, dtype=torch.float32)
        if timestep.ndim == 0:
            timestep = timestep.expand(sample.shape[0])
        return refiner(sample, timestep, hidden.transpose(1, 2), mask)

    @apply_forward_hook
    def refine_durations(
        self, sample: torch.Tensor, timestep: torch.Tensor | float, hidden: torch.Tensor, phoneme_mask: torch.Tensor
    ) -> torch.Tensor:
        """
        The duration refiner's raw output `F` (the scheduler forms the consistency function of the residual from it).

        Args:
            sample (`torch.Tensor` of shape `(batch_size, 1, num_phonemes)`): The scaled noisy residual of
                `log(1 + frames)` (`scheduler.scale_model_input`).
            timestep (`torch.Tensor` of shape `(batch_size,)`, a scalar tensor or `float`): Noise conditioning
                `c_noise` (an element of `scheduler.timesteps`).
            hidden (`torch.Tensor` of shape `(batch_size, num_phonemes, predictor_hidden_size)`): Regression features.
            phoneme_mask (`torch.Tensor` of shape `(batch_size, num_phonemes)`): True on real phonemes.

        Returns:
            `torch.Tensor` of shape `(batch_size, 1, num_phonemes)` in the weights' dtype, zero on padding.
        """
        return self._refine(self.duration_refiner, sample, timestep, hidden, phoneme_mask.bool())

    @apply_forward_hook
    def refine_pitch(
        self, sample: torch.Tensor, timestep: torch.Tensor | float, hidden: torch.Tensor, frame_mask: torch.Tensor
    ) -> torch.Tensor:
        """The pitch refiner's raw output `F`; shapes as in `refine_durations` with frames for phonemes."""
        return self._refine(self.pitch_refiner, sample, timestep, hidden, frame_mask.bool())

    @staticmethod
    def durations_to_frames(
        log_durations: torch.Tensor, phoneme_mask: torch.Tensor, speed: float = 1.0, min_frames: int = 1
    ) -> torch.Tensor:
        """
        Turns predicted `log(1 + frames)` into integer frame counts.

        Args:
            log_durations (`torch.Tensor` of shape `(batch_size, num_phonemes)`): Predicted log durations.
            phoneme_mask (`torch.Tensor` of shape `(batch_size, num_phonemes)`): True on real phonemes.
            speed (`float`, defaults to 1.0): Speaking rate; 2.0 halves the durations.
            min_frames (`int`, defaults to 1): Smallest duration of a real phoneme.

        Returns:
            `torch.LongTensor` of shape `(batch_size, num_phonemes)`, zero on padding.
        """
        if speed <= 0:
            raise ValueError(f"`speed` must be positive, got {speed}.")
        frames = torch.round((torch.exp(log_durations.float()) - 1.0) / speed).long().clamp_min(min_frames)
        return frames * phoneme_mask.long()

    @apply_forward_hook
    def quantize_pitch(self, log_pitch: torch.Tensor) -> torch.Tensor:
        """Bins `ln F0` `(batch, frames)` into `num_pitch_bins` log-spaced bins: `LongTensor (batch, frames)`."""
        return torch.bucketize(log_pitch.float(), self.pitch_bin_edges)

    @apply_forward_hook
    def embed_pitch(self, log_pitch: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """Pitch embedding `(batch, frames) -> (batch, frames, hidden_size)`, zero on padded frames."""
        return self.pitch_embedding(self.quantize_pitch(log_pitch)) * frame_mask[:, :, None].to(
            self.pitch_embedding.weight.dtype
        )

    length_regulate = staticmethod(length_regulate)
