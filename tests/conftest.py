"""Test-wide settings: no test may reach the network."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="module")
def pipe():
    """A tiny random pipeline whose zero-initialised output layers get weights, so every component shapes the audio."""
    from flashspeech_hf import FlashSpeechPipeline

    torch.manual_seed(0)
    pipe = FlashSpeechPipeline.from_named_config("tiny")
    for module in (
        pipe.denoiser.backbone,
        pipe.prosody_generator.duration_refiner,
        pipe.prosody_generator.pitch_refiner,
    ):
        torch.nn.init.normal_(module.out_proj.weight, std=0.2)
    torch.nn.init.normal_(pipe.prosody_generator.duration_predictor.out.weight, std=0.05)
    torch.nn.init.constant_(pipe.prosody_generator.duration_predictor.out.bias, 1.5)
    pipe.set_progress_bar_config(disable=True)
    return pipe
