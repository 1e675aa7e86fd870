"""The Descript Audio Codec (Kumar et al. 2023) as a dense-latent codec, wrapping `transformers.DacModel`."""

from __future__ import annotations

import os
from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from transformers import DacConfig, DacModel

from .codec_utils import AudioCodecMixin, transformers_config_to_dict

# Fields that `DacConfig` derives from the others; they are recomputed on load.
_DAC_DERIVED_KEYS = ("upsampling_ratios", "hidden_size", "hop_length")


class DacCodec(AudioCodecMixin, ModelMixin, ConfigMixin):
    r"""
    DAC as a continuous codec. The latents are the encoder's output `z = DacModel.encoder(waveform)` *before* residual
    vector quantization, of dimension `hidden_size = encoder_hidden_size * 2 ** len(downsampling_ratios)` (1024 for
    `descript/dac_16khz`), and decoding runs `DacModel.decoder` on them, as `DacModel.decode` does on the quantized
    representation (which lives in the same space: the sum of the codebooks' `out_proj` outputs).

    The per-codebook `projected_latents` (`n_codebooks * codebook_dim` channels) are not used: each codebook projects
    the residual left by the previous ones after quantization, so they do not form one dense latent that decodes
    without the quantizer.

    This model inherits from [`ModelMixin`] and [`ConfigMixin`] and shares the codec interface of
    [`~flashspeech_hf.codecs.codec_utils.AudioCodecMixin`] (`encode`, `decode`, `num_frames`,
    `set_latent_statistics`).

    Args:
        dac_config (`dict`, *optional*):
            Keyword arguments of a [`~transformers.DacConfig`]. `None` gives the default (16 kHz) architecture with
            random weights; use [`DacCodec.from_transformers`] for pretrained weights.
    """

    @register_to_config
    def __init__(self, dac_config: dict[str, Any] | None = None):
        super().__init__()
        config = DacConfig(**{k: v for k, v in (dac_config or {}).items() if k not in _DAC_DERIVED_KEYS})
        self.model = DacModel(config)
        self._register_latent_statistics(config.hidden_size)

    @property
    def sampling_rate(self) -> int:
        """`int`: Sample rate of the codec's audio in Hz."""
        return int(self.model.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        """`int`: Number of audio samples per latent frame (product of the downsampling ratios)."""
        return int(self.model.config.hop_length)

    @property
    def latent_dim(self) -> int:
        """`int`: Number of latent channels (the encoder's output `hidden_size`)."""
        return int(self.model.config.hidden_size)

    def _encode_frames(self, waveform: torch.Tensor) -> torch.Tensor:
        # (batch, samples) -> (batch, 1, samples) -> (batch, hidden_size, frames)
        return self.model.encoder(waveform[:, None])

    def _decode_frames(self, latents: torch.Tensor) -> torch.Tensor:
        # Odd strides make the transposed convolutions one sample short per block; `decode` pads to frames * hop.
        return self.model.decoder(latents)[:, 0]

    @classmethod
    def from_transformers(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> DacCodec:
        r"""
        Builds the codec from a pretrained transformers DAC checkpoint.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`):
                A Hub id such as `"descript/dac_16khz"` or a folder saved with `DacModel.save_pretrained`.
            kwargs:
                Passed to [`~transformers.DacModel.from_pretrained`] (`revision`, `cache_dir`, `token`, ...).

        Returns:
            [`DacCodec`] in evaluation mode, with identity latent statistics (set them with `set_latent_statistics`).

        Examples:

        ```py
        >>> import torch
        >>> from flashspeech_hf import DacCodec

        >>> codec = DacCodec.from_transformers("descript/dac_16khz")
        >>> latents = codec.encode(torch.randn(1, 16000) * 0.1, sampling_rate=16000)  # (1, 1024, 50)
        >>> waveform = codec.decode(latents)  # (1, 16000)
        ```
        """
        pretrained = DacModel.from_pretrained(pretrained_model_name_or_path, **kwargs)
        config = transformers_config_to_dict(pretrained.config, drop=_DAC_DERIVED_KEYS)
        codec = cls(dac_config=config)
        codec.model.load_state_dict(pretrained.state_dict())
        if pretrained.dtype != codec.dtype:
            codec = codec.to(pretrained.dtype)
        return codec.eval()
