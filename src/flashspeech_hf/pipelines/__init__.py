from .pipeline_flashspeech import FlashSpeechPipeline, FlashSpeechPipelineOutput

__all__ = ["FlashSpeechPipeline", "FlashSpeechPipelineOutput"]
