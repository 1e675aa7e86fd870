"""Audio codecs with one interface: waveform `(batch, samples)` <-> normalized dense latents `(batch, channels, frames)`.

- [`EncodecCodec`]: EnCodec encoder output before residual quantization (`transformers.EncodecModel`).
- [`DacCodec`]: DAC encoder output before residual quantization (`transformers.DacModel`).
- [`MelCodec`]: log-mel latents and a Vocos-style vocoder, trainable on a CPU.
"""

from .codec_utils import AudioCodecMixin, compute_latent_statistics
from .dac import DacCodec
from .encodec import EncodecCodec
from .mel import VOCOS_MEL_24KHZ_CONFIG, MelCodec, convert_vocos_state_dict

__all__ = [
    "AudioCodecMixin",
    "DacCodec",
    "EncodecCodec",
    "MelCodec",
    "VOCOS_MEL_24KHZ_CONFIG",
    "compute_latent_statistics",
    "convert_vocos_state_dict",
]
