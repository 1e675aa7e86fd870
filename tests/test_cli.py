import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from flashspeech_hf import FlashSpeechPipeline
from flashspeech_hf.cli import (
    EXIT_BAD_INPUT,
    EXIT_OUTPUT_ERROR,
    EXIT_TERMINATED,
    SUBCOMMANDS,
    build_parser,
    main,
)


def make_speech_like(seconds: float, sampling_rate: int, seed: int = 0) -> np.ndarray:
    """Harmonics of a gliding pitch under a syllable-rate envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t) + 10 * seed
    phase = 2 * np.pi * np.cumsum(f0) / sampling_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.3 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory):
    torch.manual_seed(0)
    pipe = FlashSpeechPipeline.from_named_config("tiny")
    torch.nn.init.constant_(pipe.prosody_generator.duration_predictor.out.bias, 1.5)
    path = tmp_path_factory.mktemp("model") / "tiny"
    pipe.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "prompt.wav"
    sf.write(path, make_speech_like(1.5, 22050), 22050)  # another rate than the model's 16 kHz
    return str(path)


def test_parser_has_one_subparser_per_table_entry():
    parser = build_parser()
    for name in SUBCOMMANDS:
        args = parser.parse_args([name, *_required_args(name)])
        assert args.command == name and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["no-such-command"])


def _required_args(name):
    if name == "synthesize":
        return ["--model", "m", "--text", "t", "--prompt", "p.wav", "--output", "o.wav"]
    if name == "evaluate":
        return ["--model", "m", "--test_list", "l.csv", "--output_dir", "d"]
    if name == "convert":
        return ["--model", "m", "--source", "s.wav", "--source_text", "t", "--reference", "r.wav", "--output", "o.wav"]
    if name == "edit":
        return ["--model", "m", "--audio", "a.wav", "--original_text", "t", "--new_text", "u", "--output", "o.wav"]
    if name == "voice":
        return ["--model", "m", "--prompt", "p.wav", "--output", "v.voice.safetensors"]
    if name == "convert-whisper":
        return ["--model", "tiny.en", "--output_dir", "d"]
    return []


def test_synthesize_writes_wav_at_model_rate(saved_pipeline, prompt_file, tmp_path):
    out = tmp_path / "sub" / "out.wav"
    argv = ["synthesize", "--model", saved_pipeline, "--text", "Hello world.", "--prompt", prompt_file]
    assert main([*argv, "--output", str(out), "--num_inference_steps", "2", "--seed", "3"]) == 0
    audio, rate = sf.read(out)
    assert rate == 16000
    assert audio.ndim == 1 and len(audio) > 0 and len(audio) % 200 == 0  # whole frames of hop 200
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    # same seed, same audio; the speed flag shortens the output
    again = tmp_path / "again.wav"
    fast = tmp_path / "fast.wav"
    assert main([*argv, "--output", str(again), "--seed", "3"]) == 0
    assert main([*argv, "--output", str(fast), "--seed", "3", "--speed", "2", "--prosody_alpha", "0"]) == 0
    np.testing.assert_array_equal(sf.read(again)[0], audio)
    assert len(sf.read(fast)[0]) < len(audio)


def test_synthesize_several_waveforms_one_file_and_seed_each(saved_pipeline, prompt_file, tmp_path):
    argv = ["synthesize", "--model", saved_pipeline, "--text", "Hello world.", "--prompt", prompt_file, "--seed", "3"]
    assert main([*argv, "--output", str(tmp_path / "many.wav"), "--num_waveforms_per_prompt", "2"]) == 0
    first, second = (sf.read(tmp_path / f"many-{i}.wav")[0] for i in (0, 1))
    assert not (tmp_path / "many.wav").exists()
    assert len(first) != len(second) or not np.array_equal(first, second)
    # waveform i is what a single synthesis with seed + i gives
    assert main([*argv[:-1], "4", "--output", str(tmp_path / "one.wav")]) == 0
    np.testing.assert_allclose(sf.read(tmp_path / "one.wav")[0], second, atol=1e-4)


def test_example_runs_the_cli_with_the_pipeline_flag_names(saved_pipeline, prompt_file, tmp_path, capsys):
    import zero_shot_tts

    path = zero_shot_tts.main(["--model", saved_pipeline, "--prompt", prompt_file, "--output_dir", str(tmp_path),
                               "--num_inference_steps", "1", "--prosody_alpha", "0", "--seed", "5"])  # fmt: skip
    printed = capsys.readouterr().out
    assert "$ flashspeech synthesize " in printed and "--num_inference_steps 1 --prosody_alpha 0.0 --seed 5" in printed
    # the example's audio is the command line's
    assert main(["synthesize", "--model", saved_pipeline, "--prompt", prompt_file, "--text", zero_shot_tts.DEFAULT_TEXT,
                 "--output", str(tmp_path / "cli.wav"), "--num_inference_steps", "1", "--prosody_alpha", "0",
                 "--seed", "5"]) == 0  # fmt: skip
    np.testing.assert_array_equal(sf.read(path)[0], sf.read(tmp_path / "cli.wav")[0])
    assert "Whisper hears:" in printed or "Whisper is not installed" in printed
    with pytest.raises(SystemExit):
        zero_shot_tts.main(["--steps", "2"])  # one set of flag names: the pipeline's


def test_synthesize_reports_bad_input(saved_pipeline, tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(32000, dtype=np.float32), 16000)
    argv = ["synthesize", "--model", saved_pipeline, "--text", "Hi.", "--output", str(tmp_path / "o.wav")]
    assert main([*argv, "--prompt", str(silent)]) == 2
    assert "silent" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="not found"):
        main([*argv, "--prompt", str(tmp_path / "missing.wav")])
    assert main(["synthesize", "--model", str(tmp_path), "--text", "Hi.", "--prompt", str(silent),
                 "--output", str(tmp_path / "o.wav")]) == 2  # fmt: skip
    assert "model_index.json" in capsys.readouterr().err


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "flashspeech")
    result = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "synthesize" in result.stdout and "evaluate" in result.stdout


def test_precision_flag_loads_the_networks_in_that_precision(saved_pipeline, prompt_file, tmp_path):
    from flashspeech_hf.cli import _load_pipeline
    from flashspeech_hf.precision import is_int8_quantized

    assert _load_pipeline(saved_pipeline, None, precision="bfloat16").denoiser.dtype == torch.bfloat16
    assert is_int8_quantized(_load_pipeline(saved_pipeline, None, precision="int8").denoiser)
    output = tmp_path / "bf16.wav"
    argv = ["synthesize", "--model", saved_pipeline, "--prompt", prompt_file, "--text", "Hi there."]
    assert main([*argv, "--output", str(output), "--precision", "bfloat16"]) == 0
    audio, _ = sf.read(output)
    assert len(audio) > 0 and np.isfinite(audio).all()
    with pytest.raises(SystemExit):
        main([*argv, "--output", str(output), "--precision", "int4"])


def test_output_location_is_checked_before_the_model_loads(tmp_path, prompt_file, capsys, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    missing_model = str(tmp_path / "no-model")  # never loaded: the output is checked first
    rows = tmp_path / "rows.csv"
    rows.write_text(f"text,prompt\nHi.,{prompt_file}\n")
    argv = ["synthesize", "--model", missing_model, "--input_csv", str(rows), "--output_dir", str(a_file)]
    assert main(argv) == EXIT_OUTPUT_ERROR
    assert "is a file, not a folder" in capsys.readouterr().err
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    real_access = os.access  # a read-only mount, also for root (who may write into a mode-555 folder)
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(read_only) else real_access(p, mode))
    argv = ["synthesize", "--model", missing_model, "--text", "Hi.", "--prompt", prompt_file]
    assert main([*argv, "--output", str(read_only / "out.wav")]) == EXIT_OUTPUT_ERROR
    assert "read_only is read-only" in capsys.readouterr().err
    assert main([*argv, "--output", str(tmp_path)]) == EXIT_OUTPUT_ERROR  # a folder given as the output file
    assert "is a folder" in capsys.readouterr().err
    voice_argv = ["voice", "--model", missing_model, "--prompt", prompt_file, "--output"]
    assert main([*voice_argv, str(read_only / "v.voice.safetensors")]) == EXIT_OUTPUT_ERROR
    assert "read_only is read-only" in capsys.readouterr().err
    assert main([*voice_argv, str(tmp_path)]) == EXIT_OUTPUT_ERROR
    assert "is a folder" in capsys.readouterr().err
    # argument errors have their own status (2, as argparse's), distinct from a batch's failed rows (1)
    with pytest.raises(SystemExit, match="--text_file not found") as error:
        main([*argv[:3], "--prompt", prompt_file, "--text_file", str(tmp_path / "none.txt"), "--output", "o.wav"])
    assert error.value.code == EXIT_BAD_INPUT
    binary = tmp_path / "book.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(SystemExit, match=rf"--text_file {binary} is not UTF-8 text \(byte 0x89 at offset 0\)"):
        main([*argv[:3], "--prompt", prompt_file, "--text_file", str(binary), "--output", "o.wav"])
    help_text = subprocess.run(
        [sys.executable, "-m", "flashspeech_hf.cli", "synthesize", "--help"], capture_output=True, text=True
    ).stdout
    assert f"{EXIT_OUTPUT_ERROR} the output cannot be written" in " ".join(help_text.split())


def _run_cli(code: str, argv: list[str], preexec_fn=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        preexec_fn=preexec_fn,
    )


def test_a_full_disk_is_named_with_its_own_exit_status(saved_pipeline, prompt_file, tmp_path):
    out = tmp_path / "out.wav"
    # a real failing write of the synthesized audio: a file-size limit of 4 KiB (a full disk fails the same way)
    code = (
        "import resource, signal, sys\n"
        "from flashspeech_hf.audio import AtomicAudioWriter\n"
        "from flashspeech_hf.cli import main\n"
        "write = AtomicAudioWriter.write\n"
        "def limited_write(self, samples):\n"
        "    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "    write(self, samples)\n"
        "AtomicAudioWriter.write = limited_write\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["synthesize", "--model", saved_pipeline, "--text", "Hello world.", "--prompt", prompt_file]
    result = _run_cli(code, [*argv, "--output", str(out)])
    assert result.returncode == EXIT_OUTPUT_ERROR, result.stderr[-2000:]
    assert f"error: Could not write {out}: System error : File too large." in result.stderr
    assert "Traceback" not in result.stderr and os.listdir(tmp_path) == []


def test_sigterm_during_a_text_file_leaves_no_partial_output(saved_pipeline, prompt_file, tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("The first sentence. The second sentence. The third one.", encoding="utf-8")
    out = tmp_path / "out" / "book.wav"
    # SIGTERM arrives after the first sentence is written to the hidden temporary file
    code = (
        "import os, signal, sys\n"
        "from flashspeech_hf.cli import main\n"
        "from flashspeech_hf.pipelines.long_form import FlashSpeechLongFormMixin\n"
        "stream = FlashSpeechLongFormMixin.stream\n"
        "def stream_then_sigterm(self, *args, **kwargs):\n"
        "    for chunk in stream(self, *args, **kwargs):\n"
        "        yield chunk\n"
        "        assert os.listdir(os.path.dirname(sys.argv[-1]))  # the partial file exists\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "FlashSpeechLongFormMixin.stream = stream_then_sigterm\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["synthesize", "--model", saved_pipeline, "--text_file", str(book), "--prompt", prompt_file]
    result = _run_cli(code, [*argv, "--output", str(out)])
    assert result.returncode == EXIT_TERMINATED == 143, result.stderr[-2000:]
    assert os.listdir(out.parent) == []
