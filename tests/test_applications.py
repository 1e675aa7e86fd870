"""Zero-shot applications of FlashSpeechPipeline: alignment, voice conversion, speech editing, diverse sampling."""

import json

import numpy as np
import pytest
import torch
from speech_data import convert, edit, gen, make_prompt
from test_pipeline import TEXT

from flashspeech_hf import FlashSpeechEditPipeline, FlashSpeechPipeline, FlashSpeechVoiceConversionPipeline
from flashspeech_hf.models.modeling_aligner import FlashSpeechAligner

RATE = 16000
SOURCE_TEXT = "The black cat sat on the mat."


@pytest.fixture(scope="module")
def source():
    return make_prompt(2.0, RATE, seed=1)


@pytest.fixture(scope="module")
def reference():
    return make_prompt(1.5, RATE, seed=3)


# ---------------------------------------------------------------------------------------------------- alignment


def test_align_gives_durations_that_cover_the_audio(pipe, source):
    alignment = pipe.align(source, SOURCE_TEXT, sampling_rate=RATE)
    num_frames = pipe.codec.num_frames(len(source))
    assert alignment.phonemes == pipe.tokenizer.phonemize(SOURCE_TEXT)[0]
    assert alignment.durations.shape == (len(alignment.phonemes),)
    assert int(alignment.durations.sum()) == num_frames and int(alignment.durations.min()) >= 1
    assert alignment.latents.shape == (pipe.codec.latent_dim, num_frames)
    ids = pipe.tokenizer(SOURCE_TEXT)["input_ids"]
    assert alignment.input_ids.tolist() == ids


def test_align_rejects_audio_too_short_for_the_text(pipe):
    with pytest.raises(ValueError, match="too short for the text"):
        pipe.align(make_prompt(0.3, RATE), SOURCE_TEXT * 3, sampling_rate=RATE)


def test_aligner_round_trips_through_save_and_load(pipe, source, reference, tmp_path):
    pipe.save_pretrained(tmp_path / "with")
    index = json.loads((tmp_path / "with" / "model_index.json").read_text())
    assert index["aligner"] == ["flashspeech_hf.models.modeling_aligner", "FlashSpeechAligner"]
    loaded = FlashSpeechPipeline.from_pretrained(tmp_path / "with")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.aligner, FlashSpeechAligner)
    public = [k for k in pipe.aligner.config if not k.startswith("_")]
    assert {k: loaded.aligner.config[k] for k in public} == {k: pipe.aligner.config[k] for k in public}
    for (name, a), (_, b) in zip(pipe.aligner.state_dict().items(), loaded.aligner.state_dict().items()):
        assert torch.equal(a, b), name
    kwargs = {"sampling_rate": RATE}
    assert torch.equal(
        pipe.align(source, SOURCE_TEXT, **kwargs).durations, loaded.align(source, SOURCE_TEXT, **kwargs).durations
    )
    a = convert(pipe, source, SOURCE_TEXT, reference, generator=gen(0), **kwargs).audios
    b = convert(loaded, source, SOURCE_TEXT, reference, generator=gen(0), **kwargs).audios
    assert np.array_equal(a, b)


