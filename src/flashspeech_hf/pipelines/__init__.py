from .long_form import FlashSpeechAudioChunk, FlashSpeechLongFormOutput
from .pipeline_flashspeech import (
    FlashSpeechAlignment,
    FlashSpeechEditOutput,
    FlashSpeechPipeline,
    FlashSpeechPipelineOutput,
)

__all__ = [
    "FlashSpeechAlignment",
    "FlashSpeechAudioChunk",
    "FlashSpeechEditOutput",
    "FlashSpeechLongFormOutput",
    "FlashSpeechPipeline",
    "FlashSpeechPipelineOutput",
]
