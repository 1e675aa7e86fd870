"""Tests of the text front-end: normalization, espeak-ng phonemization and the phoneme tokenizer."""

import json
import logging
import os
import pickle

import pytest
import torch
from transformers import PreTrainedTokenizer

from flashspeech_hf import FlashSpeechTokenizer
from flashspeech_hf.text.normalization import cardinal_to_words, normalize_text, ordinal_to_words, year_to_words


@pytest.fixture(scope="module")
def tokenizer():
    return FlashSpeechTokenizer()


# ------------------------------------------------------------------ normalization


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (21, "twenty-one"),
        (100, "one hundred"),
        (1234, "one thousand two hundred thirty-four"),
        (2_000_019, "two million nineteen"),
        (-7, "minus seven"),
    ],
)
def test_cardinal_to_words(number, words):
    assert cardinal_to_words(number) == words


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (12, "twelfth"),
        (20, "twentieth"),
        (21, "twenty-first"),
        (100, "one hundredth"),
    ],
)
def test_ordinal_to_words(number, words):
    assert ordinal_to_words(number) == words


@pytest.mark.parametrize(
    ("year", "words"),
    [
        (1999, "nineteen ninety-nine"),
        (1905, "nineteen oh five"),
        (1900, "nineteen hundred"),
        (2005, "two thousand five"),
        (2024, "twenty twenty-four"),
    ],
)
def test_year_to_words(year, words):
    assert year_to_words(year) == words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I have 3 cats.", "I have three cats."),
        ("It was the 21st time, not the 2nd.", "It was the twenty-first time, not the second."),
        ("Pi is 3.14", "Pi is three point one four"),
        ("Born in 1999.", "Born in nineteen ninety-nine."),
        ("Exactly 1,999 people.", "Exactly one thousand nine hundred ninety-nine people."),
        ("It costs $5.", "It costs five dollars."),
        ("Only $1.50 or $0.99!", "Only one dollar and fifty cents or ninety-nine cents!"),
        ("A $2.5 million deal", "A two point five million dollars deal"),
        ("Save 50% now", "Save fifty percent now"),
        ("Mr. Smith met Dr. Jones on Elm St. today.", "Mister Smith met Doctor Jones on Elm Street today."),
        ("St. Louis, etc.", "Saint Louis, et cetera."),
        ("Meet at 3:30 pm", "Meet at three thirty P M"),
        ("  lots \t of\n\n  space  ", "lots of space"),
        ("Wait ... what?!", "Wait. what?"),
        ("He said “hi” (twice) — then left", "He said hi, twice, then left"),
    ],
)
def test_normalize_text_english(text, expected):
    assert normalize_text(text) == expected


def test_normalize_text_keeps_digits_for_other_languages():
    # Numbers of other languages are left to espeak-ng, which reads them in that language; punctuation is still cleaned.
    assert normalize_text("Il a 3 chats !!", language="fr-fr") == "Il a 3 chats!"


def test_normalize_text_without_content_is_empty():
    assert normalize_text("   ") == ""
    assert normalize_text("!!! ...") == ""


# ------------------------------------------------------------------ phonemization


def test_is_a_transformers_slow_tokenizer():
    assert issubclass(FlashSpeechTokenizer, PreTrainedTokenizer)


def test_phonemize_known_word(tokenizer):
    (tokens,) = tokenizer.phonemize("Hello world")
    # espeak-ng en-us: həlˈoʊ wˈɜːld. Diphthongs and long vowels stay whole; stress is a token of its own.
    for symbol in ("h", "ə", "l", "oʊ", "w", "ɜː", "d"):
        assert symbol in tokens
    assert tokens.count("|") == 1
    assert tokens[tokens.index("oʊ") - 1] == "ˈ"
    assert all(token in tokenizer.get_vocab() for token in tokens)


def test_phonemize_keeps_pauses_and_expands_numbers(tokenizer):
    plain, numeric = tokenizer.phonemize(["Wait, twenty-one dollars?", "Wait, $21?"])
    assert plain == numeric
    assert plain[2] != "," and "," in plain and plain[-1] == "?"


def test_phonemize_without_stress():
    tokens = FlashSpeechTokenizer(with_stress=False).phonemize("Hello world")[0]
    assert "ˈ" not in tokens and "ˌ" not in tokens
    assert "oʊ" in tokens


def test_default_vocab_layout(tokenizer):
    vocab = tokenizer.get_vocab()
    assert tokenizer.pad_token_id == vocab["<pad>"] == 0
    assert tokenizer.unk_token_id == vocab["<unk>"] == 1
    assert tokenizer.word_boundary_id == vocab["|"] == 2
    for mark in ",.?!;:ˈˌ":
        assert mark in vocab
    assert sorted(vocab.values()) == list(range(len(vocab)))