def test_pipeline_without_aligner_saves_loads_and_explains(pipe, source, reference, tmp_path):
    bare = FlashSpeechPipeline(**{**pipe.components, "aligner": None})
    bare.save_pretrained(tmp_path / "without")
    assert not (tmp_path / "without" / "aligner").exists()
    loaded = FlashSpeechPipeline.from_pretrained(tmp_path / "without")
    assert loaded.aligner is None
    # checkpoints saved before the aligner existed have no entry for it at all
    index_file = tmp_path / "without" / "model_index.json"
    index = json.loads(index_file.read_text())
    assert index.pop("aligner") == [None, None]
    index_file.write_text(json.dumps(index))
    assert FlashSpeechPipeline.from_pretrained(tmp_path / "without").aligner is None
    assert FlashSpeechPipeline.from_named_config("tiny", aligner=None).aligner is None
    with pytest.raises(ValueError, match="no `aligner` component"):
        loaded.align(source, SOURCE_TEXT, sampling_rate=RATE)
    with pytest.raises(ValueError, match="no `aligner` component"):
        convert(loaded, source, SOURCE_TEXT, reference, sampling_rate=RATE)
    with pytest.raises(ValueError, match="no `aligner` component"):
        edit(loaded, source, SOURCE_TEXT, "The black dog sat on the mat.", sampling_rate=RATE)
    # a checkpoint whose index names an aligner but lacks its folder is reported
    pipe.save_pretrained(tmp_path / "broken")
    for f in (tmp_path / "broken" / "aligner").iterdir():
        f.unlink()
    (tmp_path / "broken" / "aligner").rmdir()
    with pytest.raises(ValueError, match="aligner"):
        FlashSpeechPipeline.from_pretrained(tmp_path / "broken")


# ---------------------------------------------------------------------------------------------------- voice conversion


def test_voice_conversion_keeps_the_source_length_and_timing(pipe, source, reference):
    out = convert(pipe, source, SOURCE_TEXT, reference, sampling_rate=RATE, generator=gen(0))
    num_frames = pipe.codec.num_frames(len(source))
    assert out.audios.shape == (1, num_frames * pipe.codec.hop_length) and np.isfinite(out.audios).all()
    assert torch.equal(out.durations[0], pipe.align(source, SOURCE_TEXT, sampling_rate=RATE).durations)
    assert len(out.log_pitch[0]) == num_frames
    again = convert(pipe, source, SOURCE_TEXT, reference, sampling_rate=RATE, generator=gen(0))
    assert np.array_equal(out.audios, again.audios)
    other_voice = convert(
        pipe, source, SOURCE_TEXT, make_prompt(1.2, RATE, seed=7), sampling_rate=RATE, generator=gen(0)
    )
    assert other_voice.audios.shape == out.audios.shape and not np.allclose(other_voice.audios, out.audios)


def test_strength_sets_the_starting_noise_level(pipe, source, reference):
    # the levels themselves: tests/test_scheduler.py (`set_timesteps(..., strength=)`)
    # a weak strength stays closer to the source (re-synthesized by the codec) than a strong one
    latents = pipe.align(source, SOURCE_TEXT, sampling_rate=RATE).latents
    resynthesized = pipe.codec.decode(latents[None])[0]

    def distance(strength):
        audio = convert(
            pipe,
            source,
            SOURCE_TEXT,
            reference,
            strength=strength,
            sampling_rate=RATE,
            generator=gen(1),
            output_type="pt",
        ).audios[0]
        return (audio - resynthesized).pow(2).mean().item()

    assert distance(0.1) < 0.1 * distance(1.0)
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="strength"):
            convert(pipe, source, SOURCE_TEXT, reference, strength=bad, sampling_rate=RATE)


def test_voice_conversion_bad_input(pipe, source, reference):
    with pytest.raises(ValueError, match="reference_audio.*at least 1.0 s"):
        convert(pipe, source, SOURCE_TEXT, make_prompt(0.6, RATE), sampling_rate=RATE)
    with pytest.raises(ValueError, match="source_text"):
        convert(pipe, source, "  ", reference, sampling_rate=RATE)
    with pytest.raises(ValueError, match="source_audio.*silent"):
        convert(pipe, np.zeros(RATE, np.float32), SOURCE_TEXT, reference, sampling_rate=RATE)
    with pytest.raises(ValueError, match="num_inference_steps"):
        convert(pipe, source, SOURCE_TEXT, reference, num_inference_steps=0, sampling_rate=RATE)


# ---------------------------------------------------------------------------------------------------- editing


