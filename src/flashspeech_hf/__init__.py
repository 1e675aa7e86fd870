"""flashspeech-hf: FlashSpeech (Ye et al. 2024) as diffusers/transformers components.

Every module that holds a pipeline component is imported here eagerly: diffusers resolves the
`[module, class]` pairs of `model_index.json` among already-imported modules.
"""

__version__ = "0.1.0.dev0"

from .audio import check_speech, load_audio, resample
from .codecs import DacCodec, EncodecCodec, MelCodec
from .models import (
    FlashSpeechAligner,
    FlashSpeechDenoiser,
    FlashSpeechDiscriminator,
    FlashSpeechPriorEncoder,
    FlashSpeechProsodyGenerator,
)
from .pipelines import (
    FlashSpeechAlignment,
    FlashSpeechBasePipeline,
    FlashSpeechEditOutput,
    FlashSpeechEditPipeline,
    FlashSpeechPipeline,
    FlashSpeechPipelineOutput,
    FlashSpeechVoice,
    FlashSpeechVoiceConversionPipeline,
)
from .schedulers import FlashSpeechScheduler, FlashSpeechSchedulerOutput
from .text import FlashSpeechTokenizer

__all__ = [
    "DacCodec",
    "EncodecCodec",
    "FlashSpeechAligner",
    "FlashSpeechDenoiser",
    "FlashSpeechAlignment",
    "FlashSpeechBasePipeline",
    "FlashSpeechDiscriminator",
    "FlashSpeechEditOutput",
    "FlashSpeechEditPipeline",
    "FlashSpeechPipeline",
    "FlashSpeechPipelineOutput",
    "FlashSpeechPriorEncoder",
    "FlashSpeechProsodyGenerator",
    "FlashSpeechScheduler",
    "FlashSpeechSchedulerOutput",
    "FlashSpeechTokenizer",
    "FlashSpeechVoice",
    "FlashSpeechVoiceConversionPipeline",
    "MelCodec",
    "check_speech",
    "load_audio",
    "resample",
]