def test_english_text_has_no_unknown_phonemes(tokenizer):
    texts = [
        "The quick brown fox jumps over the lazy dog.",
        "She sells seashells by the seashore; the shells she sells are surely seashells!",
        "Thought, bird, nurse, cure, poor, tour, ring, button, bottle, butter, fire, hour, player, church, judge.",
        "Measure the thin thing here, there and everywhere; Dr. Who's house costs $1,234.56 in 2024.",
    ]
    assert tokenizer.unknown_phonemes(texts) == {}


# ------------------------------------------------------------------ encoding


def test_batch_padding_and_attention_mask(tokenizer):
    texts = ["Hi.", "The quick brown fox jumps over the lazy dog.", "Dr. Smith paid $5."]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    singles = [tokenizer(text)["input_ids"] for text in texts]
    lengths = [len(ids) for ids in singles]

    assert input_ids.shape == attention_mask.shape == (len(texts), max(lengths))
    assert attention_mask.sum(dim=1).tolist() == lengths
    for row, ids in enumerate(singles):
        assert input_ids[row, : len(ids)].tolist() == ids
        assert (input_ids[row, len(ids) :] == tokenizer.pad_token_id).all()
        assert attention_mask[row, : len(ids)].all() and not attention_mask[row, len(ids) :].any()
    assert input_ids.dtype == torch.long


def test_batch_is_phonemized_in_one_backend_call(tokenizer, monkeypatch):
    backend = tokenizer._get_backend()
    calls = []
    original = backend.phonemize

    def counting(texts, **kwargs):
        calls.append(len(texts))
        return original(texts, **kwargs)

    monkeypatch.setattr(backend, "phonemize", counting)
    tokenizer([f"Sentence number {index}." for index in range(8)], padding=True)
    assert calls == [8]


def test_decode_gives_the_ipa_string(tokenizer):
    ids = tokenizer("Hello, world!")["input_ids"]
    assert tokenizer.decode(ids) == "həlˈoʊ, wˈɜːld!"


def test_pickle_round_trip(tokenizer):
    # datasets' multiprocess map pickles the tokenizer; the espeak-ng handle is rebuilt on the other side.
    restored = pickle.loads(pickle.dumps(tokenizer))
    assert restored("A short test.")["input_ids"] == tokenizer("A short test.")["input_ids"]


# ------------------------------------------------------------------ errors and unknown phonemes


@pytest.mark.parametrize(
    ("text", "problem"), [("", "empty"), ("   \n", "empty"), ("!!!", "pronounceable"), ("... ?", "pronounceable")]
)
def test_text_without_speech_raises(tokenizer, text, problem):
    with pytest.raises(ValueError, match=problem):
        tokenizer(text)


def test_bad_text_in_batch_is_named(tokenizer):
    with pytest.raises(ValueError, match="Text 1 of the batch"):
        tokenizer(["Fine.", "   ", "Also fine."], padding=True)


def test_unsupported_language_raises_at_init():
    with pytest.raises(ValueError, match="not supported by espeak-ng"):
        FlashSpeechTokenizer(language="xx-nonexistent")


def test_without_espeak_ng_ids_work_and_text_fails_clearly(tokenizer, monkeypatch, tmp_path, caplog):
    import flashspeech_hf.text.tokenization_flashspeech as module

    tokenizer.save_pretrained(tmp_path)
    monkeypatch.setattr(module.EspeakBackend, "is_available", staticmethod(lambda: False))
    module._espeak_languages.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            loaded = FlashSpeechTokenizer.from_pretrained(tmp_path)  # e.g. training on prepared ids on a GPU machine
        assert any("espeak-ng is not installed" in record.getMessage() for record in caplog.records)
        assert loaded.get_vocab() == tokenizer.get_vocab()
        assert loaded.convert_ids_to_tokens(loaded.convert_tokens_to_ids(["h", "ə"])) == ["h", "ə"]
        with pytest.raises(RuntimeError, match="needs the espeak-ng library"):
            loaded("Hello there.")
    finally:
        module._espeak_languages.cache_clear()


def test_unknown_phoneme_maps_to_unk_with_warning(caplog):
    french = FlashSpeechTokenizer(language="fr-fr")  # the default vocabulary is English: no ʁ, no nasal vowels
    with caplog.at_level(logging.WARNING):
        ids = french("Bonjour tout le monde.")["input_ids"]
    assert french.unk_token_id in ids
    assert any(
        "not in the vocabulary" in record.getMessage() and "ʁ" in record.getMessage() for record in caplog.records
    )


