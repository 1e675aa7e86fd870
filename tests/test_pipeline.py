import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput
from speech_data import gen, make_prompt

from flashspeech_hf import FlashSpeechPipeline, FlashSpeechScheduler
from flashspeech_hf.pipelines.utils import MAX_CHARACTERS_PER_SECOND

TEXT = "Hello world, this is a test."


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "prompt.wav"
    sf.write(path, make_prompt(1.5, 22050), 22050)
    return str(path)


def test_synthesizes_audio(pipe, prompt_file):
    out = pipe(TEXT, prompt_file, generator=gen(0))
    assert isinstance(out, AudioPipelineOutput)
    assert out.audios.shape == (1, out.audio_lengths[0])
    assert out.audios.dtype == np.float32 and np.isfinite(out.audios).all() and np.abs(out.audios).max() > 0
    frames = int(out.durations[0].sum())
    assert out.audio_lengths[0] == frames * pipe.codec.hop_length
    assert len(out.log_pitch[0]) == frames
    assert pipe.sampling_rate == 16000


def test_same_seed_same_audio_and_different_seed_differs(pipe, prompt_file):
    a = pipe(TEXT, prompt_file, generator=gen(1)).audios
    b = pipe(TEXT, prompt_file, generator=gen(1)).audios
    c = pipe(TEXT, prompt_file, generator=gen(2), prosody_alpha=0.0).audios
    d = pipe(TEXT, prompt_file, generator=gen(3), prosody_alpha=0.0).audios
    assert np.array_equal(a, b)
    assert c.shape == d.shape and not np.allclose(c, d)  # same (regression) durations, different sampler noise


def test_steps_and_output_type(pipe, prompt_file):
    # alpha 0: the regression prosody, so the lengths agree and only the sampler differs
    kwargs = {"generator": gen(0), "output_type": "pt", "prosody_alpha": 0.0}
    one = pipe(TEXT, prompt_file, num_inference_steps=1, **kwargs).audios
    two = pipe(TEXT, prompt_file, num_inference_steps=2, **kwargs).audios
    four = pipe(TEXT, prompt_file, num_inference_steps=4, **kwargs).audios
    assert isinstance(one, torch.Tensor)
    assert one.shape == two.shape == four.shape
    assert not torch.allclose(one, two)


def test_prompt_as_path_array_or_tensor(pipe, prompt_file):
    array, rate = sf.read(prompt_file, dtype="float32")
    from_path = pipe(TEXT, prompt_file, generator=gen(4)).audios
    from_array = pipe(TEXT, array, prompt_sampling_rate=rate, generator=gen(4)).audios
    from_tensor = pipe(TEXT, torch.from_numpy(array), prompt_sampling_rate=rate, generator=gen(4)).audios
    assert np.array_equal(from_path, from_array) and np.array_equal(from_array, from_tensor)


def test_batch_items_equal_items_alone(pipe):
    texts = ["A short one.", "This sentence is quite a bit longer than the first."]
    prompts = [make_prompt(1.2, 16000, seed=1), make_prompt(2.3, 16000, seed=2)]
    batch = pipe(texts, prompts, prompt_sampling_rate=16000, generator=[gen(10), gen(11)])
    for i in range(2):
        alone = pipe(texts[i], prompts[i], prompt_sampling_rate=16000, generator=gen(10 + i))
        n = alone.audio_lengths[0]
        assert batch.audio_lengths[i] == n
        assert torch.equal(batch.durations[i], alone.durations[0])
        np.testing.assert_allclose(batch.audios[i, :n], alone.audios[0], atol=1e-4)
        assert not batch.audios[i, n:].any()


def test_num_waveforms_per_prompt(pipe, prompt_file):
    out = pipe([TEXT, "Second text."], prompt_file, num_waveforms_per_prompt=2, generator=[gen(i) for i in range(4)])
    assert out.audios.shape[0] == 4
    assert not np.allclose(out.audios[0, : out.audio_lengths[1]], out.audios[1, : out.audio_lengths[1]])
    with pytest.raises(ValueError, match="generators"):
        pipe(TEXT, prompt_file, num_waveforms_per_prompt=2, generator=[gen(0)])