@pytest.mark.parametrize(
    "new_text, replaced, inserted",
    [
        ("The big white dog sat on the mat.", "blˈæk kˈæt", "bˈɪɡ wˈaɪt dˈɑːɡ"),  # replacement
        ("The cat sat on the mat.", "blˈæk", ""),  # deletion
        ("The black cat sat down on the mat.", "", "dˌaʊn"),  # insertion
        ("A black cat sat on the mat.", "ðə", "ɐ"),  # first word
    ],
)
def test_edit_changes_only_the_edited_span(pipe, source, new_text, replaced, inserted):
    out = edit(pipe, source, SOURCE_TEXT, new_text, sampling_rate=RATE, generator=gen(0))
    audio = out.audios[0]
    assert audio.shape == (out.audio_lengths[0],) and np.isfinite(audio).all()
    # sample for sample identical outside the span and its cross-fades
    assert np.array_equal(audio[: out.edit_start], source[: out.edit_start])
    assert np.array_equal(audio[out.edit_end :], source[out.original_end :])
    assert out.edit_end - out.edit_start > 0 and out.edit_start < out.original_end
    # the span is made of the changed words (plus the word boundaries around them)
    strip = "".join(t for t in out.original_phonemes if t != "|"), "".join(t for t in out.new_phonemes if t != "|")
    assert strip == (replaced.replace(" ", ""), inserted.replace(" ", ""))
    # the durations of the unchanged phonemes come from the alignment
    alignment = pipe.align(source, SOURCE_TEXT, sampling_rate=RATE)
    aligned, original, new = alignment.durations, alignment.phonemes, pipe.tokenizer.phonemize(new_text)[0]
    old_len, new_len = len(out.original_phonemes), len(out.new_phonemes)
    start = next(
        i
        for i in range(len(original) + 1)
        if original[i : i + old_len] == out.original_phonemes and new[i : i + new_len] == out.new_phonemes
    )
    assert original[:start] == new[:start] and original[start + old_len :] == new[start + new_len :]
    assert torch.equal(out.durations[0][:start], aligned[:start])
    assert torch.equal(out.durations[0][start + new_len :], aligned[start + old_len :])
    hop = pipe.codec.hop_length
    assert out.edit_start == max(int(aligned[:start].sum()) * hop - round(0.010 * RATE), 0)
    new_frames = int(out.durations[0].sum())
    assert len(out.log_pitch[0]) == new_frames
    # the length changes by the difference of the spans
    assert out.audio_lengths[0] - len(source) == (new_frames - int(aligned.sum())) * hop


def test_edit_crossfade_length_and_determinism(pipe, source):
    new_text = "The black dog sat on the mat."
    hard = edit(pipe, source, SOURCE_TEXT, new_text, sampling_rate=RATE, generator=gen(2), crossfade_ms=0)
    soft = edit(pipe, source, SOURCE_TEXT, new_text, sampling_rate=RATE, generator=gen(2), crossfade_ms=10)
    fade = round(0.010 * RATE)
    assert hard.edit_start - soft.edit_start == fade and soft.edit_end - hard.edit_end == fade
    assert soft.original_end - hard.original_end == fade
    assert np.array_equal(
        hard.audios[0, hard.edit_start : hard.edit_end], soft.audios[0, hard.edit_start : hard.edit_end]
    )
    again = edit(pipe, source, SOURCE_TEXT, new_text, sampling_rate=RATE, generator=gen(2), crossfade_ms=10)
    assert np.array_equal(soft.audios, again.audios)


@pytest.mark.parametrize(
    "new_text, match",
    [
        ("", "`new_text` is empty"),
        ("   ", "`new_text` is empty"),
        (SOURCE_TEXT, "changes nothing"),
        ("the black cat sat on the mat.", "changes nothing"),  # same phonemes
    ],
)
def test_edit_bad_input(pipe, source, new_text, match):
    with pytest.raises(ValueError, match=match):
        edit(pipe, source, SOURCE_TEXT, new_text, sampling_rate=RATE)


