"""Long-form and streaming synthesis: sentence splitting, `pipe.long_form`, `pipe.stream`, `synthesize --text_file`."""

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from speech_data import gen, make_prompt

from flashspeech_hf import FlashSpeechPipeline
from flashspeech_hf.audio import open_audio_for_writing
from flashspeech_hf.cli import main
from flashspeech_hf.pipelines import long_form
from flashspeech_hf.pipelines import pipeline_flashspeech as pipeline_module
from flashspeech_hf.text import normalize_text, split_sentences

TEXT = "The first sentence is here. A second one follows! Is this the third? Yes, and the fourth."


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "prompt.wav"
    sf.write(path, make_prompt(1.5, 22050), 22050)
    return str(path)


# ---------------------------------------------------------------------------------------------------- splitting


def test_split_after_normalization_keeps_abbreviations_and_numbers_whole():
    text = "Dr. Smith paid $3.50 at St. Louis on Jan 5. He left at 3.30 p.m. on Friday!\n\nChapter Two\n\nThe end"
    assert split_sentences(text) == [
        "Doctor Smith paid three dollars and fifty cents at Saint Louis on Jan five.",
        "He left at three point three zero P M on Friday!",
        "Chapter Two.",  # a paragraph without a final mark ends like a sentence
        "The end.",
    ]
    # other languages keep their digits: a decimal point is not a sentence end
    assert split_sentences("Le nombre 3.14 est connu. Voilà!", language="fr-fr") == [
        "Le nombre 3.14 est connu.",
        "Voilà!",
    ]


def test_split_bounds_length_at_clauses_then_words_and_never_cuts_a_word():
    clauses = "One, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve."
    assert split_sentences(clauses, max_characters=30) == [
        "One, two, three, four, five,",
        "six, seven, eight, nine, ten,",
        "eleven, twelve.",
    ]
    words = " ".join(f"word{i}" for i in range(60)) + "."
    pieces = split_sentences(words, max_characters=50)
    assert len(pieces) > 1 and all(len(p) <= 50 for p in pieces)
    assert " ".join(pieces).split() == normalize_text(words).split()  # every cut is between words
    assert split_sentences("Supercalifragilistic is long.", max_characters=5)[0] == "Supercalifragilistic"


def test_split_pieces_are_stable_under_normalization():
    # the tokenizer normalizes each piece again: it must see exactly the piece
    text = "Mr. Jones, Jr. paid 1,000,000 dollars (approx. 12%) in 1999... Really?! Yes -- on Elm St. at No. 5."
    for piece in split_sentences(text, max_characters=40):
        assert normalize_text(piece) == piece


def test_split_keeps_unpronounceable_pieces_attached_and_reports_empty_text():
    assert split_sentences("😀. Hello there. 😀! Bye.") == ["😀. Hello there. 😀!", "Bye."]
    for bad in ("", "  \n\n ", "😀 !!!"):
        with pytest.raises(ValueError, match="empty|pronounceable"):
            split_sentences(bad)
    with pytest.raises(ValueError, match="max_characters"):
        split_sentences("Hi.", max_characters=0)


# ---------------------------------------------------------------------------------------------------- pipeline


def test_one_sentence_is_exactly_the_pipeline_call(pipe, prompt_file):
    for generator in (3, gen(3)):
        alone = pipe("Hello there, my friend", prompt_file, generator=generator).audios[0]
        again = gen(3) if isinstance(generator, torch.Generator) else generator
        assert np.array_equal(pipe.long_form("Hello there, my friend", prompt_file, generator=again).audios[0], alone)


def test_sentences_are_the_pipeline_call_per_sentence_joined_with_pauses(pipe, prompt_file):
    out = pipe.long_form(TEXT, prompt_file, generator=5, batch_size=3, pause_seconds=0.25)
    assert out.sentences == split_sentences(TEXT) and len(out.sentences) == 4
    rate, fade = pipe.sampling_rate, round(long_form.FADE_SECONDS * pipe.sampling_rate)
    audio = out.audios[0]
    for i, (sentence, (start, end)) in enumerate(zip(out.sentences, out.sentence_spans)):
        alone = pipe(sentence, prompt_file, generator=5 + i)  # seed + i: the same audio whatever the batch
        n = alone.audio_lengths[0]
        assert end - start == n
        np.testing.assert_allclose(audio[start + fade : end - fade], alone.audios[0, fade : n - fade], atol=1e-5)
        if i + 1 < len(out.sentences):
            gap = out.sentence_spans[i + 1][0] - end
            assert gap == round(0.25 * rate) and not audio[end : end + gap].any()
    assert out.sentence_spans[-1][1] == len(audio)


