"""Lower precision: bf16 loading and casting, what stays in float32, int8 dynamic quantization (tiny config, CPU)."""

import copy
import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open
from speech_data import convert, edit, make_prompt

from flashspeech_hf import FlashSpeechPipeline

TEXT = "Hello world, this is a test."
PROMPT = make_prompt(1.5, 16000)
# Bounds against float32 on the same inputs and seed (same noise: the pipeline samples in float32). bfloat16 keeps 8
# mantissa bits (relative rounding 2**-9 = 0.2 %); each layer rounds once more and the errors add up over the prior
# encoder, the prosody generator and two denoiser passes. Measured on this tiny config: mel latents 0.45-0.55 %
# (bf16) and 0.6 % (int8) relative L2 error, ln F0 at most 0.018 (bf16) and 0.029 (int8) away. The bounds leave 5x
# room for other CPUs' kernels and still catch a precision bug (a bfloat16 window, statistics or bin edges gives
# tens of percent, or no audio).
MEL_RTOL = 0.03
LOG_PITCH_ATOL = 0.1  # 10 % in F0: an error of a few bins at most


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).norm() / b.norm())


def run(pipe, seed=0, **kwargs):
    """Audio and the raw mel latents that reach the vocoder, for one tiny synthesis."""
    captured = []
    hook = pipe.codec.backbone.register_forward_hook(lambda m, args, out: captured.append(args[0].float().clone()))
    try:
        out = pipe(TEXT, PROMPT, prompt_sampling_rate=16000, generator=seed, output_type="pt", **kwargs)
    finally:
        hook.remove()
    return out, captured[0]


@pytest.fixture(scope="module")
def smooth(pipe):
    """
    The tiny test pipeline with a pitch embedding that varies smoothly over the bins, as a trained one does. With
    random rows, a pitch that moves across a bin edge by a rounding error swaps a frame's condition for an unrelated
    vector (about 10 % of the mel then differs at any precision, int8 and bf16 alike): that tests the embedding's
    randomness, not the precision.
    """
    smooth = copy.deepcopy(pipe)
    weight = smooth.prosody_generator.pitch_embedding.weight
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        bins = torch.arange(weight.shape[0], dtype=torch.float32)[:, None] / weight.shape[0]
        rates = torch.linspace(0.5, 2.0, weight.shape[1])[None]
        weight.copy_(torch.sin(2 * math.pi * (bins * rates + torch.rand(1, weight.shape[1], generator=generator))))
    return smooth


@pytest.fixture(scope="module")
def saved(smooth, tmp_path_factory):
    path = tmp_path_factory.mktemp("precision") / "tiny"
    smooth.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def reference(smooth):
    return run(smooth)


def assert_fp32_parts(pipe):
    """The numerically fragile tensors are float32 and exact; the heavy networks are in low precision."""
    codec, prosody = pipe.codec, pipe.prosody_generator
    for tensor in (codec.latent_mean, codec.latent_std, codec.mel_filters, codec.head.window, prosody.pitch_bin_edges):
        assert tensor.dtype == torch.float32
    assert codec.head.out.weight.dtype == torch.float32
    assert torch.equal(codec.head.window, torch.hann_window(codec.config.n_fft))
    assert codec.backbone.embed.weight.dtype == torch.bfloat16
    for model in (pipe.denoiser, pipe.prior_encoder, prosody):
        assert model.dtype == torch.bfloat16


def check_close_to_reference(pipe, reference):
    """Same durations, close pitch and mel latents, float32 finite audio of the same length as float32."""
    (ref_out, ref_mel), (out, mel) = reference, run(pipe)
    assert out.audios.dtype == torch.float32 and torch.isfinite(out.audios).all()
    assert out.audio_lengths == ref_out.audio_lengths and mel.shape == ref_mel.shape
    assert all(torch.equal(a, b) for a, b in zip(out.durations, ref_out.durations))
    pitch_error = max(float((a - b).abs().max()) for a, b in zip(out.log_pitch, ref_out.log_pitch))
    assert pitch_error < LOG_PITCH_ATOL, f"ln F0 {pitch_error:.3f} away from float32"
    error = rel_error(mel, ref_mel)
    assert error < MEL_RTOL, f"mel latents {error:.3%} away from float32"
    return error


