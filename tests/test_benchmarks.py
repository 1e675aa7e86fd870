import json

import benchmark_inference
import pytest
import torch
from peer_flow_matching import F5_BASE_SIZE, FlowMatchingPeer


def test_peer_has_f5_base_size_and_samples_with_guidance():
    peer = FlowMatchingPeer(**F5_BASE_SIZE, vocoder=False)
    assert 330e6 < peer.num_parameters() < 345e6  # F5-TTS base: ~336M
    tiny = FlowMatchingPeer.from_size("tiny").eval()
    calls = []
    tiny.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    audio = tiny.synthesize(["hello", "hi"], torch.randn(2, 100, 20), [30, 25], nfe=3)
    assert calls == [4, 4, 4]  # one batched conditional + unconditional pass per Euler step
    assert audio.shape == (2, 30 * 256) and torch.isfinite(audio).all()


def test_smoke_run_writes_expected_table(tmp_path):
    output = tmp_path / "inference.md"
    rows = benchmark_inference.main(["--smoke", "--output", str(output)])
    ours = [(r.batch_size, r.nfe) for r in rows if r.system == "FlashSpeech tiny"]
    assert ours == [(1, 1), (1, 2), (2, 1), (2, 2)]
    peers = [r for r in rows if r.system.startswith("flow-matching peer")]
    assert [(r.batch_size, r.nfe) for r in peers] == [(1, 2)]
    for r in rows:
        assert r.rtf > 0 and r.e2e_seconds > 0 and r.peak_memory_mb > 0
        assert r.audio_seconds == pytest.approx(2.0, abs=0.3)  # forced durations set the output length
    for r in rows[:4]:
        assert set(r.split_rtf) == set(benchmark_inference.SPLIT) and r.floor_rtf > 0 and r.overhead is not None
    table = output.read_text()
    assert "Machine: CPU" in table and f"torch {torch.__version__}" in table
    assert table.count("| FlashSpeech tiny |") == 4 and table.count("| flow-matching peer") == 1
    assert "peer@2 / ours" in table and "batch 2 gives" in table
    saved = json.loads(output.with_suffix(".json").read_text())
    assert len(saved["rows"]) == 5 and "machine" in saved


def test_precision_options_build_the_pipeline():
    bf16 = benchmark_inference.build_pipeline("tiny", torch.device("cpu"), dtype="bfloat16")
    assert bf16.denoiser.dtype == torch.bfloat16 and bf16.codec.head.window.dtype == torch.float32
    int8 = benchmark_inference.build_pipeline("tiny", torch.device("cpu"), quantization="int8")
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in int8.denoiser.modules())
    assert benchmark_inference.precision_label("bfloat16", "none") == " bfloat16"
    with pytest.raises(SystemExit):
        benchmark_inference.parse_args(["--quantization", "int8", "--dtype", "bfloat16"])


def test_streaming_smoke_run_reports_first_audio_before_the_whole_text(tmp_path):
    import benchmark_streaming

    output = tmp_path / "streaming.md"
    result = benchmark_streaming.main(["--smoke", "--repeats", "1", "--batch_sizes", "3", "--output", str(output)])
    stream, batched = result["rows"]
    assert result["num_sentences"] == 3 and stream["method"] == "stream, batch_size=1"
    assert 0 < stream["first_audio_s"] < stream["total_s"] and batched["first_audio_s"] == batched["total_s"]
    assert stream["audio_s"] == batched["audio_s"] > 0  # the same audio, streamed or whole
    assert "| stream, batch_size=1 |" in output.read_text() and output.with_suffix(".json").is_file()


@pytest.mark.parametrize("nfe", [1, 2])
def test_component_timer_times_the_real_call_through_hooks(nfe):
    """The split comes from hooks on the pipeline's own call: every component is seen, once per network evaluation."""
    pipe = benchmark_inference.build_pipeline("tiny", torch.device("cpu"))
    prompt = benchmark_inference.make_prompt(3.0, benchmark_inference.PROMPT_SR)
    timer = benchmark_inference.ComponentTimer(pipe, torch.device("cpu"))
    with torch.inference_mode():
        timer.time_call(
            lambda: pipe("the quick brown fox", prompt, prompt_sampling_rate=16000, num_inference_steps=nfe),
            record=True,
        )
    # one pass per network evaluation, plus the submodule calls of `prepare_condition` (once per call)
    passes = [call for call in timer.calls["denoiser"] if call[0] is pipe.denoiser]
    assert len(passes) == nfe
    assert all(module in set(pipe.denoiser.modules()) for module, _, _ in timer.calls["denoiser"])
    prepared = [module for module, _, _ in timer.calls["denoiser"] if module is not pipe.denoiser]
    assert len(prepared) == len(pipe.denoiser.backbone.layers) + 1  # each layer's cond_proj, the prompt queries
    assert {type(module).__name__ for module, _, _ in timer.calls["prosody"]} >= {"ProsodyPredictor", "Embedding"}
    assert timer.calls["codec_decode"] and not timer.calls["codec_encode"]  # the mel codec's encode is an STFT
    # the prior encoder is called through its methods (`encode_prompt`, ...): the hooks see its submodules' calls
    prior_modules = set(pipe.prior_encoder.modules())
    assert timer.calls["prior"] and all(module in prior_modules for module, _, _ in timer.calls["prior"])
    for name in ("prior", "prosody", "denoiser", "codec_decode", "other"):
        assert timer.seconds[name] > 0, name
    # a recorded call replays alone on its inputs
    module, args, kwargs = passes[0]
    with torch.inference_mode():
        assert module(*args, **kwargs).sample.shape == args[0].shape