def test_deterministic_for_one_generator_whatever_the_batching(pipe, prompt_file):
    a = pipe.long_form(TEXT, prompt_file, generator=gen(7), batch_size=4).audios
    b = pipe.long_form(TEXT, prompt_file, generator=gen(7), batch_size=4).audios
    c = pipe.long_form(TEXT, prompt_file, generator=gen(7), batch_size=1).audios
    d = pipe.long_form(TEXT, prompt_file, generator=gen(8), batch_size=4, prosody_alpha=0.0).audios
    e = pipe.long_form(TEXT, prompt_file, generator=gen(9), batch_size=4, prosody_alpha=0.0).audios
    assert np.array_equal(a, b)
    np.testing.assert_allclose(a, c, atol=1e-4)  # padding changes float rounding only
    assert d.shape == e.shape and not np.allclose(d, e)


def test_stream_yields_sentences_that_concatenate_to_long_form(pipe, prompt_file):
    chunks = list(pipe.stream(TEXT, prompt_file, generator=11, batch_size=2))
    assert [c.index for c in chunks] == [0, 1, 2, 3] and {c.num_sentences for c in chunks} == {4}
    assert [c.text for c in chunks] == split_sentences(TEXT)
    whole = pipe.long_form(TEXT, prompt_file, generator=11, batch_size=2).audios[0]
    assert np.array_equal(np.concatenate([c.audio for c in chunks]), whole)
    # the clause cut of an over-long sentence pauses half as long as a sentence end, the last piece not at all
    pieces = list(pipe.stream("Alpha beta gamma, delta epsilon zeta.", prompt_file, max_sentence_characters=20))
    assert [p.text for p in pieces] == ["Alpha beta gamma,", "delta epsilon zeta."]
    assert len(pieces[0].audio) - pieces[0].num_speech_samples == round(0.15 * pipe.sampling_rate)
    assert len(pieces[1].audio) == pieces[1].num_speech_samples


def test_prompt_is_encoded_once(pipe, prompt_file, monkeypatch):
    calls = []
    encode = pipe.codec.encode
    monkeypatch.setattr(pipe.codec, "encode", lambda *a, **k: calls.append(1) or encode(*a, **k))
    out = pipe.long_form(TEXT + " " + TEXT, prompt_file, generator=0, batch_size=3)
    assert len(out.sentences) == 8 and len(calls) == 1


def test_a_5000_character_text_is_spoken_in_bounded_pieces(pipe, prompt_file):
    sentences = [f"Sentence number {i} tells a short story about a quiet village and its river." for i in range(70)]
    text = " ".join(sentences)[:5000]
    assert len(text) == 5000
    out = pipe.long_form(text, prompt_file, generator=0, batch_size=16, prosody_alpha=0.0)
    assert out.sentences == split_sentences(text) and len(out.sentences) == 66  # the last one cut at 5,000
    assert max(end - start for start, end in out.sentence_spans) <= 15 * pipe.sampling_rate
    assert out.audios.shape == (1, out.sentence_spans[-1][1])


def test_bad_arguments_are_reported_when_stream_is_called(pipe, prompt_file, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(32000, dtype=np.float32), 16000)
    cases = [
        (dict(text="   "), "empty"),
        (dict(prompt_audio=[prompt_file, prompt_file]), "one voice"),
        (dict(prompt_audio=str(silent)), "silent"),
        (dict(batch_size=0), "batch_size"),
        (dict(pause_seconds=-1), "pause_seconds"),
        (dict(generator=[gen(0)]), "one per sentence"),
        (dict(prosody_alpha=2.0), "prosody_alpha"),
    ]
    for override, message in cases:
        kwargs = dict(text=TEXT, prompt_audio=prompt_file) | override
        with pytest.raises(ValueError, match=message):
            pipe.stream(**kwargs)  # raised at the call, before any audio
    with pytest.raises(ValueError, match="output_type"):
        pipe.long_form(TEXT, prompt_file, output_type="wav")


