"""
`PipelineTesterMixin`: the checks every FlashSpeech task pipeline passes, as diffusers' `PipelineTesterMixin` runs
them on its pipelines. A test class sets `pipeline_class` and implements `get_inputs` and `get_batch_inputs`; the
`pipe` fixture (tests/conftest.py) gives the shared tiny components.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from accelerate.hooks import add_hook_to_module, remove_hook_from_module
from speech_data import make_prompt
from test_offload_hooks import SimulatedOffloadHook

RATE = 16000
SOURCE_TEXT = "The black cat sat on the mat."


def source_audio() -> np.ndarray:
    return make_prompt(2.0, RATE, seed=1)


def reference_audio() -> np.ndarray:
    return make_prompt(1.5, RATE, seed=3)


class PipelineTesterMixin:
    """Save/load round trip, batch = single, dtype, callbacks and (simulated) model offload."""

    pipeline_class: type

    def get_inputs(self, seed: int = 0) -> dict:
        """The keyword arguments of one call, with `generator=gen(seed)`."""
        raise NotImplementedError

    def get_batch_inputs(self) -> tuple[dict, list[dict]]:
        """One batched call and the single calls whose outputs it must concatenate."""
        raise NotImplementedError

    def build(self, pipe):
        task = self.pipeline_class(**pipe.components)
        task.set_progress_bar_config(disable=True)
        return task

    def run(self, task, **overrides) -> torch.Tensor:
        return task(**{**self.get_inputs(), "output_type": "pt", **overrides}).audios

    def test_save_load_round_trip_is_bit_identical(self, pipe, tmp_path):
        task = self.build(pipe)
        task.save_pretrained(tmp_path)
        loaded = self.pipeline_class.from_pretrained(tmp_path)
        loaded.set_progress_bar_config(disable=True)
        assert type(loaded) is self.pipeline_class
        assert torch.equal(self.run(loaded), self.run(task))

    def test_same_seed_same_output_and_another_differs(self, pipe):
        task = self.build(pipe)
        first, again = self.run(task), self.run(task)
        assert torch.equal(first, again)
        other = task(**{**self.get_inputs(seed=1), "output_type": "pt"}).audios
        assert other.shape != first.shape or not torch.equal(other, first)

    def test_batch_equals_single(self, pipe):
        task = self.build(pipe)
        batched, singles = self.get_batch_inputs()
        out = task(**batched, output_type="pt")
        for i, kwargs in enumerate(singles):
            alone = task(**kwargs, output_type="pt")
            n = alone.audio_lengths[0]
            assert out.audio_lengths[i] == n
            torch.testing.assert_close(out.audios[i, :n], alone.audios[0, :n], rtol=1e-4, atol=1e-5)

    def test_low_precision_runs_and_returns_float32(self, pipe):
        task = self.build(copy.deepcopy(pipe).to(torch.bfloat16))
        assert task.denoiser.dtype == torch.bfloat16
        audio = self.run(task)
        latents = task(**{**self.get_inputs(), "output_type": "latent"}).audios
        assert audio.dtype == latents.dtype == torch.float32
        assert torch.isfinite(audio).all() and torch.isfinite(latents).all()

    def test_callback_sees_every_step_and_can_replace_latents(self, pipe):
        task = self.build(pipe)
        seen = []

        def callback(p, step, timestep, callback_kwargs):
            seen.append((step, float(timestep), sorted(callback_kwargs)))
            return {"latents": torch.zeros_like(callback_kwargs["latents"])} if step == 0 else {}

        plain = self.run(task, num_inference_steps=2)
        replaced = self.run(
            task,
            num_inference_steps=2,
            callback_on_step_end=callback,
            callback_on_step_end_tensor_inputs=["latents", "denoised"],
        )
        assert [s[0] for s in seen] == list(range(len(task.scheduler.timesteps))) and len(seen) >= 1
        assert [s[1] for s in seen] == task.scheduler.timesteps.tolist()
        assert all(names == ["denoised", "latents"] for _, _, names in seen)
        assert plain.shape == replaced.shape and not torch.equal(plain, replaced)

    def test_offloaded_components_give_the_same_output(self, pipe):
        task = self.build(copy.deepcopy(pipe))
        expected = self.run(task)
        hooks = {}
        for name, component in task.components.items():
            if isinstance(component, torch.nn.Module):
                hooks[name] = SimulatedOffloadHook(name, hooks)
                add_hook_to_module(component, hooks[name])
        try:
            got = self.run(task)  # a model method that skipped its hook would compute with NaN weights
        finally:
            for name, hook in hooks.items():
                hook.pre_forward(getattr(task, name))
                remove_hook_from_module(getattr(task, name))
        assert torch.equal(got, expected)
        assert {name for name, hook in hooks.items() if hook.calls} >= {"prior_encoder", "denoiser", "codec"}
