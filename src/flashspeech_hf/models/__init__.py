from .modeling_denoiser import FlashSpeechDenoiser, FlashSpeechDenoiserOutput
from .modeling_prior import FlashSpeechPriorEncoder, FlashSpeechPriorEncoderOutput
from .modeling_prosody import FlashSpeechProsodyGenerator, length_regulate

__all__ = [
    "FlashSpeechDenoiser",
    "FlashSpeechDenoiserOutput",
    "FlashSpeechPriorEncoder",
    "FlashSpeechPriorEncoderOutput",
    "FlashSpeechProsodyGenerator",
    "length_regulate",
]