@pytest.mark.parametrize("argument", ["dtype", "torch_dtype"])
def test_load_bf16_close_to_fp32(saved, reference, argument):
    bf16 = FlashSpeechPipeline.from_pretrained(saved, **{argument: torch.bfloat16})
    bf16.set_progress_bar_config(disable=True)
    assert_fp32_parts(bf16)
    check_close_to_reference(bf16, reference)


def test_to_bf16_keeps_fp32_parts_and_is_close(smooth, reference, caplog):
    bf16 = copy.deepcopy(smooth).to(torch.bfloat16)
    assert "should be kept in float32" not in caplog.text  # diffusers' warning does not apply: they are kept
    assert_fp32_parts(bf16)
    # the kept tensors are the float32 originals, not float32 copies of rounded values
    assert torch.equal(bf16.codec.head.out.weight, smooth.codec.head.out.weight)
    check_close_to_reference(bf16, reference)
    back = bf16.to(torch.float32)
    assert back.denoiser.dtype == torch.float32 and back.codec.latent_std.dtype == torch.float32


@torch.no_grad()
def test_bf16_codec_roundtrip_is_float32():
    from flashspeech_hf import MelCodec

    codec = MelCodec(n_fft=400, hop_length=200, n_mels=16, vocoder_dim=16, vocoder_intermediate_dim=32).eval()
    waveform = torch.from_numpy(PROMPT)[None]
    reference = codec.decode(codec.encode(waveform, 16000))
    codec.to(torch.bfloat16)
    latents = codec.encode(waveform, 16000)
    assert latents.dtype == torch.float32  # the front-end and the normalization run in float32
    audio = codec.decode(latents)  # used to fail in torch.istft with a bfloat16 window (NOLA check)
    assert audio.dtype == torch.float32 and audio.shape == reference.shape and torch.isfinite(audio).all()
    assert rel_error(audio, reference) < 0.05


def test_bf16_save_and_reload_roundtrip(saved, tmp_path):
    bf16 = FlashSpeechPipeline.from_pretrained(saved, dtype=torch.bfloat16)
    bf16.set_progress_bar_config(disable=True)
    bf16.save_pretrained(tmp_path / "bf16")
    again = FlashSpeechPipeline.from_pretrained(tmp_path / "bf16", dtype=torch.bfloat16)
    again.set_progress_bar_config(disable=True)
    assert_fp32_parts(again)
    for name in ("denoiser", "prior_encoder", "prosody_generator", "codec"):
        a, b = getattr(bf16, name).state_dict(), getattr(again, name).state_dict()
        assert a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
    x, y = run(bf16, seed=3)[0], run(again, seed=3)[0]
    assert torch.equal(x.audios, y.audios)
    # on disk: bfloat16 weights (the kept parts float32), and the index says so
    with safe_open(tmp_path / "bf16" / "denoiser" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"BF16"}
    with safe_open(tmp_path / "bf16" / "codec" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert f.get_slice("latent_std").get_dtype() == "F32"
    assert json.loads((tmp_path / "bf16" / "model_index.json").read_text())["_torch_dtype"] == "bfloat16"
    # without a dtype it loads in bfloat16, the same pipeline
    auto = FlashSpeechPipeline.from_pretrained(tmp_path / "bf16")
    auto.set_progress_bar_config(disable=True)
    assert auto.denoiser.dtype == torch.bfloat16 and auto.prior_encoder.dtype == torch.bfloat16
    assert_fp32_parts(auto)
    assert torch.equal(run(auto, seed=3)[0].audios, x.audios)
    # and in float32 when asked (the weights as rounded, the kept tensors exact); a float32 save records nothing
    fp32 = FlashSpeechPipeline.from_pretrained(tmp_path / "bf16", dtype=torch.float32)
    assert fp32.denoiser.dtype == torch.float32
    assert torch.equal(fp32.codec.latent_std, bf16.codec.latent_std)
    fp32.save_pretrained(tmp_path / "fp32")
    assert "_torch_dtype" not in json.loads((tmp_path / "fp32" / "model_index.json").read_text())
    assert FlashSpeechPipeline.from_pretrained(tmp_path / "fp32").denoiser.dtype == torch.float32


def test_int8_dynamic_quantization(saved, reference):
    int8 = FlashSpeechPipeline.from_pretrained(saved, quantization="int8")
    int8.set_progress_bar_config(disable=True)
    for model in (int8.denoiser, int8.prosody_generator):
        types = {type(m) for m in model.modules()}
        assert torch.ao.nn.quantized.dynamic.Linear in types and torch.nn.Linear not in types
        assert {p.dtype for p in model.parameters()} == {torch.float32}  # convolutions are not covered
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in int8.prior_encoder.modules())
    error = check_close_to_reference(int8, reference)
    assert error > 0  # the quantized layers are used
    with pytest.raises(ValueError, match="int8 dynamically quantized"):
        int8.save_pretrained("/nonexistent/never-written")


