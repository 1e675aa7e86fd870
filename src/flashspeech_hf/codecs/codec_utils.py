"""The interface shared by every codec: waveform <-> dense, normalized latents.

A codec turns mono audio of shape `(batch_size, num_samples)` into latents of shape
`(batch_size, latent_dim, num_frames)` and back. Every codec of this package follows one framing rule, which the
pipeline relies on to size its outputs:

- `encode` right-pads the waveform with zeros to a whole number of frames, so that
  `num_frames = ceil(num_samples / hop_length)` (see [`AudioCodecMixin.num_frames`]);
- `decode` returns exactly `num_frames * hop_length` samples.

Latents are normalized per channel by the `latent_mean` and `latent_std` buffers, which are saved with the weights:
`latents = (raw_latents - latent_mean) / latent_std`. Both buffers start as the identity (zeros and ones); compute them
once on training data with [`compute_latent_statistics`] and store them with
[`AudioCodecMixin.set_latent_statistics`].
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from diffusers.utils.accelerate_utils import apply_forward_hook

from ..audio import resample
from ..precision import KeepInFloat32Mixin

# Keys of a transformers config dict that describe the file, not the architecture.
_NON_ARCHITECTURE_KEYS = (
    "transformers_version",
    "model_type",
    "architectures",
    "_name_or_path",
    "dtype",
    "torch_dtype",
)


def transformers_config_to_dict(config: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The architecture fields of a transformers config (those that differ from the defaults), JSON-serializable."""
    config_dict = config.to_diff_dict()
    for key in _NON_ARCHITECTURE_KEYS + tuple(drop):
        config_dict.pop(key, None)
    return config_dict


