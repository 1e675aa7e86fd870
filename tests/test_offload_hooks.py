"""Every model entry point runs accelerate's hooks, so `enable_model_cpu_offload` moves each component in time."""

import numpy as np
import pytest
import torch
from accelerate.hooks import ModelHook, add_hook_to_module, remove_hook_from_module
from speech_data import gen, make_prompt

from flashspeech_hf import FlashSpeechEditPipeline, FlashSpeechPipeline, FlashSpeechVoiceConversionPipeline

RATE = 16000
TEXT = "The black cat sat on the mat."


class SimulatedOffloadHook(ModelHook):
    """
    Model offload without a second device: a component's weights are NaN while it is "offloaded" and come back in its
    hook's `pre_forward`, which "offloads" every other component, as the hooks of `enable_model_cpu_offload` move the
    previous model back to the CPU. A component used through a method that skips the hook computes with NaN weights.
    """

    def __init__(self, name: str, hooks: dict):
        self.name, self.hooks, self.calls, self.stash = name, hooks, 0, None

    def init_hook(self, module):
        self.module = module
        self.offload()
        return module

    def offload(self):
        if self.stash is None:
            tensors = [*self.module.parameters(), *self.module.buffers()]
            self.stash = [t.data for t in tensors]
            for t in tensors:
                t.data = torch.full_like(t.data, float("nan")) if t.is_floating_point() else t.data
        return self

    def pre_forward(self, module, *args, **kwargs):
        self.calls += 1
        for other in self.hooks.values():
            if other is not self:
                other.offload()
        if self.stash is not None:
            for t, data in zip([*module.parameters(), *module.buffers()], self.stash):
                t.data = data
            self.stash = None
        return args, kwargs


@pytest.fixture()
def offloaded():
    torch.manual_seed(0)
    pipe = FlashSpeechPipeline.from_named_config("tiny")
    pipe.set_progress_bar_config(disable=True)
    hooks = {}
    for name, component in pipe.components.items():
        if isinstance(component, torch.nn.Module):
            hooks[name] = SimulatedOffloadHook(name, hooks)
    yield pipe, hooks
    for name, hook in hooks.items():
        hook.pre_forward(getattr(pipe, name))  # weights back
        remove_hook_from_module(getattr(pipe, name))


def install(pipe, hooks):
    for name, hook in hooks.items():
        add_hook_to_module(getattr(pipe, name), hook)


def test_every_component_runs_its_hook_in_every_task(offloaded):
    pipe, hooks = offloaded
    prompt, source = make_prompt(1.5, RATE, seed=3), make_prompt(2.0, RATE, seed=1)
    # the reference outputs, without hooks
    expected = {
        "tts": pipe(TEXT, prompt, prompt_sampling_rate=RATE, generator=gen(0), num_inference_steps=2).audios,
        "vc": FlashSpeechVoiceConversionPipeline(**pipe.components)(
            source, TEXT, prompt, sampling_rate=RATE, generator=gen(0)
        ).audios,
        "edit": FlashSpeechEditPipeline(**pipe.components)(
            source, TEXT, "The big dog sat on the mat.", sampling_rate=RATE, generator=gen(0)
        ).audios,
    }
    install(pipe, hooks)
    assert all(hook.stash is not None for hook in hooks.values())  # every component starts offloaded
    got = {"tts": pipe(TEXT, prompt, prompt_sampling_rate=RATE, generator=gen(0), num_inference_steps=2).audios}
    used = {name for name, hook in hooks.items() if hook.calls}
    assert used == {"codec", "prior_encoder", "prosody_generator", "denoiser"}  # text-to-speech needs no aligner
    got["vc"] = FlashSpeechVoiceConversionPipeline(**pipe.components)(
        source, TEXT, prompt, sampling_rate=RATE, generator=gen(0)
    ).audios
    got["edit"] = FlashSpeechEditPipeline(**pipe.components)(
        source, TEXT, "The big dog sat on the mat.", sampling_rate=RATE, generator=gen(0)
    ).audios
    assert all(hook.calls for hook in hooks.values())
    for task in expected:  # a method that skipped its hook would have computed with NaN weights
        assert np.isfinite(got[task]).all(), task
        np.testing.assert_array_equal(got[task], expected[task], err_msg=task)


def test_model_methods_without_a_hook_see_offloaded_weights(offloaded):
    """The check above can fail: calling a model method without going through the hook computes with NaN weights."""
    pipe, hooks = offloaded
    install(pipe, hooks)
    latents = torch.zeros(1, pipe.codec.latent_dim, 5)
    hooked = pipe.prior_encoder.encode_prompt(latents)
    assert torch.isfinite(hooked).all()
    hooks["denoiser"].pre_forward(pipe.denoiser)  # offloads the prior encoder
    bypass = type(pipe.prior_encoder).encode_prompt.__wrapped__(pipe.prior_encoder, latents)
    assert torch.isnan(bypass).all()
