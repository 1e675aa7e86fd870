import json

import pytest
import torch

from flashspeech_hf import (
    FlashSpeechDenoiser,
    FlashSpeechPriorEncoder,
    FlashSpeechProsodyGenerator,
    FlashSpeechScheduler,
)
from flashspeech_hf.models.modeling_prosody import length_regulate
from flashspeech_hf.schedulers.scheduling_flashspeech import consistency_scalings

SCHEDULER = FlashSpeechScheduler()


def consistency(model_fn, x, sigma):
    """f(x, sigma) with the scheduler's scalings around `model_fn(c_in x, c_noise)` (as training computes it)."""
    raw = model_fn(SCHEDULER.precondition_inputs(x, sigma), SCHEDULER.precondition_noise(sigma))
    return SCHEDULER.precondition_outputs(x, raw, sigma)


torch.manual_seed(0)


def tiny_denoiser(**kwargs):
    config = dict(latent_dim=6, condition_dim=8, prompt_dim=8, hidden_size=8, num_layers=3, num_attention_heads=2)
    config.update(kwargs)
    model = FlashSpeechDenoiser(**config).eval()
    torch.nn.init.normal_(model.backbone.out_proj.weight, std=0.1)  # zero-initialised: make the output depend on F
    for layer in model.backbone.layers:
        if layer.film_attn is not None:
            torch.nn.init.normal_(layer.film_proj.weight, std=0.1)
    return model


def tiny_prior():
    return FlashSpeechPriorEncoder(
        vocab_size=20, latent_dim=6, hidden_size=8, num_layers=2, prompt_num_layers=1, num_attention_heads=2,
        ffn_size=16, dropout=0.0,
    ).eval()  # fmt: skip


def tiny_prosody():
    model = FlashSpeechProsodyGenerator(
        hidden_size=8, predictor_hidden_size=8, duration_num_layers=3, pitch_num_layers=3, num_attention_heads=2,
        refine_hidden_size=8, refine_num_layers=2, num_pitch_bins=16, dropout=0.0,
    ).eval()  # fmt: skip
    torch.nn.init.normal_(model.duration_refiner.out_proj.weight, std=0.1)
    return model


def test_consistency_scalings_match_formulas():
    sigma = torch.tensor([0.002, 1.0, 80.0])
    c_skip, c_out, c_in = consistency_scalings(sigma, 0.5, 0.002)
    assert torch.allclose(c_skip, 0.25 / ((sigma - 0.002) ** 2 + 0.25))
    assert torch.allclose(c_out, (sigma - 0.002) * 0.5 / torch.sqrt(0.25 + sigma**2))
    assert torch.allclose(c_in, 1 / torch.sqrt(sigma**2 + 0.25))
    assert c_skip[0] == 1.0 and c_out[0] == 0.0


def test_denoiser_boundary_condition_and_shapes():
    model = tiny_denoiser()
    x = torch.randn(2, 6, 11)
    cond, prompt = torch.randn(2, 11, 8), torch.randn(2, 7, 8)
    # the scheduler's consistency function around the raw output is the identity at sigma_min
    assert torch.equal(consistency(lambda s, t: model(s, t, cond, prompt).sample, x, torch.tensor(0.002)), x)
    out = model(x, torch.tensor([1000.0, 1000.0]), cond, prompt).sample
    assert out.shape == x.shape
    assert not torch.allclose(out, model(x, 1000.0, cond, torch.randn(2, 7, 8)).sample)  # the prompt matters
    assert not torch.allclose(out, model(x, 10.0, cond, prompt).sample)  # and the timestep


def test_models_hold_no_diffusion_constants_and_old_configs_load(tmp_path):
    model = tiny_denoiser()
    assert "sigma_data" not in model.config and "sigma_min" not in model.config
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config = json.loads(config_file.read_text())
    config.update(sigma_data=0.5, sigma_min=0.002)  # what configs saved before the move carry
    config_file.write_text(json.dumps(config))
    loaded = FlashSpeechDenoiser.from_pretrained(tmp_path)
    assert "sigma_data" not in loaded.config and "sigma_min" not in loaded.config
    loaded.save_pretrained(tmp_path / "again")
    assert "sigma_min" not in json.loads((tmp_path / "again" / "config.json").read_text())
    prosody = FlashSpeechProsodyGenerator.from_config({**tiny_prosody().config, "sigma_data": 0.5})
    assert "sigma_data" not in prosody.config