def test_save_load_round_trip_is_bit_identical(pipe, prompt_file, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    for name in ("tokenizer", "codec", "prior_encoder", "prosody_generator", "denoiser", "scheduler", "aligner"):
        assert index[name][0].startswith("flashspeech_hf.") and (tmp_path / name).is_dir()
    files = [f for _, _, fs in os.walk(tmp_path) for f in fs]
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert sum(f.endswith(".safetensors") for f in files) == 5  # codec, prior, prosody, denoiser, aligner
    loaded = FlashSpeechPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert np.array_equal(
        pipe(TEXT, prompt_file, generator=gen(5)).audios, loaded(TEXT, prompt_file, generator=gen(5)).audios
    )


def test_reloaded_weights_are_owned_and_aligned(pipe, tmp_path):
    """Memory-mapped views would round differently in SIMD kernels; the reload reads each weight into its own tensor."""
    pipe.save_pretrained(tmp_path)
    loaded = FlashSpeechPipeline.from_pretrained(tmp_path)
    for name, component in loaded.components.items():
        if isinstance(component, torch.nn.Module):
            original = dict(getattr(pipe, name).state_dict())
            for key, tensor in component.state_dict().items():
                assert tensor.data_ptr() % 64 == 0, (name, key)
                assert torch.equal(tensor, original[key]), (name, key)


def test_from_pretrained_with_hub_id_from_offline_cache(pipe, prompt_file, tmp_path):
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--flashspeech--tiny-test"
    pipe.save_pretrained(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    loaded = FlashSpeechPipeline.from_pretrained("flashspeech/tiny-test", cache_dir=tmp_path / "hub")
    loaded.set_progress_bar_config(disable=True)
    assert np.array_equal(
        pipe(TEXT, prompt_file, generator=gen(6)).audios, loaded(TEXT, prompt_file, generator=gen(6)).audios
    )
    with pytest.raises(OSError, match="flashspeech/absent"):
        FlashSpeechPipeline.from_pretrained("flashspeech/absent", cache_dir=tmp_path / "hub")


def test_push_to_hub_uploads_every_component(pipe, monkeypatch):
    import diffusers.utils.hub_utils as hub_utils

    uploaded = {}

    def fake_create_repo(repo_id, **kwargs):
        class Url:
            pass

        url = Url()
        url.repo_id = repo_id
        return url

    def fake_upload_folder(repo_id, folder_path, **kwargs):
        uploaded["repo_id"] = repo_id
        uploaded["files"] = sorted(
            os.path.relpath(os.path.join(r, f), folder_path) for r, _, fs in os.walk(folder_path) for f in fs
        )

    monkeypatch.setattr(hub_utils, "create_repo", fake_create_repo)
    monkeypatch.setattr(hub_utils, "upload_folder", fake_upload_folder)
    pipe.push_to_hub("someone/flashspeech-tiny")
    assert uploaded["repo_id"] == "someone/flashspeech-tiny"
    assert "model_index.json" in uploaded["files"]
    for name in ("codec", "denoiser", "prior_encoder", "prosody_generator"):
        assert f"{name}/diffusion_pytorch_model.safetensors" in uploaded["files"]
    assert "tokenizer/vocab.json" in uploaded["files"] and "scheduler/scheduler_config.json" in uploaded["files"]


def test_broken_checkpoints_are_named(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "ok")
    shutil.copytree(tmp_path / "ok", tmp_path / "no_denoiser")
    shutil.rmtree(tmp_path / "no_denoiser" / "denoiser")
    with pytest.raises(ValueError, match="denoiser"):
        FlashSpeechPipeline.from_pretrained(tmp_path / "no_denoiser")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="model_index.json"):
        FlashSpeechPipeline.from_pretrained(tmp_path / "empty")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"prompt_audio": "/nonexistent/prompt.wav"}, FileNotFoundError, "not found"),
        ({"prompt_audio": make_prompt(0.5, 16000), "prompt_sampling_rate": 16000}, ValueError, "at least 1.0 s"),
        ({"prompt_audio": np.zeros(32000, np.float32), "prompt_sampling_rate": 16000}, ValueError, "silent"),
        ({"prompt_audio": np.full(32000, np.nan, np.float32), "prompt_sampling_rate": 16000}, ValueError, "NaN"),
        ({"prompt_audio": np.zeros((2, 32000), np.float32), "prompt_sampling_rate": 16000}, ValueError, "1-D"),
        ({"prompt_audio": make_prompt(2.0, 16000)}, ValueError, "sample rate"),
        ({"num_inference_steps": 0}, ValueError, "num_inference_steps"),
        ({"text": ""}, ValueError, "empty"),
        ({"text": "!!! ..."}, ValueError, "pronounceable|no phonemes|speak"),
    ],
)
def test_bad_input_gets_a_clear_error(pipe, prompt_file, kwargs, error, match):
    args = {"text": TEXT, "prompt_audio": prompt_file} | kwargs
    with pytest.raises(error, match=match):
        pipe(**args)