def test_edit_needs_the_original_text(pipe, source):
    with pytest.raises(ValueError, match="text of `audio` is empty"):
        edit(pipe, source, "", "Something else.", sampling_rate=RATE)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"prosody_alpha": float("nan")}, ValueError, "`prosody_alpha` must be a finite number"),
        ({"output_type": "foo"}, ValueError, "`output_type`"),
        ({"generator": "0"}, TypeError, r"torch.Generator\(\).manual_seed\(0\)"),
        ({"sampling_rate": 16}, ValueError, "16 Hz, outside the plausible range"),
        ({"max_output_seconds": 1.0}, ValueError, "`max_output_seconds`"),
    ],
)
def test_voice_conversion_and_edit_check_arguments_before_any_work(
    pipe, source, reference, monkeypatch, kwargs, error, match
):
    """Issue 13: the applications validate every argument before the aligner or the codec runs."""
    calls = []
    encode = pipe.codec.encode
    monkeypatch.setattr(pipe.codec, "encode", lambda *a, **k: calls.append(1) or encode(*a, **k))
    args = {"sampling_rate": RATE} | kwargs
    with pytest.raises(error, match=match):
        convert(pipe, source, SOURCE_TEXT, reference, **args)
    with pytest.raises(error, match=match):
        edit(pipe, source, SOURCE_TEXT, "The big white dog sat on the mat.", **args)
    assert calls == []


def test_voice_conversion_and_edit_take_an_int_seed(pipe, source, reference):
    vc = convert(pipe, source, SOURCE_TEXT, reference, sampling_rate=RATE, generator=3).audios
    np.testing.assert_array_equal(
        vc, convert(pipe, source, SOURCE_TEXT, reference, sampling_rate=RATE, generator=gen(3)).audios
    )


# ---------------------------------------------------------------------------------------------------- diverse sampling


def test_diverse_sampling_seeds_and_alpha(pipe, reference):
    kwargs = {"prompt_sampling_rate": RATE, "num_waveforms_per_prompt": 3}
    diverse = pipe(TEXT, reference, generator=[gen(i) for i in range(3)], prosody_alpha=0.5, **kwargs)
    # different seeds: different durations (rounded frames may coincide for two), different pitch, different audio
    assert len({tuple(d.tolist()) for d in diverse.durations}) >= 2
    for i in range(1, 3):
        n = min(len(diverse.log_pitch[0]), len(diverse.log_pitch[i]))
        assert not torch.allclose(diverse.log_pitch[0][:n], diverse.log_pitch[i][:n])
        m = min(diverse.audio_lengths[0], diverse.audio_lengths[i])
        assert not np.allclose(diverse.audios[0, :m], diverse.audios[i, :m])
    # the same seed: the same audio
    same = pipe(TEXT, reference, generator=[gen(i) for i in range(3)], prosody_alpha=0.5, **kwargs)
    assert np.array_equal(diverse.audios, same.audios)
    # alpha 0: the deterministic regression prosody whatever the seed; only the sampler noise differs
    kwargs = {"prompt_sampling_rate": RATE, "prosody_alpha": 0.0}
    first, second = (pipe(TEXT, reference, generator=gen(i), **kwargs) for i in (0, 1))
    assert torch.equal(first.durations[0], second.durations[0])
    assert torch.equal(first.log_pitch[0], second.log_pitch[0])
    assert not np.allclose(first.audios, second.audios)
    # ... and the refinement is what moves the prosody away from it
    refined = pipe(TEXT, reference, generator=gen(0), prompt_sampling_rate=RATE, prosody_alpha=0.5)
    n = min(len(refined.log_pitch[0]), len(first.log_pitch[0]))
    assert not torch.allclose(refined.log_pitch[0][:n], first.log_pitch[0][:n])


# ---------------------------------------------------------------------------------------------------- command line


