"""
The scheduler checks diffusers runs on every scheduler (its `SchedulerCommonTest`), shaped the same way: a mixin of
tests over `scheduler_class` and `get_scheduler_config`, run here against `FlashSpeechScheduler`.
"""

import inspect

import pytest
import torch

from flashspeech_hf import FlashSpeechScheduler


class SchedulerCommonTest:
    """Config save/load, compatibles, timesteps, step shapes and outputs, `add_noise` and a full sampling loop."""

    scheduler_class: type
    num_inference_steps = (1, 2, 4)

    def get_scheduler_config(self, **overrides) -> dict:
        raise NotImplementedError

    @property
    def dummy_sample(self) -> torch.Tensor:
        return torch.rand(4, 3, 8) * 2 - 1

    def run_steps(self, scheduler, num_inference_steps: int, sample: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Samples with the dummy model `F = 0.1 * scaled input`, one seeded generator for the re-noising."""
        scheduler.set_timesteps(num_inference_steps)
        generator = torch.Generator().manual_seed(seed)
        sample = sample * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            model_output = 0.1 * scheduler.scale_model_input(sample, t)
            sample = scheduler.step(model_output, t, sample, generator=generator).prev_sample
        return sample

    def test_from_save_pretrained_gives_the_same_steps(self, tmp_path):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        scheduler.save_config(tmp_path)
        loaded = self.scheduler_class.from_pretrained(tmp_path)
        for n in self.num_inference_steps:
            sample = self.dummy_sample
            assert torch.equal(self.run_steps(scheduler, n, sample), self.run_steps(loaded, n, sample))

    def test_from_pretrained_config_round_trip(self, tmp_path):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        scheduler.save_pretrained(tmp_path)
        loaded = self.scheduler_class.from_pretrained(tmp_path)
        config = {k: v for k, v in scheduler.config.items() if k != "_use_default_values"}
        assert config == {k: v for k, v in loaded.config.items() if k != "_use_default_values"}

    def test_compatibles_round_trip_the_config(self):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        assert scheduler.compatibles and all(c is not None for c in scheduler.compatibles)
        init_keys = set(inspect.signature(self.scheduler_class.__init__).parameters)
        for compatible in scheduler.compatibles:
            other = compatible.from_config(scheduler.config)
            back = self.scheduler_class.from_config(other.config)
            assert {k: v for k, v in back.config.items() if k in scheduler.config} == dict(scheduler.config)
            extra = {k for k in back.config if k not in scheduler.config}
            assert not extra & init_keys, extra

    def test_timesteps_follow_the_decreasing_sigmas(self):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        for n in self.num_inference_steps:
            scheduler.set_timesteps(n)
            assert len(scheduler.timesteps) == n == scheduler.num_inference_steps
            assert (scheduler.sigmas[1:] < scheduler.sigmas[:-1]).all()
            assert float(scheduler.sigmas[0]) == scheduler.init_noise_sigma
            assert torch.equal(scheduler.timesteps, scheduler.sigma_to_t(scheduler.sigmas))
        scheduler.set_timesteps(2, device="cpu")
        assert scheduler.timesteps.device.type == "cpu"

    def test_step_shape_and_index(self):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        for n in self.num_inference_steps:
            scheduler.set_timesteps(n)
            sample = self.dummy_sample
            for i, t in enumerate(scheduler.timesteps):
                out = scheduler.step(0.1 * sample, t, sample, generator=torch.Generator().manual_seed(i))
                assert out.prev_sample.shape == out.denoised.shape == sample.shape
                assert scheduler.step_index == i + 1
                sample = out.prev_sample

    def test_step_outputs_equivalence(self):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        sample = self.dummy_sample
        scheduler.set_timesteps(2)
        as_dict = scheduler.step(0.1 * sample, scheduler.timesteps[0], sample, generator=torch.manual_seed(0))
        scheduler.set_timesteps(2)
        as_tuple = scheduler.step(
            0.1 * sample, scheduler.timesteps[0], sample, generator=torch.manual_seed(0), return_dict=False
        )
        assert torch.equal(as_dict.prev_sample, as_tuple[0]) and torch.equal(as_dict.denoised, as_tuple[1])

    def test_add_noise_shapes_and_levels(self):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        sample, noise = self.dummy_sample, torch.randn(4, 3, 8)
        sigmas = torch.tensor([0.0, 0.5, 2.0, 80.0])
        noisy = scheduler.add_noise(sample, noise, sigmas)
        assert noisy.shape == sample.shape and noisy.dtype == sample.dtype
        assert torch.equal(noisy[0], sample[0])
        assert torch.allclose((noisy - sample)[1:] / noise[1:], sigmas[1:, None, None].expand(3, 3, 8))

    def test_full_loop_with_a_perfect_model_recovers_the_sample(self):
        """A model whose consistency function is the clean sample at every level makes every step land on it."""
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        clean = self.dummy_sample
        for n in self.num_inference_steps:
            scheduler.set_timesteps(n)
            sample = torch.randn(clean.shape, generator=torch.Generator().manual_seed(n)) * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                sigma = scheduler.sigmas[scheduler.index_for_timestep(t)]
                c_skip, c_out = scheduler.get_scalings_for_boundary_condition(sigma)
                model_output = (clean - c_skip * sample) / c_out  # F such that c_skip x + c_out F = clean
                sample = scheduler.step(model_output, t, sample, generator=torch.manual_seed(0)).prev_sample
            torch.testing.assert_close(sample, clean, rtol=1e-4, atol=1e-4)


class TestFlashSpeechScheduler(SchedulerCommonTest):
    scheduler_class = FlashSpeechScheduler

    def get_scheduler_config(self, **overrides) -> dict:
        config = {"sigma_min": 0.002, "sigma_max": 80.0, "sigma_data": 0.5, "rho": 7.0, "two_step_sigma": 10.0}
        config.update(overrides)
        return config

    def test_a_compatible_scheduler_samples_the_pipeline(self, pipe):
        """`CMStochasticIterativeScheduler` (declared compatible) swaps in: one step gives the same latents."""
        compatible = pipe.scheduler.compatibles[0]
        kwargs = {"num_inference_steps": 1, "generator": 0, "output_type": "latent", "prosody_alpha": 0.0}
        ours = pipe("Hello there.", _prompt(), prompt_sampling_rate=16000, **kwargs).audios
        swapped = type(pipe)(**{**pipe.components, "scheduler": compatible.from_config(pipe.scheduler.config,
                                                                                       clip_denoised=False)})  # fmt: skip
        theirs = swapped("Hello there.", _prompt(), prompt_sampling_rate=16000, **kwargs).audios
        torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)
        two_steps = swapped(
            "Hello there.", _prompt(), prompt_sampling_rate=16000, **{**kwargs, "num_inference_steps": 2}
        )
        assert torch.isfinite(two_steps.audios).all()


def _prompt():
    from speech_data import make_prompt

    return make_prompt(1.5, 16000, seed=0)


@pytest.mark.parametrize("steps", [0, 1.5, None])
def test_bad_step_counts_are_named(steps):
    with pytest.raises(ValueError, match="num_inference_steps"):
        FlashSpeechScheduler().set_timesteps(steps)