def test_unreadable_prompt_file(pipe, tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF this is not audio")
    with pytest.raises(ValueError, match="could not be read"):
        pipe(TEXT, str(bad))


def test_unknown_named_config():
    with pytest.raises(ValueError, match="Unknown pipeline config"):
        FlashSpeechPipeline.from_named_config("huge")


def test_shared_prompt_is_encoded_once_with_the_same_result(pipe, prompt_file, monkeypatch):
    texts = [TEXT, "Another sentence."]
    calls = []
    encode = pipe.codec.encode
    monkeypatch.setattr(pipe.codec, "encode", lambda *a, **k: calls.append(1) or encode(*a, **k))
    shared = pipe(texts, prompt_file, generator=[gen(7), gen(8)])
    assert len(calls) == 1
    copies = pipe(texts, [prompt_file, Path(prompt_file)], generator=[gen(7), gen(8)])
    assert len(calls) == 3
    np.testing.assert_allclose(shared.audios, copies.audios, atol=1e-5)


def test_prosody_steps_can_differ_from_denoiser_steps(pipe, prompt_file):
    # the paper samples the prosody refiners with one step: the default, whatever num_inference_steps is
    default = pipe(TEXT, prompt_file, num_inference_steps=4, generator=gen(9))
    one = pipe(TEXT, prompt_file, num_inference_steps=4, prosody_num_inference_steps=1, generator=gen(9))
    four = pipe(TEXT, prompt_file, num_inference_steps=4, prosody_num_inference_steps=None, generator=gen(9))
    assert torch.equal(default.log_pitch[0], one.log_pitch[0])
    assert not torch.equal(default.log_pitch[0][:5], four.log_pitch[0][:5])
    with pytest.raises(ValueError, match="prosody_num_inference_steps"):
        pipe(TEXT, prompt_file, prosody_num_inference_steps=0)


# ------------------------------------------------------------------------------ hostile but fair input (issue 13)


@pytest.fixture
def no_work(pipe, monkeypatch):
    """Records every prompt encoding (codec and prompt encoder): a rejected argument must be rejected before any."""
    calls = []
    for module, method in ((pipe.codec, "encode"), (pipe.prior_encoder, "encode_prompt")):
        original = getattr(module, method)
        monkeypatch.setattr(module, method, lambda *a, _f=original, _m=method, **k: calls.append(_m) or _f(*a, **k))
    return calls


def test_integer_pcm_prompt_is_scaled_like_a_file(pipe, tmp_path):
    """Item 1: an int16 array is read as int16 / 32768 (as soundfile reads a 16-bit file), not as peak-16383 floats."""
    pcm = np.round(make_prompt(1.5, 16000) * 32767).astype(np.int16)
    sf.write(tmp_path / "pcm16.wav", pcm, 16000, subtype="PCM_16")
    from_file = pipe(TEXT, str(tmp_path / "pcm16.wav"), generator=gen(0)).audios
    from_int16 = pipe(TEXT, pcm, prompt_sampling_rate=16000, generator=gen(0)).audios
    from_tensor = pipe(TEXT, torch.from_numpy(pcm), prompt_sampling_rate=16000, generator=gen(0)).audios
    np.testing.assert_array_equal(from_int16, from_file)
    np.testing.assert_array_equal(from_tensor, from_file)
    from flashspeech_hf.audio import load_audio

    for array, expected in [
        (np.array([-32768, 0, 16384], np.int16), [-1.0, 0.0, 0.5]),
        (np.array([-(2**31), 2**30], np.int32), [-1.0, 0.5]),
        (np.array([0, 128, 192], np.uint8), [-1.0, 0.0, 0.5]),
        (torch.tensor([-128, 64], dtype=torch.int8), [-1.0, 0.5]),
    ]:
        np.testing.assert_allclose(load_audio(array, 16000)[0].numpy(), expected)
    with pytest.raises(TypeError, match=r"int64 samples.*int16.*/ 32768"):
        pipe(TEXT, pcm.astype(np.int64), prompt_sampling_rate=16000)
    with pytest.raises(TypeError, match="bool"):
        pipe(TEXT, pcm > 0, prompt_sampling_rate=16000)


def test_float_prompt_far_outside_unit_range_is_named(pipe, caplog):
    """Item 1, the float side: int16 values cast to float without scaling get a warning that says how to scale."""
    import logging

    with caplog.at_level(logging.WARNING, logger="flashspeech_hf.audio"):
        pipe(TEXT, make_prompt(1.5, 16000) * 16383, prompt_sampling_rate=16000, generator=gen(0))
    assert any("peaks at" in r.getMessage() and "32768" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"prosody_alpha": 5.0}, r"`prosody_alpha` must be a finite number in \[0, 1\], got 5.0"),
        ({"prosody_alpha": float("nan")}, "`prosody_alpha` must be a finite number"),
        ({"prosody_alpha": -0.1}, "`prosody_alpha`"),
        ({"speed": float("nan")}, r"`speed` must be a finite number in \[0.25, 4\]"),
        ({"speed": float("inf")}, "`speed`"),
        ({"speed": 0.0}, "`speed`"),
        ({"speed": "fast"}, "`speed`"),
        ({"num_inference_steps": 2.5}, "`num_inference_steps` must be an integer"),
        ({"num_inference_steps": True}, "`num_inference_steps` must be an integer"),
        ({"num_inference_steps": 10**9}, r"in \[1, 1000\]"),
        ({"prosody_num_inference_steps": 0}, "`prosody_num_inference_steps`"),
        ({"num_waveforms_per_prompt": 0}, "`num_waveforms_per_prompt`"),
        ({"num_waveforms_per_prompt": 10**6}, "at most 256"),
        ({"max_output_seconds": float("nan")}, "`max_output_seconds`"),
        ({"max_prompt_seconds": 0.0}, "`max_prompt_seconds`"),
        ({"return_dict": "yes"}, "`return_dict`"),
    ],
)
def test_every_number_is_finite_and_in_range(pipe, prompt_file, no_work, kwargs, match):
    """Item 2: NaN, infinite and out-of-range numbers are rejected, before any work."""
    with pytest.raises(ValueError, match=match):
        pipe(TEXT, prompt_file, **kwargs)
    assert no_work == []


