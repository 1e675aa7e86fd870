"""Named sizes of a FlashSpeech pipeline: `tiny` (tests, CPU), `demo` (the bundled CPU-trained checkpoint) and `paper` (the published NS2-like sizes).

Each entry gives the config of every component; [`build_pipeline_components`] builds randomly initialised components
from it (what `FlashSpeechPipeline.from_named_config` and the other task pipelines' `from_named_config` pass to their
constructor). The phoneme vocabulary size always comes from the tokenizer.
"""

from __future__ import annotations

import copy

import torch

PIPELINE_CONFIGS: dict[str, dict[str, dict]] = {
    "tiny": {
        "codec": {
            "class_name": "MelCodec",
            "sampling_rate": 16000,
            "n_fft": 400,
            "hop_length": 200,
            "n_mels": 16,
            "vocoder_dim": 16,
            "vocoder_intermediate_dim": 32,
            "vocoder_num_layers": 1,
        },
        "prior_encoder": {
            "hidden_size": 32,
            "num_layers": 2,
            "prompt_num_layers": 1,
            "num_attention_heads": 2,
            "ffn_size": 64,
            "ffn_kernel_size": 3,
            "dropout": 0.0,
        },
        "prosody_generator": {
            "predictor_hidden_size": 32,
            "duration_num_layers": 3,
            "pitch_num_layers": 3,
            "num_attention_heads": 2,
            "refine_hidden_size": 16,
            "refine_num_layers": 2,
            "num_pitch_bins": 64,
            "dropout": 0.0,
        },
        "denoiser": {"hidden_size": 32, "num_layers": 3, "num_attention_heads": 2, "num_query_tokens": 4},
        "scheduler": {},
        "aligner": {"hidden_size": 32, "attention_dim": 16, "num_text_layers": 1, "num_latent_layers": 2},
    },
    # The bundled demo checkpoint (`checkpoints/flashspeech-demo`, made by `training/configs/demo.json`): sized to
    # train in about two hours on a shared 2-core CPU (1 thread, ~1.5 steps/s at batch 8). 16 kHz mel codec (hop 200,
    # 80 mels) with a 128-wide 5-layer vocoder, a 128-wide 3-layer phoneme encoder, 96-wide predictors and a 10-layer
    # 96-wide WaveNet denoiser.
    "demo": {
        "codec": {
            "class_name": "MelCodec",
            "sampling_rate": 16000,
            "n_fft": 800,
            "hop_length": 200,
            "n_mels": 80,
            "vocoder_dim": 128,
            "vocoder_intermediate_dim": 384,
            "vocoder_num_layers": 5,
        },
        "prior_encoder": {
            "hidden_size": 128,
            "num_layers": 3,
            "prompt_num_layers": 1,
            "num_attention_heads": 2,
            "ffn_size": 256,
            "ffn_kernel_size": 5,
            "dropout": 0.0,
        },
        "prosody_generator": {
            "predictor_hidden_size": 96,
            "duration_num_layers": 3,
            "pitch_num_layers": 3,
            "num_attention_heads": 2,
            "refine_hidden_size": 32,
            "refine_num_layers": 3,
            "num_pitch_bins": 128,
            "dropout": 0.0,
        },
        "denoiser": {"hidden_size": 96, "num_layers": 10, "num_attention_heads": 2, "num_query_tokens": 8},
        "scheduler": {},
        "aligner": {"hidden_size": 128, "attention_dim": 64, "num_text_layers": 4, "kernel_size": 5},
    },
    # Published sizes (NaturalSpeech 2 / FlashSpeech release): 16 kHz EnCodec-style codec with hop 200 and 256-d dense
    # latents, 6-layer 512-wide encoders, 30-layer predictors, a 40-layer 512-wide WaveNet denoiser.
    "paper": {
        "codec": {
            "class_name": "EncodecCodec",
            "encodec_config": {
                "sampling_rate": 16000,
                "upsampling_ratios": [5, 5, 4, 2],
                "hidden_size": 256,
                "audio_channels": 1,
            },
        },
        "prior_encoder": {},
        "prosody_generator": {},
        "denoiser": {},
        "scheduler": {},
        # RAD-TTS-sized aligner (256 wide, 80-d attention space) with a 4-layer kernel-5 text encoder, which halved the
        # word-boundary error of a 2-layer kernel-3 one on flite speech at equal steps: optional at inference, used
        # for voice conversion and speech editing, where the durations of real audio are needed.
        "aligner": {"num_text_layers": 4, "kernel_size": 5},
    },
}


