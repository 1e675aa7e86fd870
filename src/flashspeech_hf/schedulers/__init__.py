from .scheduling_flashspeech import FlashSpeechScheduler, FlashSpeechSchedulerOutput

__all__ = ["FlashSpeechScheduler", "FlashSpeechSchedulerOutput"]
