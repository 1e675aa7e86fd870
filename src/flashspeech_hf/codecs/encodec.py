"""EnCodec (Défossez et al. 2022) as a dense-latent codec, wrapping `transformers.EncodecModel`."""

from __future__ import annotations

import os
from typing import Any

from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from transformers import EncodecConfig, EncodecModel

from .codec_utils import TransformersCodecMixin


class EncodecCodec(TransformersCodecMixin, ModelMixin, ConfigMixin):
    r"""
    EnCodec as a continuous codec: the latents are the SEANet encoder's output *before* residual vector quantization,
    of dimension `encodec_config["hidden_size"]` (128 for `facebook/encodec_24khz`), and decoding runs the SEANet
    decoder on them. This is the latent space FlashSpeech models (the paper retrains EnCodec at 16 kHz with hop 200).

    The quantizer is kept (so that the whole transformers checkpoint round-trips) but not used. Only mono checkpoints
    are supported; chunked encoding and the per-chunk loudness normalization of `EncodecModel.encode`
    (`chunk_length_s`, `normalize`, used by the 48 kHz stereo model) are not applied: the latents are those of the
    whole, unnormalized waveform.

    This model inherits from [`ModelMixin`] and [`ConfigMixin`] and shares the codec interface of
    [`~flashspeech_hf.codecs.codec_utils.AudioCodecMixin`] (through `TransformersCodecMixin`) (`encode`, `decode`, `num_frames`,
    `set_latent_statistics`).

    Args:
        encodec_config (`dict`, *optional*):
            Keyword arguments of a [`~transformers.EncodecConfig`]. `None` gives the default (24 kHz) architecture with
            random weights; use [`EncodecCodec.from_transformers`] for pretrained weights.
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(self, encodec_config: dict[str, Any] | None = None):
        super().__init__()
        config = EncodecConfig(**(encodec_config or {}))
        if config.audio_channels != 1:
            raise ValueError(
                f"EncodecCodec supports mono EnCodec models only, got audio_channels={config.audio_channels}."
            )
        self.model = EncodecModel(config)
        self._register_latent_statistics(config.hidden_size)

    @classmethod
    def from_transformers(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> EncodecCodec:
        r"""
        Builds the codec from a pretrained transformers EnCodec checkpoint.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`):
                A Hub id such as `"facebook/encodec_24khz"` or a folder saved with `EncodecModel.save_pretrained`.
            kwargs:
                Passed to [`~transformers.EncodecModel.from_pretrained`] (`revision`, `cache_dir`, `token`, ...).

        Returns:
            [`EncodecCodec`] in evaluation mode, with identity latent statistics (set them with
            `set_latent_statistics`).

        Examples:

        ```py
        >>> import torch
        >>> from flashspeech_hf import EncodecCodec

        >>> codec = EncodecCodec.from_transformers("facebook/encodec_24khz")
        >>> latents = codec.encode(torch.randn(1, 16000) * 0.1, sampling_rate=16000)  # (1, 128, 75)
        >>> waveform = codec.decode(latents)  # (1, 24000) at codec.sampling_rate
        ```
        """
        pretrained = EncodecModel.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return cls._from_transformers_model(pretrained, "encodec_config")
