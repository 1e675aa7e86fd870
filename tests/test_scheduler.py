import json
import math

import pytest
import torch

from flashspeech_hf import FlashSpeechScheduler
from flashspeech_hf.schedulers.scheduling_flashspeech import LEGACY_TRAINING_KEYS
from flashspeech_hf.training_utils import ConsistencyTrainingCurriculum


def karras_by_hand(n, smin=0.002, smax=80.0, rho=7.0):
    return [(smin ** (1 / rho) + i / (n - 1) * (smax ** (1 / rho) - smin ** (1 / rho))) ** rho for i in range(n)]


def test_one_and_two_step_sigmas():
    scheduler = FlashSpeechScheduler()
    scheduler.set_timesteps(1)
    assert scheduler.sigmas.tolist() == [80.0]
    scheduler.set_timesteps(2)
    assert scheduler.sigmas.tolist() == [80.0, 2.0]


def test_n_step_sigmas_are_karras_levels():
    scheduler = FlashSpeechScheduler()
    scheduler.set_timesteps(4)
    expected = list(reversed(karras_by_hand(5)))[:-1]
    assert torch.allclose(scheduler.sigmas.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6)
    assert scheduler.sigmas[0] == 80.0


def test_explicit_and_invalid_sigmas():
    scheduler = FlashSpeechScheduler()
    scheduler.set_timesteps(sigmas=[10.0, 1.0, 0.1])
    assert scheduler.num_inference_steps == 3
    with pytest.raises(ValueError, match="decreasing"):
        scheduler.set_timesteps(sigmas=[1.0, 10.0])
    with pytest.raises(ValueError, match="num_inference_steps"):
        scheduler.set_timesteps(0)
    with pytest.raises(ValueError, match="sigma_min"):
        FlashSpeechScheduler(sigma_min=1.0, sigma_max=0.5)


def test_curriculum_matches_formula():
    # s0 = 10, s1 = 1280, K = 650000: K' = floor(650000 / (log2(128) + 1)) = 81250
    scheduler = ConsistencyTrainingCurriculum()
    assert scheduler.num_discretization_steps(0) == 11
    assert scheduler.num_discretization_steps(81249) == 11
    assert scheduler.num_discretization_steps(81250) == 21
    assert scheduler.num_discretization_steps(7 * 81250) == 1281
    assert scheduler.num_discretization_steps(650000) == 1281
    # the prosody stage: s1 = 160, K = 150k -> K' = floor(150000 / 5) = 30000
    prosody = ConsistencyTrainingCurriculum(s1=160, total_training_steps=150000)
    assert prosody.num_discretization_steps(29999) == 11
    assert prosody.num_discretization_steps(30000) == 21
    assert prosody.num_discretization_steps(149999) == 161


def test_training_levels_probabilities_and_weights():
    scheduler = ConsistencyTrainingCurriculum.from_scheduler(FlashSpeechScheduler())
    sigmas = scheduler.training_sigmas(0)
    assert len(sigmas) == 11
    assert torch.allclose(sigmas, torch.tensor(karras_by_hand(11), dtype=torch.float64))
    probs = scheduler.level_probabilities(sigmas)
    erf = [math.erf((math.log(s) + 1.1) / (math.sqrt(2) * 2.0)) for s in sigmas.tolist()]
    raw = [b - a for a, b in zip(erf[:-1], erf[1:])]
    assert torch.allclose(probs, torch.tensor([r / sum(raw) for r in raw], dtype=torch.float64))
    low, high, weights = scheduler.sample_training_sigmas(64, 0, generator=torch.Generator().manual_seed(0))
    assert (high > low).all()
    assert torch.allclose(weights, 1.0 / (high - low))
    levels = sigmas.float().tolist()
    for lo, hi in zip(low.tolist(), high.tolist()):
        i = min(range(len(levels)), key=lambda j: abs(levels[j] - lo))
        assert math.isclose(levels[i + 1], hi, rel_tol=1e-5)


def scalings(sigma, sigma_data=0.5, sigma_min=0.002):
    """c_skip, c_out, c_in of the consistency parametrization, by hand."""
    c_skip = sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)
    c_out = (sigma - sigma_min) * sigma_data / math.sqrt(sigma_data**2 + sigma**2)
    return c_skip, c_out, 1 / math.sqrt(sigma**2 + sigma_data**2)