def test_low_cpu_mem_usage_false_still_loads(saved):
    # diffusers refuses it for models with `_keep_in_fp32_modules`; the pipeline loads with True instead, with a warning
    pipe = FlashSpeechPipeline.from_pretrained(saved, low_cpu_mem_usage=False, dtype=torch.bfloat16)
    assert_fp32_parts(pipe)


def test_int8_argument_errors(saved, pipe):
    with pytest.raises(ValueError, match="`quantization` must be"):
        FlashSpeechPipeline.from_pretrained(saved, quantization="int4")
    with pytest.raises(ValueError, match="cannot be combined"):
        FlashSpeechPipeline.from_pretrained(saved, quantization="int8", dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="needs a float32 model"):
        copy.deepcopy(pipe).to(torch.bfloat16).enable_int8_dynamic_quantization()
    with pytest.raises(ValueError, match="Cannot quantize"):
        copy.deepcopy(pipe).enable_int8_dynamic_quantization(["vocoder"])


def test_demo_checkpoint_bf16_loads_and_speaks():
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "checkpoints", "flashspeech-demo")
    if not os.path.isfile(os.path.join(path, "model_index.json")):
        pytest.skip("no bundled demo checkpoint")
    bf16 = FlashSpeechPipeline.from_pretrained(path, dtype=torch.bfloat16)
    bf16.set_progress_bar_config(disable=True)
    assert_fp32_parts(bf16)
    out = bf16("Two steps.", PROMPT, prompt_sampling_rate=16000, generator=0)
    assert out.audios.dtype == np.float32 and np.isfinite(out.audios).all() and np.abs(out.audios).max() > 0


def test_bf16_voice_conversion_edit_and_align(smooth):
    bf16 = copy.deepcopy(smooth).to(torch.bfloat16)
    bf16.set_progress_bar_config(disable=True)
    source = make_prompt(1.5, 16000, seed=1)
    alignment = bf16.align(source, TEXT, 16000)
    assert alignment.latents.dtype == torch.float32
    converted = convert(bf16, source, TEXT, PROMPT, sampling_rate=16000, generator=0)
    edited = edit(bf16, source, TEXT, "Hello world, this is a rest.", sampling_rate=16000, generator=0)
    for out in (converted, edited):
        assert out.audios.dtype == np.float32 and np.isfinite(out.audios).all()
    # outside the edited span the recording is kept sample for sample
    np.testing.assert_array_equal(edited.audios[0, : edited.edit_start], source[: edited.edit_start])
