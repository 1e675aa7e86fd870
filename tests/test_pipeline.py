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

from flashspeech_hf import FlashSpeechPipeline

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