def test_step_applies_the_scalings_and_renoises_to_next_sigma():
    scheduler = FlashSpeechScheduler()
    scheduler.set_timesteps(2)
    assert torch.allclose(scheduler.timesteps, 250 * torch.log(torch.tensor([80.0, 2.0])))  # c_noise, the model's
    sample = torch.randn(2, 3, 5) * 80
    model_output = torch.randn(2, 3, 5)
    noise = torch.randn(2, 3, 5)
    c_skip, c_out, c_in = scalings(80.0)
    assert torch.allclose(scheduler.scale_model_input(sample, scheduler.timesteps[0]), c_in * sample)
    out = scheduler.step(model_output, scheduler.timesteps[0], sample, noise=noise)
    denoised = c_skip * sample + c_out * model_output
    assert torch.allclose(out.denoised, denoised)
    assert torch.allclose(out.prev_sample, denoised + math.sqrt(2.0**2 - 0.002**2) * noise)
    c_skip, c_out, c_in = scalings(2.0)
    assert torch.allclose(scheduler.scale_model_input(out.prev_sample, scheduler.timesteps[1]), c_in * out.prev_sample)
    final = scheduler.step(model_output, scheduler.timesteps[1], out.prev_sample)
    assert torch.allclose(final.prev_sample, c_skip * out.prev_sample + c_out * model_output)
    assert torch.equal(final.prev_sample, final.denoised)


def test_preconditioning_per_item_and_boundary_condition():
    scheduler = FlashSpeechScheduler()
    sample, model_output = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    sigma = torch.tensor([0.002, 1.0, 80.0])
    scaled = scheduler.precondition_inputs(sample, sigma)
    for i, s in enumerate(sigma.tolist()):
        c_skip, c_out, c_in = scalings(s)
        assert torch.allclose(scaled[i], c_in * sample[i])
        expected = c_skip * sample[i] + c_out * model_output[i]
        assert torch.allclose(scheduler.precondition_outputs(sample, model_output, sigma)[i], expected)
    # f(x, sigma_min) = x exactly, whatever the model says
    assert torch.equal(scheduler.precondition_outputs(sample, model_output, sigma)[0], sample[0])
    assert torch.equal(scheduler.precondition_noise(sigma), scheduler.sigma_to_t(sigma))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        scheduler.precondition_inputs(sample, torch.ones(2))


def test_step_pastes_the_known_sample():
    scheduler = FlashSpeechScheduler()
    scheduler.set_timesteps(2)
    sample, model_output, known = torch.randn(1, 2, 6), torch.randn(1, 2, 6), torch.randn(1, 2, 6)
    known_mask = torch.tensor([True, True, False, False, True, True])[None, None]
    plain = scheduler.step(model_output, scheduler.timesteps[0], sample, noise=torch.zeros(1, 2, 6))
    scheduler.set_timesteps(2)
    out = scheduler.step(
        model_output, scheduler.timesteps[0], sample, noise=torch.zeros(1, 2, 6), known_sample=known,
        known_mask=known_mask,
    )  # fmt: skip
    assert torch.equal(out.denoised, torch.where(known_mask, known, plain.denoised))
    with pytest.raises(ValueError, match="both"):
        scheduler.step(model_output, scheduler.timesteps[1], sample, known_sample=known)


def test_step_is_seeded_and_never_clamps():
    scheduler = FlashSpeechScheduler()
    model_output, sample = torch.full((1, 2, 4), 20.0), torch.zeros(1, 2, 4)
    results = []
    for _ in range(2):
        scheduler.set_timesteps(3)
        results.append(scheduler.step(model_output, scheduler.timesteps[0], sample, generator=torch.manual_seed(3)))
    assert torch.equal(results[0].prev_sample, results[1].prev_sample)
    assert results[0].denoised.min() > 9.9  # c_out(80) * 20 = 10: far outside [-1, 1], not clamped


def test_add_noise_per_item():
    scheduler = FlashSpeechScheduler()
    x = torch.ones(2, 1, 3)
    noise = torch.ones(2, 1, 3)
    noisy = scheduler.add_noise(x, noise, torch.tensor([0.5, 2.0]))
    assert noisy[:, 0, 0].tolist() == [1.5, 3.0]


