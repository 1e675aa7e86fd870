"""Log-mel latents with a Vocos-style vocoder (Siuzdak 2023): the CPU-trainable codec of the demo.

The analysis side is fixed signal processing (STFT magnitude, mel filter bank, log); the synthesis side is a ConvNeXt
backbone with an inverse-STFT head. Parameter names follow the published Vocos checkpoints, so
`charactr/vocos-mel-24khz` loads through [`convert_vocos_state_dict`] and [`VOCOS_MEL_24KHZ_CONFIG`].
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn
from transformers.audio_utils import mel_filter_bank

from .codec_utils import AudioCodecMixin

#: `MelCodec` config of the published `charactr/vocos-mel-24khz` (values of Vocos' `configs/vocos.yaml`; its mel
#: front-end is torchaudio's `MelSpectrogram` with `power=1`, HTK mel scale without filter normalization, `center`
#: padding, and `log(clip(x, 1e-7))`).
VOCOS_MEL_24KHZ_CONFIG: dict[str, Any] = {
    "sampling_rate": 24000,
    "n_fft": 1024,
    "hop_length": 256,
    "n_mels": 100,
    "f_min": 0.0,
    "f_max": None,
    "padding": "center",
    "log_clamp": 1e-7,
    "vocoder_dim": 512,
    "vocoder_intermediate_dim": 1536,
    "vocoder_num_layers": 8,
    "layer_scale_init_value": None,
}

# Largest magnitude the head may predict (Vocos' safeguard); the log-magnitude is clipped at its log.
_MAX_MAGNITUDE = 1e2


def _reflect_pad(waveform: torch.Tensor, padding: int) -> torch.Tensor:
    """Reflect-pads `(batch, samples)` by `padding` on both sides, zero-extending first inputs that are too short."""
    extra = max(0, padding + 1 - waveform.shape[-1])
    if extra:
        waveform = F.pad(waveform, (0, extra))
    padded = F.pad(waveform[:, None], (padding, padding), mode="reflect")[:, 0]
    return padded[..., : padded.shape[-1] - extra]


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block over time: depthwise conv (kernel 7), LayerNorm, pointwise MLP with GELU, layer scale, residual.

    Args:
        dim (`int`): Number of channels.
        intermediate_dim (`int`): Width of the pointwise MLP.
        layer_scale_init_value (`float`): Initial value of the per-channel layer scale `gamma`.
    """

    def __init__(self, dim: int, intermediate_dim: int, layer_scale_init_value: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(batch_size, dim, num_frames)` -> `(batch_size, dim, num_frames)`."""
        residual = hidden_states
        hidden_states = self.dwconv(hidden_states).transpose(1, 2)
        hidden_states = self.pwconv2(self.act(self.pwconv1(self.norm(hidden_states))))
        return residual + (self.gamma * hidden_states).transpose(1, 2)


class MelVocoderBackbone(nn.Module):
    """Vocos backbone: Conv1d embedding (kernel 7), LayerNorm, ConvNeXt blocks, final LayerNorm; keeps the frame rate.

    Args:
        input_channels (`int`): Number of mel bands.
        dim (`int`): Hidden width.
        intermediate_dim (`int`): Width of the ConvNeXt MLPs.
        num_layers (`int`): Number of ConvNeXt blocks.
        layer_scale_init_value (`float`, *optional*): Initial layer scale; `None` means `1 / num_layers`.
    """

    def __init__(
        self,
        input_channels: int,
        dim: int,
        intermediate_dim: int,
        num_layers: int,
        layer_scale_init_value: float | None = None,
    ):
        super().__init__()
        layer_scale_init_value = layer_scale_init_value or 1.0 / num_layers
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.convnext = nn.ModuleList(
            [ConvNeXtBlock(dim, intermediate_dim, layer_scale_init_value) for _ in range(num_layers)]
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """`(batch_size, input_channels, num_frames)` -> hidden states `(batch_size, num_frames, dim)`."""
        hidden_states = self.embed(features)
        hidden_states = self.norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            hidden_states = block(hidden_states)
        return self.final_layer_norm(hidden_states.transpose(1, 2))


class ISTFTHead(nn.Module):
    """Predicts a complex STFT (log-magnitude and phase per bin) and inverts it to a waveform.

    Args:
        dim (`int`): Width of the backbone's hidden states.
        n_fft (`int`): FFT size, also the (Hann) window length.
        hop_length (`int`): Samples between frames.
        padding (`str`): `"center"` (frame `i` is centered on sample `i * hop_length`, as `torch.stft(center=True)`)
            or `"same"` (frame `i` is centered on sample `i * hop_length + hop_length / 2`).
    """

    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str = "center"):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.padding = padding
        self.out = nn.Linear(dim, n_fft + 2)
        # float32 whatever the default dtype: a low-precision Hann window breaks the inverse STFT (see `MelCodec`)
        self.register_buffer("window", torch.hann_window(n_fft, dtype=torch.float32), persistent=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Hidden states `(batch_size, num_frames, dim)` in any float dtype -> float32 waveform
        `(batch_size, num_frames * hop_length)`; the projection runs in the dtype of `self.out` (float32 in a
        `MelCodec`), also under autocast (mixed-precision training)."""
        hidden_states = hidden_states.to(self.out.weight.dtype)
        with torch.autocast(hidden_states.device.type, enabled=False):
            log_magnitude, phase = self.out(hidden_states).transpose(1, 2).float().chunk(2, dim=1)
        # exp then clip at 1e2 as Vocos, written as a clip of the log so that the gradient stays finite.
        magnitude = torch.exp(log_magnitude.clamp(max=math.log(_MAX_MAGNITUDE)))
        return self.istft(torch.polar(magnitude, phase))

    def istft(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """Inverse STFT with the head's framing.

        Args:
            spectrogram (`torch.Tensor` of shape `(batch_size, n_fft // 2 + 1, num_frames)`): Complex STFT.

        Returns:
            `torch.Tensor` of shape `(batch_size, num_frames * hop_length)`.
        """
        num_frames = spectrogram.shape[-1]
        window = self.window.to(spectrogram.real.dtype)
        if self.padding == "center":
            return torch.istft(
                spectrogram,
                self.n_fft,
                self.hop_length,
                win_length=self.n_fft,
                window=window,
                center=True,
                length=num_frames * self.hop_length,
            )
        # "same": torch.istft(center=False) rejects the zero window envelope at the edges, which this framing trims
        # anyway, so overlap-add the frames with `fold` and normalize by the squared-window envelope.
        frames = torch.fft.irfft(spectrogram, n=self.n_fft, dim=1) * window[None, :, None]
        output_size = (1, (num_frames - 1) * self.hop_length + self.n_fft)
        fold_args = {"output_size": output_size, "kernel_size": (1, self.n_fft), "stride": (1, self.hop_length)}
        waveform = F.fold(frames, **fold_args)[:, 0, 0]
        envelope = F.fold(window.square()[None, :, None].expand(1, -1, num_frames), **fold_args)[:, 0, 0]
        start = (self.n_fft - self.hop_length) // 2
        end = start + num_frames * self.hop_length
        return waveform[:, start:end] / envelope[:, start:end]


class MelCodec(AudioCodecMixin, ModelMixin, ConfigMixin):
    r"""
    Log-mel latents and a Vocos-style vocoder.

    `encode` computes `log(clamp(mel_filters @ |STFT(waveform)|, min=log_clamp))` with a Hann window of `n_fft`
    samples, power 1, an HTK mel scale without filter normalization and reflect padding (Vocos' front-end, i.e.
    torchaudio's `MelSpectrogram` defaults); the latent dimension is `n_mels`. `decode` runs the vocoder: ConvNeXt
    backbone and an inverse-STFT head. The vocoder is randomly initialized until trained (training code lives under
    `training/`); the front-end needs no training.

    Framing: with `padding="center"` latent frame `i` is centered on sample `i * hop_length` (the frame
    `torch.stft(center=True)` would add past the last whole hop is dropped, so that
    `num_frames = ceil(num_samples / hop_length)`), and decoding uses `torch.istft(center=True)` extended to
    `num_frames * hop_length` samples; with `padding="same"` frame `i` covers the hop starting at `i * hop_length`
    plus `(n_fft - hop_length) / 2` samples of context on each side.

    Precision: in a low-precision codec (`codec.to(torch.bfloat16)`, or a pipeline loaded with
    `dtype=torch.bfloat16`) only the ConvNeXt backbone runs in that dtype. The mel front-end (STFT, filter bank, log)
    and the inverse-STFT head (projection to log-magnitudes and phases, Hann window, `torch.istft`) stay in float32
    (`_keep_in_fp32_modules`): a bfloat16 Hann window rounds its first samples to zero and fails `torch.istft`'s
    overlap-add (NOLA) check, and bfloat16 phases would be off by up to 0.01 rad; the head is a single linear layer.

    The defaults are chosen for a CPU-trainable demo: 16 kHz and hop 200 (80 frames per second, the paper's codec
    frame rate), `n_fft = 4 * hop_length` (Vocos' overlap), 80 mel bands up to Nyquist, and a 6-layer, 256-wide
    vocoder (~2.7M parameters). [`VOCOS_MEL_24KHZ_CONFIG`] gives the published Vocos sizes.

    This model inherits from [`ModelMixin`] and [`ConfigMixin`] and shares the codec interface of
    [`~flashspeech_hf.codecs.codec_utils.AudioCodecMixin`] (`encode`, `decode`, `num_frames`,
    `set_latent_statistics`).

    Args:
        sampling_rate (`int`, defaults to 16000): Sample rate in Hz.
        n_fft (`int`, defaults to 800): FFT size and Hann window length.
        hop_length (`int`, defaults to 200): Samples per latent frame; at most `n_fft // 2`.
        n_mels (`int`, defaults to 80): Number of mel bands, the latent dimension.
        f_min (`float`, defaults to 0.0): Lowest mel filter frequency in Hz.
        f_max (`float`, *optional*): Highest mel filter frequency in Hz; `None` means `sampling_rate / 2`.
        padding (`str`, defaults to `"center"`): Framing, `"center"` or `"same"` (see above).
        log_clamp (`float`, defaults to 1e-5): Floor of the mel magnitudes before the log (Vocos uses 1e-7).
        vocoder_dim (`int`, defaults to 256): Width of the ConvNeXt backbone.
        vocoder_intermediate_dim (`int`, defaults to 768): Width of the ConvNeXt MLPs.
        vocoder_num_layers (`int`, defaults to 6): Number of ConvNeXt blocks.
        layer_scale_init_value (`float`, *optional*): Initial layer scale; `None` means `1 / vocoder_num_layers`.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf import MelCodec

    >>> codec = MelCodec()
    >>> latents = codec.encode(torch.randn(2, 22050) * 0.1, sampling_rate=22050)  # resampled to 16 kHz: (2, 80, 80)
    >>> waveform = codec.decode(latents)  # (2, 16000)
    ```
    """

    _keep_in_fp32_modules = ["head", "mel_filters", "latent_mean", "latent_std"]

    @register_to_config
    def __init__(
        self,
        sampling_rate: int = 16000,
        n_fft: int = 800,
        hop_length: int = 200,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = None,
        padding: str = "center",
        log_clamp: float = 1e-5,
        vocoder_dim: int = 256,
        vocoder_intermediate_dim: int = 768,
        vocoder_num_layers: int = 6,
        layer_scale_init_value: float | None = None,
    ):
        super().__init__()
        if padding not in ("center", "same"):
            raise ValueError(f"`padding` must be 'center' or 'same', got {padding!r}.")
        if not 0 < hop_length <= n_fft // 2:
            raise ValueError(f"`hop_length` must be in [1, n_fft // 2] = [1, {n_fft // 2}], got {hop_length}.")
        if padding == "same" and (n_fft - hop_length) % 2:
            raise ValueError(f"`padding='same'` needs an even `n_fft - hop_length`, got {n_fft} - {hop_length}.")
        f_max = sampling_rate / 2 if f_max is None else f_max
        if not 0 <= f_min < f_max <= sampling_rate / 2:
            raise ValueError(f"Need 0 <= f_min < f_max <= sampling_rate / 2, got f_min={f_min}, f_max={f_max}.")
        if log_clamp <= 0:
            raise ValueError(f"`log_clamp` must be positive, got {log_clamp}.")

        filters = mel_filter_bank(
            num_frequency_bins=n_fft // 2 + 1,
            num_mel_filters=n_mels,
            min_frequency=f_min,
            max_frequency=f_max,
            sampling_rate=sampling_rate,
            norm=None,
            mel_scale="htk",
        )
        # (n_mels, n_fft // 2 + 1), computed from the config, so not saved.
        self.register_buffer("mel_filters", torch.from_numpy(filters.T).float(), persistent=False)
        self.backbone = MelVocoderBackbone(
            n_mels, vocoder_dim, vocoder_intermediate_dim, vocoder_num_layers, layer_scale_init_value
        )
        self.head = ISTFTHead(vocoder_dim, n_fft, hop_length, padding)
        self._register_latent_statistics(n_mels)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    @property
    def sampling_rate(self) -> int:
        """`int`: Sample rate of the codec's audio in Hz."""
        return int(self.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        """`int`: Number of audio samples per latent frame."""
        return int(self.config.hop_length)

    @property
    def latent_dim(self) -> int:
        """`int`: Number of latent channels (`n_mels`)."""
        return int(self.config.n_mels)

    def stft(self, waveform: torch.Tensor) -> torch.Tensor:
        """Complex STFT with the codec's framing, the exact inverse of `self.head.istft`.

        Args:
            waveform (`torch.Tensor` of shape `(batch_size, num_samples)`): Audio at `self.sampling_rate`.

        Returns:
            Complex `torch.Tensor` of shape `(batch_size, n_fft // 2 + 1, ceil(num_samples / hop_length))`, computed
            in float32 on the zero-padded waveform.
        """
        n_fft, hop_length = self.config.n_fft, self.hop_length
        num_frames = self.num_frames(waveform.shape[-1])
        waveform = F.pad(waveform.float(), (0, num_frames * hop_length - waveform.shape[-1]))
        padding = n_fft // 2 if self.config.padding == "center" else (n_fft - hop_length) // 2
        waveform = _reflect_pad(waveform, padding)
        spectrogram = torch.stft(
            waveform,
            n_fft,
            hop_length,
            win_length=n_fft,
            window=self.head.window.float(),
            center=False,
            return_complex=True,
        )
        return spectrogram[..., :num_frames]

    def _encode_frames(self, waveform: torch.Tensor) -> torch.Tensor:
        # the front-end is fixed signal processing, always in float32 (log of small magnitudes, filter sums), also
        # under autocast
        magnitude = self.stft(waveform).abs()
        with torch.autocast(magnitude.device.type, enabled=False):
            mel = torch.matmul(self.mel_filters.float(), magnitude)
        return torch.log(mel.clamp(min=self.config.log_clamp))

    def _decode_frames(self, latents: torch.Tensor) -> torch.Tensor:
        # backbone in the dtype of its weights; the head (projection, window, iSTFT) in float32
        return self.head(self.backbone(latents.to(self.backbone.embed.weight.dtype)))


def convert_vocos_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    r"""
    Maps the weights of a published Vocos mel checkpoint (e.g. `pytorch_model.bin` of `charactr/vocos-mel-24khz`) to
    [`MelCodec`] parameter names.

    The backbone (`backbone.embed`, `backbone.norm`, `backbone.convnext.{i}.{dwconv,norm,pwconv1,pwconv2,gamma}`,
    `backbone.final_layer_norm`) and the head's `head.out` keep their names. The feature extractor's buffers
    (`feature_extractor.mel_spec.*`) and the head's window are dropped: [`MelCodec`] computes them from its config.
    Identity latent statistics (`latent_mean` zeros, `latent_std` ones) are added, so the result loads with
    `strict=True`.

    Args:
        state_dict (`dict[str, torch.Tensor]`): The Vocos state dict.

    Returns:
        `dict[str, torch.Tensor]`: A state dict for `MelCodec(**VOCOS_MEL_24KHZ_CONFIG)` (or the config matching the
        checkpoint's sizes).

    Examples:

    ```py
    >>> import torch
    >>> from huggingface_hub import hf_hub_download
    >>> from flashspeech_hf import MelCodec
    >>> from flashspeech_hf.codecs import VOCOS_MEL_24KHZ_CONFIG, convert_vocos_state_dict

    >>> path = hf_hub_download("charactr/vocos-mel-24khz", "pytorch_model.bin")
    >>> codec = MelCodec(**VOCOS_MEL_24KHZ_CONFIG)
    >>> codec.load_state_dict(convert_vocos_state_dict(torch.load(path, map_location="cpu")))
    >>> codec.save_pretrained("vocos-mel-24khz-codec")
    ```
    """
    converted = {}
    unexpected = []
    for key, value in state_dict.items():
        if key.startswith("feature_extractor.mel_spec.") or key == "head.istft.window":
            continue
        if key.startswith("backbone.") and (".scale." in key or ".shift." in key):
            raise ValueError(
                f"{key!r} belongs to an AdaLayerNorm (a Vocos checkpoint conditioned on EnCodec bandwidth); only the "
                "mel-spectrogram Vocos checkpoints are supported."
            )
        if key.startswith(("backbone.", "head.out.")):
            converted[key] = value
        else:
            unexpected.append(key)
    if unexpected:
        raise ValueError(f"Keys that are not part of a Vocos mel checkpoint: {sorted(unexpected)}.")
    if "backbone.embed.weight" not in converted:
        raise ValueError("`backbone.embed.weight` is missing: this is not a Vocos state dict.")
    n_mels = converted["backbone.embed.weight"].shape[1]
    converted["latent_mean"] = torch.zeros(n_mels)
    converted["latent_std"] = torch.ones(n_mels)
    return converted
