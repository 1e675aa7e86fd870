from .pipeline_flashspeech import (
    FlashSpeechAlignment,
    FlashSpeechEditOutput,
    FlashSpeechPipeline,
    FlashSpeechPipelineOutput,
)

__all__ = ["FlashSpeechAlignment", "FlashSpeechEditOutput", "FlashSpeechPipeline", "FlashSpeechPipelineOutput"]
