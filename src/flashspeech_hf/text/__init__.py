"""Text front-end: normalization, sentence splitting and the phoneme tokenizer (espeak-ng through `phonemizer`)."""

from .normalization import normalize_text
from .sentence_splitting import split_sentences
from .tokenization_flashspeech import FlashSpeechTokenizer

__all__ = ["FlashSpeechTokenizer", "normalize_text", "split_sentences"]