def compute_latent_statistics(
    latents: Iterable[torch.Tensor | tuple[torch.Tensor, torch.Tensor]], min_std: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of raw (unnormalized) codec latents.

    Statistics are accumulated in float64 over every valid frame of every item, so batches of different lengths and
    padded batches can be streamed through once.

    Args:
        latents (iterable of `torch.Tensor` or of `(torch.Tensor, torch.Tensor)` pairs):
            Raw latents, e.g. from `codec.encode(waveform, normalize=False)`, each of shape
            `(batch_size, latent_dim, num_frames)` or `(latent_dim, num_frames)`. An item may be a pair
            `(latents, mask)` with a boolean `mask` of shape `(batch_size, num_frames)` (or `(num_frames,)`) where
            `True` marks valid frames; padded frames are then left out.
        min_std (`float`, defaults to 1e-5):
            Floor of the returned standard deviation, so that constant channels do not divide by zero.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: `(mean, std)`, two float32 tensors of shape `(latent_dim,)`; `std` is the
        population standard deviation.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf import MelCodec
    >>> from flashspeech_hf.codecs import compute_latent_statistics

    >>> codec = MelCodec()
    >>> waveforms = [torch.randn(2, 16000), torch.randn(1, 8000)]
    >>> mean, std = compute_latent_statistics(codec.encode(w, 16000, normalize=False) for w in waveforms)
    >>> codec.set_latent_statistics(mean, std)
    ```
    """
    total = None
    total_sq = None
    count = 0
    for item in latents:
        mask = None
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise ValueError("Each item must be a latents tensor or a `(latents, mask)` pair.")
            item, mask = item
        if not isinstance(item, torch.Tensor):
            raise TypeError(f"Latents must be torch tensors, got {type(item).__name__}.")
        if item.ndim == 2:
            item = item[None]
            mask = None if mask is None else mask.reshape(1, -1)
        if item.ndim != 3:
            raise ValueError(
                f"Latents must have shape (batch_size, latent_dim, num_frames) or (latent_dim, num_frames), got "
                f"shape {tuple(item.shape)}."
            )
        # (batch, channels, frames) -> (batch * frames, channels)
        values = item.detach().to(torch.float64).transpose(1, 2).reshape(-1, item.shape[1])
        if mask is not None:
            mask = torch.as_tensor(mask, device=item.device)
            if mask.dtype != torch.bool or mask.shape != (item.shape[0], item.shape[2]):
                raise ValueError(
                    f"The mask must be boolean of shape (batch_size, num_frames) = {(item.shape[0], item.shape[2])}, "
                    f"got {mask.dtype} of shape {tuple(mask.shape)}."
                )
            values = values[mask.reshape(-1)]
        if total is None:
            total = values.new_zeros(values.shape[1])
            total_sq = values.new_zeros(values.shape[1])
        elif values.shape[1] != total.shape[0]:
            raise ValueError(f"All latents must have the same latent_dim: got {values.shape[1]} and {total.shape[0]}.")
        if not torch.isfinite(values).all():
            raise ValueError("Latents contain NaN or infinite values.")
        total = total + values.sum(0)
        total_sq = total_sq + values.square().sum(0)
        count += values.shape[0]
    if total is None or count == 0:
        raise ValueError("No latent frames were given: cannot compute statistics.")
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0.0)
    std = var.sqrt().clamp_min(min_std)
    return mean.float().cpu(), std.float().cpu()


class AudioCodecMixin(KeepInFloat32Mixin):
    r"""
    Shared interface of the codecs: validation, resampling, framing and latent normalization around a codec-specific
    analysis (`_encode_frames`) and synthesis (`_decode_frames`).

    Precision: the latent statistics stay in float32 whatever the codec's dtype (`_keep_in_fp32_modules`, see
    [`~flashspeech_hf.precision.KeepInFloat32Mixin`]), and normalization runs in float32: `encode` returns float32
    latents and `decode` float32 audio, while the codec's networks run in the dtype of their weights (e.g. after
    `codec.to(torch.bfloat16)` or loading with `dtype=torch.bfloat16`).

    A codec class inherits from this mixin (first, so that its `forward` is found before `torch.nn.Module`'s),
    [`~diffusers.ModelMixin`] and [`~diffusers.ConfigMixin`], calls
    `self._register_latent_statistics(latent_dim)` in its `__init__`, and implements the properties `sampling_rate`,
    `hop_length` and `latent_dim` and the two methods below:

    - `_encode_frames(waveform)`: float32 `(batch_size, num_frames * hop_length)` -> raw latents
      `(batch_size, latent_dim, num_frames)` (at least `num_frames` frames; extra trailing frames are dropped), in
      any float dtype;
    - `_decode_frames(latents)`: float32 raw latents `(batch_size, latent_dim, num_frames)` -> waveform
      `(batch_size, about num_frames * hop_length)` (trimmed or zero-padded to exactly that length here, and cast to
      float32); it casts the latents to the dtype of its networks.
    """

    latent_mean: torch.Tensor
    latent_std: torch.Tensor
    _keep_in_fp32_modules = ["latent_mean", "latent_std"]

    @property
    def sampling_rate(self) -> int:
        """`int`: Sample rate of the codec's audio in Hz."""
        raise NotImplementedError

    @property
    def hop_length(self) -> int:
        """`int`: Number of audio samples per latent frame."""
        raise NotImplementedError

    @property
    def latent_dim(self) -> int:
        """`int`: Number of latent channels."""
        raise NotImplementedError

    @property
    def frame_rate(self) -> float:
        """`float`: Latent frames per second (`sampling_rate / hop_length`)."""
        return self.sampling_rate / self.hop_length

    def _encode_frames(self, waveform: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _decode_frames(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _register_latent_statistics(self, latent_dim: int) -> None:
        # float32 whatever the default dtype (diffusers builds models under the dtype they are loaded in)
        self.register_buffer("latent_mean", torch.zeros(latent_dim, dtype=torch.float32))
        self.register_buffer("latent_std", torch.ones(latent_dim, dtype=torch.float32))

    def num_frames(self, num_samples: int) -> int:
        """Number of latent frames that `encode` returns for `num_samples` samples at the codec's sample rate.

        Args:
            num_samples (`int`): Length of a waveform at `self.sampling_rate`.

        Returns:
            `int`: `ceil(num_samples / hop_length)`.
        """
        num_samples = int(num_samples)
        if num_samples < 0:
            raise ValueError(f"`num_samples` must be non-negative, got {num_samples}.")
        return math.ceil(num_samples / self.hop_length)

    def num_samples(self, num_frames: int) -> int:
        """Number of samples that `decode` returns for `num_frames` latent frames: `num_frames * hop_length`."""
        num_frames = int(num_frames)
        if num_frames < 0:
            raise ValueError(f"`num_frames` must be non-negative, got {num_frames}.")
        return num_frames * self.hop_length

    def set_latent_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Stores the per-channel statistics that `encode` normalizes by and `decode` undoes.

        Args:
            mean (`torch.Tensor` of shape `(latent_dim,)`): Mean of the raw latents.
            std (`torch.Tensor` of shape `(latent_dim,)`): Standard deviation of the raw latents, positive.
        """
        mean = torch.as_tensor(mean, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        for name, value in (("mean", mean), ("std", std)):
            if value.shape != (self.latent_dim,):
                raise ValueError(f"`{name}` must have shape ({self.latent_dim},), got {tuple(value.shape)}.")
            if not torch.isfinite(value).all():
                raise ValueError(f"`{name}` contains NaN or infinite values.")
        if (std <= 0).any():
            raise ValueError("`std` must be positive in every channel.")
        with torch.no_grad():
            self.latent_mean.copy_(mean)
            self.latent_std.copy_(std)

    compute_latent_statistics = staticmethod(compute_latent_statistics)

    def normalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw latents `(batch_size, latent_dim, num_frames)` -> normalized float32 latents of the same shape."""
        mean = self.latent_mean.float()[:, None]
        std = self.latent_std.float()[:, None]
        return (latents.float() - mean) / std

    def denormalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalized latents `(batch_size, latent_dim, num_frames)` -> raw float32 latents of the same shape."""
        mean = self.latent_mean.float()[:, None]
        std = self.latent_std.float()[:, None]
        return latents.float() * std + mean

    def _check_waveform(self, waveform: torch.Tensor) -> None:
        if not isinstance(waveform, torch.Tensor):
            raise TypeError(f"`waveform` must be a torch.Tensor, got {type(waveform).__name__}.")
        if waveform.ndim != 2:
            raise ValueError(
                f"`waveform` must have shape (batch_size, num_samples), got shape {tuple(waveform.shape)}. "
                "Use `waveform[None]` for a single clip; mix multi-channel audio down to mono first."
            )
        if not waveform.is_floating_point():
            raise TypeError(
                f"`waveform` must be a floating-point tensor with samples in [-1, 1], got {waveform.dtype}."
            )
        if waveform.shape[0] == 0 or waveform.shape[1] == 0:
            raise ValueError(f"`waveform` is empty (shape {tuple(waveform.shape)}).")
        if not torch.isfinite(waveform).all():
            raise ValueError("`waveform` contains NaN or infinite samples.")

    def _check_latents(self, latents: torch.Tensor) -> None:
        if not isinstance(latents, torch.Tensor):
            raise TypeError(f"`latents` must be a torch.Tensor, got {type(latents).__name__}.")
        if latents.ndim != 3 or latents.shape[1] != self.latent_dim:
            raise ValueError(
                f"`latents` must have shape (batch_size, latent_dim={self.latent_dim}, num_frames), got shape "
                f"{tuple(latents.shape)}."
            )
        if latents.shape[0] == 0 or latents.shape[2] == 0:
            raise ValueError(f"`latents` is empty (shape {tuple(latents.shape)}).")
        if not torch.isfinite(latents).all():
            raise ValueError("`latents` contains NaN or infinite values.")

    @apply_forward_hook
    def encode(self, waveform: torch.Tensor, sampling_rate: int | None = None, normalize: bool = True) -> torch.Tensor:
        """Encodes mono audio into dense latents.

        Args:
            waveform (`torch.Tensor` of shape `(batch_size, num_samples)`):
                Floating-point mono audio in `[-1, 1]`.
            sampling_rate (`int`, *optional*):
                Sample rate of `waveform` in Hz. Audio at another rate than `self.sampling_rate` is resampled first.
                `None` means the audio is already at `self.sampling_rate`; pass it for any audio that comes from
                outside the library.
            normalize (`bool`, defaults to `True`):
                Whether to normalize the latents with the stored `latent_mean` and `latent_std`. Use `False` to get
                the raw latents that [`compute_latent_statistics`] expects.

        Returns:
            `torch.Tensor` of shape `(batch_size, latent_dim, num_frames)`, with
            `num_frames = ceil(num_samples_at_codec_rate / hop_length)`: the waveform is zero-padded on the right to a
            whole number of frames. Float32 when normalized (raw latents keep the dtype of the codec's encoder).
        """
        self._check_waveform(waveform)
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            waveform = resample(waveform, int(sampling_rate), self.sampling_rate)
        # the analysis front-end gets float32 audio; `_encode_frames` casts it for the networks
        waveform = waveform.to(device=self.device, dtype=torch.float32)
        num_frames = self.num_frames(waveform.shape[-1])
        padding = num_frames * self.hop_length - waveform.shape[-1]
        if padding:
            waveform = torch.nn.functional.pad(waveform, (0, padding))
        latents = self._encode_frames(waveform)
        if latents.shape[-1] < num_frames:
            raise RuntimeError(
                f"{type(self).__name__} produced {latents.shape[-1]} frames for {waveform.shape[-1]} samples; "
                f"expected {num_frames}."
            )
        latents = latents[..., :num_frames]
        return self.normalize_latents(latents) if normalize else latents

    @apply_forward_hook
    def decode(self, latents: torch.Tensor, denormalize: bool = True) -> torch.Tensor:
        """Decodes latents into mono audio at `self.sampling_rate`. Differentiable with respect to `latents`.

        Args:
            latents (`torch.Tensor` of shape `(batch_size, latent_dim, num_frames)`):
                Normalized latents, as returned by `encode`.
            denormalize (`bool`, defaults to `True`):
                Whether to undo the normalization by `latent_mean` and `latent_std` first. Use `False` for raw
                latents.

        Returns:
            Float32 `torch.Tensor` of shape `(batch_size, num_frames * hop_length)`.
        """
        self._check_latents(latents)
        num_samples = latents.shape[-1] * self.hop_length
        latents = self.denormalize_latents(latents) if denormalize else latents.float()
        waveform = self._decode_frames(latents).float()
        if waveform.shape[-1] > num_samples:
            waveform = waveform[..., :num_samples]
        elif waveform.shape[-1] < num_samples:
            waveform = torch.nn.functional.pad(waveform, (0, num_samples - waveform.shape[-1]))
        return waveform

    def forward(self, waveform: torch.Tensor, sampling_rate: int | None = None) -> torch.Tensor:
        """Reconstruction `decode(encode(waveform))`: `(batch_size, num_samples)` -> `(batch_size, num_frames *
        hop_length)` at `self.sampling_rate`."""
        return self.decode(self.encode(waveform, sampling_rate))


class TransformersCodecMixin(AudioCodecMixin):
    r"""
    The codec interface around a transformers audio codec held as `self.model` (EnCodec, DAC): its `encoder` maps
    `(batch_size, 1, num_samples)` to dense latents `(batch_size, hidden_size, num_frames)` before quantization, its
    `decoder` maps them back, and its config gives `sampling_rate`, `hop_length` and `hidden_size`.
    """

    model: torch.nn.Module

    @property
    def sampling_rate(self) -> int:
        """`int`: Sample rate of the codec's audio in Hz."""
        return int(self.model.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        """`int`: Number of audio samples per latent frame (product of the resampling ratios)."""
        return int(self.model.config.hop_length)

    @property
    def latent_dim(self) -> int:
        """`int`: Number of latent channels (the encoder's output `hidden_size`)."""
        return int(self.model.config.hidden_size)

    def _encode_frames(self, waveform: torch.Tensor) -> torch.Tensor:
        # (batch, samples) -> (batch, 1, samples) -> (batch, hidden_size, frames)
        return self.model.encoder(waveform[:, None].to(self.dtype))

    def _decode_frames(self, latents: torch.Tensor) -> torch.Tensor:
        # Odd strides can make the transposed convolutions a sample short per block; `decode` pads to frames * hop.
        return self.model.decoder(latents.to(self.dtype))[:, 0]

    @classmethod
    def _from_transformers_model(cls, pretrained: Any, config_argument: str, drop: tuple[str, ...] = ()):
        """Wraps a loaded transformers codec: same config (passed as `config_argument`), same weights and dtype."""
        codec = cls(**{config_argument: transformers_config_to_dict(pretrained.config, drop=drop)})
        codec.model.load_state_dict(pretrained.state_dict())
        if pretrained.dtype != codec.dtype:
            codec = codec.to(pretrained.dtype)
        return codec.eval()
