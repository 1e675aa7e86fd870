from .long_form import FlashSpeechAudioChunk, FlashSpeechLongFormOutput
from .pipeline_flashspeech import FlashSpeechPipeline
from .pipeline_flashspeech_base import FlashSpeechBasePipeline
from .pipeline_flashspeech_edit import FlashSpeechEditPipeline
from .pipeline_flashspeech_voice_conversion import FlashSpeechVoiceConversionPipeline
from .pipeline_output import FlashSpeechAlignment, FlashSpeechEditOutput, FlashSpeechPipelineOutput
from .voice import FlashSpeechVoice, voice_fingerprint

__all__ = [
    "FlashSpeechAlignment",
    "FlashSpeechAudioChunk",
    "FlashSpeechBasePipeline",
    "FlashSpeechEditOutput",
    "FlashSpeechEditPipeline",
    "FlashSpeechLongFormOutput",
    "FlashSpeechPipeline",
    "FlashSpeechPipelineOutput",
    "FlashSpeechVoice",
    "FlashSpeechVoiceConversionPipeline",
    "voice_fingerprint",
]