def test_nan_alpha_and_speed_no_longer_shorten_the_audio(pipe, prompt_file):
    """Item 2: NaN used to pass the `< 0` checks and collapse every duration to one frame."""
    for kwargs in ({"prosody_alpha": float("nan")}, {"speed": float("nan")}):
        with pytest.raises(ValueError, match="finite"):
            pipe(TEXT, prompt_file, generator=gen(0), **kwargs)


def test_output_prompt_and_sample_rate_are_bounded(pipe, prompt_file, no_work):
    """Item 3: no argument can make the pipeline allocate without bound; each error names the limit and its knob."""
    with pytest.raises(ValueError, match=r"`speed` must be a finite number in \[0.25, 4\], got 1e-06"):
        pipe(TEXT, prompt_file, speed=1e-6)
    # kHz typed as Hz: 2 s at "16 Hz" would be 2,000 s
    with pytest.raises(ValueError, match=r"16 Hz, outside the plausible range 4000-192000 Hz.*16 kHz is 16000"):
        pipe(TEXT, make_prompt(2.0, 16000), prompt_sampling_rate=16)
    with pytest.raises(ValueError, match="outside the plausible range"):
        pipe(TEXT, make_prompt(2.0, 16000), prompt_sampling_rate=10**9)
    with pytest.raises(ValueError, match="whole number of Hz"):
        pipe(TEXT, make_prompt(2.0, 16000), prompt_sampling_rate=16000.5)
    with pytest.raises(ValueError, match=r"40.0 s long, over the limit of 30 s set by `max_prompt_seconds`"):
        pipe(TEXT, make_prompt(40.0, 16000), prompt_sampling_rate=16000)
    with pytest.raises(ValueError, match="`max_prompt_seconds`"):
        pipe(TEXT, prompt_file, max_prompt_seconds=1.2)  # a 1.5 s file, judged by its header
    with pytest.raises(ValueError, match=r"characters, more than can be spoken in `max_output_seconds`=60 s"):
        pipe("word " * 2000, prompt_file)
    assert no_work == []
    # the limits are lifted by their arguments
    assert pipe(TEXT, prompt_file, max_prompt_seconds=1.5, generator=gen(0)).audios.shape[1] > 0


