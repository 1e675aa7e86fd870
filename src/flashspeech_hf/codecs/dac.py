"""The Descript Audio Codec (Kumar et al. 2023) as a dense-latent codec, wrapping `transformers.DacModel`."""

from __future__ import annotations

import os
from typing import Any

from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from transformers import DacConfig, DacModel

from .codec_utils import TransformersCodecMixin

# Fields that `DacConfig` derives from the others; they are recomputed on load.
_DAC_DERIVED_KEYS = ("upsampling_ratios", "hidden_size", "hop_length")


class DacCodec(TransformersCodecMixin, ModelMixin, ConfigMixin):
    r"""
    DAC as a continuous codec. The latents are the encoder's output `z = DacModel.encoder(waveform)` *before* residual
    vector quantization, of dimension `hidden_size = encoder_hidden_size * 2 ** len(downsampling_ratios)` (1024 for
    `descript/dac_16khz`), and decoding runs `DacModel.decoder` on them, as `DacModel.decode` does on the quantized
    representation (which lives in the same space: the sum of the codebooks' `out_proj` outputs).

    The per-codebook `projected_latents` (`n_codebooks * codebook_dim` channels) are not used: each codebook projects
    the residual left by the previous ones after quantization, so they do not form one dense latent that decodes
    without the quantizer.

    This model inherits from [`ModelMixin`] and [`ConfigMixin`] and shares the codec interface of
    [`~flashspeech_hf.codecs.codec_utils.AudioCodecMixin`] (through `TransformersCodecMixin`) (`encode`, `decode`, `num_frames`,
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
        return cls._from_transformers_model(pretrained, "dac_config", drop=_DAC_DERIVED_KEYS)
