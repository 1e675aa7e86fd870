# Copyright 2026 The flashspeech-hf Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Phoneme tokenizer of FlashSpeech: text -> normalized text -> espeak-ng IPA phonemes -> ids."""

import collections
import difflib
import functools
import json
import os
import unicodedata
from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedTokenizer
from transformers.tokenization_utils_base import BatchEncoding
from transformers.utils import is_phonemizer_available, logging, requires_backends

from .normalization import PAUSE_MARKS, drop_unspeakable, language_scripts, normalize_text

if is_phonemizer_available():
    from phonemizer.backend import EspeakBackend
    from phonemizer.separator import Separator

logger = logging.get_logger(__name__)

__all__ = ["DEFAULT_PHONEMES", "STRESS_MARKS", "FlashSpeechTokenizer", "default_vocab"]

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json"}

STRESS_MARKS = ("ˈ", "ˌ")
"""Primary and secondary stress. They are tokens of their own, placed before the stressed vowel as espeak-ng does."""

# The phoneme inventory that espeak-ng emits for its English voices (en-us, en-us-nyc, en-gb, en-gb-scotland,
# en-gb-x-rp, en-gb-x-gbclan, en-gb-x-gbcwmd, en-029), one espeak-ng phoneme per token. Collected by phonemizing
# ~58k distinct English words with every English voice. The order fixes the ids of every released checkpoint: append only.
DEFAULT_PHONEMES = (
    # consonants
    "p", "b", "t", "d", "k", "ɡ", "f", "v", "θ", "ð", "s", "z", "ʃ", "ʒ", "h", "m", "n", "ŋ", "l", "ɹ", "r", "j", "w",
    "ʍ", "tʃ", "dʒ", "ɾ", "ʔ", "n̩", "t̪", "x", "ç", "ɬ",
    # monophthongs
    "ə", "ɚ", "ᵻ", "ɐ", "ɪ", "i", "iː", "ɛ", "e", "eː", "æ", "a", "aː", "ʌ", "ɑ", "ɑː", "ɒ", "ɔ", "ɔː", "o", "oː",
    "ʊ", "u", "uː", "ʉ", "ʉː", "ɜ", "ɜː", "əl",
    # diphthongs and triphthongs
    "eɪ", "ei", "eʲ", "aɪ", "ɔɪ", "oɪ", "aʊ", "æʊ", "oʊ", "əʊ", "əu", "ʌʊ", "ʌʉ", "əɪ", "ɪʲ", "iə", "eə", "ɛə", "ʊə",
    "ɔə", "oə", "ɑə", "aɪə", "aɪɚ",
    # r-coloured vowels
    "ɑːɹ", "oːɹ", "ɔːɹ", "ɪɹ", "ɛɹ", "ʊɹ", "ʉɹ", "ʌɹ", "əɹ",
    # lengthened vowels espeak-ng emits for drawn-out spellings ("aaah", "Wii")
    "aa", "ææ", "ɐɐ", "iːː",
)  # fmt: skip

_PHONE_SEPARATOR = "_"
# espeak-ng writes some long vowels with an ASCII colon (en-gb-scotland: "a:"), which would read as the pause mark `:`.
# The text's colons travel through phonemizer as this placeholder instead, so every ASCII colon in espeak-ng's output
# is a length mark.
_COLON_PLACEHOLDER = "\u2016"


@functools.lru_cache(maxsize=1)
def _espeak_languages() -> dict[str, str]:
    if not EspeakBackend.is_available():
        raise RuntimeError(
            "FlashSpeechTokenizer needs the espeak-ng library: install it with your system package manager "
            "(e.g. `apt-get install espeak-ng`), or point `PHONEMIZER_ESPEAK_LIBRARY` to libespeak-ng."
        )
    return EspeakBackend.supported_languages()


def _check_language(language: Any) -> None:
    if not isinstance(language, str):
        raise ValueError(f"`language` must be an espeak-ng language code such as 'en-us', got {language!r}.")
    languages = _espeak_languages()
    if language not in languages:
        close = difflib.get_close_matches(language.lower(), list(languages), n=3)
        hint = f" Did you mean {', '.join(repr(code) for code in close)}?" if close else ""
        raise ValueError(
            f"Language {language!r} is not supported by espeak-ng.{hint} Supported codes are listed by "
            "`phonemizer.backend.EspeakBackend.supported_languages()` (or `espeak-ng --voices`)."
        )