def get_pipeline_config(name: str) -> dict[str, dict]:
    """
    Returns a deep copy of a named pipeline config.

    Args:
        name (`str`): One of `PIPELINE_CONFIGS` (`"tiny"`, `"demo"`, `"paper"`).

    Returns:
        `dict` with keys `codec`, `prior_encoder`, `prosody_generator`, `denoiser`, `scheduler`, `aligner`.
    """
    if name not in PIPELINE_CONFIGS:
        raise ValueError(f"Unknown pipeline config {name!r}; choose one of {sorted(PIPELINE_CONFIGS)}.")
    return copy.deepcopy(PIPELINE_CONFIGS[name])


def build_pipeline_components(
    name: str, tokenizer=None, codec: torch.nn.Module | None = None, **overrides: dict | None
) -> dict[str, object]:
    """
    Randomly initialised pipeline components of a named size, in eval mode.

    Args:
        name (`str`): One of `PIPELINE_CONFIGS`.
        tokenizer ([`FlashSpeechTokenizer`], *optional*): Defaults to the built-in English phoneme tokenizer; it sets
            the phoneme vocabulary.
        codec (*optional*): A codec to use instead of the config's randomly initialised one; the latent size follows it.
        **overrides (`dict`): Per-component config updates, e.g. `denoiser={"num_layers": 20}`; `aligner=None`
            leaves out the optional aligner.

    Returns:
        `dict` of the keyword arguments of the pipelines' constructors (`tokenizer`, `codec`, `prior_encoder`,
        `prosody_generator`, `denoiser`, `scheduler`, `aligner`).

    Examples:

    ```py
    >>> from flashspeech_hf import FlashSpeechPipeline
    >>> from flashspeech_hf.configs import build_pipeline_components

    >>> components = build_pipeline_components("tiny", aligner=None)
    >>> FlashSpeechPipeline(**components).aligner is None
    True
    ```
    """
    from . import codecs
    from .models import FlashSpeechAligner, FlashSpeechDenoiser, FlashSpeechPriorEncoder, FlashSpeechProsodyGenerator
    from .schedulers import FlashSpeechScheduler
    from .text import FlashSpeechTokenizer

    config = get_pipeline_config(name)
    for component, update in overrides.items():
        if component not in config:
            raise ValueError(f"Unknown component {component!r}; components are {sorted(config)}.")
        if update is None and component == "aligner":
            config[component] = None
        else:
            config[component].update(update)
    tokenizer = tokenizer if tokenizer is not None else FlashSpeechTokenizer()
    codec = codec if codec is not None else _build_codec(codecs, config["codec"])
    hidden = config["prior_encoder"].get("hidden_size", 512)
    prior_encoder = FlashSpeechPriorEncoder(
        vocab_size=len(tokenizer),
        latent_dim=codec.latent_dim,
        pad_token_id=tokenizer.pad_token_id,
        **config["prior_encoder"],
    )
    prosody_generator = FlashSpeechProsodyGenerator(hidden_size=hidden, **config["prosody_generator"])
    denoiser = FlashSpeechDenoiser(
        latent_dim=codec.latent_dim, condition_dim=hidden, prompt_dim=hidden, **config["denoiser"]
    )
    scheduler = FlashSpeechScheduler(**config["scheduler"])
    aligner = None
    if config.get("aligner") is not None:
        aligner = FlashSpeechAligner(
            vocab_size=len(tokenizer),
            latent_dim=codec.latent_dim,
            pad_token_id=tokenizer.pad_token_id,
            **config["aligner"],
        ).eval()
    # eval mode, as `from_pretrained` returns its models
    return {
        "tokenizer": tokenizer,
        "codec": codec.eval(),
        "prior_encoder": prior_encoder.eval(),
        "prosody_generator": prosody_generator.eval(),
        "denoiser": denoiser.eval(),
        "scheduler": scheduler,
        "aligner": aligner,
    }


def _build_codec(codecs, config: dict) -> torch.nn.Module:
    config = dict(config)
    class_name = config.pop("class_name")
    if not hasattr(codecs, class_name):
        raise ValueError(f"Unknown codec class {class_name!r} in the pipeline config.")
    return getattr(codecs, class_name)(**config)