def test_defaults_match_the_pipeline_call():
    import inspect

    params = inspect.signature(FlashSpeechPipeline.stream).parameters
    assert params["max_output_seconds"].default == pipeline_module.MAX_OUTPUT_SECONDS
    assert params["max_prompt_seconds"].default == pipeline_module.MAX_PROMPT_SECONDS


# ---------------------------------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def saved_pipeline(pipe, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny"
    pipe.save_pretrained(path)
    return str(path)


def test_text_file_is_written_as_long_form(pipe, saved_pipeline, prompt_file, tmp_path, capsys):
    book = tmp_path / "book.txt"
    book.write_text(TEXT + "\n\nA new paragraph starts here.\n", encoding="utf-8")
    out = tmp_path / "out" / "book.wav"
    argv = ["synthesize", "--model", saved_pipeline, "--text_file", str(book), "--prompt", prompt_file]
    assert main([*argv, "--output", str(out), "--seed", "2", "--batch_size", "2"]) == 0
    assert "5 sentence(s)" in capsys.readouterr().out
    audio, rate = sf.read(out, dtype="float32")
    expected = pipe.long_form(book.read_text(), prompt_file, generator=2, batch_size=2).audios[0]
    assert rate == pipe.sampling_rate and len(audio) == len(expected)
    np.testing.assert_allclose(
        audio, np.clip(expected, -1, 1), atol=1.5 / 32768
    )  # 16-bit PCM (the random model clips)
    assert sorted(os.listdir(out.parent)) == ["book.wav"]  # no temporary file left


def test_one_sentence_text_is_unchanged_on_the_command_line(pipe, saved_pipeline, prompt_file, tmp_path):
    out = tmp_path / "one.wav"
    argv = ["synthesize", "--model", saved_pipeline, "--text", "Hello world.", "--prompt", prompt_file]
    assert main([*argv, "--output", str(out), "--seed", "3"]) == 0
    reference = tmp_path / "reference.wav"
    sf.write(reference, pipe("Hello world.", prompt_file, generator=gen(3)).audios[0], pipe.sampling_rate)
    np.testing.assert_array_equal(sf.read(out)[0], sf.read(reference)[0])


def test_text_file_errors(saved_pipeline, prompt_file, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\n", encoding="utf-8")
    argv = ["synthesize", "--model", saved_pipeline, "--prompt", prompt_file, "--output", str(tmp_path / "o.wav")]
    with pytest.raises(SystemExit, match="--text_file is empty"):
        main([*argv, "--text_file", str(empty)])
    with pytest.raises(SystemExit, match="--text_file not found"):
        main([*argv, "--text_file", str(tmp_path / "missing.txt")])
    with pytest.raises(SystemExit, match="--output is required"):
        main(["synthesize", "--model", saved_pipeline, "--prompt", prompt_file, "--text", "Hi."])
    assert not (tmp_path / "o.wav").exists()


def test_audio_file_appears_only_when_complete(tmp_path):
    path = tmp_path / "a.wav"
    with pytest.raises(RuntimeError):
        with open_audio_for_writing(path, 16000) as handle:
            handle.write(np.zeros(160, dtype=np.float32))
            raise RuntimeError("synthesis failed half-way")
    assert os.listdir(tmp_path) == []
    with open_audio_for_writing(path, 16000) as handle:
        handle.write(np.full(160, 0.5, dtype=np.float32))
        assert not path.exists()  # written under a hidden temporary name until the block ends
    assert os.listdir(tmp_path) == ["a.wav"] and len(sf.read(path)[0]) == 160
    with pytest.raises(ValueError, match="extension"):
        with open_audio_for_writing(tmp_path / "a.txt", 16000):
            pass


def test_long_form_says_it_holds_the_whole_waveform_and_points_to_stream():
    from flashspeech_hf.pipelines.long_form import FlashSpeechLongFormMixin

    doc = " ".join(FlashSpeechLongFormMixin.long_form.__doc__.split())
    assert "the result holds the whole waveform in memory" in doc
    assert "For very long texts (a book), use [`~FlashSpeechLongFormMixin.stream`]" in doc
