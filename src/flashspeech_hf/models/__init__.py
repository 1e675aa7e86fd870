from .modeling_aligner import FlashSpeechAligner, FlashSpeechAlignerOutput, monotonic_alignment_search
from .modeling_denoiser import FlashSpeechDenoiser, FlashSpeechDenoiserOutput
from .modeling_discriminator import FlashSpeechDiscriminator, FlashSpeechDiscriminatorOutput
from .modeling_prior import FlashSpeechPriorEncoder, FlashSpeechPriorEncoderOutput
from .modeling_prosody import FlashSpeechProsodyGenerator, length_regulate

__all__ = [
    "FlashSpeechAligner",
    "FlashSpeechAlignerOutput",
    "FlashSpeechDiscriminator",
    "FlashSpeechDiscriminatorOutput",
    "monotonic_alignment_search",
    "FlashSpeechDenoiser",
    "FlashSpeechDenoiserOutput",
    "FlashSpeechPriorEncoder",
    "FlashSpeechPriorEncoderOutput",
    "FlashSpeechProsodyGenerator",
    "length_regulate",
]