def test_denoiser_padding_does_not_change_items():
    model = tiny_denoiser()
    x, cond, prompt = torch.randn(1, 6, 9), torch.randn(1, 9, 8), torch.randn(1, 5, 8)
    alone = model(x, 100.0, cond, prompt).sample
    pad_x = torch.cat([torch.cat([x, torch.randn(1, 6, 4)], -1), torch.randn(1, 6, 13)])
    pad_cond = torch.cat([torch.cat([cond, torch.randn(1, 4, 8)], 1), torch.randn(1, 13, 8)])
    pad_prompt = torch.cat([torch.cat([prompt, torch.randn(1, 3, 8)], 1), torch.randn(1, 8, 8)])
    mask = torch.tensor([[True] * 9 + [False] * 4, [True] * 13])
    prompt_mask = torch.tensor([[True] * 5 + [False] * 3, [True] * 8])
    batched = model(pad_x, 100.0, pad_cond, pad_prompt, mask, prompt_mask).sample
    assert torch.allclose(batched[:1, :, :9], alone, atol=1e-5)
    assert batched[0, :, 9:].abs().max() == 0


def test_denoiser_rejects_wrong_shapes():
    model = tiny_denoiser()
    try:
        model(torch.randn(1, 5, 4), 1.0, torch.randn(1, 4, 8))
    except ValueError as err:
        assert "sample" in str(err)
    else:
        raise AssertionError("expected a ValueError")


def test_denoiser_prepared_condition_is_exact_and_checked():
    model = tiny_denoiser()
    x, cond, prompt = torch.randn(2, 6, 9) * 5, torch.randn(2, 9, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 9, [True] * 6 + [False] * 3])
    prompt_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    prepared = model.prepare_condition(cond, prompt, mask, prompt_mask)
    assert len(prepared.cond_terms) == 3 and prepared.query_tokens.shape[0] == 2
    for t in (-170.0, 400.0, 1095.0):
        assert torch.equal(model(x, t, prepared).sample, model(x, t, cond, prompt, mask, prompt_mask).sample)
    with pytest.raises(ValueError, match="prepared condition"):
        model(torch.randn(2, 6, 10), 1.0, prepared)
    with pytest.raises(ValueError, match="condition"):
        model.prepare_condition(torch.randn(2, 9, 7))


def test_pipeline_projects_the_condition_once_per_call(pipe):
    calls = []
    hooks = [
        layer.cond_proj.register_forward_hook(lambda *_: calls.append(1)) for layer in pipe.denoiser.backbone.layers
    ]
    try:
        pipe("Hello world.", torch.randn(16000) * 0.1, prompt_sampling_rate=16000, num_inference_steps=4, generator=0)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(calls) == len(pipe.denoiser.backbone.layers)  # not 4 times: the condition does not depend on x


def test_prior_encoder_padding_and_prompt_conditioning():
    model = tiny_prior()
    ids = torch.randint(1, 20, (1, 6))
    prompt = torch.randn(1, 6, 10)
    alone = model(ids, torch.ones(1, 6, dtype=torch.bool), prompt)
    batch_ids = torch.cat([torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1), torch.randint(1, 20, (1, 9))])
    batch_mask = torch.tensor([[True] * 6 + [False] * 3, [True] * 9])
    batch_prompt = torch.cat([torch.cat([prompt, torch.zeros(1, 6, 2)], -1), torch.randn(1, 6, 12)])
    prompt_mask = torch.tensor([[True] * 10 + [False] * 2, [True] * 12])
    batched = model(batch_ids, batch_mask, batch_prompt, prompt_mask)
    assert torch.allclose(batched.phoneme_hidden_states[:1, :6], alone.phoneme_hidden_states, atol=1e-5)
    assert torch.allclose(batched.prompt_hidden_states[:1, :10], alone.prompt_hidden_states, atol=1e-5)
    # conditional LayerNorm: the phoneme features depend on the prompt once its projections are non-trivial
    for layer in model.phoneme_layers:
        torch.nn.init.normal_(layer.norm1.scale.weight, std=0.5)
    other = model(ids, torch.ones(1, 6, dtype=torch.bool), torch.randn(1, 6, 10))
    again = model(ids, torch.ones(1, 6, dtype=torch.bool), prompt)
    assert not torch.allclose(other.phoneme_hidden_states, again.phoneme_hidden_states)


