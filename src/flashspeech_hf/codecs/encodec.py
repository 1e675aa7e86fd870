"""EnCodec (Défossez et al. 2022) as a dense-latent codec, wrapping `transformers.EncodecModel`."""

from __future__ import annotations

import os
from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from transformers import EncodecConfig, EncodecModel

from .codec_utils import AudioCodecMixin, transformers_config_to_dict


class EncodecCodec(AudioCodecMixin, ModelMixin, ConfigMixin):
    r"""
    EnCodec as a continuous codec: the latents are the SEANet encoder's output *before* residual vector quantization,
    of dimension `encodec_config["hidden_size"]` (128 for `facebook/encodec_24khz`), and decoding runs the SEANet
    decoder on them. This is the latent space FlashSpeech models (the paper retrains EnCodec at 16 kHz with hop 200).

    The quantizer is kept (so that the whole transformers checkpoint round-trips) but not used. Only mono checkpoints
    are supported; chunked encoding and the per-chunk loudness normalization of `EncodecModel.encode`
    (`chunk_length_s`, `normalize`, used by the 48 kHz stereo model) are not applied: the latents are those of the
    whole, unnormalized waveform.

    This model inherits from [`ModelMixin`] and [`ConfigMixin`] and shares the codec interface of
    [`~flashspeech_hf.codecs.codec_utils.AudioCodecMixin`] (`encode`, `decode`, `num_frames`,
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

    @property
    def sampling_rate(self) -> int:
        """`int`: Sample rate of the codec's audio in Hz."""
        return int(self.model.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        """`int`: Number of audio samples per latent frame (product of the upsampling ratios)."""
        return int(self.model.config.hop_length)

    @property
    def latent_dim(self) -> int:
        """`int`: Number of latent channels (the encoder's `hidden_size`)."""
        return int(self.model.config.hidden_size)

    def _encode_frames(self, waveform: torch.Tensor) -> torch.Tensor:
        # (batch, samples) -> (batch, 1, samples) -> (batch, hidden_size, frames)
        return self.model.encoder(waveform[:, None])

    def _decode_frames(self, latents: torch.Tensor) -> torch.Tensor:
        return self.model.decoder(latents)[:, 0]

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
        codec = cls(encodec_config=transformers_config_to_dict(pretrained.config))
        codec.model.load_state_dict(pretrained.state_dict())
        if pretrained.dtype != codec.dtype:
            codec = codec.to(pretrained.dtype)
        return codec.eval()