def test_cli_convert_and_edit(pipe, source, reference, tmp_path, capsys):
    import soundfile as sf

    from flashspeech_hf.cli import main

    pipe.save_pretrained(tmp_path / "model")
    sf.write(tmp_path / "source.wav", source, RATE)
    sf.write(tmp_path / "reference.wav", reference, RATE)
    model = ["--model", str(tmp_path / "model"), "--seed", "4"]
    convert_args = ["convert", *model, "--source", str(tmp_path / "source.wav"), "--source_text", SOURCE_TEXT]
    convert_args += [
        "--reference",
        str(tmp_path / "reference.wav"),
        "--output",
        str(tmp_path / "out" / "converted.wav"),
    ]
    assert main(convert_args) == 0
    converted, rate = sf.read(tmp_path / "out" / "converted.wav", dtype="float32")
    expected = convert(pipe, source, SOURCE_TEXT, reference, sampling_rate=RATE, generator=gen(4))
    assert rate == pipe.sampling_rate and converted.shape == (expected.audio_lengths[0],)
    # 16-bit WAV: quantized, and the random tiny model's out-of-range samples clipped
    np.testing.assert_allclose(converted, np.clip(expected.audios[0], -1, 1), atol=1e-4)

    new_text = "The black dog sat on the mat."
    edit_args = ["edit", *model, "--audio", str(tmp_path / "source.wav"), "--original_text", SOURCE_TEXT]
    edit_args += ["--new_text", new_text, "--output", str(tmp_path / "edited.wav")]
    assert main(edit_args) == 0
    edited, _ = sf.read(tmp_path / "edited.wav", dtype="float32")
    out = edit(pipe, source, SOURCE_TEXT, new_text, sampling_rate=RATE, generator=gen(4))
    assert edited.shape == out.audios[0].shape
    np.testing.assert_allclose(edited, np.clip(out.audios[0], -1, 1), atol=1e-4)
    assert "differs from the original" in capsys.readouterr().out
    # bad input: a clear message and exit status 2, no traceback
    assert main([*edit_args[:-4], "--new_text", SOURCE_TEXT, "--output", str(tmp_path / "same.wav")]) == 2
    assert "changes nothing" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--reference file not found"):
        main([*convert_args[:-4], "--reference", str(tmp_path / "missing.wav"), "--output", str(tmp_path / "x.wav")])


# ---------------------------------------------------------------------------------------------------- task pipelines


def test_task_pipelines_share_the_components(pipe, source, reference, tmp_path):
    vc = FlashSpeechVoiceConversionPipeline(**pipe.components)
    editor = FlashSpeechEditPipeline.from_pipe(pipe)
    tts = FlashSpeechPipeline.from_pipe(vc)
    for other in (vc, editor, tts):
        assert all(getattr(other, name) is component for name, component in pipe.components.items())
    args = (source, SOURCE_TEXT, reference)
    converted = vc(*args, sampling_rate=RATE, generator=gen(6), output_type="pt")
    latents = vc(*args, sampling_rate=RATE, generator=gen(6), output_type="latent")
    assert latents.audios.shape == (1, pipe.denoiser.config.latent_dim, latents.audio_lengths[0])
    assert torch.equal(pipe.codec.decode(latents.audios)[0], converted.audios[0])
    # editing returns the whole edited utterance's latents, its regenerated frames in [edit_start, edit_end)
    new_text = "The black dog sat on the mat."
    edited = editor(source, SOURCE_TEXT, new_text, sampling_rate=RATE, generator=gen(6), output_type="latent")
    alignment = pipe.align(source, SOURCE_TEXT, sampling_rate=RATE)
    assert edited.audios.shape == (1, pipe.denoiser.config.latent_dim, edited.audio_lengths[0])
    assert 0 < edited.edit_start < edited.edit_end <= edited.audio_lengths[0]
    context = alignment.latents[:, : edited.edit_start]
    assert torch.equal(edited.audios[0, :, : edited.edit_start], context)  # the known context, pasted exactly
    after = alignment.latents[:, edited.original_end :]
    assert torch.equal(edited.audios[0, :, edited.edit_end :], after)
    # a task pipeline saves and loads like the text-to-speech one (same folder layout)
    vc.save_pretrained(tmp_path / "vc")
    loaded = FlashSpeechVoiceConversionPipeline.from_pretrained(tmp_path / "vc")
    assert torch.equal(loaded(*args, sampling_rate=RATE, generator=gen(6), output_type="pt").audios, converted.audios)
    assert isinstance(FlashSpeechPipeline.from_pretrained(tmp_path / "vc"), FlashSpeechPipeline)