@pytest.mark.parametrize(
    ("text", "dropped", "clean"),
    [
        ("We are 😀 happy today.", ["😀"], "We are happy today."),
        ("Hello 中文 world.", ["中", "文"], "Hello world."),
        ("Привет, my friend.", ["П", "р", "и", "в", "е", "т"], ", my friend."),
        ("Thumbs 👍🏽 up and 🇫🇷 flags.", ["👍", "🏽", "🇫", "🇷"], "Thumbs up and flags."),
    ],
)
def test_unspeakable_characters_are_dropped_with_one_warning(tokenizer, caplog, text, dropped, clean):
    """Emoji, CJK and Cyrillic in an English model: dropped alike, and one warning names each character."""
    with caplog.at_level(logging.WARNING):
        ids = tokenizer(text)["input_ids"]
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("flashspeech_hf")]
    assert len(warnings) == 1, warnings
    assert "cannot pronounce" in warnings[0] and all(repr(char) in warnings[0] for char in dropped)
    assert "U+" in warnings[0] and "'en-us'" in warnings[0]
    assert ids == tokenizer(clean)["input_ids"]  # not read out as "grinning face" or "Chinese letter"
    assert tokenizer.unk_token_id not in ids


def test_a_text_of_only_unspeakable_characters_raises(tokenizer):
    with pytest.raises(ValueError, match="no pronounceable content.*were dropped"):
        tokenizer("中文 😀")


def test_each_language_keeps_its_own_script(caplog):
    from flashspeech_hf.text.normalization import drop_unspeakable

    assert drop_unspeakable("Привет, мир!", "ru") == ("Привет, мир!", [])
    assert drop_unspeakable("你好 world", "cmn") == ("你好 world", [])
    assert drop_unspeakable("café, naïve: 25°C, ©2020", "en-us") == ("café, naïve: 25°C, ©2020", [])
    assert drop_unspeakable("Hi 😀", "ru") == ("Hi  ", ["😀"])
    russian = FlashSpeechTokenizer(language="ru")
    with caplog.at_level(logging.WARNING):
        russian.phonemize("Привет 中")
    assert any("'中'" in r.getMessage() and "Cyrillic" in r.getMessage() for r in caplog.records)


def test_add_phonemes_keeps_existing_ids(tmp_path):
    french = FlashSpeechTokenizer(language="fr-fr")
    texts = ["Bonjour tout le monde.", "Un bon vin blanc."]
    old_vocab = french.get_vocab()
    unknown = french.unknown_phonemes(texts)
    assert "ʁ" in unknown and "ɔ̃" in unknown

    new_ids = french.add_phonemes(sorted(unknown))
    assert new_ids == list(range(len(old_vocab), len(old_vocab) + len(unknown)))
    vocab = french.get_vocab()
    assert all(vocab[symbol] == index for symbol, index in old_vocab.items())
    assert len(french) == len(old_vocab) + len(unknown)
    assert french.unknown_phonemes(texts) == {}
    assert french.unk_token_id not in french(texts[0])["input_ids"]
    # A symbol already present keeps its id and adds nothing.
    assert french.add_phonemes(["ʁ", "p"]) == [vocab["ʁ"], vocab["p"]]
    assert len(french) == len(vocab)
    with pytest.raises(ValueError, match="whitespace"):
        french.add_phonemes(["a b"])


# ------------------------------------------------------------------ save / load


def test_save_and_load_round_trip(tmp_path):
    tokenizer = FlashSpeechTokenizer(language="fr-fr", with_stress=False, normalize=False, word_boundary="#")
    tokenizer.add_phonemes(["ʁ", "ɔ̃", "y"])
    tokenizer.save_pretrained(tmp_path)

    with open(tmp_path / "vocab.json", encoding="utf-8") as handle:
        assert json.load(handle) == tokenizer.get_vocab()
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    restored = FlashSpeechTokenizer.from_pretrained(tmp_path)

    assert restored.get_vocab() == tokenizer.get_vocab()
    assert (restored.language, restored.with_stress, restored.normalize, restored.word_boundary) == (
        "fr-fr",
        False,
        False,
        "#",
    )
    assert (restored.pad_token, restored.unk_token) == (tokenizer.pad_token, tokenizer.unk_token)
    texts = ["Bonjour tout le monde.", "Une voiture rouge!"]
    expected = tokenizer(texts, padding=True, return_tensors="pt")
    actual = restored(texts, padding=True, return_tensors="pt")
    assert torch.equal(actual["input_ids"], expected["input_ids"])
    assert torch.equal(actual["attention_mask"], expected["attention_mask"])
    assert restored.unk_token_id not in actual["input_ids"]


def test_default_tokenizer_round_trip(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    restored = FlashSpeechTokenizer.from_pretrained(tmp_path)
    text = "Dr. Smith paid $5.50 on May 21st, 1999."
    assert restored(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert restored.language == "en-us" and restored.with_stress and restored.normalize