def test_save_load_round_trip(tmp_path):
    scheduler = FlashSpeechScheduler(two_step_sigma=1.5)
    scheduler.save_pretrained(tmp_path)
    loaded = FlashSpeechScheduler.from_pretrained(tmp_path)
    loaded.set_timesteps(2)
    assert loaded.sigmas.tolist() == [80.0, 1.5]


def test_old_config_with_training_keys_loads_and_saves_clean(tmp_path):
    # configs saved before the iCT curriculum moved to training_utils (the bundled demo checkpoint's among them)
    old = {"_class_name": "FlashSpeechScheduler", "sigma_min": 0.002, "sigma_max": 80.0, "sigma_data": 0.5,
           "rho": 7.0, "two_step_sigma": 1.5, "s0": 10, "s1": 1280, "total_training_steps": 650000, "p_mean": -1.1,
           "p_std": 2.0}  # fmt: skip
    (tmp_path / "scheduler_config.json").write_text(json.dumps(old))
    loaded = FlashSpeechScheduler.from_pretrained(tmp_path)
    assert loaded.config.two_step_sigma == 1.5
    assert not any(key in loaded.config for key in LEGACY_TRAINING_KEYS)
    loaded.save_pretrained(tmp_path / "resaved")
    resaved = json.loads((tmp_path / "resaved" / "scheduler_config.json").read_text())
    assert not any(key in resaved for key in LEGACY_TRAINING_KEYS)
    with pytest.raises(TypeError):
        FlashSpeechScheduler(s1=160)  # training keys are not scheduler arguments


def test_strength_starts_down_the_karras_scale():
    scheduler = FlashSpeechScheduler()
    scheduler.set_timesteps(2, strength=1.0)
    assert scheduler.sigmas.tolist() == [80.0, 2.0]
    starts = []
    for strength in (0.2, 0.5, 0.7, 0.9):
        scheduler.set_timesteps(1, strength=strength)
        starts.append(float(scheduler.sigmas[0]))
        expected = (0.002 ** (1 / 7) + strength * (80 ** (1 / 7) - 0.002 ** (1 / 7))) ** 7
        assert math.isclose(starts[-1], expected, rel_tol=1e-6)
    assert starts == sorted(starts)
    scheduler.set_timesteps(2, strength=0.3)
    assert len(scheduler.timesteps) == 1  # starts below the 2-step level: one evaluation
    scheduler.set_timesteps(4, strength=0.7)
    assert scheduler.sigmas[0] < 80 and (scheduler.sigmas[1:] < scheduler.sigmas[0]).all()
    for bad in (0.0, 1.5, -1.0, True):
        with pytest.raises(ValueError, match="strength"):
            scheduler.set_timesteps(2, strength=bad)
    with pytest.raises(ValueError, match="strength"):
        scheduler.set_timesteps(sigmas=[10.0, 1.0], strength=0.5)


def test_unknown_timestep_raises_and_begin_index():
    scheduler = FlashSpeechScheduler()
    scheduler.set_timesteps(3)
    assert len(scheduler) == 3
    sample = torch.zeros(1, 1, 2)
    with pytest.raises(ValueError, match="not one of the scheduler's timesteps"):
        scheduler.step(sample, 5.0, sample)
    with pytest.raises(ValueError, match="not one of the scheduler's timesteps"):
        scheduler.scale_model_input(sample, float(scheduler.sigmas[0]))  # a sigma is not a timestep
    assert scheduler.index_for_timestep(scheduler.timesteps[1]) == 1
    scheduler.set_begin_index(1)
    scheduler.step(sample, 123.0, sample, noise=sample)  # the begin index wins over the value
    assert scheduler.step_index == 2


def test_scalings_and_noise_conditioning_follow_the_config():
    scheduler = FlashSpeechScheduler(sigma_data=0.25)
    sigma = torch.tensor([0.002, 1.0, 80.0])
    c_skip, c_out = scheduler.get_scalings_for_boundary_condition(sigma)
    assert torch.allclose(c_skip, 0.0625 / ((sigma - 0.002) ** 2 + 0.0625))
    assert torch.allclose(c_out, (sigma - 0.002) * 0.25 / torch.sqrt(0.0625 + sigma**2))
    assert c_skip[0] == 1 and c_out[0] == 0
    assert torch.allclose(scheduler.sigma_to_t(sigma), 250 * torch.log(sigma))