def test_old_methods_forward_to_the_task_pipelines(pipe, source, reference):
    with pytest.warns(FutureWarning, match="FlashSpeechVoiceConversionPipeline"):
        old = pipe.voice_conversion(source, SOURCE_TEXT, reference, sampling_rate=RATE, generator=gen(2))
    np.testing.assert_array_equal(
        old.audios, convert(pipe, source, SOURCE_TEXT, reference, sampling_rate=RATE, generator=gen(2)).audios
    )
    new_text = "The black dog sat on the mat."
    with pytest.warns(FutureWarning, match="FlashSpeechEditPipeline"):
        old = pipe.edit(source, SOURCE_TEXT, new_text, sampling_rate=RATE, generator=gen(2))
    np.testing.assert_array_equal(
        old.audios, edit(pipe, source, SOURCE_TEXT, new_text, sampling_rate=RATE, generator=gen(2)).audios
    )


def test_task_pipelines_take_prosody_steps_and_sample_the_refiners_at_their_own_level(pipe, source, reference):
    """The refiners sample with the paper's two-step level, not the denoiser's tuned `two_step_sigma`."""
    tuned = FlashSpeechPipeline(**{**pipe.components, "scheduler": pipe.scheduler.from_config(pipe.scheduler.config,
                                   two_step_sigma=10.0)})  # fmt: skip
    assert tuned.prosody_scheduler.config.two_step_sigma == 2.0 and tuned.scheduler.config.two_step_sigma == 10.0
    assert pipe.prosody_scheduler is pipe.scheduler  # already at the paper's level
    levels = []
    original = FlashSpeechPipeline.sample_consistency

    def spy(self, *args, **kwargs):  # the refiners sample through sample_consistency, the denoiser in __call__
        out = original(self, *args, **kwargs)
        levels.append((args[1], (kwargs.get("scheduler") or self.scheduler).sigmas.tolist()))
        return out

    vc = FlashSpeechVoiceConversionPipeline(**tuned.components)
    editor = FlashSpeechEditPipeline(**tuned.components)
    vc.set_progress_bar_config(disable=True)
    editor.set_progress_bar_config(disable=True)
    try:
        for task in (FlashSpeechVoiceConversionPipeline, FlashSpeechEditPipeline):
            task.sample_consistency = spy
        vc(source, SOURCE_TEXT, reference, sampling_rate=RATE, generator=gen(1), strength=1.0,
           prosody_num_inference_steps=2)  # fmt: skip
        assert levels == [(1, [80.0, 2.0])]  # the pitch refiner
        assert vc.scheduler.sigmas.tolist() == [80.0, 10.0]  # the denoiser's loop, at its own level
        levels.clear()
        vc(source, SOURCE_TEXT, reference, sampling_rate=RATE, generator=gen(1), strength=1.0)
        assert levels[0] == (1, [80.0])  # one refiner step by default, as in text-to-speech
        levels.clear()
        editor(source, SOURCE_TEXT, "The black dog sat on the mat.", sampling_rate=RATE, generator=gen(1),
               prosody_num_inference_steps=2)  # fmt: skip
        assert [lv for c, lv in levels if c == 1] == [[80.0, 2.0]] * 2  # durations, then pitch
    finally:
        for task in (FlashSpeechVoiceConversionPipeline, FlashSpeechEditPipeline):
            del task.sample_consistency
    for bad in (0, 1.5, None):
        with pytest.raises(ValueError, match="prosody_num_inference_steps"):
            vc(source, SOURCE_TEXT, reference, sampling_rate=RATE, prosody_num_inference_steps=bad)
        with pytest.raises(ValueError, match="prosody_num_inference_steps"):
            editor(source, SOURCE_TEXT, "The black dog sat on the mat.", sampling_rate=RATE,
                   prosody_num_inference_steps=bad)  # fmt: skip