def test_long_output_is_refused_before_length_regulation(pipe, prompt_file, monkeypatch):
    """Item 3: the predicted length is checked against `max_output_seconds` before frames are allocated."""
    out = pipe(TEXT, prompt_file, generator=gen(0), prosody_alpha=0.0)
    seconds = out.audio_lengths[0] / pipe.sampling_rate
    num_tokens = len(pipe.tokenizer(TEXT)["input_ids"])
    at_one_frame_each = num_tokens * pipe.codec.hop_length / pipe.sampling_rate
    assert at_one_frame_each < 0.8 * seconds  # the fixture's durations are several frames per phoneme
    regulated = []
    module = __import__("flashspeech_hf.pipelines.pipeline_flashspeech_base", fromlist=["length_regulate"])
    monkeypatch.setattr(
        module, "length_regulate", lambda *a, _f=module.length_regulate, **k: regulated.append(1) or _f(*a, **k)
    )
    limit = (at_one_frame_each + seconds) / 2
    with pytest.raises(
        ValueError, match=rf"would be {seconds:.1f} s long, over `max_output_seconds`={limit:g} s: split"
    ):
        pipe(TEXT, prompt_file, generator=gen(0), prosody_alpha=0.0, max_output_seconds=limit)
    assert regulated == []
    # a limit the text's characters fit in, but not its phonemes at one frame each: refused before the models run
    by_characters = len(TEXT) / MAX_CHARACTERS_PER_SECOND
    assert by_characters < at_one_frame_each
    with pytest.raises(ValueError, match="at least .* s long .one latent frame per phoneme"):
        pipe(TEXT, prompt_file, max_output_seconds=(by_characters + at_one_frame_each) / 2)
    lifted = pipe(TEXT, prompt_file, generator=gen(0), prosody_alpha=0.0, max_output_seconds=seconds)
    np.testing.assert_array_equal(lifted.audios, out.audios)


def test_generator_is_checked_first_and_an_int_is_a_seed(pipe, prompt_file, no_work):
    """Item 4: a wrong generator type is a TypeError before any work; an int seed equals a seeded Generator."""
    for bad, n in (("0", 1), (1.5, 1), ([gen(0), "x"], 2)):
        with pytest.raises(TypeError, match=r"torch.Generator\(\).manual_seed\(0\)"):
            pipe(TEXT, prompt_file, generator=bad, num_waveforms_per_prompt=n)
    with pytest.raises(ValueError, match="seed"):
        pipe(TEXT, prompt_file, generator=-1)
    assert no_work == []
    seeded = pipe(TEXT, prompt_file, generator=0).audios
    np.testing.assert_array_equal(seeded, pipe(TEXT, prompt_file, generator=gen(0)).audios)
    listed = pipe(TEXT, prompt_file, generator=[5, 6], num_waveforms_per_prompt=2).audios
    np.testing.assert_array_equal(
        listed, pipe(TEXT, prompt_file, generator=[gen(5), gen(6)], num_waveforms_per_prompt=2).audios
    )


def test_output_type_is_checked_before_any_work(pipe, prompt_file, no_work):
    """Item 5: `output_type="foo"` used to be rejected only after the whole synthesis."""
    with pytest.raises(ValueError, match="`output_type` must be one of 'np', 'pt', 'latent', got 'foo'"):
        pipe(TEXT, prompt_file, output_type="foo")
    assert no_work == []


