"""Text front-end: normalization and the phoneme tokenizer (espeak-ng through `phonemizer`)."""

from .normalization import normalize_text
from .tokenization_flashspeech import FlashSpeechTokenizer

__all__ = ["FlashSpeechTokenizer", "normalize_text"]