def test_training_benchmark_times_each_setting_in_its_own_run_and_writes_the_table(tmp_path):
    import benchmark_training

    output = tmp_path / "training.md"
    argv = ["--sizes", "tiny", "--precisions", "fp32", "bf16", "--threads", "1", "--processes", "1", "2",
            "--steps", "3", "--warmup_steps", "1"]  # fmt: skip
    rows = benchmark_training.main([*argv, "--output", str(output)])
    settings = [(r["size"], r["precision"], r["processes"], r["threads"]) for r in rows]
    assert settings == [("tiny", p, n, 1) for n in (1, 2) for p in ("fp32", "bf16")]
    for r in rows:
        assert r["steps_per_second"] > 0 and r["audio_hours_per_hour"] > 0 and r["cpu_seconds_per_step"] > 0
    table = output.read_text().splitlines()
    assert table[0].startswith("| size | precision | batching | pad to | processes x threads | global batch | steps/s")
    assert len(table) == 6
    assert "| tiny | fp32 | random | 1 | 1 x 1 | config |" in table[2] and "| 1.00x |" in table[2]
    assert "| tiny | fp32 | random | 1 | 2 x 1 | config |" in table[4]
    assert json.loads(output.with_suffix(".json").read_text())["rows"] == rows
    # length-grouped and padded batches of the given lengths: same rows per step
    rows = benchmark_training.main(["--sizes", "tiny", "--precisions", "fp32", "--threads", "1", "--batching",
                                    "random", "grouped", "--pad_to_multiple_of", "1", "16", "--frames", "20", "60",
                                    "--rows", "24", "--steps", "3", "--warmup_steps", "1"])  # fmt: skip
    settings = [(r["batching"], r["pad_to_multiple_of"]) for r in rows]
    assert settings == [("random", 1), ("random", 16), ("grouped", 1), ("grouped", 16)]
    assert all(r["steps_per_second"] > 0 for r in rows)
    with pytest.raises(ValueError, match="--pad_to_multiple_of"):
        benchmark_training.main(["--sizes", "tiny", "--pad_to_multiple_of", "0"])
    with pytest.raises(ValueError, match="--warmup_steps"):
        benchmark_training.main(["--sizes", "tiny", "--steps", "2", "--warmup_steps", "2"])
    with pytest.raises(ValueError, match="--frames"):
        benchmark_training.main(["--sizes", "tiny", "--frames", "60", "20"])
    with pytest.raises(ValueError, match="--global_batch_size 3"):
        benchmark_training.main(["--sizes", "tiny", "--processes", "2", "--global_batch_size", "3"])


def test_saved_voice_option_and_lever_ab_run(tmp_path):
    rows = benchmark_inference.main(["--smoke", "--prompt_as", "audio", "voice", "--peer", "none"])
    assert [r.system for r in rows[:2]] == ["FlashSpeech tiny", "FlashSpeech tiny saved voice"]  # cell by cell
    assert len(rows) == 8 and all(r.rtf > 0 for r in rows)
    import benchmark_levers

    output = tmp_path / "levers.md"
    result = benchmark_levers.main(["--smoke", "--threads", "1", "--levers", "threads", "--output", str(output)])
    assert result["audio_seconds"] == pytest.approx(2.0, abs=0.3)
    assert all(len(t) == 2 and min(t) > 0 for t in result["times"].values())  # 2 rounds of every variant
    table = output.read_text()
    assert "| saved voice (`voice=`) | bfloat16, prompt audio | bfloat16, saved voice |" in table
    assert table.count("x |") >= 2 * len(result["levers"]) and output.with_suffix(".json").is_file()