def test_the_scheduler_owns_the_parametrization(pipe, prompt_file):
    """The models hold no sigma_data/sigma_min: another scheduler config builds and changes the sampling."""
    assert not {"sigma_data", "sigma_min"} & {*pipe.denoiser.config, *pipe.prosody_generator.config}
    components = dict(pipe.components)
    components["scheduler"] = FlashSpeechScheduler.from_config(pipe.scheduler.config, sigma_data=0.25)
    other = FlashSpeechPipeline(**components)
    # the regression prosody (alpha 0) is the same, so the lengths agree; the sampled latents do not
    ours = pipe(TEXT, prompt_file, generator=gen(5), output_type="latent", prosody_alpha=0.0).audios
    theirs = other(TEXT, prompt_file, generator=gen(5), output_type="latent", prosody_alpha=0.0).audios
    assert ours.shape == theirs.shape and not torch.allclose(ours, theirs)


def test_latent_output_type_decodes_to_the_same_audio(pipe, prompt_file):
    audio = pipe([TEXT, "Short."], prompt_file, generator=gen(5), output_type="pt")
    latent = pipe([TEXT, "Short."], prompt_file, generator=gen(5), output_type="latent")
    assert latent.audios.shape[:2] == (2, pipe.denoiser.config.latent_dim)
    assert latent.audio_lengths == [int(d.sum()) for d in latent.durations]
    for i, frames in enumerate(latent.audio_lengths):
        assert not latent.audios[i, :, frames:].any()
        decoded = pipe.codec.decode(latent.audios[i : i + 1, :, :frames])[0]
        assert torch.equal(decoded, audio.audios[i, : audio.audio_lengths[i]])


def test_given_latents_replace_the_noise_draw(pipe, prompt_file):
    # with one step and no prosody refinement, the initial noise is the only random draw
    kwargs = dict(num_inference_steps=1, prosody_alpha=0.0, output_type="pt")
    drawn = pipe(TEXT, prompt_file, generator=gen(7), **kwargs)
    frames = int(drawn.durations[0].sum())
    noise = torch.randn((pipe.denoiser.config.latent_dim, frames), generator=gen(7))[None]
    padded = torch.cat([noise, torch.randn(1, noise.shape[1], 9)], dim=-1)  # extra frames are ignored
    given = pipe(TEXT, prompt_file, generator=gen(8), latents=padded, **kwargs)
    assert torch.equal(given.audios, drawn.audios)
    other = pipe(TEXT, prompt_file, latents=torch.randn(1, noise.shape[1], frames), **kwargs)
    assert not torch.allclose(other.audios, drawn.audios)
    with pytest.raises(ValueError, match="frames but the longest output needs"):
        pipe(TEXT, prompt_file, latents=noise[..., :-1], **kwargs)


@pytest.mark.parametrize(
    "latents, match",
    [
        (torch.zeros(2, 16, 10), r"`latents` must have shape \(1, 16, num_frames\)"),
        (torch.zeros(1, 8, 10), r"`latents` must have shape \(1, 16, num_frames\)"),
        (torch.full((1, 16, 10), float("nan")), "NaN"),
        (np.zeros((1, 16, 10), np.float32), "must be a float torch.Tensor"),
    ],
)
def test_bad_latents_are_refused_before_any_work(pipe, prompt_file, no_work, latents, match):
    assert pipe.denoiser.config.latent_dim == 16
    with pytest.raises((ValueError, TypeError), match=match):
        pipe(TEXT, prompt_file, latents=latents)
    assert no_work == []


def test_callback_on_step_end_sees_and_can_replace_latents(pipe, prompt_file):
    seen = []

    def callback(p, step, timestep, callback_kwargs):
        seen.append((step, float(timestep), sorted(callback_kwargs)))
        return {"latents": torch.zeros_like(callback_kwargs["latents"])} if step == 0 else {}

    out = pipe(
        TEXT, prompt_file, num_inference_steps=2, generator=gen(3), output_type="pt", callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents", "denoised"],
    )  # fmt: skip
    t80, t2 = pipe.scheduler.sigma_to_t(torch.tensor([80.0, 2.0])).tolist()  # the timesteps are c_noise
    assert seen == [(0, t80, ["denoised", "latents"]), (1, t2, ["denoised", "latents"])]
    # the replaced sample is what the second step denoises
    plain = pipe(TEXT, prompt_file, num_inference_steps=2, generator=gen(3), output_type="pt")
    assert not torch.equal(out.audios, plain.audios)
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe(TEXT, prompt_file, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["condition"])
    with pytest.raises(TypeError, match="callback_on_step_end"):
        pipe(TEXT, prompt_file, callback_on_step_end="not callable")
