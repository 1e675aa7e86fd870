"""Saved voices: `pipe.encode_voice`, `FlashSpeechVoice.save/load`, and `voice=` in every task pipeline."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file
from speech_data import make_prompt

from flashspeech_hf import (
    FlashSpeechEditPipeline,
    FlashSpeechPipeline,
    FlashSpeechVoice,
    FlashSpeechVoiceConversionPipeline,
)
from flashspeech_hf.pipelines.voice import voice_fingerprint

RATE = 16000
TEXT = "The black cat sat on the mat."
NEW_TEXT = "The white cat sat on the mat."
CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "flashspeech-demo"


@pytest.fixture(scope="module")
def prompt():
    return make_prompt(1.5, RATE, seed=3)


@pytest.fixture(scope="module")
def source():
    return make_prompt(2.0, RATE, seed=1)


@pytest.fixture(scope="module")
def demo():
    pipe = FlashSpeechPipeline.from_pretrained(CHECKPOINT)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _round_trip(pipe, audio, path) -> FlashSpeechVoice:
    pipe.encode_voice(audio, prompt_sampling_rate=RATE).save(path)
    return FlashSpeechVoice.load(path, pipeline=pipe)


def _same_audio_every_task(pipe, prompt, source, path):
    voice = _round_trip(pipe, prompt, path)
    tts = pipe(TEXT, prompt, prompt_sampling_rate=RATE, generator=0)
    assert torch.equal(torch.from_numpy(tts.audios), torch.from_numpy(pipe(TEXT, voice=voice, generator=0).audios))
    # one voice shared by a batch of texts, with several waveforms per text
    batch = dict(num_waveforms_per_prompt=2, generator=[torch.Generator().manual_seed(i) for i in range(4)])
    from_audio = pipe([TEXT, NEW_TEXT], prompt, prompt_sampling_rate=RATE, **batch)
    batch["generator"] = [torch.Generator().manual_seed(i) for i in range(4)]
    assert np.array_equal(from_audio.audios, pipe([TEXT, NEW_TEXT], voice=voice, **batch).audios)
    long_text = "A first sentence here. And a second one."
    assert np.array_equal(
        pipe.long_form(long_text, prompt, prompt_sampling_rate=RATE, generator=0, batch_size=2).audios,
        pipe.long_form(long_text, voice=voice, generator=0, batch_size=2).audios,
    )
    converter = FlashSpeechVoiceConversionPipeline(**pipe.components)
    converter.set_progress_bar_config(disable=True)
    assert np.array_equal(
        converter(source, TEXT, prompt, sampling_rate=RATE, generator=0).audios,
        converter(source, TEXT, voice=voice, sampling_rate=RATE, generator=0).audios,
    )
    editor = FlashSpeechEditPipeline(**pipe.components)
    editor.set_progress_bar_config(disable=True)
    edited = editor(
        source, TEXT, NEW_TEXT, sampling_rate=RATE, generator=0, prompt_audio=prompt, prompt_sampling_rate=RATE
    )
    by_voice = editor(source, TEXT, NEW_TEXT, sampling_rate=RATE, generator=0, voice=voice)
    assert np.array_equal(edited.audios, by_voice.audios)
    # the voice is the speech prompt of the edit: another voice changes the regenerated span
    context = editor(source, TEXT, NEW_TEXT, sampling_rate=RATE, generator=0)
    assert context.audios.shape != edited.audios.shape or not np.array_equal(context.audios, edited.audios)


def test_voice_gives_the_same_audio_as_the_prompt_in_every_task(pipe, prompt, source, tmp_path):
    _same_audio_every_task(pipe, prompt, source, tmp_path / "a.voice.safetensors")


def test_voice_gives_the_same_audio_on_the_demo_checkpoint(demo, prompt, source, tmp_path):
    _same_audio_every_task(demo, prompt, source, tmp_path / "a.voice.safetensors")


def test_voice_round_trip_and_metadata(pipe, prompt, tmp_path):
    voice = pipe.encode_voice(prompt, prompt_sampling_rate=RATE)
    frames = voice.num_frames
    assert voice.prompt_latents.shape == (pipe.denoiser.config.latent_dim, frames)
    assert voice.prompt_hidden.shape == (frames, pipe.prior_encoder.config.hidden_size)
    assert voice.duration_seconds == pytest.approx(1.5)
    path = tmp_path / "sub" / "a.voice.safetensors"
    voice.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["a.voice.safetensors"]  # no temporary left behind
    loaded = FlashSpeechVoice.load(path)
    assert torch.equal(loaded.prompt_latents, voice.prompt_latents)
    assert torch.equal(loaded.prompt_hidden, voice.prompt_hidden)
    assert loaded.metadata == voice.metadata
    assert loaded.sampling_rate == pipe.sampling_rate and loaded.fingerprint == voice_fingerprint(pipe)
    # the same prompt as a file gives the same voice
    wav = tmp_path / "prompt.wav"
    sf.write(wav, prompt, RATE, subtype="FLOAT")
    assert torch.equal(pipe.encode_voice(str(wav)).prompt_hidden, voice.prompt_hidden)


def test_incompatible_voice_is_refused(pipe, prompt, tmp_path):
    path = tmp_path / "a.voice.safetensors"
    pipe.encode_voice(prompt, prompt_sampling_rate=RATE).save(path)
    torch.manual_seed(1)
    other = FlashSpeechPipeline.from_named_config("tiny")  # same configs, other weights
    with pytest.raises(ValueError, match="incompatible pipeline"):
        FlashSpeechVoice.load(path, pipeline=other)
    voice = FlashSpeechVoice.load(path)
    with pytest.raises(ValueError, match="incompatible pipeline"):
        other(TEXT, voice=voice)
    with pytest.raises(ValueError, match="incompatible pipeline"):
        FlashSpeechVoiceConversionPipeline(**other.components)(prompt, TEXT, voice=voice, sampling_rate=RATE)
    # the denoiser and the prosody generator do not enter a voice; the prompt encoder's weights do
    assert (
        voice_fingerprint(FlashSpeechPipeline(**{**pipe.components, "denoiser": other.denoiser})) == voice.fingerprint
    )
    mixed = FlashSpeechPipeline(**{**pipe.components, "prior_encoder": other.prior_encoder})
    with pytest.raises(ValueError, match="incompatible pipeline"):
        mixed(TEXT, voice=voice)
    # a weight changed in place changes the fingerprint (the cached hash is not reused)
    before = voice_fingerprint(other)
    with torch.no_grad():
        other.prior_encoder.prompt_in.bias.add_(1.0)
    assert voice_fingerprint(other) != before


def test_voice_of_another_dtype_is_refused_with_the_dtypes(prompt):
    torch.manual_seed(0)
    fp32 = FlashSpeechPipeline.from_named_config("tiny")
    voice = fp32.encode_voice(prompt, prompt_sampling_rate=RATE)
    bf16 = FlashSpeechPipeline(**fp32.components).to(torch.bfloat16)
    with pytest.raises(ValueError, match="made in float32, this pipeline runs bfloat16"):
        bf16(TEXT, voice=voice)


def test_bad_voice_files(pipe, prompt, tmp_path):
    with pytest.raises(FileNotFoundError, match="Voice file not found"):
        FlashSpeechVoice.load(tmp_path / "missing.voice.safetensors")
    garbage = tmp_path / "garbage.voice.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(ValueError, match="not a readable voice file"):
        FlashSpeechVoice.load(garbage)
    good = tmp_path / "good.voice.safetensors"
    pipe.encode_voice(prompt, prompt_sampling_rate=RATE).save(good)
    truncated = tmp_path / "truncated.voice.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match="not a readable voice file"):
        FlashSpeechVoice.load(truncated)
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, plain)
    with pytest.raises(ValueError, match="not a FlashSpeech voice"):
        FlashSpeechVoice.load(plain)
    voice = FlashSpeechVoice.load(good)
    meta = voice.metadata
    tensors = {"prompt_latents": voice.prompt_latents, "prompt_hidden": voice.prompt_hidden[:-1]}
    wrong = tmp_path / "wrong.voice.safetensors"
    save_file(tensors, wrong, metadata={"flashspeech_voice": json.dumps(meta)})
    with pytest.raises(ValueError, match="not a valid FlashSpeech voice file: shapes"):
        FlashSpeechVoice.load(wrong)
    save_file(
        {"prompt_latents": voice.prompt_latents, "prompt_hidden": voice.prompt_hidden},
        wrong,
        metadata={"flashspeech_voice": json.dumps({**meta, "version": 99})},
    )
    with pytest.raises(ValueError, match="format version 99"):
        FlashSpeechVoice.load(wrong)


def test_voice_arguments_are_checked(pipe, prompt, source):
    voice = pipe.encode_voice(prompt, prompt_sampling_rate=RATE)
    with pytest.raises(ValueError, match="either `prompt_audio` or `voice`"):
        pipe(TEXT, prompt, prompt_sampling_rate=RATE, voice=voice)
    with pytest.raises(ValueError, match="`prompt_audio` \\(audio\\) or `voice`"):
        pipe(TEXT)
    with pytest.raises(TypeError, match="must be a FlashSpeechVoice"):
        pipe(TEXT, voice="a.voice.safetensors")
    with pytest.raises(ValueError, match="2 texts but 3 prompts"):
        pipe([TEXT, TEXT], voice=[voice] * 3)
    with pytest.raises(ValueError, match="one voice"):
        pipe.long_form(TEXT, voice=[voice, voice])
    converter = FlashSpeechVoiceConversionPipeline(**pipe.components)
    with pytest.raises(ValueError, match="either `reference_audio` or `voice`"):
        converter(source, TEXT, prompt, sampling_rate=RATE, voice=voice)
    editor = FlashSpeechEditPipeline(**pipe.components)
    with pytest.raises(ValueError, match="either `prompt_audio` or `voice`"):
        editor(source, TEXT, NEW_TEXT, sampling_rate=RATE, prompt_audio=prompt, prompt_sampling_rate=RATE, voice=voice)
    with pytest.raises(ValueError, match="at least 1.0 s of speech"):
        pipe.encode_voice(prompt[: RATE // 2], prompt_sampling_rate=RATE)


def test_voices_per_text(pipe, prompt, source):
    """A list of voices, one per text: each item is the item synthesized alone with its voice."""
    voices = [pipe.encode_voice(p, prompt_sampling_rate=RATE) for p in (prompt, source)]
    both = pipe([TEXT, NEW_TEXT], voice=voices, generator=[torch.Generator().manual_seed(i) for i in range(2)])
    for i, (text, voice) in enumerate(zip([TEXT, NEW_TEXT], voices)):
        alone = pipe(text, voice=voice, generator=i)
        n = alone.audio_lengths[0]
        assert both.audio_lengths[i] == n
        np.testing.assert_allclose(both.audios[i, :n], alone.audios[0], atol=1e-4)


def test_cli_voice_then_synthesize_with_it(tmp_path, capsys):
    from flashspeech_hf.cli import main

    torch.manual_seed(0)
    model = tmp_path / "model"
    FlashSpeechPipeline.from_named_config("tiny").save_pretrained(model)
    wav = tmp_path / "prompt.wav"
    sf.write(wav, make_prompt(1.5, 22050, seed=2), 22050)
    voice_file = tmp_path / "voices" / "a.voice.safetensors"
    assert main(["voice", "--model", str(model), "--prompt", str(wav), "--output", str(voice_file)]) == 0
    assert "fingerprint" in capsys.readouterr().out
    argv = ["synthesize", "--model", str(model), "--text", "Hello there. A second sentence.", "--seed", "3"]
    assert main([*argv, "--prompt", str(wav), "--output", str(tmp_path / "a.wav")]) == 0
    assert main([*argv, "--voice", str(voice_file), "--output", str(tmp_path / "v.wav")]) == 0
    np.testing.assert_array_equal(sf.read(tmp_path / "a.wav")[0], sf.read(tmp_path / "v.wav")[0])
    argv = [*argv, "--output", str(tmp_path / "x.wav")]
    with pytest.raises(SystemExit, match="one of --prompt"):
        main([*argv, "--prompt", str(wav), "--voice", str(voice_file)])
    with pytest.raises(SystemExit, match="--voice file not found"):
        main([*argv, "--voice", str(tmp_path / "missing.voice.safetensors")])
    # a voice made at another precision is refused with the reason
    assert main([*argv, "--voice", str(voice_file), "--precision", "bfloat16"]) == 2
    assert "made in float32, this pipeline runs bfloat16" in capsys.readouterr().err


def test_app_keeps_the_encoded_prompt_between_requests(pipe, prompt, source, tmp_path, monkeypatch):
    from flashspeech_hf import app

    demo = app.FlashSpeechDemo(pipe)
    expected = pipe(TEXT, prompt, prompt_sampling_rate=RATE, generator=4)  # what the file gives without the cache
    calls = []
    encode = pipe.encode_voice
    monkeypatch.setattr(pipe, "encode_voice", lambda *a, **k: calls.append(a[0]) or encode(*a, **k))
    first, again = tmp_path / "a.wav", tmp_path / "b.wav"  # the same content uploaded twice
    for path in (first, again):
        sf.write(path, prompt, RATE, subtype="FLOAT")
    (rate, audio), _, _ = demo.synthesize(TEXT, str(first), 2, 0.2, 1.0, 4)
    (_, audio_again), _, _ = demo.synthesize(NEW_TEXT, str(again), 2, 0.2, 1.0, 4)
    demo.convert(make_wav(tmp_path / "src.wav", source), TEXT, str(again), 0.7, 2, 0.2, 0)
    assert calls == [str(first)]  # encoded once for the three requests
    assert rate == pipe.sampling_rate
    assert np.array_equal(audio, app._to_int16(expected.audios[0, : expected.audio_lengths[0]]))
    monkeypatch.setattr(app, "VOICE_CACHE_SIZE", 1)
    other = make_wav(tmp_path / "other.wav", source)
    demo.synthesize(TEXT, other, 2, 0.2, 1.0, 4)
    demo.synthesize(TEXT, str(first), 2, 0.2, 1.0, 4)
    assert calls == [str(first), other, str(first)]  # least recently used out


def make_wav(path, audio) -> str:
    sf.write(path, audio, RATE, subtype="FLOAT")
    return str(path)
