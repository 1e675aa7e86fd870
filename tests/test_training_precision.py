"""Mixed-precision (bf16 autocast) and compiled training on a CPU: what runs in bfloat16, what stays float32, parity."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import train_flashspeech as train
import train_vocoder as vocoder
from accelerate.state import AcceleratorState
from test_training import base_args, make_prepared_dir, one_step_error

from flashspeech_hf import FlashSpeechDenoiser, FlashSpeechPipeline, MelCodec, training_utils
from flashspeech_hf.configs import get_pipeline_config


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Accelerate keeps one mixed-precision state per process: each run here sets its own, and none leaks out."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_prepared_dir(tmp_path_factory.mktemp("prepared"))


def test_native_bf16_is_read_from_the_cpu_flags_and_auto_falls_back_to_float32(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    assert training_utils.cpu_has_native_bf16(str(cpuinfo))
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512bw avx512_vnni\n")  # bf16 only emulated
    assert not training_utils.cpu_has_native_bf16(str(cpuinfo))
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")  # Arm (ARMv8.6 BF16)
    assert training_utils.cpu_has_native_bf16(str(cpuinfo))
    assert not training_utils.cpu_has_native_bf16(str(tmp_path / "missing"))

    assert training_utils.resolve_mixed_precision("bf16") == ("bf16", None)
    assert training_utils.resolve_mixed_precision(None) == ("no", None)
    monkeypatch.setattr(training_utils, "cpu_has_native_bf16", lambda: True)
    assert training_utils.resolve_mixed_precision("auto", "cpu") == ("bf16", None)
    monkeypatch.setattr(training_utils, "cpu_has_native_bf16", lambda: False)
    precision, note = training_utils.resolve_mixed_precision("auto", "cpu")
    assert precision == "no" and "float32" in note and "AVX512-BF16" in note


@pytest.fixture
def output_dtypes():
    """Records `(module type name, output dtype)` of every module call (global forward hook) while a test runs."""
    records = []

    def hook(module, args, output):
        sample = getattr(output, "sample", output)
        if isinstance(sample, torch.Tensor):
            records.append((type(module).__name__, sample.dtype))

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    yield records
    handle.remove()


def test_bf16_runs_the_models_in_bfloat16_with_float32_losses_targets_and_optimizer_state(
    prepared, tmp_path, output_dtypes
):
    out = tmp_path / "stage1"
    # the consistency objective (student and stop-gradient teacher) with the adversarial loss from step 1
    summary = train.main(
        base_args(prepared, out, "--mixed_precision", "bf16", "--max_train_steps", "3", "--adversarial_start_step",
                  "1", "--checkpointing_steps", "100")
    )  # fmt: skip
    history = summary["loss_history"]
    assert all(np.isfinite(list(h.values())).all() for h in history)
    assert history[-1]["generator_adv_loss"] > 0 and history[-1]["discriminator_loss"] > 0
    seen = set(output_dtypes)
    # autocast engages in the training module's forward: the convolutions and projections compute in bfloat16 ...
    assert ("Conv1d", torch.bfloat16) in seen and ("Linear", torch.bfloat16) in seen
    # ... the consistency function (student and teacher, the target) comes out in float32, as does the codec's audio
    assert {d for name, d in seen if name == FlashSpeechDenoiser.__name__} == {torch.float32}
    assert {d for name, d in seen if name == MelCodec.__name__ or name == "ISTFTHead"} <= {torch.float32}
    optimizer = torch.load(out / "checkpoint-3" / "optimizer.bin", weights_only=False)
    states = [t for state in optimizer["state"].values() for t in state.values() if torch.is_tensor(t)]
    assert states and all(t.dtype == torch.float32 for t in states)
    pipe = FlashSpeechPipeline.from_pretrained(out)
    assert all(p.dtype == torch.float32 for p in pipe.denoiser.parameters())

    output_dtypes.clear()
    AcceleratorState._reset_state(reset_partial_state=True)
    summary2 = train.main(base_args(prepared, tmp_path / "stage2", "--stage", "2", "--pretrained_model_name_or_path",
                                    str(out), "--mixed_precision", "bf16", "--max_train_steps", "2"))  # fmt: skip
    assert all(h["duration_refine_loss"] > 0 and np.isfinite(h["pitch_refine_loss"]) for h in summary2["loss_history"])
    assert ("Conv1d", torch.bfloat16) in set(output_dtypes)


def test_cpu_bf16_training_attention_takes_the_math_backend(prepared, tmp_path):
    """
    The fused CPU flash-attention kernel is 2-4x slower in bfloat16 than in float32 (forward and backward); a bf16
    training step on the CPU routes attention to the math backend, float32 steps and CUDA keep torch's choice.
    """
    q = torch.randn(2, 2, 30, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16), training_utils.lower_precision_attention("cpu", "bf16"):
        assert not torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.math_sdp_enabled()
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    out.float().sum().backward()  # outside the context, as in training: the autograd of the math backend's ops
    assert out.dtype == torch.bfloat16 and torch.isfinite(q.grad).all()
    reference = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.05)
    assert torch.backends.cuda.flash_sdp_enabled()  # restored
    for device, precision in [("cpu", "no"), ("cuda", "bf16")]:
        with training_utils.lower_precision_attention(device, precision):
            assert torch.backends.cuda.flash_sdp_enabled()
    # in the training script: every attention module of a bf16 step runs with the fused kernel off
    flash_on = []
    handle = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: (
            flash_on.append(torch.backends.cuda.flash_sdp_enabled())
            if isinstance(module, torch.nn.MultiheadAttention)
            else None
        )
    )
    try:
        train.main(base_args(prepared, tmp_path / "o", "--mixed_precision", "bf16", "--max_train_steps", "1"))
    finally:
        handle.remove()
    assert flash_on and not any(flash_on)


def test_bf16_overfits_a_fixed_batch_like_float32_and_auto_picks_by_the_cpu(tmp_path, monkeypatch, caplog):
    """
    The quality check of bf16 training at test size: on an overfit set, 60 denoising-objective steps in bf16 bring the
    one-step error (evaluated in float32) down as far as the float32 run does, same seed and batches.
    `--mixed_precision auto` picks bf16 where the CPU has native bfloat16 and falls back to float32 with a log line
    where it has not.
    """
    prepared = make_prepared_dir(tmp_path / "prep", num_rows=2, frames_per_row=(40, 50))
    common = ["--train_batch_size", "2", "--checkpointing_steps", "1000", "--adversarial_start_step", "1000",
              "--lr_warmup_steps", "5", "--learning_rate", "1e-2", "--objective", "denoising"]  # fmt: skip
    train.main(base_args(prepared, tmp_path / "init", "--max_train_steps", "0", *common))
    before = one_step_error(FlashSpeechPipeline.from_pretrained(tmp_path / "init"), prepared)
    after = {}
    for native in (False, True):
        monkeypatch.setattr(training_utils, "cpu_has_native_bf16", lambda native=native: native)
        caplog.clear()
        AcceleratorState._reset_state(reset_partial_state=True)
        out = tmp_path / f"native-{native}"
        with caplog.at_level(logging.INFO):
            train.main(base_args(prepared, out, "--max_train_steps", "60", "--mixed_precision", "auto", *common))
        assert ("Mixed precision: bf16" if native else "Mixed precision: no") in caplog.text
        assert ("no native bfloat16 arithmetic" in caplog.text) is not native
        after[native] = one_step_error(FlashSpeechPipeline.from_pretrained(out), prepared)
    fp32, bf16 = after[False], after[True]
    assert fp32 != bf16  # the two runs did compute differently
    assert fp32 < 0.5 * before and bf16 < 0.5 * before, (before, fp32, bf16)
    assert abs(bf16 - fp32) < 0.25 * fp32, (before, fp32, bf16)


def test_vocoder_bf16_autocasts_the_backbone_and_keeps_the_head_and_losses_float32(output_dtypes):
    config = get_pipeline_config("tiny")["codec"]
    config.pop("class_name")
    codec = MelCodec(**config).train()
    waveform = 0.1 * torch.randn(2, 16 * codec.hop_length, generator=torch.Generator().manual_seed(0))
    reference = vocoder.reconstruction_losses(codec, waveform, 1.0)
    output_dtypes.clear()
    losses = vocoder.reconstruction_losses(codec, waveform, 1.0, torch.bfloat16)
    losses["loss"].backward()
    assert all(v.dtype == torch.float32 for v in losses.values())
    seen = set(output_dtypes)
    assert ("Conv1d", torch.bfloat16) in seen  # the backbone under autocast
    assert ("ISTFTHead", torch.float32) in seen and ("Linear", torch.float32) in seen  # the head's projection
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in codec.parameters())
    assert losses["loss"].item() == pytest.approx(reference["loss"].item(), rel=0.05)
    assert vocoder.parse_args(["--audio_dir", ".", "--output_dir", "o", "--mixed_precision", "auto"]).mixed_precision


def test_checkpoints_resume_with_or_without_torch_compile(prepared, tmp_path):
    """
    The compiled denoiser (in place) saves the keys of the plain one, so checkpoints resume across the two: a compiled
    run's checkpoint resumes without compiling and continues as the compiled run did (the `eager` backend: tracing
    only, no code generation, to stay quick).
    """
    import shutil

    from safetensors.torch import load_file

    common = ["--max_train_steps", "4", "--checkpointing_steps", "2", "--adversarial_start_step", "1000"]
    compiled = train.main(base_args(prepared, tmp_path / "a", *common, "--torch_compile_backend", "eager"))
    keys = load_file(tmp_path / "a" / "checkpoint-2" / "denoiser" / "diffusion_pytorch_model.safetensors").keys()
    assert keys and not any("_orig_mod" in k for k in keys)
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "b" / "checkpoint-2")
    AcceleratorState._reset_state(reset_partial_state=True)
    plain = train.main(base_args(prepared, tmp_path / "b", *common, "--resume_from_checkpoint", "latest"))
    assert plain["global_step"] == 4
    for a, b in zip(compiled["loss_history"][2:], plain["loss_history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