def test_prior_encoder_rejects_unknown_ids_and_resizes():
    model = tiny_prior()
    try:
        model(torch.tensor([[25]]), torch.ones(1, 1, dtype=torch.bool), torch.randn(1, 6, 4))
    except ValueError as err:
        assert "vocabulary" in str(err)
    else:
        raise AssertionError("expected a ValueError")
    old = model.embed_tokens.weight.detach().clone()
    model.resize_token_embeddings(24)
    assert model.config.vocab_size == 24
    assert torch.equal(model.embed_tokens.weight[:20], old)


def test_length_regulate_matches_repeat_interleave():
    hidden = torch.randn(3, 5, 4)
    durations = torch.tensor([[1, 0, 3, 2, 1], [2, 2, 0, 0, 0], [5, 1, 1, 1, 1]])
    frames, mask = length_regulate(hidden, durations)
    assert frames.shape == (3, 9, 4)
    for b in range(3):
        expected = hidden[b].repeat_interleave(durations[b], dim=0)
        assert torch.equal(frames[b, : len(expected)], expected)
        assert mask[b].sum() == len(expected)
        assert frames[b, len(expected) :].abs().sum() == 0


def test_prosody_generator_durations_pitch_and_refinement():
    model = tiny_prosody()
    hidden, mask, prompt = torch.randn(2, 7, 8), torch.ones(2, 7, dtype=torch.bool), torch.randn(2, 5, 8)
    log_dur, dur_hidden = model.predict_durations(hidden, mask, prompt)
    assert log_dur.shape == (2, 7) and dur_hidden.shape == (2, 7, 8)
    frames = model.durations_to_frames(torch.log1p(torch.tensor([[4.0, 0.2, 9.0]])), torch.tensor([[1, 1, 0]]))
    assert frames.tolist() == [[4, 1, 0]]
    fast = model.durations_to_frames(torch.log1p(torch.tensor([[4.0, 8.0]])), torch.ones(1, 2), speed=2.0)
    assert fast.tolist() == [[2, 4]]
    residual = torch.randn(2, 1, 7)

    def refine(x, t):
        return model.refine_durations(x, t, dur_hidden, mask)

    assert torch.equal(consistency(refine, residual, torch.tensor(0.002)), residual)
    assert not torch.allclose(consistency(refine, residual, torch.tensor(5.0)), residual)
    assert refine(residual, 400.0).shape == residual.shape
    bins = model.quantize_pitch(torch.log(torch.tensor([[10.0, 50.0, 200.0, 1100.0, 5000.0]])))
    assert bins[0, 0] == 0 and bins[0, -1] == 15 and (bins.diff() >= 0).all()
    frame_hidden, frame_mask = length_regulate(hidden, torch.full((2, 7), 2))
    log_pitch, _ = model.predict_pitch(frame_hidden, frame_mask, prompt)
    assert log_pitch.shape == (2, 14)
    assert model.embed_pitch(log_pitch, frame_mask).shape == (2, 14, 8)


def test_models_save_and_load(tmp_path):
    for model, args in (
        (tiny_denoiser(), (torch.randn(1, 6, 5), 173.0, torch.randn(1, 5, 8), torch.randn(1, 3, 8))),
        (tiny_prior(), (torch.randint(1, 20, (1, 4)), torch.ones(1, 4, dtype=torch.bool), torch.randn(1, 6, 3))),
    ):
        model.save_pretrained(tmp_path / type(model).__name__)
        loaded = type(model).from_pretrained(tmp_path / type(model).__name__).eval()
        assert (tmp_path / type(model).__name__ / "diffusion_pytorch_model.safetensors").is_file()
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
        for a, b in zip(model(*args, return_dict=False), loaded(*args, return_dict=False)):
            # weights loaded by mmap are not 64-byte aligned, so SIMD kernels may round differently
            assert torch.allclose(a, b, atol=1e-6)