def default_vocab(pad_token: str = "<pad>", unk_token: str = "<unk>", word_boundary: str = "|") -> dict[str, int]:
    """
    The built-in vocabulary: `pad_token` (id 0), `unk_token` (id 1), `word_boundary` (id 2), the pause marks
    `, . ? ! ; :`, the stress marks `ˈ ˌ`, then `DEFAULT_PHONEMES`.

    Returns:
        `dict[str, int]`: Symbol to id.
    """
    symbols = [pad_token, unk_token, word_boundary, *PAUSE_MARKS, *STRESS_MARKS, *DEFAULT_PHONEMES]
    return {symbol: index for index, symbol in enumerate(symbols)}


class FlashSpeechTokenizer(PreTrainedTokenizer):
    """
    Construct a FlashSpeech phoneme tokenizer: text is normalized (numbers, abbreviations, punctuation; see
    [`~flashspeech_hf.text.normalization.normalize_text`]), converted to IPA phonemes by espeak-ng through
    `phonemizer`, and each phoneme is mapped to an id.

    Tokens are espeak-ng's own phoneme units, so multi-character phonemes stay whole: affricates (`tʃ`), diphthongs
    (`aɪ`), r-coloured vowels (`ɑːɹ`) and syllabic consonants (`n̩`). A length mark belongs to its vowel (`iː` and `i`
    are different tokens). Stress marks (`ˈ` primary, `ˌ` secondary) are separate tokens placed before the stressed
    vowel, which keeps the inventory small and lets a model share a vowel's embedding across stress levels. Words are
    separated by the `word_boundary` token and the punctuation `, . ? ! ; :` is kept as pause tokens. No BOS/EOS
    tokens are added.

    Texts of a batch are phonemized in a single espeak-ng call, with one backend object reused across calls.

    This tokenizer inherits from [`~transformers.PreTrainedTokenizer`], which holds most of the methods (`__call__`,
    `pad`, `decode`, `save_pretrained`, `from_pretrained`, ...). It is saved as `vocab.json` plus
    `tokenizer_config.json`, which records `language`, `with_stress`, `normalize` and `word_boundary`.

    Args:
        vocab_file (`str`, *optional*):
            Path to a `vocab.json` mapping each symbol to its id. Defaults to the built-in vocabulary covering
            espeak-ng's English voices (see [`default_vocab`]).
        language (`str`, *optional*, defaults to `"en-us"`):
            An espeak-ng language code (any of `EspeakBackend.supported_languages()`). Phonemes of a non-English
            language that the vocabulary lacks map to `unk_token`; add them with [`~FlashSpeechTokenizer.add_phonemes`].
        with_stress (`bool`, *optional*, defaults to `True`):
            Whether to emit the stress tokens `ˈ` and `ˌ`.
        normalize (`bool`, *optional*, defaults to `True`):
            Whether to normalize text before phonemization. Number and abbreviation expansion runs for English
            languages only; the punctuation and whitespace clean-up runs for every language.
        word_boundary (`str`, *optional*, defaults to `"|"`):
            The token placed between words.
        pad_token (`str`, *optional*, defaults to `"<pad>"`):
            The padding token (id 0 in the built-in vocabulary).
        unk_token (`str`, *optional*, defaults to `"<unk>"`):
            The token for phonemes missing from the vocabulary.

    Examples:

    ```python
    >>> from flashspeech_hf import FlashSpeechTokenizer

    >>> tokenizer = FlashSpeechTokenizer()
    >>> tokenizer.phonemize("Hello, world!")
    [['h', 'ə', 'l', 'ˈ', 'oʊ', ',', '|', 'w', 'ˈ', 'ɜː', 'l', 'd', '!']]

    >>> batch = tokenizer(["Hello, world!", "Dr. Smith paid $5."], padding=True, return_tensors="pt")
    >>> batch["input_ids"].shape == batch["attention_mask"].shape
    True

    >>> # Fine-tuning on another language: extend the vocabulary, keeping every existing id.
    >>> french = FlashSpeechTokenizer(language="fr-fr")
    >>> new_ids = french.add_phonemes(sorted(french.unknown_phonemes(["Bonjour tout le monde."])))
    >>> _ = french.save_pretrained("flashspeech-tokenizer-fr")
    ```
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | None = None,
        language: str = "en-us",
        with_stress: bool = True,
        normalize: bool = True,
        word_boundary: str = "|",
        pad_token: str = "<pad>",
        unk_token: str = "<unk>",
        **kwargs,
    ) -> None:
        requires_backends(self, ["phonemizer"])
        try:
            _check_language(language)  # an unknown language fails here rather than at the first text
        except RuntimeError:
            # no espeak-ng: the vocabulary, ids and saving still work (training on prepared ids, e.g. on a GPU
            # machine); phonemizing text raises the error that says how to install it
            logger.warning(
                "espeak-ng is not installed: this tokenizer maps phonemes and ids, but turning text into phonemes will "
                "fail until it is (`apt-get install espeak-ng`)."
            )
        if vocab_file is None:
            encoder = default_vocab(pad_token=str(pad_token), unk_token=str(unk_token), word_boundary=word_boundary)
        else:
            with open(vocab_file, encoding="utf-8") as handle:
                encoder = json.load(handle)
            self._check_vocab(encoder, vocab_file)
        for name, symbol in (("pad_token", pad_token), ("unk_token", unk_token), ("word_boundary", word_boundary)):
            if str(symbol) not in encoder:
                raise ValueError(f"The vocabulary has no entry for `{name}` {str(symbol)!r}.")

        self.encoder: dict[str, int] = encoder
        self.decoder: dict[int, str] = {index: symbol for symbol, index in encoder.items()}
        self.language = language
        self.with_stress = with_stress
        self.normalize = normalize
        self.word_boundary = word_boundary
        self._backend = None
        self._backend_key = None

        super().__init__(
            pad_token=pad_token,
            unk_token=unk_token,
            language=language,
            with_stress=with_stress,
            normalize=normalize,
            word_boundary=word_boundary,
            special_tokens_pattern="none",
            **kwargs,
        )

    @staticmethod
    def _check_vocab(encoder: Any, source: str) -> None:
        if not isinstance(encoder, dict) or not encoder:
            raise ValueError(f"The vocabulary in {source} must be a non-empty JSON object of symbol -> id.")
        ids = list(encoder.values())
        if not all(isinstance(index, int) and index >= 0 for index in ids):
            raise ValueError(f"The vocabulary in {source} must map every symbol to a non-negative integer id.")
        if len(set(ids)) != len(ids):
            duplicated = sorted(index for index, count in collections.Counter(ids).items() if count > 1)
            raise ValueError(f"The vocabulary in {source} gives several symbols the same id: {duplicated[:10]}.")

    # ---------------------------------------------------------------- vocabulary

    @property
    def vocab_size(self) -> int:
        """`int`: The number of symbols in the base vocabulary (without tokens added by `add_tokens`)."""
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self.encoder)
        vocab.update(self.added_tokens_encoder)
        return vocab

    @property
    def word_boundary_id(self) -> int:
        """`int`: The id of the word-boundary token."""
        return self.encoder[self.word_boundary]

    def _convert_token_to_id(self, token: str) -> int:
        if token in self.encoder:
            return self.encoder[token]
        logger.warning(f"Phoneme {token!r} is not in the vocabulary; it is mapped to {self.unk_token!r}.")
        return self.unk_token_id

    def _convert_id_to_token(self, index: int) -> str:
        return self.decoder.get(index, self.unk_token)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join phoneme tokens into an IPA string, with a space for each word boundary and no padding."""
        return "".join(" " if token == self.word_boundary else token for token in tokens if token != self.pad_token)

    def add_phonemes(self, symbols: Sequence[str]) -> list[int]:
        """
        Append phoneme symbols to the vocabulary, e.g. to fine-tune on a new language. Every existing id is kept; the
        new symbols take the next free ids, in order. Resize the model's phoneme embedding to `len(tokenizer)`.

        Args:
            symbols (`Sequence[str]`):
                The phonemes, as espeak-ng emits them (see [`~FlashSpeechTokenizer.unknown_phonemes`]).

        Returns:
            `list[int]`: One id per symbol, in the order given. A symbol already in the vocabulary keeps its id.
        """
        if isinstance(symbols, str):
            raise TypeError("`symbols` must be a list of phoneme strings, not a single string.")
        ids = []
        for symbol in symbols:
            if not isinstance(symbol, str) or not symbol or symbol != symbol.strip() or " " in symbol:
                raise ValueError(f"A phoneme must be a non-empty string without whitespace, got {symbol!r}.")
            if _PHONE_SEPARATOR in symbol or any(mark in symbol for mark in STRESS_MARKS + tuple(PAUSE_MARKS)):
                raise ValueError(
                    f"Phoneme {symbol!r} contains a separator, stress or pause mark; these are tokens of their own."
                )
            vocab = self.get_vocab()
            if symbol in vocab:
                ids.append(vocab[symbol])
                continue
            index = max(vocab.values()) + 1
            self.encoder[symbol] = index
            self.decoder[index] = symbol
            ids.append(index)
        self._update_total_vocab_size()
        return ids

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        if not os.path.isdir(save_directory):
            raise ValueError(f"Vocabulary path ({save_directory}) should be a directory.")
        vocab_file = os.path.join(
            save_directory, (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILES_NAMES["vocab_file"]
        )
        ordered = dict(sorted(self.encoder.items(), key=lambda item: item[1]))
        with open(vocab_file, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(ordered, indent=2, ensure_ascii=False) + "\n")
        return (vocab_file,)

    # ---------------------------------------------------------------- phonemization

    def _get_backend(self):
        key = (self.language, bool(self.with_stress))
        if self._backend is None or self._backend_key != key:
            _check_language(self.language)
            self._backend = EspeakBackend(
                self.language,
                punctuation_marks=PAUSE_MARKS.replace(":", _COLON_PLACEHOLDER),
                preserve_punctuation=True,
                with_stress=bool(self.with_stress),
                language_switch="remove-flags",
            )
            self._backend_key = key
        return self._backend

    def _split_phonemized(self, phonemized: str) -> list[str]:
        """Split espeak-ng output (phones joined by `_`, words by spaces) into tokens."""
        tokens = []
        for word in phonemized.split():
            if tokens:
                tokens.append(self.word_boundary)
            for unit in word.split(_PHONE_SEPARATOR):
                phone = ""
                for char in unit:
                    if char in STRESS_MARKS or char in PAUSE_MARKS:
                        if phone:
                            tokens.append(phone)
                            phone = ""
                        tokens.append(char)
                    else:
                        phone += char
                if phone:
                    tokens.append(phone)
        return tokens

    def phonemize(self, texts: str | Sequence[str]) -> list[list[str]]:
        """
        Normalize and phonemize texts into phoneme tokens, with one espeak-ng call for the whole batch.

        Args:
            texts (`str` or `Sequence[str]`):
                One text or a batch of texts.

        Characters that the espeak-ng voice of `language` cannot pronounce (letters of other scripts, such as CJK or
        Cyrillic in English text, and emoji; see [`~flashspeech_hf.text.normalization.drop_unspeakable`]) are dropped,
        with one warning per call that names them.

        Returns:
            `list[list[str]]`: For each text, its tokens: phonemes, stress marks, pause marks and word boundaries.

        Raises:
            `ValueError`: If a text is empty or whitespace-only, or has no pronounceable content (e.g. `"!!!"`).
        """
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, Sequence) or not texts:
            raise ValueError(f"`texts` must be a string or a non-empty list of strings, got {texts!r}.")

        def name(index: int) -> str:
            return "The text" if len(texts) == 1 else f"Text {index} of the batch"

        prepared, dropped = [], {}
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"{name(index)} must be a `str`, got {type(text).__name__}.")
            if not text.strip():
                raise ValueError(f"{name(index)} is empty or whitespace-only: {text!r}.")
            speakable, unspeakable = drop_unspeakable(text, self.language)
            dropped.update(dict.fromkeys(unspeakable))
            if self.normalize:
                clean = normalize_text(speakable, language=self.language)
            else:
                clean = " ".join(speakable.replace(_PHONE_SEPARATOR, " ").split())
            if not clean:
                reason = f" (its characters {''.join(unspeakable)!r} were dropped)" if unspeakable else ""
                raise ValueError(f"{name(index)} has no pronounceable content{reason}: {text!r}.")
            prepared.append(clean.replace(":", _COLON_PLACEHOLDER))
        if dropped:
            self._warn_dropped(list(dropped))

        separator = Separator(phone=_PHONE_SEPARATOR, word=" ", syllable=None)
        phonemized = self._get_backend().phonemize(prepared, separator=separator, strip=True)
        if len(phonemized) != len(prepared):
            raise RuntimeError(f"espeak-ng returned {len(phonemized)} lines for {len(prepared)} texts.")

        silent = {self.word_boundary, *PAUSE_MARKS, *STRESS_MARKS}
        batch = []
        for index, line in enumerate(phonemized):
            tokens = self._split_phonemized(line.replace(":", "ː").replace(_COLON_PLACEHOLDER, ":"))
            if all(token in silent for token in tokens):
                raise ValueError(f"{name(index)} has no pronounceable content: {texts[index]!r}.")
            batch.append(tokens)
        return batch

    def _warn_dropped(self, characters: list[str]) -> None:
        def describe(char: str) -> str:
            return f"{char!r} (U+{ord(char):04X} {unicodedata.name(char, 'unnamed')})"

        shown = ", ".join(describe(char) for char in characters[:12])
        more = f" and {len(characters) - 12} more" if len(characters) > 12 else ""
        scripts = " and ".join(language_scripts(self.language))
        logger.warning(
            f"Dropped {len(characters)} distinct character(s) that the {self.language!r} voice cannot pronounce (it "
            f"reads {scripts} script; emoji are never read): {shown}{more}. Write them out in words, or use a "
            "tokenizer (and model) for their language."
        )

    def unknown_phonemes(self, texts: str | Sequence[str]) -> collections.Counter:
        """
        Count the phonemes of `texts` that the vocabulary lacks (they would be encoded as `unk_token`).

        Args:
            texts (`str` or `Sequence[str]`):
                One text or a batch of texts in this tokenizer's `language`.

        Returns:
            `collections.Counter`: Symbol -> number of occurrences; empty when the vocabulary covers every phoneme.
        """
        vocab = self.get_vocab()
        return collections.Counter(token for tokens in self.phonemize(texts) for token in tokens if token not in vocab)

    def _tokens_to_ids(self, batch: list[list[str]]) -> list[list[int]]:
        vocab = self.get_vocab()
        unknown = collections.Counter(token for tokens in batch for token in tokens if token not in vocab)
        if unknown:
            logger.warning(
                f"{sum(unknown.values())} phoneme(s) of language {self.language!r} are not in the vocabulary and were "
                f"mapped to {self.unk_token!r}: {dict(unknown.most_common())}. To fine-tune on this language, add them "
                "with `tokenizer.add_phonemes(...)` (see `tokenizer.unknown_phonemes(texts)`)."
            )
        unk_id = self.unk_token_id
        return [[vocab.get(token, unk_id) for token in tokens] for tokens in batch]

    # ---------------------------------------------------------------- transformers hooks

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return self.phonemize([text])[0]

    def _encode_plus(
        self,
        text: Any,
        text_pair: Any = None,
        is_split_into_words: bool = False,
        **kwargs,
    ) -> BatchEncoding:
        # Replace the texts by their ids before the base class sees them, so that a whole batch (and its pairs) is
        # phonemized in one espeak-ng call instead of one call per text. Ids given by the caller pass through.
        parsed = [_as_texts(text, is_split_into_words), _as_texts(text_pair, is_split_into_words)]
        strings = [string for item in parsed if item is not None for string in item[0]]
        if strings:
            ids = iter(self._tokens_to_ids(self.phonemize(strings)))
            converted = []
            for original, item in zip((text, text_pair), parsed):
                if item is None:
                    converted.append(original)
                else:
                    batch = [next(ids) for _ in item[0]]
                    converted.append(batch if item[1] else batch[0])
            text, text_pair = converted
        return super()._encode_plus(text=text, text_pair=text_pair, is_split_into_words=False, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        # The espeak-ng backend wraps a C library handle: rebuild it lazily after unpickling or deep copies.
        state = self.__dict__.copy()
        state["_backend"] = None
        state["_backend_key"] = None
        return state


def _as_texts(value: Any, is_split_into_words: bool) -> tuple[list[str], bool] | None:
    """The strings held by a `text` argument and whether it is a batch; `None` when it holds ids or nothing."""
    if isinstance(value, str):
        return [value], False
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(item, str) for item in value):
            return ([" ".join(value)], False) if is_split_into_words else (list(value), True)
        if is_split_into_words and all(
            isinstance(item, (list, tuple)) and all(isinstance(word, str) for word in item) for item in value
        ):
            return [" ".join(item) for item in value], True
    return None
